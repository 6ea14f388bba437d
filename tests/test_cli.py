from __future__ import annotations

import subprocess
import sys

import pytest

from yolo_tools.cli import build_parser, main

VERBS = ["train", "val", "predict", "evaluate", "report", "inspect", "export", "convert", "demo", "study"]


def test_help_lists_every_verb(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help(verb: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    assert f"usage: yolo_tools {verb}" in capsys.readouterr().out


def test_console_script_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "yolo_tools", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("yolo-tools ")


def test_user_errors_are_one_message_without_traceback(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such recipe file" in err and "Traceback" not in err
    assert main(["train", "recipes/demo.yaml", "epochs"]) == 2
    assert "key=value" in capsys.readouterr().err
    assert main(["train", "recipes/demo.yaml", "epoch=3"]) == 2
    assert "'epoch' is not an Ultralytics train argument" in capsys.readouterr().err


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("YOLO_TOOLS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("YOLO_TOOLS_DATASETS", str(tmp_path / "datasets"))  # not the session's converted kidney set
    assert main(["convert", "recipes/kidney.yaml"]) == 2
    err = capsys.readouterr().err
    assert "kidney-stones-ct" in err and "YOLO_TOOLS_DATA" in err
    assert "yolo_tools pull east-west-university-9frzq/kidney-stone-detection-wfjba/1" in err


def test_parser_keeps_overrides_in_order() -> None:
    args = build_parser().parse_args(["train", "recipes/kidney.yaml", "epochs=3", "imgsz=320"])
    assert args.overrides == ["epochs=3", "imgsz=320"]


def test_overrides_may_follow_options(capsys: pytest.CaptureFixture) -> None:
    from yolo_tools.cli import _parse

    args = _parse(["train", "recipes/kidney.yaml", "epochs=3", "--name", "quick", "imgsz=320"])
    assert args.name == "quick" and args.overrides == ["epochs=3", "imgsz=320"]
    with pytest.raises(SystemExit):
        _parse(["train", "recipes/kidney.yaml", "--colour", "red"])
    assert "unrecognized arguments: --colour" in capsys.readouterr().err


def test_demo_runs_the_whole_chain(workspace) -> None:
    from yolo_tools import demo

    metrics = demo.run({"epochs": 1})
    assert set(metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    run = workspace / "runs" / "demo"
    predict_dirs = list(run.glob("*/predict"))
    assert predict_dirs and (predict_dirs[0] / "predictions.csv").is_file()
