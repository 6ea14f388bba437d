"""Where raw data, converted datasets and runs live, so one recipe runs unchanged on any machine.

Raw data is only ever read; converted datasets and runs are the workbench's own and may be rewritten.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from yolo_tools.errors import UserError

LOG = logging.getLogger(__name__)

DATA_ENV = "YOLO_TOOLS_DATA"
DATASETS_ENV = "YOLO_TOOLS_DATASETS"
RUNS_ENV = "YOLO_TOOLS_RUNS"
CORRECTIONS_ENV = "YOLO_TOOLS_CORRECTIONS"

# Searched in order when neither a flag nor YOLO_TOOLS_DATA names the data root: a `data/` folder in the
# working directory (a user's own download) and a `shared/data` folder beside the project (a team's copy).
_DEFAULT_DATA_ROOTS = (Path("data"), Path("../shared/data"))
_announced: set[tuple[Path, Path]] = set()


def data_roots(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Where raw datasets are looked for, in order: a flag or YOLO_TOOLS_DATA alone, else the usual places."""
    if explicit:
        return [Path(explicit).expanduser().resolve()]
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV]).expanduser().resolve()]
    return [candidate.resolve() for candidate in _DEFAULT_DATA_ROOTS]


def _contents(root: Path) -> list[str]:
    """The dataset folders (or files) in a root; hidden entries (a pull's work folder, .DS_Store) do not count."""
    try:
        return sorted(entry.name for entry in root.iterdir() if not entry.name.startswith("."))
    except OSError:  # not there, not a folder, not readable
        return []


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding raw datasets as published: a flag, then YOLO_TOOLS_DATA, then the usual places.

    Of the usual places the first that holds something wins: an empty `./data` (made by hand, or by an
    older version's failed pull) does not hide `../shared/data`. Datasets are found per folder by
    `raw_folder`, which also searches the others.
    """
    roots = data_roots(explicit)
    return next((root for root in roots if _contents(root)), roots[0])


def raw_folder(folder: str | os.PathLike, explicit: str | os.PathLike | None = None) -> Path:
    """A dataset folder as published: absolute as given, else under the first data root that holds it.

    With neither a flag nor YOLO_TOOLS_DATA the usual places are searched for each dataset in turn, so a
    `./data` holding one pulled set does not hide the others in `../shared/data`, and the choice is said in
    one line naming the other places and what they hold. When no root holds it, the path is under
    `data_root` (the caller says it is missing, naming every root searched: `searched_roots`).
    """
    folder = Path(folder)
    if folder.is_absolute():
        return folder
    roots = data_roots(explicit)
    found = next((root for root in roots if (root / folder).is_dir()), None)
    if found is None:
        return data_root(explicit) / folder
    if len(roots) > 1 and (found, folder) not in _announced:
        _announced.add((found, folder))
        others = ", ".join(f"{_shown(root)} ({_held(root)})" for root in roots if root != found)
        LOG.info("raw data: %s from %s; other data roots: %s (--data-root or %s chooses one)",
                 folder, _shown(found), others, DATA_ENV)
    return found / folder


def searched_roots(explicit: str | os.PathLike | None = None) -> str:
    """The data roots searched, as a message names them: `./data (empty), ../shared/data (9 datasets)`."""
    return ", ".join(f"{_shown(root)} ({_held(root)})" for root in data_roots(explicit))


def _shown(root: Path) -> str:
    """A usual place as the user knows it (`../shared/data`), any other root as its full path."""
    for candidate in _DEFAULT_DATA_ROOTS:
        if candidate.resolve() == root:
            return f"./{candidate}" if not str(candidate).startswith(".") else str(candidate)
    return str(root)


def _held(root: Path) -> str:
    if not root.is_dir():
        return "not there"
    entries = _contents(root)
    if not entries:
        return "empty"
    return f"{len(entries)} dataset{'s' if len(entries) != 1 else ''}"


def pull_root(explicit: str | os.PathLike | None = None) -> Path:
    """Where downloads land: a flag, YOLO_TOOLS_DATA or `./data`, never a team's shared read-only copy."""
    if explicit or os.environ.get(DATA_ENV):
        return data_roots(explicit)[0]
    return _DEFAULT_DATA_ROOTS[0].resolve()


def datasets_dir() -> Path:
    """Converted YOLO datasets: git-ignored, one folder per recipe and version (`yolo_tools.dataset`)."""
    return Path(os.environ.get(DATASETS_ENV, "datasets")).expanduser().resolve()


def runs_dir() -> Path:
    """Every run's weights, metrics, plots and report: `runs/<recipe>/<name>/`."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser().resolve()


def check_runs_folder(path: Path) -> Path:
    """`path`, a folder of the runs folder, when it is one or can be made one: a file there or on the way is one
    message before any work. Without this, it fails as NotADirectoryError only when the first file of a run
    is written, after the conversion and the model load."""
    blocking = next((folder for folder in (path, *path.parents) if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        raise UserError(
            f"{path}: {blocking} is a file, not a folder, so the run cannot be written there; move the file away, "
            f"or point {RUNS_ENV} at a folder (default: ./runs)"
        )
    return path


def corrections_dir() -> Path:
    """Label corrections, one folder per recipe (`yolo_tools/convert/corrections.py`): the workbench's own, beside
    datasets and runs, never inside the data root (which may be a shared read-only copy) or a source folder."""
    return Path(os.environ.get(CORRECTIONS_ENV, "corrections")).expanduser().resolve()
