"""Per-patient fields from a recipe's CSV joined into the converted dataset's metadata.csv."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data
from yolo_tools import pipeline
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

PATIENTS = "patient,age,sex,site\n" + "".join(
    f"synthetic_{i:04d},{40 + i},{'FM'[i % 2]},A\n" for i in range(6)
) + "nobody,99,F,B\n"
KERMANY = SHARED_DATA / "pneumonia-cxr-kermany" / "train"
# Five real patients, several X-rays each; IM-0523 gets no row in the table, `nobody` no images.
SUBSET = {"PNEUMONIA": ("person30_", "person1320_"), "NORMAL": ("IM-0629-", "IM-0553-", "IM-0523-")}
KERMANY_PATIENTS = "id,age,sex\nperson30,4,F\nperson1320,2,M\nIM-0629,5,M\nIM-0553,1,F\nnobody,3,F\n"


def _recipe(tmp_path: Path, metadata: dict | None, name: str = "demo-meta") -> Path:
    recipe = yaml.safe_load((RECIPES / "demo.yaml").read_text())
    recipe["name"] = name
    if metadata is not None:
        recipe["data"]["metadata"] = metadata
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@needs_data("pneumonia-cxr-kermany")
def test_patient_fields_are_joined_per_image_and_counted_on_the_card(tmp_path: Path, workspace: Path) -> None:
    source = tmp_path / "kermany"
    for folder, prefixes in SUBSET.items():
        (source / "train" / folder).mkdir(parents=True)
        for image in KERMANY.joinpath(folder).iterdir():
            if image.name.startswith(prefixes):
                shutil.copyfile(image, source / "train" / folder / image.name)
    (source / "patients.csv").write_text(KERMANY_PATIENTS)
    recipe = yaml.safe_load((RECIPES / "pneumonia.yaml").read_text())
    recipe["name"] = "pneumonia-meta"
    recipe["data"]["source"]["path"] = str(source)
    recipe["data"]["metadata"] = {"path": "patients.csv", "key": "id", "columns": ["age", "sex"]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    pipeline.convert(tmp_path / "recipe.yaml")

    dataset = workspace / "datasets" / "pneumonia-meta"
    table = pd.read_csv(dataset / "metadata.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["image", "split", "patient", "age", "sex"]
    on_disk = {p.name: p.parent.parent.name for p in dataset.glob("*/*/*.jpeg")}
    assert dict(zip(table["image"], table["split"])) == on_disk and len(on_disk) > 20
    assert (table["patient"] == table["image"].str.extract(r"^(person\d+|IM-\d+)")[0]).all()
    assert table.groupby("patient")["split"].nunique().max() == 1  # each patient on one side of the split
    expected = pd.read_csv(source / "patients.csv", dtype=str).set_index("id")
    known = table[table["patient"] != "IM-0523"]
    assert (known["age"].values == expected.loc[known["patient"], "age"].values).all()
    assert (known["sex"].values == expected.loc[known["patient"], "sex"].values).all()
    assert (table.loc[table["patient"] == "IM-0523", ["age", "sex"]] == "").all().all()
    card = json.loads((dataset / "card.json").read_text())
    assert card["metadata"] == {
        "file": str(source / "patients.csv"),
        "columns": ["age", "sex"],
        "patients": 5,
        "patients_matched": 4,
        "images_without_metadata": int((table["patient"] == "IM-0523").sum()),
        "rows_unused": 1,
    }
    assert card["metadata"]["images_without_metadata"] >= 1
    assert "4 of 5 patients matched" in (dataset / "card.md").read_text()


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
