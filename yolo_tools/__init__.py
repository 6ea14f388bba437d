"""yolo-tools: medical images from raw public datasets to trained, evaluated and inspected YOLO models."""

__version__ = "0.1.0"
