"""Readers for what hospitals hand over (DICOM files, NIfTI volumes), as float arrays in the scanner's units.

They only read: how values become 8-bit grey is `yolo_tools.intensity`, chosen by the recipe or, for
DICOM, by the window stored in the file.
"""

# Raster image files Ultralytics and OpenCV read directly (DICOM needs `imaging.dicom`).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
