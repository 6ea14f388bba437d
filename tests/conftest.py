"""Shared test setup: real data from ../shared/data, every output in a temporary folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("YOLO_TOOLS_DATA", ROOT.parent / "shared" / "data")).resolve()
RECIPES = ROOT / "recipes"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test session for converted datasets and runs; never the repo or ../shared."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session", autouse=True)
def _isolated_outputs(workspace: Path):
    """Session-wide, so module-scoped trainings see it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YOLO_TOOLS_DATA", str(SHARED_DATA))
        patch.setenv("YOLO_TOOLS_DATASETS", str(workspace / "datasets"))
        patch.setenv("YOLO_TOOLS_RUNS", str(workspace / "runs"))
        patch.setenv("YOLO_TOOLS_CORRECTIONS", str(workspace / "corrections"))  # never a checkout's corrections/
        # No test reaches the real Roboflow or uses a user's key: tests/test_pull.py serves a fake API itself.
        patch.delenv("ROBOFLOW_API_KEY", raising=False)
        patch.setenv("ROBOFLOW_CONFIG_DIR", str(workspace / "no-roboflow-login.json"))
        patch.setenv("API_URL", "http://127.0.0.1:9")
        yield


def needs_data(folder: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED_DATA / folder).is_dir(), reason=f"{SHARED_DATA / folder} not present")


def read_polygons(label_file: Path) -> dict[int, list[np.ndarray]]:
    """A YOLO-seg label file as {class id: [normalised (N, 2) polygons]}."""
    polygons: dict[int, list[np.ndarray]] = {}
    for line in label_file.read_text().splitlines():
        values = line.split()
        polygons.setdefault(int(values[0]), []).append(np.array(values[1:], float).reshape(-1, 2))
    return polygons


def isolate_fiftyone(patch: pytest.MonkeyPatch, home: Path) -> None:
    """FiftyOne's database and config in `home`, never a developer's own."""
    patch.setenv("HOME", str(home))
    patch.setenv("FIFTYONE_DATABASE_DIR", str(home / "db"))
    patch.setenv("FIFTYONE_CONFIG_PATH", str(home / "config.json"))
    patch.setenv("FIFTYONE_APP_CONFIG_PATH", str(home / "app_config.json"))
    for name in ("FIFTYONE_DATABASE_URI", "FIFTYONE_DATABASE_VALIDATION", "FIFTYONE_DATABASE_NAME"):
        patch.delenv(name, raising=False)
    if "fiftyone" in sys.modules:  # imported earlier in this session: its config is already read
        import fiftyone as fo

        patch.setattr(fo.config, "database_dir", str(home / "db"))
        patch.setattr(fo.config, "database_uri", None)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory):
    """One real Label Studio server for the session (tests/label_studio_server.py); skipped where it is not installed."""
    from label_studio_server import start

    yield from start(tmp_path_factory.mktemp("label-studio"))
