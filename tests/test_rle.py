"""Run-length decode/encode: small exact cases, malformed strings, and the whole real UW-Madison train.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, needs_data
from yolo_tools.codecs.rle import RLEError, RunTable, decode, encode, runs_to_mask

GI = SHARED_DATA / "gi-tract-mri-uwmadison"


def test_decode_is_one_based_and_row_major() -> None:
    mask = decode("2 3 9 2", (2, 5))  # pixels 2-4 of row 0, pixels 9-10 = row 1, columns 3-4
    assert mask.dtype == np.uint8 and mask.shape == (2, 5)
    assert mask.tolist() == [[0, 1, 1, 1, 0], [0, 0, 0, 1, 1]]
    assert encode(mask) == "2 3 9 2"


def test_empty_and_full_masks() -> None:
    assert decode("", (3, 4)).sum() == 0
    assert encode(np.zeros((3, 4))) == ""
    assert encode(np.ones((3, 4), bool)) == "1 12"
    assert decode("1 12", (3, 4)).all()


def test_encode_decode_random_masks_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        height, width = rng.integers(1, 80, 2)
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        assert np.array_equal(decode(encode(mask), (height, width)), mask)


def test_runs_to_mask_matches_a_plain_loop() -> None:
    starts, lengths = np.array([0, 10, 50]), np.array([3, 5, 14])
    expected = np.zeros(64, np.uint8)
    for start, length in zip(starts, lengths):
        expected[start : start + length] = 1
    assert np.array_equal(runs_to_mask(starts, lengths, (8, 8)).ravel(), expected)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("1 2 3", "has 3 values"),
        ("1 2.5", r"whole numbers.*'\.'"),
        ("4 x", "whole numbers.*'x'"),
        ("-1 3", "whole numbers.*'-'"),
        ("10 8", "ends at pixel 17, beyond the 12 pixels"),
        ("0 2", "1-based"),
        ("3 0", "at least 1"),
        ("5 2 6 1", "overlaps or precedes"),
        ("7 1 2 1", "overlaps or precedes"),
    ],
)
def test_malformed_strings_name_their_row(rle: str, message: str) -> None:
    with pytest.raises(RLEError, match=message) as error:
        labels = ["a", "b", "train.csv line 4 (case1_day2_slice_0003, stomach)"]
        RunTable.parse(["", "1 1", rle], sizes=12, labels=labels)
    assert str(error.value).startswith("train.csv line 4 (case1_day2_slice_0003, stomach): ")


def test_table_areas_offsets_and_missing_cells() -> None:
    table = RunTable.parse(["", "1 2 5 1", None, float("nan"), "9 1", ""], sizes=[9, 9, 9, 9, 9, 9])
    assert len(table) == 6
    assert table.areas().tolist() == [0, 3, 0, 0, 1, 0]
    assert table.mask(1, (3, 3)).ravel().tolist() == [1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert table.mask(5, (3, 3)).sum() == 0


def test_sizes_are_per_row() -> None:
    RunTable.parse(["1 20", "1 4"], sizes=[20, 4])
    with pytest.raises(RLEError, match="row 1: .*beyond the 4 pixels"):
        RunTable.parse(["1 20", "1 5"], sizes=[20, 4])


@needs_data("gi-tract-mri-uwmadison")
def test_real_train_csv_decodes_to_the_published_areas_and_encodes_back_exactly() -> None:
    """All 38,496 x 3 rows: decoded pixel counts equal slice_meta.csv's area columns, strings survive."""
    rows = pd.read_csv(GI / "train.csv", dtype=str, keep_default_na=False)
    meta = pd.read_csv(GI / "slice_meta.csv").set_index("id")
    assert len(rows) == 3 * 38_496 and len(meta) == 38_496
    sizes = meta.loc[rows["id"], ["height", "width"]].to_numpy()
    table = RunTable.parse(rows["segmentation"].tolist(), sizes=sizes.prod(axis=1), labels=rows["id"].tolist())
    expected = meta.to_numpy()[meta.index.get_indexer(rows["id"]), meta.columns.get_indexer("area_" + rows["class"])]
    assert np.array_equal(table.areas(), expected.astype(np.int64))

    labelled = np.flatnonzero(rows["segmentation"].to_numpy() != "")
    decoded = np.zeros(len(rows), dtype=np.int64)
    encoded = [""] * len(rows)
    for row in labelled:
        mask = table.mask(row, tuple(sizes[row]))
        decoded[row] = int(mask.sum(dtype=np.int64))
        encoded[row] = encode(mask)
    assert np.array_equal(decoded, expected)
    assert encoded == rows["segmentation"].tolist()
    assert len(labelled) > 30_000 and expected.max() > 5_000
