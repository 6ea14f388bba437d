"""Pull a dataset version from Roboflow into the data root: the only module that touches the `roboflow` client.

The official client holds the API conversation (key check, workspace, project, version, export) and yields
the export's download link. The archive behind the link is fetched and unpacked here, not by the client's
`Version.download`, because that one writes whatever the link answers without checking the HTTP status,
fails on a response without Content-Length, and unpacks with `ZipFile.extract`, which quietly rewrites
`../` and absolute entry names and turns symbolic-link entries into plain files where a hostile or damaged
archive should be refused.

Everything lands in a hidden folder beside the target and is renamed into place only when complete, so a
failed or interrupted pull leaves nothing behind: not the hidden folder, and not the data root or any
other folder it had to make for the target. The API key (ROBOFLOW_API_KEY, or the
file `roboflow login` writes) travels in the query string of every client request: the client's prints
become log lines with the key masked, urllib3's debug log (which prints full URLs) is muted, and no
message raised here contains it.

Examples:
    >>> source = parse_ref("east-west-university-9frzq/kidney-stone-detection-wfjba/1")
    >>> pull(source, Path("data/kidney-stone-detection-wfjba-v1"), export_format("detect", None))
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import yaml

from yolo_tools import tasks
from yolo_tools.errors import UserError
from yolo_tools.imaging import IMAGE_SUFFIXES
from yolo_tools.recipe import Source

LOG = logging.getLogger(__name__)

KEY_ENV = "ROBOFLOW_API_KEY"
HOW_TO_SET_KEY = (
    f"set {KEY_ENV} to your Roboflow API key (Roboflow → Settings → API Keys, https://app.roboflow.com/settings/api), "
    f"e.g. `export {KEY_ENV}=...`, or run `roboflow login` once"
)
_REF = re.compile(
    r"^(?:(?:https?://)?(?:[\w-]+\.)*roboflow\.com/)?"
    r"(?P<workspace>[\w.-]+)/(?P<project>[\w.-]+)/(?:dataset/)?(?P<version>\d+)/?$"
)
ACCEPTED = (
    "name a Roboflow dataset version as WORKSPACE/PROJECT/VERSION "
    "(e.g. east-west-university-9frzq/kidney-stone-detection-wfjba/1), its Roboflow URL "
    "(https://universe.roboflow.com/WORKSPACE/PROJECT/dataset/VERSION), or a recipe YAML with a roboflow source; "
    "studies of a PACS: a DICOMweb URL ending in /studies/<StudyInstanceUID> or /studies?<QIDO query>"
)


def parse_ref(text: str) -> Source:
    """`WORKSPACE/PROJECT/VERSION`, or the dataset's Roboflow URL (universe.roboflow.com/W/P/dataset/V).

    Only Roboflow's own addresses: any other site's URL is refused rather than read as a workspace name.
    """
    # A scheme, or a first part that looks like a host name (example.org), names a site: Roboflow's or none.
    site = re.match(r"^(?:([a-z][a-z0-9+.-]*)://)?([^/]*)", text.strip(), re.IGNORECASE)
    host = site.group(2) if site and (site.group(1) or re.search(r"\.[a-z]{2,}$", site.group(2), re.IGNORECASE)) else None
    if host is not None and not re.fullmatch(r"(?:[\w-]+\.)*roboflow\.com", host, re.IGNORECASE):
        raise UserError(f"'{text}': {host or 'that address'} is not Roboflow, nor a DICOMweb /studies address; only Roboflow datasets and DICOMweb studies can be pulled: {ACCEPTED}")
    match = _REF.match(text.strip())
    if not match:
        raise UserError(f"'{text}': {ACCEPTED}")
    version = int(match["version"])
    if version < 1:
        raise UserError(f"'{text}': Roboflow versions start at 1, not {version}; {ACCEPTED}")
    return Source(kind="roboflow", workspace=match["workspace"], project=match["project"], version=version)


def export_format(task: str, explicit: str | None = None) -> str:
    """The Roboflow export format a task trains on (its `Task.roboflow_format`: YOLOv8 boxes, YOLOv8 polygons, which
    a segmentation project exports, class folders), unless the recipe or the command line names one."""
    return explicit or tasks.get(task).roboflow_format


def ref_of(source: Source) -> str:
    return f"{source.workspace}/{source.project}/{source.version}"


def api_key(workspace: str | None = None) -> str | None:
    """ROBOFLOW_API_KEY, else the key `roboflow login` stored for this workspace (or the default one)."""
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        return key
    try:
        from roboflow.config import load_roboflow_api_key
    except ImportError:
        return None
    try:
        return load_roboflow_api_key(workspace) or None
    except (AttributeError, KeyError, TypeError, ValueError, OSError):  # a config file the client cannot read
        return None


def pull(source: Source, dest: Path, fmt: str, force: bool = False) -> Path:
    """Download `source` as `fmt` into `dest`, unless it is already there; `force` replaces it."""
    if dest.exists() and not force:
        LOG.info("%s is already there (yolo_tools pull --force fetches it again)", dest)
        return dest
    key = api_key(source.workspace)
    if not key:
        raise UserError(f"cannot pull {ref_of(source)} from Roboflow: no API key; {HOW_TO_SET_KEY}")
    blocked = next((folder for folder in (dest.parent, *dest.parent.parents) if folder.exists()), None)
    if blocked is not None and not blocked.is_dir():
        raise UserError(f"cannot pull into {dest}: {blocked} is a file, not a folder; give --data-root (or YOLO_TOOLS_DATA) a folder")
    made = [folder for folder in (dest.parent, *dest.parent.parents) if not folder.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.pull-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        with _quiet_urls():
            with _client_output(key):
                link = _export_link(source, fmt, key)
            LOG.info("downloading %s (%s) from Roboflow", ref_of(source), fmt)
            _download(link, work / "export.zip")
        extract_zip(work / "export.zip", work / "data")
        card = write_card(work / "data", source, fmt)
        _swap(work / "data", dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not dest.exists():  # failed: the folders made for it go too (an empty ./data would hide ../shared/data)
            for folder in made:
                with contextlib.suppress(OSError):  # only while empty: nothing else is removed
                    folder.rmdir()
    sizes = ", ".join(f"{split} {row.get('images', sum(row.values()))}" for split, row in card["counts"].items())
    LOG.info("pulled %s (%s, licence %s) into %s: %s images", ref_of(source), fmt, card["licence"], dest, sizes)
    return dest


# --- the API conversation, through the client -------------------------------------------------------------


class _ClientOutput(io.TextIOBase):
    """Where the client's prints go while it runs: one log line each, blank ones dropped, the API key masked."""

    def __init__(self, key: str) -> None:
        self._key, self._pending = key, ""

    def write(self, text: str) -> int:
        *lines, self._pending = re.split(r"[\r\n]", self._pending + text)
        for line in lines:
            if line.strip():
                LOG.info("roboflow: %s", line.strip().replace(self._key, "***"))
        return len(text)

    def flush(self) -> None:
        pass

    def close_line(self) -> None:
        self.write("\n")


@contextlib.contextmanager
def _quiet_urls() -> Iterator[None]:
    """urllib3 logs every URL at debug level; the client's URLs hold the API key, the export link a token."""
    urllib3_log = logging.getLogger("urllib3")
    level = urllib3_log.level
    urllib3_log.setLevel(max(level, logging.INFO))
    try:
        yield
    finally:
        urllib3_log.setLevel(level)


@contextlib.contextmanager
def _client_output(key: str) -> Iterator[None]:
    output = _ClientOutput(key)
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            yield
    finally:
        output.close_line()


def _detail(error: BaseException, key: str) -> str:
    """The server's own words when the client passes its JSON error body on; never the key."""
    text = str(error)
    try:
        body = json.loads(text)
        found = body.get("error", body) if isinstance(body, dict) else body
        text = str(found.get("message", found) if isinstance(found, dict) else found)
    except ValueError:
        pass
    text = text.replace(key, "***") if key else text
    return text if len(text) <= 300 else text[:300] + "..."


def _export_link(source: Source, fmt: str, key: str) -> str:
    """Check the key, open workspace, project and version, have Roboflow build the export, return its link."""
    try:
        import requests
        from roboflow import Roboflow
        from roboflow.adapters import rfapi
        from roboflow.config import API_URL
    except ImportError:
        raise UserError("pulling from Roboflow needs its client: .venv/bin/pip install -r requirements.lock") from None
    ws, project_name = source.workspace, source.project
    step, hint = "checking the API key", f"check {KEY_ENV} (Roboflow → Settings → API Keys)"
    try:
        client = Roboflow(api_key=key)
        step, hint = f"opening workspace '{ws}'", "check the workspace name in the dataset's URL and that the key is of it"
        workspace = client.workspace(ws)
        step, hint = f"opening project '{ws}/{project_name}'", (
            "check the project name in the dataset's URL; a private project needs a key of its workspace"
        )
        project = workspace.project(project_name)
        step, hint = f"finding version {source.version} of {ws}/{project_name}", "check the version number"
        version = project.version(source.version)
        step, hint = f"exporting {ref_of(source)} as '{fmt}'", "check the format (yolov8, folder, coco, ...)"
        if fmt not in version.exports:
            version.export(fmt)  # asks Roboflow to build the archive and waits until it is ready
        info = rfapi.get_version_export(
            api_key=key, workspace_url=ws, project_url=project_name, version=str(source.version), format=fmt
        )
        return info["export"]["link"]
    except requests.RequestException as error:
        raise UserError(
            f"could not reach Roboflow at {API_URL} while {step} ({type(error).__name__}); "
            "check the network (or a proxy) and run again; nothing was downloaded"
        ) from None
    except Exception as error:  # the client raises bare RuntimeErrors carrying the server's answer
        raise UserError(f"Roboflow: {step} failed: {_detail(error, key)}\n  {hint}") from None


# --- download and unpack, here ----------------------------------------------------------------------------


def _download(link: str, target: Path) -> None:
    """Stream the export archive to `target`; an HTTP error or a short body is an error, never a file."""
    import requests
    from tqdm import tqdm

    failed = "downloading the export from Roboflow failed"
    try:
        with requests.get(link, stream=True, timeout=(30, 300)) as response:
            if response.status_code != 200:
                raise UserError(
                    f"{failed}: HTTP {response.status_code} {response.reason}; run again later "
                    "(export links expire; a new one is asked for each time)"
                )
            expected = int(response.headers.get("Content-Length") or 0)
            written = 0
            with open(target, "xb") as out, tqdm(total=expected or None, unit="B", unit_scale=True, desc="download") as bar:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as error:
        raise UserError(f"{failed} ({type(error).__name__}); check the network and run again") from None
    if expected and written != expected:
        raise UserError(f"{failed}: the archive was cut short ({written} of {expected} bytes); run again")


def extract_zip(archive: Path, target: Path) -> list[str]:
    """Unpack `archive` into the new folder `target`, refusing it whole if any entry could land elsewhere.

    Entries with absolute names, `..` parts, backslashes or drive letters, symbolic links and other special
    files are refused before anything is written; files are created exclusively, so nothing is followed or
    overwritten. A damaged archive (truncated, bad CRC) is an error, not a partial folder.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            _check_members(members, target)
            need, free = sum(m.file_size for m in members), shutil.disk_usage(target.parent).free
            if need > free:
                raise UserError(f"{archive.name}: unpacking needs {need / 1e9:.1f} GB; {free / 1e9:.1f} GB free")
            target.mkdir()
            for member in members:
                path = target / member.filename
                if member.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as src, open(path, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError) as error:
        raise UserError(f"the export from Roboflow is not a complete zip archive ({error}); run again") from None
    except OSError as error:
        raise UserError(f"unpacking the export from Roboflow failed: {error}") from None
    return [m.filename for m in members]


def _check_members(members: list[zipfile.ZipInfo], target: Path) -> None:
    root = target.resolve()
    seen: set[str] = set()
    for member in members:
        name = member.filename
        kind = stat.S_IFMT(member.external_attr >> 16)
        parts = PurePosixPath(name).parts
        why = None
        if not parts or name.startswith("/") or "\\" in name or "\0" in name or ":" in parts[0] or ".." in parts:
            why = "its name points outside the dataset folder"
        elif not (root / name).resolve().is_relative_to(root):
            why = "it would land outside the dataset folder"
        elif kind == stat.S_IFLNK:
            why = "it is a symbolic link"
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            why = "it is not a plain file or folder"
        elif name.rstrip("/") in seen:
            why = "the archive holds it twice"
        if why:
            raise UserError(f"refused the export archive from Roboflow: entry '{name}': {why}; nothing was unpacked")
        seen.add(name.rstrip("/"))


# --- the dataset card -------------------------------------------------------------------------------------


def _licence(root: Path, spec: dict) -> str:
    licence = (spec.get("roboflow") or {}).get("license")
    readme = root / "README.dataset.txt"
    if not licence and readme.is_file():
        found = re.search(r"^License:\s*(.+)$", readme.read_text(errors="replace"), re.MULTILINE)
        licence = found and found.group(1).strip()
    return licence or "not stated in the export; see the source URL"


def _counts(root: Path, names: list[str]) -> dict[str, dict[str, int]]:
    """Per published split: images, backgrounds and boxes/outlines per class (YOLO), or images per class folder."""
    counts: dict[str, dict[str, int]] = {}
    for split in sorted(p for p in root.iterdir() if p.is_dir()):
        row: Counter = Counter()
        if (split / "images").is_dir():
            for image in (split / "images").iterdir():
                if image.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                row["images"] += 1
                label = split / "labels" / f"{image.stem}.txt"
                ids = [line.split()[0] for line in _export_text(label).splitlines() if line.strip()] if label.is_file() else []
                row["backgrounds"] += not ids
                for class_id in ids:
                    row[names[int(class_id)] if class_id.isdigit() and int(class_id) < len(names) else class_id] += 1
        else:
            for folder in sorted(p for p in split.iterdir() if p.is_dir()):
                row[folder.name] = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if row:
            counts[split.name] = dict(row)
    return counts


def _export_text(path: Path) -> str:
    """A text file of the export (label, data.yaml); one that is not UTF-8 means a damaged export."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"the export from Roboflow is damaged: {path.parent.name}/{path.name} is not UTF-8 text; pull again "
            "(or export the version again on Roboflow)"
        ) from None


def write_card(root: Path, source: Source, fmt: str) -> dict:
    """card.json and card.md beside the export: where it came from, its version, licence and counts."""
    spec_path = root / "data.yaml"
    try:
        spec = yaml.safe_load(_export_text(spec_path)) if spec_path.is_file() else {}
    except yaml.YAMLError as exc:
        raise UserError(f"the export of {ref_of(source)}: data.yaml is not valid YAML ({exc}); pull again") from None
    spec = spec if isinstance(spec, dict) else {}
    names = spec.get("names") or []
    names = [str(n) for n in (names.values() if isinstance(names, dict) else names)]
    counts = _counts(root, names)
    if not counts:
        raise UserError(f"the export of {ref_of(source)} as '{fmt}' holds no images; check the version and format")
    from roboflow import __version__ as client_version

    card = {
        "source": "roboflow",
        "url": (spec.get("roboflow") or {}).get("url") or source.url
        or f"https://universe.roboflow.com/{source.workspace}/{source.project}/dataset/{source.version}",
        "workspace": source.workspace,
        "project": source.project,
        "version": source.version,
        "format": fmt,
        "licence": _licence(root, spec),
        "classes": names or sorted({k for row in counts.values() for k in row}),
        "counts": counts,
        "pulled": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "client": f"roboflow {client_version}",
    }
    (root / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    columns = sorted({k for row in counts.values() for k in row})
    lines = [
        f"# Dataset card: {ref_of(source)} ({fmt}), pulled from Roboflow",
        "",
        f"- source: {card['url']}",
        f"- version: {source.version}, format: `{fmt}`, licence: {card['licence']}",
        f"- pulled: {card['pulled']} with {card['client']}",
        "",
        "| split | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    lines += [f"| {split} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |" for split, row in counts.items()]
    (root / "card.md").write_text("\n".join(lines) + "\n")
    return card


def _swap(new: Path, dest: Path) -> None:
    """Put the finished folder in place; a folder it replaces (--force) is removed only after the swap."""
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.is_symlink() or dest.exists():
        dest.rename(old)
    new.rename(dest)
    if old.is_symlink():
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)
