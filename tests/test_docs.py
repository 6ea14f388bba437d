"""The documentation cannot rot unnoticed: the site builds strict, the generated reference is current, every
shipped recipe has its page, and the README stays a two-minute read whose links and recipe work.

`mkdocs build --strict` (mkdocs.yml: links, anchors, snippets and pages left out of the navigation are
errors) runs here, so `make test` and CI fail on a broken link rather than a reader finding it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not a finding
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(command, cwd=config.parent, env=env, capture_output=True, text=True, timeout=300)


def test_the_site_builds_strict(tmp_path: Path) -> None:
    built = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "reference" / "recipe" / "index.html").is_file()
    kidney = (tmp_path / "site" / "recipes" / "kidney" / "index.html").read_text(encoding="utf-8")
    assert "acquisition_session" in kidney, "the recipe page holds the recipe file itself (snippet)"


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The check above can fail: the same site with one link to a page that is not there does not build."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs", symlinks=True)
    for name in ("mkdocs.yml",):
        shutil.copy2(ROOT / name, copy / name)
    shutil.copytree(ROOT / "recipes", copy / "recipes")
    (copy / "benchmarks").mkdir()
    shutil.copy2(ROOT / "benchmarks" / "RESULTS.md", copy / "benchmarks" / "RESULTS.md")
    assert _build(copy / "mkdocs.yml", tmp_path / "good").returncode == 0
    page = copy / "docs" / "commands.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [nothing](no-such-page.md).\n", encoding="utf-8")
    broken = _build(copy / "mkdocs.yml", tmp_path / "bad")
    assert broken.returncode != 0 and "no-such-page.md" in broken.stdout + broken.stderr


def _reference_module():
    spec = importlib.util.spec_from_file_location("recipe_reference", DOCS / "recipe_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_reference_is_generated_from_the_schemas_as_committed() -> None:
    reference = _reference_module()
    assert reference.PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/reference/recipe.md is out of date: run `python docs/recipe_reference.py`"
    )


def test_the_reference_names_every_key_and_converter() -> None:
    from yolo_tools.convert import registry as convert
    from yolo_tools.recipe import Recipe

    page = (DOCS / "reference" / "recipe.md").read_text(encoding="utf-8")
    for key in (*(k for k in Recipe.model_fields if k != "path"), "data.split.test", "preprocess.intensity.center"):
        assert f"| `{key}` |" in page, key
    for name in convert.CONVERTERS:
        assert f"### `{name}`" in page, name
        for option in convert.converter(name).Options.model_fields:
            assert f"| `data.options.{option}` |" in page, (name, option)


def test_every_shipped_recipe_has_its_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        page = DOCS / "recipes" / f"{recipe.stem}.md"
        assert page.is_file(), f"recipes/{recipe.name} has no page docs/recipes/{recipe.stem}.md"
        assert f'--8<-- "recipes/{recipe.name}"' in page.read_text(encoding="utf-8")
        assert f"recipes/{recipe.stem}.md" in nav


def test_the_readme_is_a_two_minute_read_whose_links_exist() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local, "the README links into the docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that are not there: {missing}"


def test_the_readmes_recipe_is_a_valid_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yolo_tools.convert import checks
    from yolo_tools.recipe import load_recipe

    text = README.read_text(encoding="utf-8")
    block = re.search(r"## A recipe\n+```yaml\n(.*?)```", text, re.S)
    assert block, "README: a ```yaml block under '## A recipe'"
    assert len(block.group(1).splitlines()) <= 10, "a ten-line recipe"
    path = tmp_path / "recipe.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    monkeypatch.setenv("YOLO_TOOLS_CORRECTIONS", str(tmp_path / "corrections"))
    recipe = checks.check(load_recipe(path))
    assert recipe.data.split.test == 0.15 and recipe.data.options == {"csv": "heart_boxes.csv"}
    assert recipe.model == "yolov8n.pt", "what the README says a recipe without model starts from"
