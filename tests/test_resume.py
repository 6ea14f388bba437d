"""A run killed mid-training continues from its last checkpoint instead of starting over."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import RECIPES
from yolo_tools import engine, pipeline

pytestmark = pytest.mark.slow


def test_interrupted_run_resumes_where_it_stopped(monkeypatch: pytest.MonkeyPatch, workspace) -> None:
    real_load = engine.load_model

    def crashing_after_first_checkpoint(model):
        loaded = real_load(model)

        def crash(trainer) -> None:
            if trainer.epoch == 0:
                raise KeyboardInterrupt

        loaded.add_callback("on_model_save", crash)
        return loaded

    monkeypatch.setattr(engine.trainer, "load_model", crashing_after_first_checkpoint)
    args = {"epochs": 2, "imgsz": 64, "batch": 8, "workers": 0, "plots": False}
    with pytest.raises(KeyboardInterrupt) as stopped:
        pipeline.train_recipe(RECIPES / "demo.yaml", args, name="crashed")
    run_dir = workspace / "runs" / "demo" / "crashed"
    assert str(stopped.value) == f"resume with: yolo_tools train --resume {run_dir}"  # what cli prints after "interrupted; "
    assert len(pd.read_csv(run_dir / "results.csv")) == 1
    assert not (run_dir / "metrics.json").exists()
    trained_on = yaml.safe_load((run_dir / "args.yaml").read_text())["data"]
    assert trained_on.startswith(str(workspace / "datasets" / "demo"))  # demo, or demo@<fingerprint> if another version came first

    monkeypatch.setattr(engine.trainer, "load_model", real_load)
    metrics = pipeline.resume_run(run_dir)
    epochs = pd.read_csv(run_dir / "results.csv")["epoch"].tolist()
    assert epochs == [1, 2]
    assert set(metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    # Resumed on the run's own converted data.
    assert yaml.safe_load((run_dir / "args.yaml").read_text())["data"] == trained_on


def test_ctrl_c_before_the_first_epoch_says_there_is_nothing_to_resume(monkeypatch: pytest.MonkeyPatch, workspace,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """The run folder goes (no epoch was saved), and the message says so instead of offering a resume."""
    from yolo_tools.cli import main

    real_load = engine.load_model

    def interrupted_at_start(model):
        loaded = real_load(model)
        loaded.add_callback("on_train_start", lambda trainer: (_ for _ in ()).throw(KeyboardInterrupt))
        return loaded

    monkeypatch.setattr(engine.trainer, "load_model", interrupted_at_start)
    recipe = RECIPES / "demo.yaml"
    assert main(["train", str(recipe), "epochs=1", "imgsz=64", "batch=8", "workers=0", "--name", "stopped"]) == 130
    err = capsys.readouterr().err
    run_dir = workspace / "runs" / "demo" / "stopped"
    assert not run_dir.exists()
    assert err.strip().splitlines()[-1] == (
        f"interrupted; no epoch was saved, so there is nothing to resume (the run folder {run_dir} was removed); "
        f"train again with: yolo_tools train {recipe}"
    )
    assert "--resume" not in err
