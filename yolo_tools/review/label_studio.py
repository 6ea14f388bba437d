"""Label Studio over its REST API: the only module that talks to a Label Studio server.

Why not FiftyOne's `annotate(backend="labelstudio")` or Label Studio's SDK: FiftyOne's backend drives the
SDK's legacy `Client`, which signs every request with a legacy token (`Authorization: Token ...`); Label
Studio 1.23, the current server, disables legacy tokens for every new organisation and hands out Personal
Access Tokens (JWT refresh tokens, exchanged for short-lived access tokens) instead, so FiftyOne's backend is
refused by a server as installed. The SDK itself (label-studio-sdk 2.1) cannot be installed beside the
workbench: it pins opencv-python-headless below 4.13, Ultralytics here runs on 4.14. The REST API is Label
Studio's documented interface and needs only `requests`; this module speaks the few calls the review needs
(create a project, upload images, import tasks with pre-annotations, read tasks and annotations) and takes
both kinds of token. FiftyOne still chooses the images and turns its labels into Label Studio regions and
back (`yolo_tools/review/fiftyone_inspect.py`, with `fiftyone.utils.labelstudio`'s converters).

Where the server and the token come from: `LABEL_STUDIO_URL` (default http://localhost:8080) and
`LABEL_STUDIO_API_KEY` (Label Studio → Account & Settings → Personal Access Token, or a legacy token), else
a netrc file (`$NETRC` or ~/.netrc: `machine HOST password TOKEN`). Never from the command line, and never
printed, logged or written into a record, card or run.
"""

from __future__ import annotations

import base64
import json
import netrc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from yolo_tools.errors import UserError

URL_ENV, KEY_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
DEFAULT_URL = "http://localhost:8080"
TIMEOUT = 30  # seconds per request; an upload of a batch of images stays well under it on a local server
PAGE = 100
UPLOAD_BATCH = 20


@dataclass
class Server:
    """A connected Label Studio: its address, the session carrying the token, and who the token belongs to."""

    url: str
    session: requests.Session
    user: str

    def call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One request; any failure is one message naming the server and what was being done."""
        try:
            response = self.session.request(method, self.url + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            raise UserError(f"Label Studio at {self.url}: could not {what} ({type(error).__name__}); is the server still running?") from None
        if response.status_code in (401, 403):
            raise UserError(f"Label Studio at {self.url}: the token in {KEY_ENV} (or netrc) is not allowed to {what}")
        if response.status_code == 404:
            raise NotFound(f"Label Studio at {self.url}: {what}: not found")
        if response.status_code >= 400:
            detail = _detail(response)
            raise UserError(f"Label Studio at {self.url}: could not {what} (HTTP {response.status_code}{': ' + detail if detail else ''})")
        return response.json() if response.content else None


class NotFound(UserError):
    """A project or task the workbench made is no longer on the server (deleted in Label Studio)."""


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("validation_errors") or body.get("detail") or "")[:300]
    return ""


def server_url() -> str:
    return os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/")


def _token(url: str) -> str:
    """The token: the environment, else the netrc entry of the server's host; else what to do."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].strip()
    host = urlsplit(url).hostname or ""
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host) if Path(path).is_file() else None
    except (netrc.NetrcParseError, OSError) as error:
        raise UserError(f"{path}: cannot read the netrc file ({getattr(error, 'msg', error)}); fix it or set {KEY_ENV}") from None
    if entry and entry[2]:
        return entry[2]
    raise UserError(
        f"no Label Studio token for {url}: set {KEY_ENV} (Label Studio → Account & Settings → Personal Access "
        f"Token) or add 'machine {host} password TOKEN' to {path}; a token is never taken from the command line"
    )


def _claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (a Personal Access Token is one, of type 'refresh'); None for a legacy token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def connect(url: str | None = None) -> Server:
    """A session with the server at `url` (default: LABEL_STUDIO_URL), its token checked by asking who it is."""
    url = (url or server_url()).rstrip("/")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UserError(f"{URL_ENV}={url}: not a server address; give one such as http://localhost:8080")
    token = _token(url)
    session = requests.Session()
    server = Server(url, session, "")
    if (_claims(token) or {}).get("token_type") == "refresh":  # a Personal Access Token: exchange it for an access token
        try:
            response = session.post(f"{url}/api/token/refresh", json={"refresh": token}, timeout=TIMEOUT)
        except requests.RequestException as error:
            raise _down(url, error) from None
        if response.status_code != 200 or "access" not in (response.json() if response.content else {}):
            raise UserError(f"Label Studio at {url}: the Personal Access Token in {KEY_ENV} (or netrc) was refused; "
                            "copy a current one from Account & Settings")
        session.headers["Authorization"] = f"Bearer {response.json()['access']}"
    else:
        session.headers["Authorization"] = f"Token {token}"
    try:
        response = session.get(f"{url}/api/current-user/whoami", timeout=TIMEOUT)
    except requests.RequestException as error:
        raise _down(url, error) from None
    if response.status_code in (401, 403):
        detail = _detail(response)
        hint = " (legacy tokens are disabled on this server: use a Personal Access Token)" if "legacy" in detail else ""
        raise UserError(f"Label Studio at {url}: the token in {KEY_ENV} (or netrc) was refused{hint}; copy a current "
                        "one from Account & Settings")
    if response.status_code != 200:
        raise UserError(f"Label Studio at {url}: answered HTTP {response.status_code} to who-am-I; is this a Label Studio server?")
    try:
        server.user = str(response.json().get("email") or response.json().get("username") or "")
    except ValueError:
        raise UserError(f"{url}: answers, but not as Label Studio does; check {URL_ENV}") from None
    return server


def _down(url: str, error: Exception) -> UserError:
    return UserError(
        f"Label Studio at {url} does not answer ({type(error).__name__}); start it (label-studio start) or set "
        f"{URL_ENV} to where it runs"
    )


def version(server: Server) -> str:
    return str((server.call("GET", "/api/version", "read its version") or {}).get("release", "unknown"))


def create_project(server: Server, title: str, label_config: str, description: str, model_version: str) -> int:
    """A new project whose editor starts every task from its pre-annotation (`model_version`)."""
    project = server.call(
        "POST", "/api/projects", "create a project",
        json={"title": title, "label_config": label_config, "description": description,
              "show_collab_predictions": True, "model_version": model_version},
    )  # fmt: skip
    return int(project["id"])


def project_exists(server: Server, project: int) -> bool:
    try:
        server.call("GET", f"/api/projects/{project}", f"read project {project}")
    except NotFound:
        return False
    return True


def upload_images(server: Server, project: int, paths: Sequence[Path]) -> dict[Path, str]:
    """The images uploaded into the project's storage (not yet tasks); each path → the URL its task shows."""
    urls: dict[Path, str] = {}
    for start in range(0, len(paths), UPLOAD_BATCH):
        batch = paths[start : start + UPLOAD_BATCH]
        handles = [path.open("rb") for path in batch]
        try:
            files = [(f"file{index}", (path.name, handle)) for index, (path, handle) in enumerate(zip(batch, handles))]  # one field each
            done = server.call("POST", f"/api/projects/{project}/import", "upload images",
                               params={"commit_to_project": "false"}, files=files)  # fmt: skip
        finally:
            for handle in handles:
                handle.close()
        ids = done["file_upload_ids"]
        if len(ids) != len(batch):
            raise UserError(f"Label Studio at {server.url}: took {len(ids)} of {len(batch)} images uploaded to project {project}")
        listed = server.call("GET", f"/api/projects/{project}/file-uploads", "list uploaded images", params={"ids": json.dumps(ids)})
        stored = {entry["id"]: entry["file"] for entry in listed}
        for path, upload_id in zip(batch, ids):
            urls[path] = f"/data/{stored[upload_id]}"
    return urls


def import_tasks(server: Server, project: int, tasks: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    """Tasks (with their pre-annotations as predictions) into the project; `data[key]` → task id."""
    server.call("POST", f"/api/projects/{project}/import", "import tasks", json=list(tasks))
    return {str(task["data"][key]): int(task["id"]) for task in project_tasks(server, project)}


def project_tasks(server: Server, project: int) -> Iterator[dict[str, Any]]:
    """Every task of the project with its annotations, page by page."""
    page = 1
    while True:
        try:
            found = server.call("GET", "/api/tasks", f"read the tasks of project {project}",
                                params={"project": project, "page": page, "page_size": PAGE, "fields": "all"})  # fmt: skip
        except NotFound:
            if page == 1:
                raise
            return  # past the last page
        tasks = found.get("tasks", []) if isinstance(found, dict) else found
        yield from tasks
        if len(tasks) < PAGE:
            return
        page += 1


def users(server: Server) -> dict[int, str]:
    """User id → e-mail (or name): who made an annotation."""
    found = server.call("GET", "/api/users", "list users")
    return {int(user["id"]): str(user.get("email") or user.get("username") or user["id"]) for user in found}


def task_page(server: Server, project: int, task: int) -> str:
    """The address of a task in Label Studio's editor."""
    return f"{server.url}/projects/{project}/data?task={task}"


def label_config(kind: str, control: str, labels: Sequence[str], dimmed: Sequence[str] = (), header: str | None = None) -> str:
    """A labeling interface: the image, `header` text above it (task data may fill `$name`), and one control
    (`kind`: RectangleLabels, PolygonLabels or Choices) offering `labels`, then the `dimmed` ones (the model's
    findings, which a reviewer relabels to accept). Label Studio's own XML; FiftyOne's generator
    (`generate_labeling_config`) has no colours and no text, which a reviewer needs to tell labels from findings."""
    from xml.etree import ElementTree

    view = ElementTree.Element("View")
    if header:
        ElementTree.SubElement(view, "Header", value=header)
    ElementTree.SubElement(view, "Image", name="image", value="$image", zoom="true")
    options = {"choice": "single-radio", "showInline": "true"} if kind == "Choices" else {}
    tag = ElementTree.SubElement(view, kind, name=control, toName="image", **options)
    child = "Choice" if kind == "Choices" else "Label"
    for name in labels:
        ElementTree.SubElement(tag, child, value=name, **({} if kind == "Choices" else {"background": "#22c55e"}))
    for name in dimmed:
        ElementTree.SubElement(tag, child, value=name, background="#f97316")
    return ElementTree.tostring(view, encoding="unicode")


def delete_project(server: Server, project: int) -> None:
    """Remove a project this command made and could not finish (so a failed send leaves nothing on the server)."""
    try:
        server.call("DELETE", f"/api/projects/{project}", f"delete project {project}")
    except UserError:
        pass  # the server went away meanwhile: the message about the first failure is the one that matters
