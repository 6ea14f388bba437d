"""The engine: everything that touches Ultralytics or torch, split by role as Ultralytics splits its own.

    devices     the device, torch's CPU threads, Ultralytics' usage events (off unless asked)
    weights     loading models, what a training starts from, checks of a model and what a checkpoint holds
    trainer     training and resuming (oversampling classifier trainer, tracking and usage callbacks)
    tuner       hyperparameter search (`YOLO.tune`, its tuner or Ray Tune)
    validator   `YOLO.val`: metrics under the workbench's names, per class; AP and F1 curves reused by metrics/
    predictor   batched prediction of files, decoded images or one image, with per-class confidences and mirroring
    results     Ultralytics results ↔ `Prediction`s, and drawing
    exporter    export, and Ultralytics' dataset converters the readers call
    args        Ultralytics' argument names and checks, read lazily so that reading a recipe stays cheap

Keeping the library behind this one package means an Ultralytics upgrade is a local change, and the rest of
the workbench deals in plain paths, dictionaries and `Prediction`s (yolo_tools/prediction.py): no Ultralytics
result or torch tensor leaves it (tests/test_imports.py checks that no module outside it imports Ultralytics
or torch). The rest of the workbench imports what it needs from here, not from the submodules.
"""

from yolo_tools.engine.devices import (
    SYNC_ENV,
    UsageEventsOff,
    available_devices,
    check_multi_gpu_batch,
    cpu_threads,
    device_label,
    pick_device,
    usage_events_environment,
    usage_events_off,
    use_every_core,
)
from yolo_tools.engine.exporter import convert_coco, convert_label_masks, export
from yolo_tools.engine.predictor import (
    PREDICT_DEFAULTS,
    predict,
    predict_array,
    predict_arrays,
)
from yolo_tools.engine.results import draw, from_arrays, keep_pixels
from yolo_tools.engine.trainer import (
    TRACKERS,
    Trackers,
    oversampled,
    resume,
    trackers_in_settings,
    train,
)
from yolo_tools.engine.tuner import tune
from yolo_tools.engine.validator import Validation, ap_per_class, f1_confidence, f1_curve, validate, validate_full
from yolo_tools.engine.weights import (
    best_epoch,
    check_model,
    checkpoint_epochs,
    is_official,
    load_model,
    metrics_from_checkpoint,
    strides,
    task_and_names,
    training_start,
    weights_dir,
)

__all__ = [
    "PREDICT_DEFAULTS", "SYNC_ENV", "TRACKERS", "Trackers", "UsageEventsOff", "Validation",
    "ap_per_class", "available_devices", "best_epoch", "check_model", "check_multi_gpu_batch", "checkpoint_epochs",
    "convert_coco", "convert_label_masks", "cpu_threads", "device_label", "draw", "export", "f1_confidence",
    "f1_curve", "from_arrays", "is_official", "keep_pixels", "load_model", "metrics_from_checkpoint",
    "oversampled", "pick_device", "predict", "predict_array", "predict_arrays", "resume", "strides", "task_and_names", "trackers_in_settings", "train", "training_start", "tune", "usage_events_environment",
    "usage_events_off", "use_every_core", "validate", "validate_full", "weights_dir",
]
