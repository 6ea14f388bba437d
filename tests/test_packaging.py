"""A plain (non-editable) install carries what the verbs need: the recipes ship inside the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source_copy(folder: Path) -> Path:
    """What a wheel is built from, copied: setuptools writes build/ and *.egg-info beside the sources."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, folder / name)
    for name in ("yolo_tools", "recipes"):
        shutil.copytree(ROOT / name, folder / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_the_wheel_ships_every_recipe_and_finds_them_installed(tmp_path: Path) -> None:
    checkout = {path.name for path in ROOT.iterdir()}
    source = _source_copy(tmp_path / "source")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)]
    subprocess.run(build, check=True, capture_output=True)
    assert {path.name for path in ROOT.iterdir()} <= checkout  # no build/ (or anything else) left in the checkout
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


def _fake_venv(folder: Path, pip_fails: bool) -> Path:
    """A venv whose pip prints what a real install of the lock prints (one `Collecting` per package, then
    the install lines) and whose python points at a FiftyOne folder with a mongod that starts."""
    packages = sum("==" in line for line in (ROOT / "requirements.lock").read_text().splitlines())
    bin_ = folder / "bin"
    (folder / "fiftyone" / "db" / "bin").mkdir(parents=True)
    bin_.mkdir()
    lines = "".join(f"echo 'Collecting package{i}==1.0'\necho '  Downloading package{i}-1.0.whl (1.0 MB)'\n" for i in range(packages))
    scripts = {
        bin_ / "pip": "#!/bin/sh\ncase \"$*\" in *requirements.lock*) ;; *) exit 0 ;; esac\n" + lines
        + "echo 'Installing collected packages: package0, package1'\n"
        + ("echo 'ERROR: No matching distribution found for package7' >&2\nexit 1\n" if pip_fails
           else "echo 'Successfully installed package0-1.0 package1-1.0'\n"),
        bin_ / "python": f"#!/bin/sh\necho {folder / 'fiftyone'}\n",
        folder / "fiftyone" / "db" / "bin" / "mongod": "#!/bin/sh\necho 'db version v6.0'\n",
    }
    for path, text in scripts.items():
        path.write_text(text)
        path.chmod(0o755)
    return folder


@pytest.mark.parametrize("pip_fails", [False, True], ids=["installs", "pip-fails"])
def test_setup_shows_progress_in_few_lines_and_fails_when_pip_does(tmp_path: Path, pip_fails: bool) -> None:
    """`make setup` says what it does in each step and how far pip is, a line per 25 packages (not pip's 500
    lines, not silence for ten minutes); a pip that fails fails the setup although its output is filtered."""
    venv = _fake_venv(tmp_path / "venv", pip_fails)
    done = subprocess.run(["make", "-C", str(ROOT), f"VENV={venv}", "setup"], capture_output=True, text=True, timeout=120)
    said = [line for line in done.stdout.splitlines() if line.startswith(("setup", "  "))]
    assert said[0] == f"setup 1/4: Python environment in {venv}"
    assert said[1].startswith("setup 2/4: ") and "pinned packages (about 8 GB, most of it torch's CUDA libraries" in said[1]
    fetched = [line for line in said if line.endswith("packages fetched")]
    assert len(fetched) >= 5 and fetched[0] == f"  25 of {fetched[-1].split()[2]} packages fetched"
    assert len(done.stdout.splitlines()) < 40, done.stdout
    if pip_fails:
        assert done.returncode != 0 and "No matching distribution found for package7" in done.stderr
        assert not (venv / ".installed").exists() and not any(line.startswith("setup 3/4") for line in said)
    else:
        assert done.returncode == 0, done.stderr
        assert [line for line in said if line.startswith("setup")][2:] == [
            "setup 3/4: FiftyOne's database (MongoDB 6.0)", "setup 4/4: yolo-tools itself (editable)",
            f"setup done: {subprocess.run(['du', '-sh', str(venv)], capture_output=True, text=True).stdout.split()[0]} in {venv}",
        ]
        assert (venv / ".installed").exists()
