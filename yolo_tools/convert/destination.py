"""Where a converted dataset may be written: only into a folder the workbench wrote itself, never over data.

A conversion builds its dataset in `.<name>.partial-<pid>` beside the destination and swaps it in with
two renames, so the destination is whole or absent, never half written. Before that, the destination is
checked:

- it must not be, contain or lie inside a source folder (or the data root raw sets live in): the swap
  would otherwise remove the source;
- if it exists it must be a folder the workbench wrote (its `card.json` carries the `written_by` marker,
  or is a dataset card of an older version of the workbench) or an empty folder; a file, a link or a
  non-empty folder of anything else is refused with what to do instead.

A conversion that is killed leaves its `.partial-<pid>` (or, between the two renames, `.old-<pid>`)
folder behind; the next conversion beside it removes those whose process is gone, and only folders the
workbench named and marked.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from yolo_tools.dataset import CARD, MARKER, WRITER, read_card
from yolo_tools.errors import UserError

__all__ = ["CARD", "MARKER", "WRITER", "check", "clean_stale", "partial_folder", "swap_in", "written_by_us"]

PARTIAL_MARK = ".yolo_tools-partial"  # inside a folder being written, so a stale one is known as ours
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)$")


def written_by_us(folder: Path) -> bool:
    """True when `folder` holds a dataset card the workbench wrote."""
    return read_card(folder) is not None


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check(dst: Path, sources: Iterable[Path] = (), data_root: Path | None = None) -> None:
    """Refuse a destination the workbench may not replace; raise UserError saying what to do instead."""
    if dst.is_symlink():
        raise UserError(f"{dst}: is a link; give the path of a new folder for the dataset")
    blocking = next((p for p in dst.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"{dst}: {blocking} is a file, not a folder; give a destination under a folder")
    dst = dst.resolve()
    for source in sources:
        source = source.resolve()
        if _overlaps(dst, source):
            where = "is" if dst == source else "contains" if source.is_relative_to(dst) else "lies inside"
            raise UserError(
                f"{dst}: the dataset folder {where} the source {source}; converting there would replace "
                "the source. Give a destination outside the source (e.g. datasets/<name>)"
            )
    if data_root is not None and dst.is_relative_to(data_root.resolve()):
        raise UserError(
            f"{dst}: converted datasets would be written inside the data root {data_root.resolve()}, which holds "
            "raw data the workbench never writes into. Point YOLO_TOOLS_DATASETS at another folder "
            "(default: ./datasets) or YOLO_TOOLS_DATA / --data-root at the raw data"
        )
    if dst.exists() and not dst.is_dir():
        raise UserError(f"{dst}: a file is there; move it away or give the path of a new folder for the dataset")
    if dst.is_dir() and not written_by_us(dst) and any(dst.iterdir()):
        raise UserError(
            f"{dst}: this folder holds files yolo_tools did not write (no dataset {CARD}); it replaces only "
            "folders it wrote itself. Give the path of a new or empty folder, or move these files away"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove the partial and old folders of conversions killed beside `parent`; return what was removed."""
    removed = []
    for folder in parent.glob(".*") if parent.is_dir() else []:
        match = _LEFTOVER.match(folder.name)
        if not match or not folder.is_dir() or folder.is_symlink() or _alive(int(match["pid"])):
            continue
        ours = (folder / PARTIAL_MARK).is_file() if match["kind"] == "partial" else written_by_us(folder)
        if ours:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def partial_folder(dst: Path) -> Path:
    """A new, marked folder beside `dst` to build the dataset in."""
    partial = dst.parent / f".{dst.name}.partial-{os.getpid()}"
    if partial.exists():  # this very process was interrupted earlier in the same session
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARK).touch()
    return partial


def swap_in(new: Path, dst: Path) -> None:
    """Put the finished folder at `dst`; an older dataset there is removed only after the swap."""
    check(dst)
    (new / PARTIAL_MARK).unlink(missing_ok=True)
    old = dst.parent / f".{dst.name}.old-{os.getpid()}"
    if dst.exists():
        dst.rename(old)
    new.rename(dst)
    shutil.rmtree(old, ignore_errors=True)
