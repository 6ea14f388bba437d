"""A real Label Studio server for the review loop's tests, started once per test session.

Label Studio lives in its own virtual environment (`.venv-labelstudio/`, made by `make labelstudio`, which
`make test` runs): its pins clash with the workbench's. It is started as a user would (`label-studio start`)
on 127.0.0.1 with a throwaway data folder, a throwaway user, password and legacy token; Sentry, the version
check and usage analytics are off, so nothing leaves the machine. The workbench is then given a Personal
Access Token, made through the REST API, since that is what a current server hands its users.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
LABEL_STUDIO = Path(os.environ.get("YOLO_TOOLS_LABEL_STUDIO", ROOT / ".venv-labelstudio" / "bin" / "label-studio"))
MIGRATED = LABEL_STUDIO.parent.parent / "migrated" / "label_studio.sqlite3"  # made by `make labelstudio`
START_TIMEOUT = 600  # from the migrated database: well under a minute; without it, migrating takes minutes


@dataclass(frozen=True)
class LabelStudio:
    url: str
    user: str
    password: str
    legacy_token: str
    token: str  # a Personal Access Token (JWT refresh token), what the workbench is given
    pid: int

    def api(self, method: str, path: str, **kwargs):
        """A request as the reviewer's browser makes it (their legacy token stands in for the session)."""
        response = requests.request(
            method, self.url + path, headers={"Authorization": f"Token {self.legacy_token}"}, timeout=30, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(folder: Path) -> Iterator[LabelStudio]:
    """Start the server in `folder`; yields it, and stops it (by its own pid) afterwards."""
    if not LABEL_STUDIO.is_file():
        pytest.skip(f"no Label Studio at {LABEL_STUDIO}: `make labelstudio` (run by `make test`) installs it")
    port = _free_port()
    user, password, legacy = "reviewer@example.org", secrets.token_urlsafe(16), secrets.token_hex(20)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),
        "LABEL_STUDIO_USERNAME": user,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": legacy,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # for the test's own 'browser' calls; the workbench gets a PAT
        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
    }  # fmt: skip
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if MIGRATED.is_file():  # an empty, migrated database: the server starts without migrating
        shutil.copyfile(MIGRATED, folder / "data" / MIGRATED.name)
    log_path = folder / "label-studio.log"
    command = [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(folder / "data")]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"label-studio exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"label-studio did not answer within {START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(2)
        server = LabelStudio(url, user, password, legacy, "", process.pid)
        token = server.api("POST", "/api/token/")["token"]
        yield LabelStudio(url, user, password, legacy, token, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
