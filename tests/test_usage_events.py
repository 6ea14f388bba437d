"""Ultralytics' usage events stay off in the workbench's processes, and its settings file is not touched.

Each check runs in a fresh process with its own Ultralytics settings folder (YOLO_CONFIG_DIR) whose
settings.json has `sync: true`, as Ultralytics' first run writes it. The process looks online to
Ultralytics (its DNS check is answered) and outside pytest, and the event sender's POST is replaced by a
recorder, so the only thing between a prediction and a usage event is the workbench. The same prediction
with YOLO_TOOLS_ULTRALYTICS_SYNC=1 does record an event: the check can fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PREDICT = """
import json, socket, sys
from pathlib import Path

socket.getaddrinfo = lambda *args, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("1.1.1.1", 0))]
import numpy as np, cv2
from ultralytics.utils import SETTINGS, events

sent = []
events._post = lambda url, data, timeout=5.0: sent.append(data)
from yolo_tools import engine

image = Path(sys.argv[1]) / "scan.png"
cv2.imwrite(str(image), np.full((64, 64, 3), 100, np.uint8))
found = list(engine.predict(Path("yolov8n.yaml"), str(image), {"imgsz": 64, "device": "cpu"}))
print(json.dumps({"predictions": len(found), "events": len(sent), "sync_in_memory": SETTINGS["sync"]}))
"""


def _settings_folder(tmp_path: Path) -> Path:
    """A settings folder whose settings.json Ultralytics' own first run wrote (Ultralytics/ under YOLO_CONFIG_DIR)."""
    subprocess.run([sys.executable, "-c", "import ultralytics.utils"], env=_env(tmp_path / "config"), check=True,
                   capture_output=True, timeout=300)
    folder = tmp_path / "config" / "Ultralytics"
    assert json.loads((folder / "settings.json").read_text())["sync"] is True  # Ultralytics' own default
    return folder


def _env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "YOLO_OFFLINE", "YOLO_TOOLS_ULTRALYTICS_SYNC")}
    return {**env, "YOLO_CONFIG_DIR": str(folder), **extra}


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.parametrize("allowed", [False, True], ids=["default-off", "allowed-by-the-user"])
def test_no_usage_event_is_sent_and_the_settings_file_is_untouched(tmp_path: Path, allowed: bool) -> None:
    folder = _settings_folder(tmp_path)
    before = _digest(folder / "settings.json")
    extra = {"YOLO_TOOLS_ULTRALYTICS_SYNC": "1"} if allowed else {}
    done = subprocess.run([sys.executable, "-c", PREDICT, str(tmp_path)], env=_env(tmp_path / "config", **extra),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["predictions"] == 1
    if allowed:  # the control: with the user's consent the same prediction sends its event
        assert result == {"predictions": 1, "events": 1, "sync_in_memory": True}
    else:
        assert result == {"predictions": 1, "events": 0, "sync_in_memory": False}
    assert _digest(folder / "settings.json") == before  # not rewritten, not even with the same content


def test_trainings_and_ray_trials_get_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DDP worker runs the trainer's callbacks, pickled; a Ray trial gets its environment from tune.py."""
    import pickle

    from yolo_tools import engine

    assert isinstance(pickle.loads(pickle.dumps(engine.UsageEventsOff())), engine.UsageEventsOff)
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    monkeypatch.delenv(engine.SYNC_ENV, raising=False)
    assert engine.usage_events_environment() == {"YOLO_OFFLINE": "1"}
    monkeypatch.setenv(engine.SYNC_ENV, "1")
    assert engine.usage_events_environment() == {}
    monkeypatch.delenv(engine.SYNC_ENV)
    monkeypatch.setenv("YOLO_OFFLINE", "0")  # the user's own choice is theirs
    assert engine.usage_events_environment() == {}
