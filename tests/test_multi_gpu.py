"""What a multi-GPU (DDP) training relies on, checked on CPU: device spellings and metrics read back.

Under DDP the training runs in worker processes; in the parent `trainer.metrics` stays empty and
`YOLO.train` may return nothing, so the run's metrics must come from the saved best.pt. The training
below is made to look like that parent and must still write the metrics its checkpoint holds.
"""

from __future__ import annotations

import json

import pytest

from conftest import RECIPES
from yolo_tools import engine, pipeline, tasks
from yolo_tools.errors import UserError

QUICK = {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False}


@pytest.mark.parametrize("spelling", ["cpu", "CPU", "-1", None, ""])
def test_spellings_ultralytics_accepts_resolve_here(spelling) -> None:
    """On a CPU-only machine these all mean the CPU; Ultralytics' own parser decides, not ours."""
    import torch

    if torch.cuda.is_available() and spelling not in ("cpu", "CPU"):
        pytest.skip("picks a GPU on this machine")
    assert engine.pick_device(spelling) == "cpu"


def test_device_list_from_the_command_line_reaches_ultralytics() -> None:
    """`device=[0,1]` arrives as a YAML list; it must be read as GPUs 0 and 1, not crash on `int('[0')`."""
    import torch

    overrides = pipeline.parse_overrides(["device=[0,1]"])
    if torch.cuda.device_count() >= 2:
        assert engine.pick_device(overrides["device"], announce=False) == "0,1"
    else:
        with pytest.raises(UserError, match=r"device=\[0, 1\]: not available on this machine"):
            engine.pick_device(overrides["device"])


def test_auto_batch_on_several_gpus_is_refused_before_any_work() -> None:
    """Checked on the canonical device string, so it needs no GPU: Ultralytics refuses this only mid-run."""
    with pytest.raises(UserError, match=r"command line: batch=-1: AutoBatch does not work on 2 GPUs.*batch=16"):
        engine.check_multi_gpu_batch("0,1", -1)
    with pytest.raises(UserError, match=r"batch=0.7"):
        engine.check_multi_gpu_batch("0,1,2", 0.7)
    for device, batch in (("0", -1), ("cpu", -1), ("0,1", 32), ("0,1", None)):
        engine.check_multi_gpu_batch(device, batch)


@pytest.mark.slow
def test_metrics_come_from_the_checkpoint_when_the_trainer_has_none(monkeypatch, workspace) -> None:
    real_load = engine.load_model

    def like_a_ddp_parent(model):
        loaded = real_load(model)
        real_train = loaded.train

        def train(**kwargs):
            real_train(**kwargs)
            loaded.trainer.metrics = {}  # never validated in the parent process
            loaded.trainer.validator = None
            return None

        loaded.train = train
        return loaded

    monkeypatch.setattr(engine.trainer, "load_model", like_a_ddp_parent)
    run_dir, metrics = pipeline.train_recipe(RECIPES / "demo.yaml", QUICK, name="ddp-parent")

    saved = engine.metrics_from_checkpoint(run_dir / "weights" / "best.pt")
    assert "metrics/mAP50-95(B)" in saved
    assert metrics == tasks.get("detect").short_metrics(saved)
    assert set(metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    assert json.loads((run_dir / "metrics.json").read_text())["val"] == metrics
