"""Transfer learning offline: a run of another task (here segmentation) starts a detector through
Ultralytics' `pretrained=` weights; matching layers are copied, and a wrong path fails before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from conftest import RECIPES, needs_data
from yolo_tools import pipeline
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

LAYER = "model.2.cv1.conv.weight"  # a backbone convolution that yolov8n, -seg and -cls share in shape
# SGD at lr0=0 keeps the weights where they started, so what best.pt holds is what was loaded before training.
FROZEN = {"epochs": 1, "imgsz": 64, "fraction": 0.1, "batch": 8, "workers": 0, "plots": False, "device": "cpu",
          "optimizer": "SGD", "lr0": 0.0, "warmup_epochs": 0}  # "auto" would pick its own rate


def _layer(weights: Path) -> torch.Tensor:
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    return (checkpoint.get("ema") or checkpoint["model"]).float().state_dict()[LAYER]


@pytest.mark.slow
@needs_data("heart-cxr-jsrt")
def test_a_segmentation_run_starts_a_detector(workspace: Path) -> None:
    source, _ = pipeline.train_recipe(RECIPES / "heart-seg.yaml", {**FROZEN, "lr0": 0.01}, name="transfer-source")
    weights = source / "weights" / "best.pt"
    moved, _ = pipeline.train_recipe(RECIPES / "heart.yaml", {**FROZEN, "pretrained": str(weights)}, name="transfer-init")
    scratch, _ = pipeline.train_recipe(RECIPES / "heart.yaml", FROZEN, name="transfer-scratch")
    assert torch.allclose(_layer(moved / "weights" / "best.pt"), _layer(weights), atol=1e-3)
    assert not torch.allclose(_layer(scratch / "weights" / "best.pt"), _layer(weights), atol=1e-3)
    saved = yaml.safe_load((moved / "recipe.yaml").read_text())
    assert saved["train"]["pretrained"] == str(weights) and saved["model"] == "yolov8n.yaml"


def test_missing_pretrained_weights_fail_before_training(tmp_path: Path) -> None:
    recipe = yaml.safe_load((RECIPES / "heart.yaml").read_text())
    recipe["train"]["pretrained"] = "runs/nothing/here/weights/best.pt"
    path = tmp_path / "heart.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(UserError, match=r"heart\.yaml: train\.pretrained: runs/nothing/here/weights/best\.pt: no such weights"):
        pipeline.train_recipe(path)
    with pytest.raises(UserError, match=r"command line: pretrained: yolov8n\.pt: no such weights file"):
        pipeline.train_recipe(RECIPES / "heart.yaml", {"pretrained": "yolov8n.pt"})


def test_pretrained_must_be_weights(tmp_path: Path) -> None:
    recipe = yaml.safe_load((RECIPES / "heart.yaml").read_text())
    recipe["train"]["pretrained"] = "yolov8n.yaml"
    path = tmp_path / "heart.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(UserError, match=r"train: 'pretrained' is true, false or weights"):
        load_recipe(path)
