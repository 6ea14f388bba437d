"""How masks and outlines are written down, read and written by both sides of the workbench: the readers that
convert published sets (convert/), and evaluation, the tasks' scoring and the output formats.

    polygons    masks ↔ YOLO polygon lines (OpenCV's contours, holes and overlapping classes kept)
    rle         run-length encoding, column-major as Kaggle's UW-Madison GI set and the rle-csv output write it
    mask_png    per-class masks as one 16-bit PNG (a bit per class), the report's gallery and the ground truth of sets
                converted from masks

Nothing here knows a recipe, a run or a model: plain NumPy arrays and files in, arrays and files out.
"""
