"""Metrics beyond Ultralytics' own, one module per task; plain numpy/pandas in, numbers out.

`segmentation`: Dice and IoU per class, per image and per 3D volume; `detection`: box IoU and per-image
false positives and misses; `classification`: accuracy, precision, recall, F1, ROC AUC and the confusion
matrix. Reading predictions and ground truth and writing the files is `yolo_tools.evaluate`'s job.
"""
