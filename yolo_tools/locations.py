"""Where raw data, converted datasets and runs live, so one recipe runs unchanged on any machine.

Raw data is only ever read; converted datasets and runs are the workbench's own and may be rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "YOLO_TOOLS_DATA"
DATASETS_ENV = "YOLO_TOOLS_DATASETS"
RUNS_ENV = "YOLO_TOOLS_RUNS"
CORRECTIONS_ENV = "YOLO_TOOLS_CORRECTIONS"

# Searched in order when neither a flag nor YOLO_TOOLS_DATA names the data root: a `data/` folder in the
# working directory (a user's own download) and a `shared/data` folder beside the project (a team's copy).
_DEFAULT_DATA_ROOTS = (Path("data"), Path("../shared/data"))


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding raw datasets as published: a flag, then YOLO_TOOLS_DATA, then the usual places."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    for candidate in _DEFAULT_DATA_ROOTS:
        if candidate.is_dir():
            return candidate.resolve()
    return _DEFAULT_DATA_ROOTS[0].resolve()


def pull_root(explicit: str | os.PathLike | None = None) -> Path:
    """Where downloads land: a flag, YOLO_TOOLS_DATA or `./data`, never a team's shared read-only copy."""
    if explicit or os.environ.get(DATA_ENV):
        return data_root(explicit)
    return _DEFAULT_DATA_ROOTS[0].resolve()


def datasets_dir() -> Path:
    """Converted YOLO datasets: git-ignored, one folder per recipe and version (`yolo_tools.dataset`)."""
    return Path(os.environ.get(DATASETS_ENV, "datasets")).expanduser().resolve()


def runs_dir() -> Path:
    """Every run's weights, metrics, plots and report: `runs/<recipe>/<name>/`."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser().resolve()


def corrections_dir() -> Path:
    """Label corrections, one folder per recipe (`yolo_tools/convert/corrections.py`): the workbench's own, beside
    datasets and runs, never inside the data root (which may be a shared read-only copy) or a source folder."""
    return Path(os.environ.get(CORRECTIONS_ENV, "corrections")).expanduser().resolve()
