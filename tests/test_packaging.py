"""A plain (non-editable) install carries what the verbs need: the recipes ship inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_every_recipe_and_finds_them_installed(tmp_path: Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True)
    wheel = next(tmp_path.glob("yolo_tools-*.whl"))
    shipped = {Path(name).name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("yolo_tools/recipes/")}
    assert shipped == {path.name for path in (ROOT / "recipes").glob("*.yaml")}

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)  # what pip puts in site-packages, without touching this venv
    code = (
        "import yolo_tools, yolo_tools.recipe as r; "
        "print(yolo_tools.__file__); print(r.load_recipe('demo').name, r.load_recipe('kidney').task)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(target)!r}] + {sys.path!r}; {code}"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    where, loaded = done.stdout.splitlines()
    assert where.startswith(str(target)) and loaded == "demo detect"
