"""The converted dataset on disk: its layout, its tables, its labels, and which version of it a run needs.

`convert.writer` writes a dataset and every later stage (train, evaluation, report, inspect, cv, cascade,
the demo, outside sets) reads one; this module is the only place that knows how the folder is laid out,
so the writer takes its file names from here and the readers ask a `Dataset` for paths and tables instead
of spelling `images/<split>` or `patients.csv` again. It is also the one parser of YOLO label files.

Layout of `datasets/<recipe>/` (detect and segment; classify keeps `<split>/<class>/<image>` instead of
`images/` and `labels/`, and has no `data.yaml`):

    images/<split>/<image>      labels/<split>/<stem>.txt     masks/<split>/<stem>.png (published masks)
    data.yaml   card.json   card.md   patients.csv   slices.csv   spacing.csv   volumes.json   metadata.csv

Versions. A dataset's version is the fingerprint of the recipe that made it (`Recipe.fingerprint`, on the
card). Datasets are stored by recipe name, `datasets/<name>/`, and a run records the version it was
trained on (`runs.save_run_dataset`). When `datasets/<name>/` holds another version than the one a run
needs, that folder is left alone: the run's version lives beside it in `datasets/<name>@<fingerprint>/`
(`place`). When the recipe itself changes and is converted again, the version in `datasets/<name>/` is
kept (moved to its `@<fingerprint>` folder, `set_aside`) if a run records having been trained on it, and
replaced as before otherwise. So a folder a run was trained on is never rewritten under it; at worst
its version is converted again into its own folder.

Only reading and deciding happen here; converting is `conversion`'s job.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from yolo_tools import tasks
from yolo_tools.codecs.label_lines import read_labels
from yolo_tools.locations import datasets_dir

LOG = logging.getLogger(__name__)

SPLITS = ("train", "val")
TEST = "test"  # held out: converted with the rest, never trained on, early-stopped on or used to choose weights
IMAGES, LABELS = "images", "labels"
DATA_YAML = "data.yaml"
CARD, CARD_MD = "card.json", "card.md"
MARKER, WRITER = "written_by", "yolo_tools"  # on every card the workbench writes
SLICES_CSV = "slices.csv"  # image, split, patient, volume, slice of every image cut from a volume
PATIENTS_CSV = "patients.csv"  # image, split, patient of every written image: what bootstrap intervals resample
MASKS_DIR = "masks"  # published ground-truth masks of segmentation sets, one mask_png per image
SPACING_CSV = "spacing.csv"  # image, row_mm, col_mm where the source gives the pixel spacing
VOLUMES_JSON = "volumes.json"  # per volume: shape, spacing, RAS affine, slice axis (imaging/geometry.py)
METADATA_CSV = "metadata.csv"  # per image: the recipe's patient metadata, joined (convert/metadata.py)
CV_PREFIX = "cv-"  # cross-validation folds, links into this folder (crossval.py)
VERSION_SEP = "@"
# Keys every dataset card has had: a card written before the marker existed still counts as ours.
_CARD_KEYS = {"recipe", "fingerprint", "converter", "counts", "skipped"}


def read_card(root: Path) -> dict | None:
    """The dataset card at `root` if the workbench wrote it (marker, or a card of an older version); else None."""
    try:
        card = json.loads((root / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and (card.get(MARKER) == WRITER or _CARD_KEYS <= card.keys()) else None


def patient_wise(card: dict) -> bool | None:
    """Whether the dataset's splits hold disjoint patients: True, False (a patient on two sides), or None
    when nothing says which patient an image is of (a published split kept as it is). A card written before
    the writer recorded it: True where the split was drawn by a patient rule, else None."""
    if "patient_wise" in card:
        return card["patient_wise"]
    split = card.get("split")
    return None if not isinstance(split, dict) or split.get("by", "source") == "source" else True


@dataclass(frozen=True)
class Dataset:
    """A converted dataset folder and the task it was converted for: paths per split, tables, labels, card.

    Example:
        >>> data = Dataset(Path("datasets/heart"), "segment")
        >>> data.labels("val", "JPCLN001")   # [(0, array([...polygon...]))]
        >>> data.patients()                  # DataFrame image, split, patient (None for older conversions)
    """

    root: Path
    task: str

    @property
    def class_folders(self) -> bool:
        """Whether an image's class is the folder it lies in (classify) rather than the lines of a label file."""
        spec = tasks.TASKS.get(self.task)
        return spec is None or spec.label_lines is None

    @property
    def data_arg(self) -> Path:
        """What Ultralytics' `data=` takes: the data YAML, or the folder itself for classification."""
        return self.root if self.class_folders else self.root / DATA_YAML

    @cached_property
    def card(self) -> dict:
        """The dataset card (empty when the folder has none the workbench wrote)."""
        return read_card(self.root) or {}

    @property
    def fingerprint(self) -> str | None:
        return self.card.get("fingerprint")

    def images(self, split: str) -> Path:
        """The folder of a split's images (classify: the folder of its class folders)."""
        return self.root / split if self.class_folders else self.root / IMAGES / split

    def image_source(self, split: str) -> str:
        """A split's images as a prediction source: a folder, or a glob over the class folders for classify."""
        return str(self.images(split) / "*" / "*") if self.class_folders else str(self.images(split))

    def image_path(self, split: str, name: str, category: str | None = None) -> Path:
        """Where the image file `name` of `split` lies; `category` is its class folder where the layout has them.

        >>> Dataset(Path("d"), "classify").image_path("val", "a.png", "normal").as_posix()
        'd/val/normal/a.png'
        >>> Dataset(Path("d"), "detect").image_path("val", "a.png").as_posix()
        'd/images/val/a.png'
        """
        # one Path made from a string, not three joins: the writer asks once per image of thousands
        if self.class_folders:
            return Path(f"{self.root}/{split}/{category}/{name}")
        return Path(f"{self.root}/{IMAGES}/{split}/{name}")

    def make_folders(self, splits: Sequence[str], classes: Sequence[str], exist_ok: bool = False) -> None:
        """Every split's folders: image and label folders, or one folder per class (also a class with no image,
        which Ultralytics would otherwise not count as a class)."""
        for split in splits:
            if self.class_folders:
                folders = [self.images(split) / name for name in classes]
            else:
                folders = [self.images(split), self.label_folder(split)]
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=exist_ok)

    def write_data_yaml(self, splits: Sequence[str], classes: Sequence[str]) -> None:
        """`data.yaml` naming each split's image folder and the classes; none for classify, whose folders say it.

        >>> Dataset(root, "detect").write_data_yaml(["train", "val"], ["stone"])   # root/data.yaml:
        train: images/train
        val: images/val
        names:
          0: stone
        """
        if self.class_folders:
            return
        spec = {split: f"{IMAGES}/{split}" for split in splits} | {"names": dict(enumerate(classes))}
        self.data_arg.write_text(yaml.safe_dump(spec, sort_keys=False))

    def listing(self, splits: Sequence[str] = SPLITS) -> pd.DataFrame | None:
        """The images of `splits` in `patients.csv` order: image, split, patient, path, and, where the layout
        has class folders, class (the folder each lies in). None for a conversion without `patients.csv`."""
        table = self.patients()
        if table is None:
            return None
        table = table[table["split"].isin(splits)].reset_index(drop=True)
        if self.class_folders:
            where = {path.name: path for split in splits for path in self.images(split).glob("*/*")}
            table["path"] = table["image"].map(where)
            table["class"] = table["path"].map(lambda path: path.parent.name)
        else:
            table["path"] = [self.image_path(split, image) for image, split in zip(table["image"], table["split"])]
        return table

    def label_folder(self, split: str) -> Path:
        return self.root / LABELS / split

    def label_file(self, split: str, stem: str) -> Path:
        return Path(f"{self.root}/{LABELS}/{split}/{stem}.txt")  # as image_path: one Path per call

    def labels(self, split: str, stem: str) -> list[tuple[int, np.ndarray]]:
        return read_labels(self.label_file(split, stem))

    def masks(self, split: str) -> Path:
        """The folder of a split's published ground-truth masks (absent when the source gave polygons only)."""
        return self.root / MASKS_DIR / split

    def mask_file(self, split: str, stem: str) -> Path:
        return self.masks(split) / f"{stem}.png"

    def table(self, name: str, **read_csv) -> pd.DataFrame | None:
        """One of the dataset's CSV tables (PATIENTS_CSV, SLICES_CSV, ...), or None when this conversion has none."""
        path = self.root / name
        return pd.read_csv(path, **read_csv) if path.is_file() else None

    def patients(self) -> pd.DataFrame | None:
        return self.table(PATIENTS_CSV, dtype=str, keep_default_na=False)

    def metadata(self) -> pd.DataFrame | None:
        return self.table(METADATA_CSV, dtype=str, keep_default_na=False)

    def slices(self) -> pd.DataFrame | None:
        return self.table(SLICES_CSV, dtype={"patient": str, "volume": str})

    def spacing(self) -> dict[str, tuple[float, float]]:
        """Pixel spacing in mm (row, column) by image stem, where the source gave it."""
        table = self.table(SPACING_CSV)
        if table is None:
            return {}
        rows = table[["image", "row_mm", "col_mm"]].itertuples(index=False)
        return {Path(str(image)).stem: (float(row), float(col)) for image, row, col in rows}

    def volumes(self) -> dict:
        path = self.root / VOLUMES_JSON
        return json.loads(path.read_text()) if path.is_file() else {}


# --- versions ---------------------------------------------------------------------------------------


def home(name: str) -> Path:
    """`datasets/<name>/`: where a recipe's dataset is converted unless another version a run needs is there."""
    return datasets_dir() / name


def version_folder(name: str, fingerprint: str) -> Path:
    """`datasets/<name>@<fingerprint>/`: one version kept beside the one in `datasets/<name>/`."""
    return datasets_dir() / f"{name}{VERSION_SEP}{fingerprint}"


def fingerprint_at(root: Path) -> str | None:
    """The version held at `root`, or None when nothing the workbench wrote is there."""
    return (read_card(root) or {}).get("fingerprint")


def is_current(root: Path, fingerprint: str) -> bool:
    return fingerprint_at(root) == fingerprint


def place(name: str, fingerprint: str, latest: bool) -> Path:
    """The folder that holds, or is to hold, version `fingerprint` of dataset `name`.

    Where that version already is, if anywhere; else `datasets/<name>/` for the recipe as it is now
    (`latest`: train, convert, cv), and for an older run's version only while that folder is free, so an
    older run never makes a conversion over the version newer runs use.
    """
    main, kept = home(name), version_folder(name, fingerprint)
    if is_current(main, fingerprint):
        return main
    if is_current(kept, fingerprint):
        return kept
    return main if latest or fingerprint_at(main) is None else kept


def set_aside(name: str, needed: Iterable[str], dst: Path) -> Path | None:
    """Before `dst` is converted: when it is `datasets/<name>/`, keep the version there if a run needs it (in
    `needed`).

    It is moved (one rename, nothing copied) to its `@<fingerprint>` folder and that path returned; None
    when there is nothing to keep. Its cross-validation folds are removed: they are links into
    `datasets/<name>/`, which would point at the new version, and `cv` makes them again when asked.
    """
    main = home(name)
    if dst != main:
        return None
    old = fingerprint_at(main)
    if old is None or old not in set(needed):
        return None
    kept = version_folder(name, old)
    if is_current(kept, old):  # already kept there (a run converted it earlier): the copy at home can go
        return None
    if kept.exists():
        LOG.warning("%s is in the way of keeping %s; that version will be converted again when a run needs it", kept, main)
        return None
    main.rename(kept)
    for folds in kept.glob(f"{CV_PREFIX}*"):
        shutil.rmtree(folds, ignore_errors=True)
    LOG.warning("%s holds the dataset version %s that runs were trained on: kept as %s", main, old, kept)
    return kept
