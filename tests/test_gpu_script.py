"""benchmarks/gpu.sh cannot run without a GPU; what can be checked here is: the script parses, every
`yolo_tools` command it runs is one the CLI takes (verbs, options, Ultralytics arguments), and what its
collector reads from run folders reaches RESULTS.md under "Full-size trainings (GPU)"."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import yaml

from conftest import ROOT
from yolo_tools.cli import _parse
from yolo_tools.recipe import check_train_args

SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def test_script_parses_and_runs_only_commands_the_cli_takes() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    done = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "DRY_RUN": "1"}, capture_output=True, text=True, check=True)
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    assert len(commands) == 12
    verbs = []
    for command in commands:
        assert command[1:3] == ["-m", "yolo_tools"], command
        args = _parse(command[3:])  # argparse: exits on an unknown verb or option
        verbs.append(args.verb)
        overrides = dict(item.split("=", 1) for item in getattr(args, "overrides", []))
        check_train_args(overrides, origin="gpu.sh")
        if args.verb == "train":
            assert args.name == "gpu-full" and "time" in overrides and (ROOT / args.recipe).is_file()
        if args.verb == "inspect":
            assert args.no_app
    assert verbs == ["convert", "train", "evaluate", "inspect"] * 3


def test_collected_figures_reach_results_md(tmp_path) -> None:
    from benchmarks import gpu, report

    run = tmp_path / "runs" / "heart" / "gpu-full"
    (run / "eval").mkdir(parents=True)
    (run / "args.yaml").write_text(yaml.safe_dump({"task": "detect", "imgsz": 512, "batch": 16, "device": "0"}))
    (run / "results.csv").write_text("epoch,time\n1,20.5\n2,41.0\n")
    (run / "metrics.json").write_text(json.dumps({"val": {"mAP50": 0.9, "mAP50-95": 0.5}}))
    (run / "eval" / "summary.json").write_text(json.dumps({"metrics": {"found": 38, "missed": 2, "ap50": 0.91}}))
    timings = tmp_path / "timings.tsv"
    timings.write_text("heart\ttrain\t75\t0\nheart\tinspect\t40\t1\npneumonia\tinspect\t0\tskipped\n")
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(ROOT / "benchmarks" / "results" / "accuracy.json", results)
    gpu.collect(tmp_path / "runs", timings, "gpu-full", [1.0, 0.75, 1.0], [], results)

    page = report.render(results)
    section = page.split("### Full-size trainings (GPU)")[1]
    assert "| heart | 0 | 512 | 2 | 41 | train 75 s, inspect 40 s (exit 1) | mAP50 0.900, mAP50-95 0.500, found 38, missed 2, ap50 0.910 |" in section
    assert "| kidney | - | - | - | - | - | - |" in section, "a recipe gpu.sh did not get to is shown as such"
    assert "| pneumonia | - | - | - | - | inspect skipped | - |" in section


def test_script_keeps_to_its_time_budget(tmp_path) -> None:
    """The real (not dry) path with a stand-in for Python: steps are timed, cut or skipped, never dropped."""
    stub = tmp_path / "python"
    calls = tmp_path / "calls.txt"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\ncase "$*" in *" train "*) sleep 3;; esac\nexit 0\n')
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub), "BUDGET_SECONDS": "8", "YOLO_TOOLS_BENCH_WORK": str(tmp_path / "work")}
    env.pop("DRY_RUN", None)
    subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=True, timeout=60)
    rows = [line.split("\t") for line in (tmp_path / "work" / "gpu" / "timings.tsv").read_text().splitlines()]
    assert [(r[0], r[1]) for r in rows] == [(recipe, step) for recipe in ("kidney", "heart", "pneumonia")
                                           for step in ("convert", "train", "evaluate", "inspect")]
    assert rows[1][1:] == ["train", "3", "0"]
    assert rows[-1][3] == "skipped", "steps past the budget are recorded as skipped"
    ran = calls.read_text().splitlines()
    assert ran[-2].startswith("-m benchmarks.gpu --runs") and ran[-1] == "-m benchmarks.report"
