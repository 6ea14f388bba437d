"""The review loop with Label Studio given what goes wrong: a server that is down, a wrong or missing token, a
token on the command line, a second review while one is open, a label of a class the recipe lacks, a task or
project deleted in Label Studio, a reviewed image the source no longer has; and correction files that no
longer fit when the converter applies them.

Each case copies one tiny finished run into its inputs; cases that need a server get the session's real
Label Studio (tests/label_studio_server.py), made ready by the case's setup through its REST API. Besides the
harness's checks, every case asserts that the corrections folder is as it was before (nothing half loaded)
and that no token appears in what the command printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import ultralytics  # noqa: F401  (binds its log handler to the session's stdout; see test_bad_input_runs.py)
from bad_input import TINY_RECIPE, Case, checksums, copy_run, logs_on_stderr, parametrize, run_case, train_tiny_run

RUN: dict[str, Path] = {}
SERVER: dict[str, object] = {}
SECRET = "s3cret-value-never-shown"


@pytest.fixture(scope="module", autouse=True)
def _tiny_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    RUN["run"] = train_tiny_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(autouse=True)
def _warnings_on_stderr(capfd: pytest.CaptureFixture) -> None:
    with logs_on_stderr():
        yield


def _corrections(inputs: Path) -> Path:
    return inputs.parent / "corrections" / "demo"


def _run(inputs: Path) -> Path:
    return inputs / "runs" / "demo" / "train"


def _with_run(then: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    def setup(inputs: Path) -> None:
        run = copy_run(RUN["run"], _run(inputs))
        (inputs / "demo.yaml").write_text(yaml.safe_dump(TINY_RECIPE, sort_keys=False))
        if then:
            then(inputs)
        assert run.is_dir()

    return setup


def _review(inputs: Path, tasks: dict[str, dict], project: int | None = None, url: str | None = None, status: str = "open") -> None:
    """A review record as `inspect --annotate` writes it."""
    folder = _corrections(inputs) / "reviews"
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "key": "ls-20260101-000000", "status": status, "recipe": "demo", "task": "detect", "classes": ["finding"],
        "run": str(_run(inputs)), "dataset_fingerprint": "0" * 16, "url": url or SERVER["server"].url,
        "project": project if project is not None else 999999, "created": "2026-01-01T00:00:00+00:00", "by": "x", "tasks": tasks,
    }  # fmt: skip
    (folder / "ls-20260101-000000.json").write_text(json.dumps(record))


def _project_with_task(inputs: Path, result: list[dict], extra_tasks: int = 0) -> tuple[int, list[int]]:
    """A project with one annotated task (and `extra_tasks` more), through the REST API as the workbench makes it."""
    server = SERVER["server"]
    config = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
              '<Label value="finding"/><Label value="model: finding"/></RectangleLabels></View>')  # fmt: skip
    project = server.api("POST", "/api/projects", json={"title": "bad input case", "label_config": config})["id"]
    server.api("POST", f"/api/projects/{project}/import",
               json=[{"data": {"image": "/static/none.png", "yolo_tools_image": f"synthetic_{i:04d}"}} for i in range(1 + extra_tasks)])  # fmt: skip
    ids = sorted(t["id"] for t in server.api("GET", "/api/tasks", params={"project": project})["tasks"])
    server.api("POST", f"/api/tasks/{ids[0]}/annotations", json={"result": result, "lead_time": 1.0})
    return project, ids


BOX = {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 64, "original_height": 64,
       "value": {"x": 10.0, "y": 10.0, "width": 20.0, "height": 20.0, "rotation": 0, "rectanglelabels": ["finding"]}}  # fmt: skip


def _class_not_in_recipe(inputs: Path) -> None:
    project, ids = _project_with_task(inputs, [{**BOX, "id": "t0", "value": {**BOX["value"], "rectanglelabels": ["kidney"]}}])
    _review(inputs, {str(ids[0]): {"image": "synthetic_0000", "split": "val", "truth": {"t0": "0 0.2 0.2 0.2 0.2"}}}, project)


def _task_deleted(inputs: Path) -> None:
    project, ids = _project_with_task(inputs, [{**BOX, "id": "t0"}], extra_tasks=1)
    SERVER["server"].api("DELETE", f"/api/tasks/{ids[1]}")
    _review(inputs, {str(i): {"image": f"synthetic_{n:04d}", "split": "val", "truth": {"t0": "0 0.2 0.2 0.2 0.2"}} for n, i in enumerate(ids)}, project)


def _image_gone(inputs: Path) -> None:
    project, ids = _project_with_task(inputs, [{**BOX, "id": "t0"}])
    _review(inputs, {str(ids[0]): {"image": "synthetic_9999", "split": "val", "truth": {"t0": "0 0.2 0.2 0.2 0.2"}}}, project)


def _project_deleted(inputs: Path) -> None:
    project, ids = _project_with_task(inputs, [{**BOX, "id": "t0"}])
    SERVER["server"].api("DELETE", f"/api/projects/{project}")
    _review(inputs, {str(ids[0]): {"image": "synthetic_0000", "split": "val", "truth": {}}}, project)


def _correction_file(lines: list[str]) -> Callable[[Path], None]:
    def write(inputs: Path) -> None:
        _corrections(inputs).mkdir(parents=True, exist_ok=True)
        (_corrections(inputs) / "ls-20260101-000000.jsonl").write_text("".join(line + "\n" for line in lines))

    return write


def _record(**fields) -> str:
    return json.dumps({"image": "synthetic_0000", "split": "val", "who": "r", "when": "t", "review": "r", "task": 1, **fields})


def _run_lists_a_changed_file(inputs: Path) -> None:
    _correction_file([_record(action="added", old=None, new="0 0.5 0.5 0.1 0.1")])(inputs)
    recipe_file = _run(inputs) / "recipe.yaml"
    recipe = yaml.safe_load(recipe_file.read_text())
    recipe["data"]["corrections"] = [{"file": "ls-20260101-000000.jsonl", "sha256": "0" * 64}]
    recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))


def _second_run(inputs: Path) -> None:
    other = copy_run(RUN["run"], inputs / "runs" / "other" / "train")
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["name"] = "other"
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def run_argv(*rest: str) -> Callable[[Path], list[str]]:
    return lambda inputs: [rest[0], str(_run(inputs)), *rest[1:]]


def convert_argv(inputs: Path) -> list[str]:
    return ["convert", str(inputs / "demo.yaml")]


NEEDS_SERVER = "needs-server"
LOAD = ("inspect",)

CASES = [
    # -- the server and the token
    Case("annotate-server-down", run_argv("inspect", "--annotate"), (r"Label Studio at http://127.0.0.1:9 does not answer", r"label-studio start|LABEL_STUDIO_URL"),
         setup=_with_run(), env={"LABEL_STUDIO_URL": "http://127.0.0.1:9", "LABEL_STUDIO_API_KEY": SECRET}),
    Case("annotate-wrong-token", run_argv("inspect", "--annotate"), (r"token in LABEL_STUDIO_API_KEY .*was refused", r"Account & Settings"),
         setup=_with_run(), env={"LABEL_STUDIO_API_KEY": SECRET, NEEDS_SERVER: "1"}),
    Case("annotate-no-token", run_argv("inspect", "--annotate"), (r"no Label Studio token for http", r"LABEL_STUDIO_API_KEY", r"netrc"),
         setup=_with_run(), env={"LABEL_STUDIO_API_KEY": "", "NETRC": "{inputs}/no-netrc", NEEDS_SERVER: "1"}),
    Case("annotate-token-option", run_argv("inspect", "--annotate", f"--token={SECRET}"), (r"never taken from the command line", r"LABEL_STUDIO_API_KEY"),
         setup=_with_run()),
    Case("annotate-api-key-option", run_argv("inspect", "--annotate", "--api-key", SECRET), (r"never taken from the command line", r"netrc"),
         setup=_with_run()),
    Case("annotate-token-pair", run_argv("inspect", "--annotate", f"label_studio_token={SECRET}"), (r"'label_studio_token=\.\.\.' looks like a secret", r"LABEL_STUDIO_API_KEY"),
         setup=_with_run()),
    Case("load-server-down", run_argv("inspect", "--load", "ls-20260101-000000"), (r"Label Studio at http://127.0.0.1:9 does not answer",),
         setup=_with_run(lambda i: _review(i, {}, 1, url="http://127.0.0.1:9")), env={NEEDS_SERVER: "1"}),
    # -- reviews
    Case("annotate-second-review-open", run_argv("inspect", "--annotate"), (r"review ls-20260101-000000 of recipe 'demo' is still open", r"--load ls-20260101-000000"),
         setup=_with_run(lambda i: _review(i, {}, 1)), env={NEEDS_SERVER: "1"}),
    Case("annotate-unknown-tag", run_argv("inspect", "--annotate", "--tags", "fp"), (r"--tags: fp is no tag", r"false_positive, missed"),
         setup=_with_run()),
    Case("annotate-worst-zero", run_argv("inspect", "--annotate", "--worst", "0"), (r"--worst 0: give how many images",), setup=_with_run()),
    Case("annotate-corrections-in-data-root", run_argv("inspect", "--annotate"), (r"inside the data root", r"YOLO_TOOLS_CORRECTIONS"),
         setup=_with_run(), env={"YOLO_TOOLS_CORRECTIONS": "{inputs}/corrections"}),
    Case("review-options-without-annotate", run_argv("inspect", "--tags", "missed"), (r"--tags, --view and --without-deleted go with --annotate",), setup=_with_run()),
    Case("annotate-and-load", run_argv("inspect", "--annotate", "--load", "x"), (r"give one of them",), setup=_with_run()),
    Case("annotate-test-split", run_argv("inspect", "--annotate", "--split", "test"), (r"--split test: inspect looks at val or train", r"test split is kept apart"),
         setup=_with_run()),
    Case("inspect-unknown-split", run_argv("inspect", "--no-app", "--split", "valid"), (r"--split valid: inspect looks at val or train",), setup=_with_run()),
    Case("load-with-split", run_argv("inspect", "--load", "ls-20260101-000000", "--split", "train"), (r"--split goes with --annotate", r"whichever split"),
         setup=_with_run()),
    Case("load-unknown-key", run_argv("inspect", "--load", "nope"), (r"no review 'nope' of recipe 'demo'", r"reviews: none"), setup=_with_run()),
    Case("load-already-loaded", run_argv("inspect", "--load", "ls-20260101-000000"), (r"was loaded already", r"new review"),
         setup=_with_run(lambda i: _review(i, {}, 1, status="loaded")), env={NEEDS_SERVER: "1"}),
    Case("load-damaged-record", run_argv("inspect", "--load", "ls-20260101-000000"), (r"ls-20260101-000000.json: this review record is damaged",),
         setup=_with_run(lambda i: (_corrections(i) / "reviews").mkdir(parents=True) or (_corrections(i) / "reviews" / "ls-20260101-000000.json").write_text("{")),
         env={NEEDS_SERVER: "1"}),
    # -- what the reviewer did in Label Studio
    Case("load-class-not-in-recipe", run_argv("inspect", "--load", "ls-20260101-000000"), (r"label kidney is not a class of recipe 'demo'", r"Nothing was loaded"),
         setup=_with_run(_class_not_in_recipe), env={NEEDS_SERVER: "1"}),
    Case("load-task-deleted", run_argv("inspect", "--load", "ls-20260101-000000"), (r"1 task\(s\) of review ls-20260101-000000 are gone", r"--without-deleted"),
         setup=_with_run(_task_deleted), env={NEEDS_SERVER: "1"}),
    Case("load-project-deleted", run_argv("inspect", "--load", "ls-20260101-000000"), (r"project \d+ of review ls-20260101-000000 is gone", r"stays open"),
         setup=_with_run(_project_deleted), env={NEEDS_SERVER: "1"}),
    Case("load-image-no-longer-in-source", run_argv("inspect", "--load", "ls-20260101-000000"), (r"no longer in the source of recipe 'demo': synthetic_9999 \(task \d+\)", r"restore them"),
         setup=_with_run(_image_gone), env={NEEDS_SERVER: "1"}),
    # -- correction files the converter cannot apply
    Case("convert-correction-image-gone", convert_argv, (r"line 1: image synthetic_9999 is no longer in the source of recipe 'demo'", r"data.corrections: \[\]"),
         setup=_with_run(_correction_file([_record(image="synthetic_9999", action="added", old=None, new="0 0.5 0.5 0.1 0.1")]))),
    Case("convert-correction-label-gone", convert_argv, (r"line 1: image synthetic_0000 has no label '0 0.123 0.456 0.1 0.1' any more", r"review that image again"),
         setup=_with_run(_correction_file([_record(action="removed", old="0 0.123 0.456 0.1 0.1", new=None)]))),
    Case("convert-correction-not-json", convert_argv, (r"ls-20260101-000000.jsonl, line 2: not a JSON object",),
         setup=_with_run(_correction_file([_record(action="added", old=None, new="0 0.5 0.5 0.1 0.1"), "{not json"]))),
    Case("convert-correction-unknown-class", convert_argv, (r"new label '3 0.5 0.5 0.1 0.1' names no class of \['finding'\]",),
         setup=_with_run(_correction_file([_record(action="added", old=None, new="3 0.5 0.5 0.1 0.1")]))),
    Case("convert-correction-unknown-action", convert_argv, (r"line 1: a correction needs 'image' and 'action' \(changed, added, removed\)",),
         setup=_with_run(_correction_file([_record(action="moved")]))),
    Case("evaluate-run-whose-corrections-file-changed", run_argv("evaluate"), (r"ls-20260101-000000.jsonl: changed since this dataset version was made", r"data.corrections: \[\]"),
         setup=_with_run(_run_lists_a_changed_file)),
    Case("evaluate-corrected-without-corrections", run_argv("evaluate", "--corrected"), (r"no label corrections for recipe 'demo' yet", r"--annotate"),
         setup=_with_run()),
    Case("evaluate-corrected-with-test-split", run_argv("evaluate", "--corrected", "--split", "test"), (r"--corrected scores one run on its own val split",),
         setup=_with_run()),
    # -- compare
    Case("compare-a-run-with-itself", lambda i: ["compare", str(_run(i)), str(_run(i))], (r"give two different runs to compare",), setup=_with_run()),
    Case("compare-runs-of-two-recipes", lambda i: ["compare", str(_run(i)), str(i / "runs" / "other" / "train")], (r"compare runs of one recipe",),
         setup=_with_run(_second_run)),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("YOLO_TOOLS_CORRECTIONS", str(tmp_path / "corrections"))
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # no case reaches a server it was not given
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    if NEEDS_SERVER in case.env:
        server = request.getfixturevalue("label_studio")
        SERVER["server"] = server
        monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    before: dict[str, str] = {}

    def snapshot(inputs_done: Path) -> None:
        before.update(checksums(tmp_path / "corrections"))

    original = case.setup

    def setup(inputs: Path) -> None:
        if original:
            original(inputs)
        snapshot(inputs)

    err = run_case(Case(case.id, case.argv, case.says, setup, case.code, case.env, case.may_write, case.check), tmp_path, monkeypatch, capfd)
    assert checksums(tmp_path / "corrections") == before, f"{case.id}: the corrections folder changed"
    server = SERVER.get("server")
    assert SECRET not in err and (server is None or server.token not in err), f"{case.id}: a token was printed"
