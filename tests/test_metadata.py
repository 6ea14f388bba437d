"""Per-patient fields from a recipe's CSV joined into the converted dataset's metadata.csv."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, isolate_fiftyone
from yolo_tools import pipeline, tasks
from yolo_tools.errors import UserError
from yolo_tools.metrics import groups
from yolo_tools.recipe import load_recipe

PATIENTS = "patient,age,sex,site\n" + "".join(
    f"synthetic_{i:04d},{40 + i},{'FM'[i % 2]},A\n" for i in range(6)
) + "nobody,99,F,B\n"
KERMANY = SHARED_DATA / "pneumonia-cxr-kermany" / "train"
# Twelve real patients with three or four X-rays each; IM-0497 has no row in the table, `nobody` no images.
PNEUMONIA = ("person1019", "person1031", "person1072", "person1073", "person108", "person110")
NORMAL = ("IM-0429", "IM-0437", "IM-0439", "IM-0467", "IM-0491", "IM-0497")
KERMANY_PATIENTS = "id,age,sex\n" + "".join(
    f"{patient},{age},{'FM'[age % 2]}\n" for age, patient in enumerate(PNEUMONIA + NORMAL[:-1], start=1)
) + "nobody,3,F\n"


def _recipe(tmp_path: Path, metadata: dict | None, name: str = "demo-meta") -> Path:
    recipe = yaml.safe_load((RECIPES / "demo.yaml").read_text())
    recipe["name"] = name
    if metadata is not None:
        recipe["data"]["metadata"] = metadata
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def kermany(tmp_path_factory: pytest.TempPathFactory, workspace: Path) -> tuple[Path, Path, Path]:
    """The recipe, the raw subset with its patients.csv, and the converted dataset."""
    if not KERMANY.is_dir():
        pytest.skip(f"{KERMANY} not present")
    folder = tmp_path_factory.mktemp("kermany")
    source = folder / "raw"
    for label, patients in (("PNEUMONIA", PNEUMONIA), ("NORMAL", NORMAL)):
        (source / "train" / label).mkdir(parents=True)
        prefixes = tuple(f"{p}_" if p.startswith("person") else f"{p}-" for p in patients)
        for image in KERMANY.joinpath(label).iterdir():
            if image.name.startswith(prefixes):
                shutil.copyfile(image, source / "train" / label / image.name)
    (source / "patients.csv").write_text(KERMANY_PATIENTS)
    recipe = yaml.safe_load((RECIPES / "pneumonia.yaml").read_text())
    recipe["name"] = "pneumonia-meta"
    recipe["data"]["source"]["path"] = str(source)
    recipe["data"]["split"]["val"] = 0.5
    recipe["data"]["metadata"] = {"path": "patients.csv", "key": "id", "columns": ["age", "sex"]}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    pipeline.convert(folder / "recipe.yaml")
    return folder / "recipe.yaml", source, workspace / "datasets" / "pneumonia-meta"


def test_patient_fields_are_joined_per_image_and_counted_on_the_card(kermany) -> None:
    _, source, dataset = kermany
    table = pd.read_csv(dataset / "metadata.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["image", "split", "patient", "age", "sex"]
    on_disk = {p.name: p.parent.parent.name for p in dataset.glob("*/*/*.jpeg")}
    assert dict(zip(table["image"], table["split"])) == on_disk and len(on_disk) > 30
    assert (table["patient"] == table["image"].str.extract(r"^(person\d+|IM-\d+)")[0]).all()
    assert table.groupby("patient")["split"].nunique().max() == 1  # each patient on one side of the split
    assert set(table["split"]) == {"train", "val"}
    expected = pd.read_csv(source / "patients.csv", dtype=str).set_index("id")
    known = table[table["patient"] != "IM-0497"]
    assert (known["age"].values == expected.loc[known["patient"], "age"].values).all()
    assert (known["sex"].values == expected.loc[known["patient"], "sex"].values).all()
    assert (table.loc[table["patient"] == "IM-0497", ["age", "sex"]] == "").all().all()
    card = json.loads((dataset / "card.json").read_text())
    assert card["metadata"] == {
        "file": str(source / "patients.csv"),
        "columns": ["age", "sex"],
        "patients": 12,
        "patients_matched": 11,
        "images_without_metadata": int((table["patient"] == "IM-0497").sum()),
        "rows_unused": 1,
    }
    assert card["metadata"]["images_without_metadata"] == 3
    assert "11 of 12 patients matched" in (dataset / "card.md").read_text()


def test_metadata_is_part_of_the_dataset_fingerprint(tmp_path: Path) -> None:
    plain = load_recipe(_recipe(tmp_path, None, "plain"))
    joined = load_recipe(_recipe(tmp_path, {"path": "/x/patients.csv"}, "joined"))
    other_key = load_recipe(_recipe(tmp_path, {"path": "/x/patients.csv", "key": "id"}, "other"))
    assert len({plain.fingerprint(), joined.fingerprint(), other_key.fingerprint()}) == 3


@pytest.mark.parametrize(
    ("csv", "metadata", "message"),
    [
        (PATIENTS, {"key": "id"}, "no key column 'id'"),
        (PATIENTS, {"columns": ["age", "weight"]}, "no column ['weight']"),
        (PATIENTS, {"columns": ["split"]}, "no column ['split']"),
        ("patient,split\nsynthetic_0000,x\n", {"columns": ["split"]}, "clash with metadata.csv's own"),
        (PATIENTS + "synthetic_0001,50,F,C\n", {}, "1 repeated patient ids in 'patient' (first: synthetic_0001)"),
        (PATIENTS, {"relative": True}, "must be absolute for a synthetic source"),
        (None, {}, "no such file"),
    ],
)
def test_a_wrong_table_fails_before_conversion(
    tmp_path: Path, workspace: Path, csv: str | None, metadata: dict, message: str
) -> None:
    if csv is not None:
        (tmp_path / "patients.csv").write_text(csv)
    path = "patients.csv" if metadata.pop("relative", False) else str(tmp_path / "patients.csv")
    recipe = _recipe(tmp_path, {"path": path, **metadata}, "demo-bad-meta")
    with pytest.raises(UserError) as error:
        pipeline.convert(recipe)
    assert message in str(error.value)
    assert not (workspace / "datasets" / "demo-bad-meta").exists()


def test_unknown_metadata_key_is_refused_by_the_recipe(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="data.metadata.file"):
        load_recipe(_recipe(tmp_path, {"path": "a.csv", "file": "b.csv"}))


# --- the breakdown: evaluate's per_group.csv, the report's table, FiftyOne's fields ---


def test_breakdown_counts_findings_per_field_value() -> None:
    per_image = pd.DataFrame(
        {
            "image": ["a.png", "b.png", "c.png"],
            "boxes_true": [2, 2, 0],
            "boxes_predicted": [1, 3, 0],
            "found": [1, 2, 0],
            "false_positives": [0, 1, 0],
            "missed": [1, 0, 0],
            "errors": [1, 1, 0],
        }
    )
    metadata = pd.DataFrame(
        {"image": ["a.png", "b.png", "c.png"], "split": "val", "patient": ["p1", "p2", "p3"],
         "sex": ["F", "M", "F"], "age": ["30", "40", ""]}
    )
    table = groups.breakdown(per_image, metadata, tasks.get("detect").group_numbers).set_index(["field", "value"])
    assert table.loc[("sex", "F")].to_dict() == {
        "images": 2, "patients": 2, "boxes_true": 2, "found": 1, "false_positives": 0, "missed": 1,
        "recall": 0.5, "images_with_errors": 1,
    }
    assert table.loc[("sex", "M"), "recall"] == 1.0 and table.loc[("sex", "M"), "false_positives"] == 1
    assert list(table.loc["age"].index) == ["30", "40", "(unknown)"]
    assert np.isnan(table.loc[("age", "(unknown)"), "recall"])  # nothing to find: recall is undefined


def test_many_valued_numbers_are_cut_into_quartiles() -> None:
    per_image = pd.DataFrame({"image": [f"{i}.jpeg" for i in range(9)], "correct": [True] * 4 + [False] * 5,
                              "p_truth": np.linspace(0.9, 0.1, 9)})
    ages = [str(age) for age in range(27, 19, -1)] + [""]  # 27, 26, ... 20: sorted by value, not as written
    metadata = pd.DataFrame({"image": per_image["image"], "split": "val", "patient": per_image["image"], "age": ages})
    table = groups.breakdown(per_image, metadata, tasks.get("classify").group_numbers)
    assert list(table["value"]) == ["20-21.75", "21.75-23.5", "23.5-25.25", "25.25-27", "(unknown)"]
    assert list(table["images"]) == [2, 2, 2, 2, 1]
    assert list(table["accuracy"]) == [0.0, 0.0, 1.0, 1.0, 0.0]  # images 0-3 (ages 27-24) are the right ones


@pytest.fixture(scope="module")
def kermany_run(kermany) -> Path:
    recipe, _, _ = kermany
    run_dir, _ = pipeline.train_recipe(recipe, {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False})
    return run_dir


@pytest.mark.slow
def test_evaluate_and_report_break_metrics_down_by_patient_fields(kermany, kermany_run: Path) -> None:
    html, markdown = pipeline.report(kermany_run)
    per_group = pd.read_csv(kermany_run / "eval" / "per_group.csv", dtype={"value": str})
    per_image = pd.read_csv(kermany_run / "eval" / "per_image.csv")
    metadata = pd.read_csv(kermany[2] / "metadata.csv", dtype=str, keep_default_na=False)
    joined = per_image.drop(columns=["patient"], errors="ignore").assign(name=per_image["image"].str.split("/").str[-1]).merge(
        metadata, left_on="name", right_on="image"
    )
    assert len(joined) == len(per_image) > 0 and set(joined["split"]) == {"val"}
    sex = per_group[per_group["field"] == "sex"].set_index("value")
    expected = joined.assign(sex=joined["sex"].replace("", "(unknown)")).groupby("sex")
    assert sex["images"].to_dict() == expected.size().to_dict()
    assert sex["accuracy"].to_dict() == pytest.approx(expected["correct"].mean().to_dict())
    assert sex["patients"].to_dict() == expected["patient"].nunique().to_dict()
    assert per_group.groupby("field")["images"].sum().to_dict() == {"age": len(per_image), "sex": len(per_image)}
    summary = json.loads((kermany_run / "eval" / "summary.json").read_text())
    assert summary["metadata_fields"] == ["age", "sex"]
    assert "By patient fields" in html.read_text() and "By patient fields" in markdown.read_text()


@pytest.fixture
def fiftyone_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FiftyOne's database and config in a temporary folder, never a developer's own (as in test_inspect)."""
    isolate_fiftyone(monkeypatch, tmp_path)
    return tmp_path


@pytest.mark.slow
def test_fiftyone_samples_carry_the_patient_fields(kermany, kermany_run: Path, fiftyone_home: Path) -> None:
    pytest.importorskip("fiftyone")
    from yolo_tools.review import fiftyone_inspect

    report = fiftyone_inspect.inspect_run(kermany_run, {}, worst=3, app=False)
    dataset = fiftyone_inspect._fiftyone().load_dataset(report["dataset"])
    metadata = pd.read_csv(kermany[2] / "metadata.csv", dtype=str, keep_default_na=False).set_index("image")
    shown = metadata.loc[[Path(p).name for p in dataset.values("filepath")]]
    assert dataset.values("patient") == list(shown["patient"])
    assert dataset.values("patient_sex") == [value or None for value in shown["sex"]]
    assert dataset.values("patient_age") == [float(value) if value else None for value in shown["age"]]
    # IM-0497 has no row in the table: blank in FiftyOne too, when the split put it in val.
    assert (None in dataset.values("patient_age")) == ("IM-0497" in set(shown["patient"]))
