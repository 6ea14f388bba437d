"""What predictions are written as: CSV/JSON of findings and annotated images (predictions.py), and the formats
other tools read (prediction_formats.py: NIfTI, DICOM SEG and SR, COCO results, run-length CSV).
"""
