"""Bad input: devices this machine does not have, in every spelling Ultralytics accepts, for every verb.

Each is refused through Ultralytics' own `select_device` before any conversion or run folder is made,
with one message naming `device=` and what the machine has. `MISSING` is the first GPU index past the
ones this machine has (0 on a CPU-only one), so the table holds on GPU machines too. `cv` is refused before
anything is written as well (its `cv.json` would otherwise block the corrected command).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bad_input import Case, parametrize, run_case

MISSING = torch.cuda.device_count()
AVAILABLE = r"available: cpu"


def _weights(inputs: Path) -> None:
    """A run folder with weights: the device is refused before they are ever read."""
    (inputs / "run" / "weights").mkdir(parents=True)
    (inputs / "run" / "weights" / "best.pt").write_bytes(b"not read")
    (inputs / "images").mkdir()
    (inputs / "images" / "a.png").write_bytes(b"not read either")


def _recipe_with_device(inputs: Path) -> None:
    demo = (Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml").read_text()
    (inputs / "gpu.yaml").write_text(demo.replace("  workers: 0\n", "  workers: 0\n  device: cuda:57\n"))


def _train(device: str) -> list[str]:
    return ["train", "demo", f"device={device}", "epochs=1"]


CASES: list[Case] = [
    Case("train-index-this-machine-lacks", lambda i: _train(str(MISSING)), (rf"device={MISSING}\b", AVAILABLE)),
    Case("train-cuda-colon-index", lambda i: _train(f"cuda:{MISSING}"), (rf"device=cuda:{MISSING}", AVAILABLE)),
    Case("train-far-cuda-index", lambda i: _train("cuda:57"), (r"device=cuda:57", "not available on this machine")),
    Case("train-multi-gpu-string", lambda i: _train(f"{MISSING},{MISSING + 1}"), (rf"device={MISSING},{MISSING + 1}", AVAILABLE, r"device=0,1")),
    Case("train-multi-gpu-list", lambda i: _train(f"[{MISSING},{MISSING + 1}]"), (r"\bdevice=\[", AVAILABLE)),
    Case("train-word-gpu", lambda i: _train("gpu"), (r"device=gpu", AVAILABLE, r"device=cpu")),
    Case("train-negative-index", lambda i: _train("-2"), (r"device=-2", AVAILABLE)),
    Case("recipe-train-device", lambda i: ["train", str(i / "gpu.yaml")], (r"gpu\.yaml: train: device=cuda:57", AVAILABLE), setup=_recipe_with_device),
    Case("val-missing-device", lambda i: ["val", str(i / "run"), "device=cuda:57"], (r"device=cuda:57", AVAILABLE), setup=_weights),
    Case("predict-missing-device", lambda i: ["predict", str(i / "run"), str(i / "images"), "device=57"], (r"device=57", AVAILABLE), setup=_weights),
    Case("evaluate-missing-device", lambda i: ["evaluate", str(i / "run"), "device=cuda:57"], (r"device=cuda:57", AVAILABLE), setup=_weights),
    Case("tune-missing-device", lambda i: ["tune", "demo", "device=cuda:57"], (r"device=cuda:57", AVAILABLE)),
    # Refused before cv.json is written: that file would otherwise block the corrected command under the same name.
    Case("cv-missing-device", lambda i: ["cv", "demo", "folds=2", "device=cuda:57"], (r"device=cuda:57", AVAILABLE)),
    Case("cv-recipe-device", lambda i: ["cv", str(i / "gpu.yaml"), "folds=2"], (r"gpu\.yaml: train: device=cuda:57", AVAILABLE),
         setup=_recipe_with_device),
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)
