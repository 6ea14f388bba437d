"""How much 3D Dice the mask prototypes' grid can hold at most: the ground truth drawn on that grid and back.

    nice -n 5 .venv/bin/python -m benchmarks.mask_grid

A YOLOv8-seg model draws every mask from prototypes at a quarter of its input size (stride 4), upsampled to
the slice (`retina_masks`, as `evaluate` predicts). On a hippocampus slice of about 35 x 50 voxels at imgsz 128
one prototype cell is 1.6 voxels across, so a structure a few voxels thick could lose Dice on that grid alone;
a finer head (prototypes at stride 2 from a P2 level) would win it back. This measures that loss before any
such head is built: each slice's mask per class, at the scale the model sees it (the long side to imgsz),
averaged onto the grid (area interpolation: a cell's share of the structure), brought back bilinearly and cut
at 0.5. That is the best any mask drawn on the grid can do; its 3D Dice against the ground truth per volume is
the ceiling. Written here because no library scores a resolution limit; OpenCV does the resizing.

Results: `benchmarks/results/mask_grid.json`; `python -m benchmarks.report` renders them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks import common

TOPIC = "mask_grid"
# (imgsz, prototype stride): the recipe as shipped (64), the benchmark's 128, imgsz=auto's 192, and a P2 head at 128.
GRIDS = [(64, 4), (128, 4), (192, 4), (128, 2)]
LABELS = {"Anterior": 1, "Posterior": 2}  # the Decathlon's Task04 dataset.json


def through_grid(mask: np.ndarray, cell: float) -> np.ndarray:
    """A 2D mask averaged onto a grid of `cell` voxels and brought back: the best mask that grid can draw."""
    h, w = mask.shape
    small = cv2.resize(mask.astype(np.float32), (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5


def ceiling(labels: np.ndarray, imgsz: int, stride: int) -> dict[str, float]:
    """3D Dice per class of one volume's labels drawn on the grid (slices along the last axis, as the recipe takes them)."""
    cell = stride * max(labels.shape[:2]) / imgsz
    out = {}
    for name, value in LABELS.items():
        truth = labels == value
        drawn = np.stack([through_grid(truth[:, :, k], cell) if truth[:, :, k].any() else truth[:, :, k]
                          for k in range(truth.shape[2])], axis=2)
        total = truth.sum() + drawn.sum()
        out[name] = float(2 * (truth & drawn).sum() / total) if total else 1.0
    return out


def kept_patients() -> set[str]:
    """The recipe's train and val patients: its test patients' labels are not looked at."""
    from yolo_tools.conversion import prepare_dataset
    from yolo_tools.recipe import load_recipe

    common.isolate_outputs(common.work_dir())
    table = prepare_dataset(load_recipe(common.ROOT / "recipes" / "hippocampus.yaml")).patients()
    return set(table.loc[table["split"] != "test", "patient"])


def run(results: Path, argv: list[str] | None, quick: bool) -> dict[str, Any]:
    from yolo_tools.imaging import nifti

    kept = kept_patients()
    folder = common.data_root() / "hippocampus-mri-msd" / "labelsTr"
    files = sorted(f for f in folder.glob("hippocampus_*.nii*") if f.name.split(".")[0] in kept)[: 5 if quick else None]
    if not files:
        raise SystemExit(f"{folder}: no label volume of the recipe's train and val patients; the Decathlon's Task04 "
                         "as published belongs there (../shared/data/README.md)")
    volumes = [np.rint(nifti.read(f).data).astype(np.int16) for f in files]
    rows = {}
    for imgsz, stride in GRIDS:
        scores = [ceiling(v, imgsz, stride) for v in volumes]
        cell = [stride * max(v.shape[:2]) / imgsz for v in volumes]
        rows[f"{imgsz}/{stride}"] = {
            "imgsz": imgsz, "stride": stride, "volumes": len(scores),
            "cell_voxels_median": round(float(np.median(cell)), 3),
            **{f"dice_{n}": round(float(np.mean([s[n] for s in scores])), 4) for n in LABELS},
            **{f"dice_{n}_min": round(float(np.min([s[n] for s in scores])), 4) for n in LABELS},
        }
        print(f"imgsz {imgsz:4} stride {stride}: cell {rows[f'{imgsz}/{stride}']['cell_voxels_median']} voxels, "
              + ", ".join(f"{n} {rows[f'{imgsz}/{stride}'][f'dice_{n}']:.4f}" for n in LABELS))
    payload = {**common.header(TOPIC, argv, {"grids": GRIDS}, probe_gpu=False), "rows": rows,
               "data": "hippocampus-mri-msd/labelsTr, the recipe's train and val patients"}
    common.save(TOPIC, payload, results)
    return payload


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__.split("\n\n")[0]).parse_args(argv)
    run(args.results, argv, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
