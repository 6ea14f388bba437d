"""The bad-input harness: one `Case` per broken input, and the checks every case must pass.

A case builds its inputs in a fresh folder, runs the `yolo_tools` command line in-process and then
asserts what a user is owed when they get something wrong:

- the exit code the case expects (2 for a refused input, 0 where the input is skipped with a warning);
- no traceback, in the output or as an exception escaping `main`;
- a message matching every pattern in `says` (the file or key at fault, and what to do about it);
- every input file unchanged (SHA-256 before and after) and no file added to the inputs;
- no partial output: no `.partial-*`/`.old-*` leftovers anywhere, and after a refusal nothing new in
  the datasets or runs folders;
- whatever else the case's own `check(root, stderr)` asserts (e.g. that a skipped file's reason is on
  the dataset card, or that the dataset was written).

The case tables live in `tests/test_bad_input_*.py`, one file per area; `tests/test_bad_input_count.py`
checks their total so the suite cannot shrink unnoticed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

Setup = Callable[[Path], None]
Argv = Callable[[Path], list[str]]
Check = Callable[[Path, str], None]


@dataclass(frozen=True)
class Case:
    """One bad input. `argv` gets the inputs folder (and builds paths under it); `setup` fills that folder."""

    id: str
    argv: Argv
    says: tuple[str, ...]
    setup: Setup | None = None
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    # Output folders (relative to the case's root) that may legitimately hold files after the case.
    may_write: tuple[str, ...] = ()
    # Further assertions on the case's root folder and its stderr, after the common ones.
    check: Check | None = None
    # What a user does that no input file can, stood in for in-process (Ctrl-C at a given point).
    patch: Callable[[pytest.MonkeyPatch], None] | None = None

    def __post_init__(self) -> None:
        if not self.says:
            raise ValueError(f"case {self.id}: say which message it must print")


def checksums(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def run_case(case: Case, root: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> str:
    """Run `case` under `root` (inputs in `root/in`, outputs in `root/datasets` and `root/runs`); return stderr."""
    from yolo_tools.cli import main

    inputs = root / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    if case.setup:
        case.setup(inputs)
    monkeypatch.chdir(root)
    monkeypatch.setenv("YOLO_TOOLS_DATA", str(inputs))
    monkeypatch.setenv("YOLO_TOOLS_DATASETS", str(root / "datasets"))
    monkeypatch.setenv("YOLO_TOOLS_RUNS", str(root / "runs"))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.format(inputs=inputs, root=root))
    argv = case.argv(inputs)
    if case.patch:
        case.patch(monkeypatch)
    before = checksums(inputs)
    outputs_before = {name: _listing(root / name) for name in ("datasets", "runs")}
    capfd.readouterr()
    # Outside pytest, `main`'s logging.basicConfig prints warnings (skipped files, ...) on stderr; under
    # pytest its own log capture holds the root logger, so the workbench's logger gets that handler here.
    shown_logs = logging.StreamHandler(sys.stderr)
    shown_logs.setLevel(logging.WARNING)
    logging.getLogger("yolo_tools").addHandler(shown_logs)
    # Ultralytics' logger keeps the stdout of the test that imported it, closed since: give it this one's.
    for handler in logging.getLogger("ultralytics").handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
            handler.stream = sys.stdout  # not setStream, which flushes the closed one first
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException:  # noqa: BLE001 - any escaping exception is a traceback the user would see
        pytest.fail(f"{case.id}: an exception escaped yolo_tools {' '.join(argv)}:\n{traceback.format_exc()}")
    finally:
        logging.getLogger("yolo_tools").removeHandler(shown_logs)
    out, err = capfd.readouterr()
    shown = f"--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    assert code == case.code, f"{case.id}: exit {code}, expected {case.code}\n{shown}"
    assert "Traceback (most recent call last)" not in out + err, f"{case.id}: traceback printed\n{shown}"
    for pattern in case.says:
        assert re.search(pattern, err, re.IGNORECASE | re.MULTILINE), f"{case.id}: no /{pattern}/ in stderr\n{shown}"
    assert checksums(inputs) == before, f"{case.id}: an input file was changed, added or removed"
    leftovers = [p for p in root.rglob(".*") if re.search(r"\.(partial|old)-", p.name)]
    assert not leftovers, f"{case.id}: partial output left behind: {leftovers}"
    if code != 0:
        for name, listing in outputs_before.items():
            if name in case.may_write:
                continue
            added = _listing(root / name) - listing
            assert not added, f"{case.id}: a refused command left output in {name}/: {sorted(added)[:5]}"
    if case.check:
        case.check(root, err)
    return err


def parametrize(cases: list[Case]) -> pytest.MarkDecorator:
    ids = [case.id for case in cases]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"duplicated case ids: {sorted(duplicated)}")
    return pytest.mark.parametrize("case", cases, ids=ids)


# --- shared by the tables: warnings on stderr, one tiny trained run per module -----------------------------


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged (pytest swaps it per test and phase)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextlib.contextmanager
def logs_on_stderr() -> Iterator[None]:
    """The workbench's log lines (warnings such as "skipped FILE: ...") on stderr, where `says` looks.

    Under pytest the root logger already has pytest's handlers, so `main`'s `logging.basicConfig` adds
    none and a warning would never reach the captured stderr as it reaches a user's terminal.
    """
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("yolo_tools")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


TINY_RECIPE = {
    "name": "demo",
    "task": "detect",
    "data": {
        "source": {"kind": "synthetic"},
        "converter": "synthetic",
        "options": {"images": 16, "size": 64},
        "split": {"by": "file", "val": 0.25, "seed": 0},
    },
    "classes": ["finding"],
    "model": "yolov8n.yaml",
    "train": {"epochs": 1, "imgsz": 32, "batch": 8, "workers": 0, "plots": False},
}


def train_tiny_run(folder: Path) -> Path:
    """One finished run of the demo recipe shrunk to 16 synthetic 64 px images, 1 epoch at imgsz 32 (seconds
    on a CPU), trained into `folder`: copy it into a case's folder (`copy_run`) rather than train per case."""
    import yaml

    from yolo_tools.pipeline import train_recipe

    recipe = folder / "demo.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YOLO_TOOLS_DATASETS", str(folder / "datasets"))
        patch.setenv("YOLO_TOOLS_RUNS", str(folder / "runs"))
        run_dir, _ = train_recipe(recipe, {"device": "cpu"})
    return run_dir


def copy_run(run: Path, dst: Path) -> Path:
    """A copy of a trained run at `dst`, without the plots and caches no case needs."""
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("*.png", "*.jpg", "val", "eval", "predict*"))
    return dst
