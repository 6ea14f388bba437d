"""nnU-Net's lessons as workbench options, on hand-made cases: the input size from the data, test-time mirroring
(findings of a mirror image mapped back and fused), the largest connected component per class in 2D and 3D
and its decision, and 3D surface distances."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from yolo_tools import engine, fusion, postprocess
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.inference import predictors
from yolo_tools.metrics import surface
from yolo_tools.prediction import Mirroring, Prediction
from yolo_tools.recipe import Predict
from yolo_tools.training import input_size


# --- input size from the data


def test_small_findings_on_small_images_are_enlarged_large_ones_kept() -> None:
    hippocampus = input_size.Statistics(long_side=51, short_finding=10, findings=100)
    assert input_size.choose(hippocampus, (8, 16, 32)) == 192  # 10 px → 32 px: x3.2, 51 → 163 → a multiple of 32
    heart = input_size.Statistics(long_side=512, short_finding=150, findings=100)
    assert input_size.choose(heart, (8, 16, 32)) == 512  # never shrunk below the image's own size
    specks = input_size.Statistics(long_side=100, short_finding=1, findings=5)
    assert input_size.choose(specks, (8, 16, 32)) == 800  # at most 8x the image
    assert input_size.choose(hippocampus, (16, 32, 64)) == 384  # a coarser model needs more pixels


def _tiny_dataset(root: Path, boxes: list[tuple[float, float]]) -> Dataset:
    """A converted-looking detect dataset: one 40x80 image per box (normalised w, h)."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    rows = []
    for index, (w, h) in enumerate(boxes):
        cv2.imwrite(str(root / "images" / "train" / f"i{index}.png"), np.zeros((40, 80), np.uint8))
        (root / "labels" / "train" / f"i{index}.txt").write_text(f"0 0.5 0.5 {w} {h}\n")
        rows.append({"image": f"i{index}.png", "split": "train", "patient": f"p{index}"})
    pd.DataFrame(rows).to_csv(root / "patients.csv", index=False)
    return Dataset(root, "detect")


def test_statistics_read_the_training_labels_in_pixels(tmp_path: Path) -> None:
    found = input_size.statistics(_tiny_dataset(tmp_path, [(0.1, 0.5), (0.05, 0.1), (0.5, 0.5)]))
    # short sides: min(8, 20) = 8, min(4, 4) = 4, min(40, 20) = 20 px
    assert (found.long_side, found.short_finding, found.findings) == (80, 8, 3)
    args = input_size.resolve({"imgsz": "auto", "epochs": 3}, _tiny_dataset(tmp_path / "b", [(0.1, 0.5)]), (8, 16, 32))
    assert args == {"imgsz": 320, "epochs": 3}  # 8 px → 32 px: x4, 80 → 320
    assert input_size.resolve({"imgsz": 64}, Dataset(tmp_path / "none", "detect"), (8, 16, 32)) == {"imgsz": 64}


def test_no_findings_no_size(tmp_path: Path) -> None:
    dataset = _tiny_dataset(tmp_path, [(0.1, 0.5)])
    (tmp_path / "labels" / "train" / "i0.txt").write_text("")
    with pytest.raises(UserError, match="imgsz=auto sizes the input by the labelled findings; the train split has none"):
        input_size.resolve({"imgsz": "auto"}, dataset, (8, 16, 32))


# --- test-time mirroring


def _bright_boxes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in detector: one box around the bright pixels, and a mask of them."""
    ys, xs = np.nonzero(image[..., 0] > 127)
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32), image[..., 0] > 127


class _Detector:
    """Finds the bright region of whatever image it is given: a mirror image's finding lies elsewhere, so only
    its correct mapping back makes it agree with the plain one (else two boxes, or a doubled mask)."""

    names = {0: "spot"}

    def predict(self, source: list[np.ndarray], **_: object) -> list[object]:
        out = []
        for image in source:
            box, mask = _bright_boxes(image)
            out.append(engine.results._results(image, "x.png", self.names, box, [0.9], [0], mask[None], None))
        return out


def test_mirror_images_are_mapped_back_and_fused() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[5:15, 8:20] = 255  # top left: every mirror image puts it elsewhere
    plain = _Detector().predict([image])
    for flip, fuse in (("horizontal", fusion.fuse_detections), ("vertical", fusion.fuse_masks)):
        mirroring = Mirroring((flip,), fuse)
        fused = next(engine.predictor._predictions(plain, {"conf": 0.25}, None, mirroring, _Detector(), False, False))
        np.testing.assert_allclose(fused.boxes, [[8, 5, 20, 15]], atol=0.5)  # the mirror's box mapped back onto it
        assert len(fused.boxes) == 1 and fused.image is None
        if fuse is fusion.fuse_masks:
            assert fused.class_masks(1)[0].sum() == 120 and fused.class_masks(1)[0][5:15, 8:20].all()


def test_a_mirrored_prediction_maps_boxes_masks_and_outlines_back() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[5:15, 8:20] = 255
    box, mask = _bright_boxes(image)
    found = engine.from_arrays(image, "a.png", {0: "spot"}, box, [0.9], [0], mask[None])
    for flip, axis in (("horizontal", 1), ("vertical", 0)):
        back = found.mirrored(flip).mirrored(flip)  # twice: itself
        np.testing.assert_allclose(back.boxes, found.boxes)
        np.testing.assert_array_equal(back.masks, found.masks)
        np.testing.assert_allclose(back.outlines[0], found.outlines[0])
        once = found.mirrored(flip)
        np.testing.assert_array_equal(once.masks[0], np.flip(mask, axis))
        assert once.boxes[0].tolist() == ([40, 5, 52, 15] if flip == "horizontal" else [8, 25, 20, 35])


# --- largest connected component


def test_largest_component_in_2d_and_3d() -> None:
    image = np.zeros((6, 6), bool)
    image[0:2, 0:2] = True  # 4 pixels
    image[4:6, 3:6] = True  # 6 pixels
    np.testing.assert_array_equal(postprocess.largest_component(image), np.pad(np.ones((2, 3), bool), ((4, 0), (3, 0))))
    volume = np.zeros((3, 4, 4), bool)
    volume[0, 0, 0] = volume[1, 0, 0] = volume[2, 0, 0] = True  # 3 voxels through the slices: one piece in 3D
    volume[1, 3, 3] = volume[1, 3, 2] = True  # 2 voxels
    kept = postprocess.largest_component(volume)
    assert kept.sum() == 3 and kept[:, 0, 0].all()
    diagonal = np.eye(3, dtype=bool)  # corners only: not face-connected, so three pieces of one pixel
    assert postprocess.largest_component(diagonal).sum() == 1
    assert not postprocess.largest_component(np.zeros((2, 2), bool)).any()


def _slice(stem: str, masks: np.ndarray) -> Prediction:
    """A prediction of one slice: one instance per (class, mask) given as (classes, H, W)."""
    classes = [c for c in range(len(masks)) if masks[c].any()]
    image = np.zeros((*masks.shape[1:], 3), np.uint8)
    boxes = np.array([[0, 0, masks.shape[2], masks.shape[1]]] * len(classes), np.float32).reshape(-1, 4)
    return engine.from_arrays(image, f"{stem}.png", {0: "a", 1: "b"}, boxes, [0.9] * len(classes), classes, masks[classes])


def test_slices_are_cut_to_the_largest_3d_component_once_their_volume_is_whole() -> None:
    masks = np.zeros((3, 2, 8, 8), bool)  # slices, classes, H, W
    masks[:, 0, 2:4, 2:4] = True  # class a: a column through all three slices (12 voxels)
    masks[1, 0, 6:8, 6:8] = True  # and a speck of 4 on the middle slice
    masks[2, 1, 0:2, 0:2] = True  # class b: one speck, its only piece
    stream = [_slice(f"v_s00{i}", masks[i]) for i in (2, 0, 1)]  # out of order, as a stream may come
    other = _slice("w_s000", masks[1])  # an image of no listed volume: cut on its own
    slice_of = {f"v_s00{i}": ("v", i) for i in range(3)}
    out = list(postprocess.in_volumes([stream[0], other, *stream[1:]], slice_of, {"v": 3}, [0, 1]))
    assert [p.path.stem for p in out] == ["w_s000", "v_s000", "v_s001", "v_s002"]
    assert out[0].class_masks(2)[0].sum() == 4  # the 2D image: its two pieces are 4 each, the first kept
    kept = np.stack([p.class_masks(2) for p in out[1:]])
    assert kept[:, 0].sum() == 12 and not kept[1, 0, 6:8, 6:8].any()  # the speck is gone, the column stays
    assert kept[:, 1].sum() == 4  # class b untouched
    middle = out[2]
    assert len(middle.masks) == 1 and middle.boxes[0].tolist() == [2, 2, 4, 4]  # the cut instance's box shrinks
    untouched = list(postprocess.in_volumes(stream, slice_of, {"v": 3}, []))
    assert sum(p.class_masks(2)[0].sum() for p in untouched) == 16


def test_decided_per_class_where_mean_dice_rises_and_pooled_over_folds(tmp_path: Path) -> None:
    dice = np.array([[0.8, 0.9], [0.6, 0.9]])
    largest = np.array([[0.9, 0.9], [0.7, 0.8]])
    decision = postprocess.decide(["a", "b"], dice, largest, "val", 3)
    assert decision["largest_component"] == ["a"]
    assert decision["classes"]["a"]["dice"] == pytest.approx(0.7) and decision["classes"]["a"]["dice_largest"] == pytest.approx(0.8)
    other = postprocess.decide(["a", "b"], np.array([[0.9, 0.5]]), np.array([[0.5, 0.9]]), "val", 3)
    pooled = postprocess.pooled([decision, other], "out-of-fold")
    # a: (0.8 + 0.6 + 0.9) / 3 without, (0.9 + 0.7 + 0.5) / 3 with: no longer; b: 2.3 / 3 against 2.6 / 3
    assert pooled["largest_component"] == ["b"] and pooled["classes"]["a"]["cases"] == 3
    postprocess.save(tmp_path, pooled)
    assert postprocess.load(tmp_path) == json.loads(json.dumps(pooled))
    assert postprocess.class_ids(pooled, ["a", "b"]) == [1]
    with pytest.raises(UserError, match=r"names classes \['b'\] the model does not have"):
        postprocess.class_ids(pooled, ["a", "c"])
    (tmp_path / postprocess.FILE).write_text('{"largest_component": "a"}')
    with pytest.raises(UserError, match="not a post-processing decision yolo_tools evaluate wrote"):
        postprocess.load(tmp_path)


def test_weights_newer_than_the_decision_make_it_stale(tmp_path: Path) -> None:
    import os

    postprocess.save(tmp_path, postprocess.decide(["a"], np.array([[0.5]]), np.array([[0.6]]), "val", 2))
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    later = (tmp_path / postprocess.FILE).stat().st_mtime + 10
    os.utime(weights, (later, later))
    assert postprocess.load(tmp_path, [weights]) is None


# --- 3D surface distances


def test_hd95_of_a_volume_in_mm() -> None:
    true = np.zeros((1, 10, 20, 20), bool)
    true[0, 2:8, 5:15, 5:15] = True
    pred = np.roll(true, 1, axis=1)  # one slice further along the slice axis
    hd95, nsd = surface.surface_scores(pred, true, spacing=(3.0, 1.0, 1.0))
    assert hd95[0] == pytest.approx(3.0)  # one slice of 3 mm
    hd95_2d, _ = surface.surface_scores(pred[:, 4], true[:, 4], spacing=(1.0, 1.0))
    assert hd95_2d[0] == 0.0  # the same slice in 2D: no distance at all


def test_recipe_predict_block_defaults_to_nothing() -> None:
    assert Predict().flips == [] and Predict().largest_component == "off"


# --- fold ensembles: each fold at its own point, post-processing pooled over the folds' held-out patients


def _fold(root: Path, name: str, conf: float, decision: dict) -> Path:
    run = root / name
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"")
    (run / "operating_point.json").write_text(json.dumps({"rule": "r", "conf": conf, "class_conf": {"a": conf, "b": conf + 0.1}}))
    postprocess.save(run, decision)
    eval_dir = run / "eval"
    eval_dir.mkdir()
    (eval_dir / "summary.json").write_text(json.dumps({"recipe": "r", "task": "segment", "images": 2, "validator": {}, "metrics": {"dice": conf}}))
    pd.DataFrame({"class": ["a", "b"], "dice_mean": [conf, conf]}).to_csv(eval_dir / "per_class.csv", index=False)
    pd.DataFrame({"image": ["x.png"], "dice": [conf]}).to_csv(eval_dir / "per_image.csv", index=False)
    return run


def test_fold_models_vote_at_their_own_points_and_their_decisions_pool(tmp_path: Path) -> None:
    from yolo_tools.inference import ensemble
    from yolo_tools.training import crossval

    first = postprocess.decide(["a", "b"], np.array([[0.8, 0.5]]), np.array([[0.9, 0.4]]), "val", 3)
    second = postprocess.decide(["a", "b"], np.array([[0.7, 0.5], [0.7, 0.6]]), np.array([[0.6, 0.5], [0.6, 0.9]]), "val", 3)
    runs = [_fold(tmp_path, "fold1", 0.2, first), _fold(tmp_path, "fold2", 0.4, second)]
    (tmp_path / "cv.json").write_text(json.dumps({"folds": 2}))
    own = ensemble.member_args(runs, {"imgsz": 64})
    assert [(a["conf"], a["class_conf"]["b"]) for a in own] == [(0.2, pytest.approx(0.3)), (0.4, pytest.approx(0.5))]
    assert all("class_conf" not in a for a in ensemble.member_args(runs, {"conf": 0.1}))  # conf= is one for all

    crossval.summarise(runs, tmp_path / "cv")
    pooled = postprocess.load(tmp_path)
    # a: 2.2 / 3 without, 2.1 / 3 with; b: 1.6 / 3 without, 1.8 / 3 with
    assert pooled["largest_component"] == ["b"] and pooled["classes"]["a"]["cases"] == 3
    assert predictors.postprocessing_folder(runs) == tmp_path and predictors.postprocessing_folder(runs[:1]) == runs[0]
    assert predictors.postprocessing_folder([runs[0], runs[0]]) is None  # not every fold: nothing was decided for it


def test_train_with_imgsz_auto_trains_at_the_size_the_data_asks_for(tmp_path: Path) -> None:
    import yaml

    from bad_input import TINY_RECIPE
    from yolo_tools import pipeline
    from yolo_tools.conversion import prepare_dataset
    from yolo_tools.recipe import load_recipe

    recipe = tmp_path / "demo.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "imgsz": "auto"}}))
    run_dir, _ = pipeline.train_recipe(recipe, {"device": "cpu"}, name="auto")
    expected = input_size.choose(input_size.statistics(prepare_dataset(load_recipe(recipe))), (8, 16, 32))
    assert expected > 64  # the synthetic findings are small: enlarged
    assert yaml.safe_load((run_dir / "args.yaml").read_text())["imgsz"] == expected
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["train"]["imgsz"] == expected  # what evaluate and app read


def test_fused_mirror_findings_keep_to_max_det() -> None:
    """A mirror image's box that does not overlap the plain one is a second finding; `max_det: 1` (one heart per
    film) keeps the more confident after fusing, as each pass kept one."""

    class _Shifted(_Detector):
        def predict(self, source: list[np.ndarray], **_: object) -> list[object]:
            return [engine.results._results(image, "x.png", self.names, np.array([[0, 0, 10, 10]], np.float32), [0.3],
                                            [0], None, None)
                    for image in source]

    image = np.zeros((40, 60, 3), np.uint8)
    image[5:15, 8:20] = 255
    mirroring = Mirroring(("horizontal",), fusion.fuse_detections)
    two = next(engine.predictor._predictions(_Detector().predict([image]), {"conf": 0.1}, None, mirroring, _Shifted(),
                                             False, False))
    one = next(engine.predictor._predictions(_Detector().predict([image]), {"conf": 0.1, "max_det": 1}, None, mirroring,
                                             _Shifted(), False, False))
    assert len(two.boxes) == 2 and len(one.boxes) == 1
    np.testing.assert_allclose(one.boxes, [[8, 5, 20, 15]], atol=0.5)  # the plain, more confident box
