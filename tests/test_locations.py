"""Which data root a recipe's raw data comes from, and that the choice is said.

A working folder `project/` with `project/data` and `../shared/data` beside it, as on a team machine; no
real data is read: the dataset folders are made here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from yolo_tools import locations
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/project (the working folder) and tmp/shared/data with one dataset; no YOLO_TOOLS_DATA."""
    (tmp_path / "project").mkdir()
    (tmp_path / "shared" / "data" / "heart-cxr-jsrt").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.delenv(locations.DATA_ENV, raising=False)
    locations._announced.clear()
    return tmp_path / "project"


def _recipe(folder: str) -> Recipe:
    return Recipe(
        name="heart", task="detect", classes=["heart"], model="yolov8n.yaml",
        data={"source": {"kind": "local", "path": folder}, "converter": "box_csv"}, path=Path("recipes/heart.yaml"),
    )


def test_an_empty_data_folder_does_not_hide_the_shared_one(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    from yolo_tools.sources import locate

    (project / "data").mkdir()
    (project / "data" / ".heart.pull-123").mkdir()  # hidden leftovers count as nothing
    shared = (project.parent / "shared" / "data").resolve()
    assert locations.data_root() == shared
    with caplog.at_level(logging.INFO, logger="yolo_tools"):
        assert locate(_recipe("heart-cxr-jsrt")) == shared / "heart-cxr-jsrt"
        locate(_recipe("heart-cxr-jsrt"))
    said = [r.getMessage() for r in caplog.records if r.name == "yolo_tools.locations"]
    assert said == ["raw data: heart-cxr-jsrt from ../shared/data; other data roots: ./data (empty) "
                    "(--data-root or YOLO_TOOLS_DATA chooses one)"]  # once per dataset, naming the other root


def test_each_dataset_comes_from_the_first_root_that_holds_it(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    from yolo_tools.sources import locate

    (project / "data" / "kidney-pulled").mkdir(parents=True)  # a user's own pull: ./data is not empty now
    (project / "data" / "heart-cxr-jsrt").mkdir()
    with caplog.at_level(logging.INFO, logger="yolo_tools"):
        assert locate(_recipe("heart-cxr-jsrt")) == (project / "data" / "heart-cxr-jsrt").resolve()  # ./data first
        (project / "data" / "heart-cxr-jsrt").rmdir()
        assert locate(_recipe("heart-cxr-jsrt")) == (project.parent / "shared" / "data" / "heart-cxr-jsrt").resolve()
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "yolo_tools.locations")
    assert "from ./data; other data roots: ../shared/data (1 dataset)" in said
    assert "from ../shared/data; other data roots: ./data (1 dataset)" in said


def test_a_flag_or_the_environment_names_the_only_root(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from yolo_tools.sources import locate

    mine = project / "mine"
    (mine / "heart-cxr-jsrt").mkdir(parents=True)
    with caplog.at_level(logging.INFO, logger="yolo_tools"):
        assert locate(_recipe("heart-cxr-jsrt"), mine) == (mine / "heart-cxr-jsrt").resolve()
        monkeypatch.setenv(locations.DATA_ENV, str(project / "empty"))
        with pytest.raises(UserError) as error:  # the environment's root only: ../shared/data is not searched
            locate(_recipe("heart-cxr-jsrt"))
    assert not [r for r in caplog.records if r.name == "yolo_tools.locations"]  # nothing chosen for the user
    assert f"not found as 'heart-cxr-jsrt' in {(project / 'empty').resolve()} (not there)" in str(error.value)


def test_missing_data_names_every_root_searched_and_what_it_holds(project: Path) -> None:
    from yolo_tools.sources import locate

    (project / "data").mkdir()
    with pytest.raises(UserError) as error:
        locate(_recipe("kidney-stones-ct"))
    assert "not found as 'kidney-stones-ct' in ./data (empty), ../shared/data (1 dataset)" in str(error.value)
    assert "--data-root" in str(error.value)
