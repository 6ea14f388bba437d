"""`yolo_tools pull` and pull-on-first-use, with the real `roboflow` client against a fake Roboflow API.

The fake listens on 127.0.0.1 and answers the endpoints the client calls (key check, workspace, project,
version, export) with the JSON it expects, then serves a real YOLOv8 export zip built from a few images of
../shared/data/kidney-stones-ct/ (or a hostile, truncated or failing one). The client reads its address
from API_URL when it is imported, so every pull runs in a fresh `python -m yolo_tools` process.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import SHARED_DATA, needs_data
from yolo_tools.errors import UserError
from yolo_tools.sources.roboflow_pull import extract_zip

WS, PROJECT, VERSION = "east-west-university-9frzq", "kidney-stone-detection-wfjba", 1
REF = f"{WS}/{PROJECT}/{VERSION}"
KEY = "rfTestKey0xSecret7q4z"  # recognisable, and with lower-case letters so the client checks it with the server
KIDNEY = SHARED_DATA / "kidney-stones-ct"


# --- a Roboflow export zip and a fake Roboflow API --------------------------------------------------------


def build_export(n_train: int = 8, n_valid: int = 4) -> bytes:
    """A Roboflow "YOLOv8" export as the service zips it: data.yaml, READMEs, <split>/images and labels."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in ("data.yaml", "README.dataset.txt", "README.roboflow.txt"):
            bundle.write(KIDNEY / name, name)
        for split, count in (("train", n_train), ("valid", n_valid)):
            for image in sorted((KIDNEY / split / "images").iterdir())[:count]:
                bundle.write(image, f"{split}/images/{image.name}")
                label = KIDNEY / split / "labels" / f"{image.stem}.txt"
                bundle.write(label, f"{split}/labels/{label.name}")
    return buffer.getvalue()


def zip_of(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    return buffer.getvalue()


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so external_attr carries the file type
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


class FakeRoboflow:
    """Just enough of api.roboflow.com for `Roboflow().workspace().project().version()` and an export."""

    def __init__(self, archive: bytes) -> None:
        self.archive = archive
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.requests: list[str] = []
        self.download = "ok"  # ok | http-error | truncated | cut-short | hostile
        self.export_status = 200

    def project(self) -> dict:
        return {
            "id": f"{WS}/{PROJECT}", "name": "Kidney stone detection", "type": "object-detection",
            "annotation": "kidney-stone", "classes": {"Tas_Var": 12}, "colors": {"Tas_Var": "#C7FC00"},
            "created": 1696666000, "updated": 1696666000, "images": 12, "unannotated": 0, "public": True,
            "splits": {"train": 8, "valid": 4},
        }

    def version(self) -> dict:
        return {
            "id": f"{WS}/{PROJECT}/{VERSION}", "name": "v1", "created": 1696666000, "images": 12,
            "splits": {"train": 8, "valid": 4}, "augmentation": {}, "preprocessing": {}, "exports": [],
        }


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the default would print every URL, key included, to the test log
        pass

    def do_POST(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> None:
        fake: FakeRoboflow = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        fake.requests.append(f"{self.command} /{'/'.join(parts)}")
        if parts[:1] == ["ds"]:
            return self._archive(fake)
        given = parse_qs(url.query).get("api_key", [""])[0]
        if given != KEY:  # the real service echoes the key it refused
            return self._json(401, {"error": {"message": "This API key does not exist (or has been revoked).",
                                              "status": 401, "type": "OAuthException", "key": given}})
        if not parts:
            return self._json(200, {"welcome": "Welcome to the Roboflow API.", "workspace": WS})
        workspace = {"name": "East West University", "url": WS, "projects": [fake.project()], "members": []}
        if parts[0] != WS:
            return self._json(404, {"error": {"message": f"Workspace {parts[0]} does not exist."}})
        if len(parts) == 1:
            return self._json(200, {"workspace": workspace})
        if parts[1] != PROJECT:
            return self._json(404, {"error": {"message": f"Unsupported get request. Project with ID `{parts[1]}` "
                                              "does not exist or cannot be loaded due to missing permissions."}})
        if len(parts) == 2:
            return self._json(200, {"workspace": workspace, "project": fake.project(), "versions": [fake.version()]})
        if len(parts) == 3:
            version = {**fake.version(), "generating": False, "progress": 1.0}
            return self._json(200, {"workspace": workspace, "project": fake.project(), "version": version})
        if fake.export_status != 200:
            return self._json(fake.export_status, {"error": {"message": "Export failed: internal error."}})
        return self._json(200, {"export": {"link": f"{fake.url}/ds/Zx81kQ?key=signed-download-token", "format": parts[3]}})

    def _archive(self, fake: FakeRoboflow) -> None:
        if fake.download == "http-error":
            self.send_response(403)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"Forbidden")
            return
        data = fake.archive
        if fake.download == "hostile":
            data = zip_of(("data.yaml", b"names: [stone]\n"), ("../../../escaped.txt", b"gotcha"))
        body = data[: len(data) // 2] if fake.download in ("truncated", "cut-short") else data
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data if fake.download == "cut-short" else body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture(scope="module")
def fake() -> FakeRoboflow:
    if not KIDNEY.is_dir():
        pytest.skip(f"{KIDNEY} not present")
    server = FakeRoboflow(build_export())
    yield server
    server.server.shutdown()


@pytest.fixture
def api(fake: FakeRoboflow) -> FakeRoboflow:
    fake.reset()
    return fake


def run_cli(*args: str, root: Path, api_url: str, **env: str | None) -> subprocess.CompletedProcess:
    """`python -m yolo_tools ARGS` in a fresh process, so the client reads API_URL when it is imported."""
    environ = {**os.environ, "API_URL": api_url, "ROBOFLOW_API_KEY": KEY, "YOLO_TOOLS_DATA": str(root),
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "TQDM_DISABLE": "1"}
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run([sys.executable, "-m", "yolo_tools", *args], env=environ, capture_output=True, text=True,
                          timeout=240, cwd=root.parent)


def assert_key_nowhere(done: subprocess.CompletedProcess, *folders: Path, key: str = KEY) -> None:
    assert key not in done.stdout and key not in done.stderr
    for folder in folders:
        for path in folder.rglob("*"):
            assert path.is_dir() or key.encode() not in path.read_bytes(), f"API key written into {path}"


# --- pulls ------------------------------------------------------------------------------------------------


@needs_data("kidney-stones-ct")
def test_pull_downloads_the_export_once_with_a_card(api: FakeRoboflow, tmp_path: Path) -> None:
    root = tmp_path / "data"
    done = run_cli("-v", "pull", REF, "--path", "kidney", root=root, api_url=api.url)
    assert done.returncode == 0, done.stderr
    pulled = root / "kidney"
    assert sorted(p.name for p in root.iterdir()) == ["kidney"]  # nothing temporary left beside it
    assert len(list((pulled / "train" / "images").iterdir())) == 8
    assert len(list((pulled / "valid" / "labels").iterdir())) == 4
    assert yaml.safe_load((pulled / "data.yaml").read_text())["train"] == "../train/images"
    card = json.loads((pulled / "card.json").read_text())
    assert card["url"] == f"https://universe.roboflow.com/{REF.replace(f'/{VERSION}', f'/dataset/{VERSION}')}"
    assert (card["version"], card["format"], card["licence"]) == (VERSION, "yolov8", "CC BY 4.0")
    assert card["counts"]["train"]["images"] == 8 and card["counts"]["valid"]["images"] == 4
    assert card["counts"]["train"]["Tas_Var"] >= 1
    assert "CC BY 4.0" in (pulled / "card.md").read_text()
    for call in ("POST /", f"GET /{WS}", f"GET /{WS}/{PROJECT}", f"GET /{REF}", f"GET /{REF}/yolov8", "GET /ds/Zx81kQ"):
        assert call in api.requests
    assert_key_nowhere(done, root)

    api.reset()
    again = run_cli("pull", REF, "--path", "kidney", root=root, api_url=api.url)
    assert again.returncode == 0 and "already there" in again.stderr and api.requests == []

    (pulled / "stale.txt").write_text("from an older pull")
    forced = run_cli("pull", REF, "--path", "kidney", "--force", root=root, api_url=api.url)
    assert forced.returncode == 0, forced.stderr
    assert "GET /ds/Zx81kQ" in api.requests and not (pulled / "stale.txt").exists()

    api.download = "truncated"  # a failed refresh keeps the copy that was there
    failed = run_cli("pull", REF, "--path", "kidney", "--force", root=root, api_url=api.url)
    assert failed.returncode == 2 and (pulled / "card.json").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["kidney"]


@needs_data("kidney-stones-ct")
def test_key_from_roboflow_login_config(api: FakeRoboflow, tmp_path: Path) -> None:
    config = tmp_path / "roboflow" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"workspaces": {"w1": {"name": "East West", "url": WS, "apiKey": KEY}}, "RF_WORKSPACE": WS}))
    done = run_cli("pull", REF, root=tmp_path / "data", api_url=api.url, ROBOFLOW_API_KEY=None,
                   ROBOFLOW_CONFIG_DIR=str(config))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / f"{PROJECT}-v{VERSION}" / "card.json").is_file()
    assert_key_nowhere(done, tmp_path / "data")


RECIPE = {
    "name": "pulled-kidney",
    "task": "detect",
    "data": {
        "source": {"kind": "roboflow", "path": "kidney-pulled", "workspace": WS, "project": PROJECT, "version": VERSION},
        "converter": "yolo_export",
        "split": {"by": "source"},
    },
    "classes": ["stone"],
    "model": "yolov8n.yaml",
    "train": {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False},
}


@needs_data("kidney-stones-ct")
@pytest.mark.slow
def test_train_pulls_a_roboflow_source_on_first_use(api: FakeRoboflow, tmp_path: Path) -> None:
    recipe = tmp_path / "pulled-kidney.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    out = {"YOLO_TOOLS_DATASETS": str(tmp_path / "datasets"), "YOLO_TOOLS_RUNS": str(tmp_path / "runs")}
    done = run_cli("-v", "train", str(recipe), "--name", "quick", root=tmp_path / "data", api_url=api.url, **out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "data" / "kidney-pulled" / "card.json").is_file()
    card = json.loads((tmp_path / "datasets" / "pulled-kidney" / "card.json").read_text())
    assert card["counts"]["train"]["images"] == 8 and card["counts"]["val"]["images"] == 4
    assert (tmp_path / "runs" / "pulled-kidney" / "quick" / "weights" / "best.pt").is_file()
    assert_key_nowhere(done, tmp_path / "data", tmp_path / "datasets", tmp_path / "runs")


def test_without_a_key_one_message_says_how_to_set_it(api: FakeRoboflow, tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "data"
    done = run_cli("pull", REF, root=root, api_url=api.url, ROBOFLOW_API_KEY=None)
    assert done.returncode == 2 and done.stderr.count("error:") == 1 and "Traceback" not in done.stderr
    assert "ROBOFLOW_API_KEY" in done.stderr and "roboflow login" in done.stderr
    assert api.requests == [] and not root.exists()

    from yolo_tools import sources
    from yolo_tools.recipe import Recipe

    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    recipe = Recipe(**RECIPE, path=tmp_path / "pulled-kidney.yaml")
    with pytest.raises(UserError) as error:
        sources.locate(recipe, root)
    message = str(error.value)
    assert "ROBOFLOW_API_KEY" in message and f"yolo_tools pull {REF} --path kidney-pulled" in message


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


FAILURES = {
    "wrong key": ({"ROBOFLOW_API_KEY": "rfWrongKey0xAbc123"}, {}, "checking the API key failed: This API key does not exist"),
    "missing project": ({}, {"ref": f"{WS}/no-such-project/1"}, "opening project 'east-west-university-9frzq/no-such-project' failed"),
    "export error": ({}, {"export_status": 500}, "exporting"),
    "download HTTP error": ({}, {"download": "http-error"}, "HTTP 403"),
    "truncated archive": ({}, {"download": "truncated"}, "not a complete zip archive"),
    "download cut short": ({}, {"download": "cut-short"}, "downloading the export from Roboflow failed"),
    "hostile archive": ({}, {"download": "hostile"}, "refused the export archive"),
    "network down": ({"API_URL": "closed"}, {}, "could not reach Roboflow"),
}


@needs_data("kidney-stones-ct")
@pytest.mark.parametrize("case", FAILURES)
def test_failures_are_clear_and_leave_nothing_behind(api: FakeRoboflow, tmp_path: Path, case: str) -> None:
    env, setup, expected = FAILURES[case]
    ref = setup.pop("ref", REF)
    for name, value in setup.items():
        setattr(api, name, value)
    api_url = _closed_port() if env.pop("API_URL", None) else api.url
    root = tmp_path / "data"
    done = run_cli("pull", ref, root=root, api_url=api_url, **env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr
    assert expected in done.stderr
    assert not root.exists()  # no data root, no folder, no hidden partial download: nothing
    assert not list(tmp_path.rglob("escaped.txt"))
    assert_key_nowhere(done, tmp_path)
    assert_key_nowhere(done, key=env.get("ROBOFLOW_API_KEY", KEY))


def test_pull_help_and_bad_names(tmp_path: Path) -> None:
    from yolo_tools.cli import main

    with pytest.raises(SystemExit):
        main(["pull", "--help"])
    assert main(["pull", "not-a-dataset/1", "--data-root", str(tmp_path)]) == 2


# --- safe unpacking, without a server ---------------------------------------------------------------------

HOSTILE = {
    "parent": ("../escaped.txt", b"x"),
    "deep parent": ("train/../../escaped.txt", b"x"),
    "absolute": ("/tmp/escaped.txt", b"x"),
    "backslash": ("..\\escaped.txt", b"x"),
    "drive": ("C:/escaped.txt", b"x"),
    "symlink": symlink_entry("train/images/link.jpg", "/etc/passwd"),
    "symlink to parent": symlink_entry("train", ".."),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archives_are_refused_whole(tmp_path: Path, case: str) -> None:
    archive = tmp_path / "export.zip"
    archive.write_bytes(zip_of(("data.yaml", b"names: [a]\n"), HOSTILE[case], ("train/images/a.jpg", b"jpg")))
    target = tmp_path / "work" / "data"
    target.parent.mkdir()
    with pytest.raises(UserError, match="refused the export archive"):
        extract_zip(archive, target)
    assert not target.exists() and not list(tmp_path.rglob("escaped.txt"))


def test_duplicate_entries_and_damaged_archives_are_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        duplicate = zip_of(("data.yaml", b"a"), ("data.yaml", b"b"))
    (tmp_path / "dup.zip").write_bytes(duplicate)
    with pytest.raises(UserError, match="holds it twice"):
        extract_zip(tmp_path / "dup.zip", tmp_path / "dup")
    good = zip_of(("data.yaml", b"names: [a]\n" * 50))
    damaged = bytearray(good)
    damaged[good.index(b"names")] ^= 0xFF  # corrupt the stored data: the CRC no longer matches
    (tmp_path / "bad.zip").write_bytes(bytes(damaged))
    with pytest.raises(UserError, match="not a complete zip archive"):
        extract_zip(tmp_path / "bad.zip", tmp_path / "bad")


def test_a_plain_archive_unpacks(tmp_path: Path) -> None:
    (tmp_path / "ok.zip").write_bytes(zip_of(("data.yaml", b"names: [a]\n"), ("train/images/a.jpg", b"jpg")))
    assert extract_zip(tmp_path / "ok.zip", tmp_path / "ok") == ["data.yaml", "train/images/a.jpg"]
    assert (tmp_path / "ok" / "train" / "images" / "a.jpg").read_bytes() == b"jpg"


def test_card_of_a_class_folder_export(tmp_path: Path) -> None:
    from yolo_tools.recipe import Source
    from yolo_tools.sources.roboflow_pull import write_card

    for name in ("train/NORMAL/a.jpg", "train/PNEUMONIA/b.jpg", "train/PNEUMONIA/c.png", "valid/NORMAL/d.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"img")
    (tmp_path / "README.dataset.txt").write_text("# Chest X-rays\nLicense: CC BY 4.0\n")
    card = write_card(tmp_path, Source(kind="roboflow", workspace="w", project="cxr", version=2), "folder")
    assert card["counts"] == {"train": {"NORMAL": 1, "PNEUMONIA": 2}, "valid": {"NORMAL": 1}}
    assert card["classes"] == ["NORMAL", "PNEUMONIA"] and card["licence"] == "CC BY 4.0"
    assert card["url"] == "https://universe.roboflow.com/w/cxr/dataset/2"
