"""The writer puts each image straight into the split it expects, and moves it when a skip changes the draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo_tools.codecs import mask_png
from yolo_tools.convert.writer import Sample, SkipSample, assign_splits, write_dataset
from yolo_tools.recipe import Data, Recipe, Source

SIZE = 32


def _recipe(**split: str) -> Recipe:
    return Recipe(name="squares", task="segment", model="yolov8n-seg.yaml", classes=["square"],
                  data=Data(source=Source(kind="local", path="squares"), converter="mask_images",
                            split={"by": "^(p\\d+)_", "val": 0.4, "seed": 0, **split}))


def _sample(patient: int, index: int, broken: bool = False) -> Sample:
    """A grey square on black, its polygon and its mask; `broken` samples fail their label check."""
    mask = np.zeros((1, SIZE, SIZE), bool)
    mask[0, 4 + index : 20 + index, 6:22] = True

    def labels() -> list[str]:
        if broken:
            raise SkipSample("label file cannot be read")
        x0, x1, y0, y1 = 6 / SIZE, 21 / SIZE, (4 + index) / SIZE, (19 + index) / SIZE
        return [f"0 {x0} {y0} {x1} {y0} {x1} {y1} {x0} {y1}"]

    return Sample(name=f"p{patient}_s{index}", image=lambda: (mask[0] * 200).astype(np.uint8), labels=labels,
                  masks=lambda: mask, source=f"p{patient}_s{index}")


def _where(root: Path, name: str) -> set[str]:
    """The splits holding the image, label and mask files of `name`."""
    found = {p.parent.name for p in root.glob(f"images/*/{name}.png")}
    found |= {p.parent.name for p in root.glob(f"labels/*/{name}.txt")}
    return found | {p.parent.name for p in root.glob(f"masks/*/{name}.png")}


@pytest.mark.parametrize("skip_patient", [None, 0, 1, 2, 3, 4])
def test_every_file_is_in_the_split_drawn_over_the_kept_samples(tmp_path: Path, skip_patient: int | None) -> None:
    recipe = _recipe()
    samples = [_sample(p, i, broken=p == skip_patient) for p in range(6) for i in range(2)]
    kept = [s for s in samples if not s.name.startswith(f"p{skip_patient}_")]
    splits, _ = assign_splits(kept, recipe)
    card = write_dataset(samples, tmp_path / "out", recipe, "squares")

    root = tmp_path / "out"
    assert len(card["skipped"]) == len(samples) - len(kept)
    for sample, split in zip(kept, splits):
        assert _where(root, sample.name) == {split}, sample.name  # image, label and mask together
        written = mask_png.load(root / "masks" / split / f"{sample.name}.png", 1)
        assert np.array_equal(written, sample.masks())
    for sample in samples:
        if sample not in kept:
            assert _where(root, sample.name) == set()  # nothing of a skipped sample is left behind
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["card.json", "card.md", "data.yaml", "images", "labels", "masks", "patients.csv"]
    )


def test_a_skip_that_changes_the_draw_moves_the_images(tmp_path: Path) -> None:
    """The case the move exists for: without the skipped patient, some kept patient changes split."""
    recipe = _recipe()
    samples = [_sample(p, i, broken=p == 0) for p in range(6) for i in range(2)]
    before, _ = assign_splits(samples, recipe)
    after, _ = assign_splits(samples[2:], recipe)
    assert before[2:] != after  # this seed and these names do move someone
    write_dataset(samples, tmp_path / "out", recipe, "squares")
    for sample, split in zip(samples[2:], after):
        assert _where(tmp_path / "out", sample.name) == {split}


def test_patients_shared_with_a_published_test_split_are_reported_once(tmp_path: Path, caplog) -> None:
    """p0 has images in the published test split and in train/val; a skipped sample makes the writer draw
    twice, and the warning still comes once, naming the patient."""
    recipe = _recipe(test="source")
    samples = [Sample(**{**_sample(p, i, broken=(p, i) == (5, 1)).__dict__, "split": "test" if (p, i) == (0, 0) or p == 1 else "train"})
               for p in range(6) for i in range(2)]
    with caplog.at_level("WARNING", logger="yolo_tools.convert.writer"):
        write_dataset(samples, tmp_path / "out", recipe, "squares")
    said = [r.getMessage() for r in caplog.records if "published test split" in r.getMessage()]
    assert said == ["1 patients have images in the published test split and in train/val: ['p0']"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_threads_write_the_same_dataset_as_one_and_keep_the_first_of_a_name(tmp_path: Path, monkeypatch) -> None:
    """Staging on threads changes nothing written: the same files, bytes and card, skips in the samples' order;
    of two samples with one name the first usable is kept whichever thread would have finished first."""
    from yolo_tools.convert import writer

    samples = [_sample(p, i, broken=(p, i) == (2, 1)) for p in range(6) for i in range(3)]
    first = _sample(1, 0, broken=True)  # a name used twice: the broken one first, so the second is kept
    samples[3:3] = [first]
    samples.append(_sample(4, 2))  # and a third of one name, after its first usable one: skipped naming it
    written = {}
    for threads in (1, 4):
        monkeypatch.setattr(writer, "THREADS", threads)
        card = write_dataset(samples, tmp_path / f"out{threads}", _recipe(), "squares")
        written[threads] = (_files(tmp_path / f"out{threads}"), card["skipped"])
    assert written[1] == written[4]
    assert written[4][1] == ["p1_s0: label file cannot be read", "p2_s1: label file cannot be read",
                             "p4_s2: a second image named 'p4_s2' (the first: p4_s2)"]


def test_a_volume_slices_stay_on_one_thread_and_other_samples_go_in_runs() -> None:
    from yolo_tools.convert.writer import _batches

    volumes = [Sample(name=f"v{v}_s{i}", image=lambda: None, slice_of=(f"v{v}", i)) for v in range(2) for i in range(3)]
    files = [Sample(name=f"f{i}", image=lambda: None) for i in range(5)]
    samples = volumes + files
    assert _batches(samples, list(range(len(samples))), size=2) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9], [10]]


def test_an_error_on_a_thread_stops_the_conversion_and_leaves_nothing(tmp_path: Path) -> None:
    samples = [_sample(p, i) for p in range(6) for i in range(2)]

    def disk_full() -> np.ndarray:
        raise OSError(28, "No space left on device")

    samples[5] = Sample(name="p2_s1", image=disk_full, labels=list, source="p2_s1")
    with pytest.raises(OSError, match="No space left"):
        write_dataset(samples, tmp_path / "out", _recipe(), "squares")
    assert list(tmp_path.iterdir()) == []  # no partial folder, no dataset


def _published(samples: list[Sample], group: bool) -> list[Sample]:
    """The samples as a published split: p0 and p1 in val, the rest in train, except p2's second image in val."""
    return [Sample(**{**s.__dict__, "split": "val" if s.name[:2] in ("p0", "p1") or s.name == "p2_s1" else "train",
                      "group": s.name.split("_")[0] if group else None}) for s in samples]


@pytest.mark.parametrize("group", [False, True])
def test_a_published_split_that_may_share_patients_is_said_on_the_card_and_in_the_log(tmp_path: Path, caplog, group: bool) -> None:
    """Kept as published (`by: source`), a split is patient-wise only when every image's patient is known and
    none crosses; otherwise the card says so and the log names the fix, since val numbers would not hold."""
    from yolo_tools.dataset import read_card
    from yolo_tools.evaluation import split_caveat

    samples = _published([_sample(p, i) for p in range(6) for i in range(2)], group)
    with caplog.at_level("WARNING", logger="yolo_tools.convert.writer"):
        write_dataset(samples, tmp_path / "out", _recipe(by="source"), "squares")
    card = read_card(tmp_path / "out")
    said = [r.getMessage() for r in caplog.records if "data.split.by" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("squares: ") and "patient rule" in said[0]
    if group:
        assert card["patient_wise"] is False and "1 patients have images in more than one split" in said[0] and "p2" in said[0]
        assert "some patients have images in more than one split" in split_caveat(None, card)
    else:
        assert card["patient_wise"] is None and "nothing says which patient" in said[0]
        assert "nothing says which patient" in split_caveat(None, card)
    assert split_caveat("outside/set", card) is None, "an outside set shares no patient with training"
    assert "patient-wise: " + ("no" if group else "not known") in (tmp_path / "out" / "card.md").read_text()


def test_a_split_drawn_by_patient_is_patient_wise_without_a_caution(tmp_path: Path, caplog) -> None:
    from yolo_tools.dataset import patient_wise, read_card
    from yolo_tools.evaluation import split_caveat

    with caplog.at_level("WARNING", logger="yolo_tools.convert.writer"):
        write_dataset([_sample(p, i) for p in range(6) for i in range(2)], tmp_path / "out", _recipe(), "squares")
    card = read_card(tmp_path / "out")
    assert card["patient_wise"] is True and split_caveat(None, card) is None
    assert not [r for r in caplog.records if "data.split.by" in r.getMessage()]
    assert "patient-wise: yes" in (tmp_path / "out" / "card.md").read_text()
    older = {k: v for k, v in card.items() if k != "patient_wise"}  # a card written before the field
    assert patient_wise(older) is True and patient_wise({**older, "split": {"by": "source"}}) is None
