"""Bad input to `yolo_tools predict`: empty or missing sources, unreadable images among good ones, bad values.

One unreadable file (empty, not an image, cut short, a decompression-bomb header) is skipped with a warning
naming it and the rest is predicted (exit 0); a source with nothing readable fails (exit 2) and writes
nothing. Every case predicts with one tiny run trained once for the module.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

# Ultralytics binds its log handler to the sys.stdout of the moment it is first imported: imported here, at
# collection, that is pytest's session-long capture, not one case's (closed when the case ends, after which
# every Ultralytics log line would print a logging traceback).
import ultralytics  # noqa: F401, E402
from bad_input import Case, copy_run, logs_on_stderr, parametrize, run_case, train_tiny_run

RUN: dict[str, Path] = {}  # the module's tiny run, trained once by `_tiny_run`


@pytest.fixture(scope="module", autouse=True)
def _tiny_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    RUN["run"] = train_tiny_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(autouse=True)
def _warnings_on_stderr(capfd: pytest.CaptureFixture) -> None:
    with logs_on_stderr():
        yield


# --- inputs -----------------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels over a few bytes of data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def good_images(folder: Path, count: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"good{i}.png"), rng.integers(0, 255, (64, 64), np.uint8))


def jpeg_bytes() -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8))
    return encoded.tobytes()


def png_bytes() -> bytes:
    ok, encoded = cv2.imencode(".png", np.random.default_rng(2).integers(0, 255, (64, 64), np.uint8))
    return encoded.tobytes()


BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    # case id: (file name, bytes, what the warning says)
    "zero-byte-png": ("empty.png", b"", r"empty file"),
    "zero-byte-jpg": ("empty.jpg", b"", r"empty file"),
    "text-named-jpg": ("notes.jpg", b"this is not an image\n", r"not a readable image"),
    "html-named-png": ("page.png", b"<html><body>404</body></html>", r"not a readable image"),
    "truncated-jpeg": ("cut.jpg", jpeg_bytes()[:400], r"truncated"),
    "truncated-png": ("cut.png", png_bytes()[:120], r"not a readable image"),
    "bomb-png-400mp": ("bomb.png", png_header(20000, 20000), r"decompression bomb"),
    "bomb-png-over-opencv-limit": ("bomb.png", png_header(60000, 60000), r"decompression bomb"),
    "random-bytes-tif": ("noise.tif", bytes(np.random.default_rng(3).integers(0, 255, 5000, np.uint8)), r"not a readable image"),
    "png-bytes-garbled": ("garbled.png", png_bytes()[:16] + b"\xff" * 200, r"not a readable image"),
}


def one_bad_among_good(name: str, data: bytes):
    def setup(inputs: Path) -> None:
        copy_run(RUN["run"], inputs / "run")
        good_images(inputs / "images")
        (inputs / "images" / name).write_bytes(data)

    return setup


def only_bad(name: str, data: bytes):
    def setup(inputs: Path) -> None:
        copy_run(RUN["run"], inputs / "run")
        (inputs / "images").mkdir()
        (inputs / "images" / name).write_bytes(data)

    return setup


def with_run(extra=None):
    def setup(inputs: Path) -> None:
        copy_run(RUN["run"], inputs / "run")
        good_images(inputs / "images")
        if extra:
            extra(inputs)

    return setup


def predict(*extra: str, source: str = "images", out: bool = True):
    """argv for `predict RUN SOURCE`, into an output folder outside the inputs."""
    return lambda inputs: [
        "predict", str(inputs / "run"), str(inputs / source),
        *(["--out", str(inputs.parent / "out")] if out else []), *extra,
    ]


CASES: list[Case] = []
for case_id, (name, data, why) in BAD_FILES.items():
    CASES.append(
        Case(f"skips-{case_id}", predict(), (rf"skipped .*{name}: .*{why}",), one_bad_among_good(name, data), code=0)
    )
    CASES.append(Case(f"only-{case_id}", predict(), (rf"skipped .*{name}", r"none of its 1 image\(s\) can be read"), only_bad(name, data)))

CASES += [
    Case("empty-folder", predict(source="empty"), (r"empty: no images in it", r"give a folder of images"), with_run(lambda i: (i / "empty").mkdir())),
    Case(
        "folder-of-text-files",
        predict(source="texts"),
        (r"texts: no images in it", r"\.png"),
        with_run(lambda i: ((i / "texts").mkdir(), (i / "texts" / "readme.txt").write_text("x"))),
    ),
    Case("missing-source", predict(source="nothing-here"), (r"nothing-here: no such image, folder or glob",), with_run()),
    Case("glob-matching-nothing", predict(source="images/*.dcm"), (r"\*\.dcm: no such image, folder or glob",), with_run()),
    Case(
        "single-unreadable-file",
        predict(source="images/bad.png"),
        (r"skipped .*bad\.png", r"none of its 1 image"),
        with_run(lambda i: (i / "images" / "bad.png").write_bytes(b"")),
    ),
    # A DICOM among the files sends them all through the workbench's own mapping (imaging/model_input.py).
    Case("skips-garbage-dicom", predict(), (r"skipped .*scan\.dcm: .*cannot read DICOM",), one_bad_among_good("scan.dcm", b"DICM" * 100), code=0),
    Case("only-garbage-dicom", predict(), (r"skipped .*scan\.dcm", r"none of its 1 image"), only_bad("scan.dcm", b"\0" * 200)),
    Case("out-is-the-source", lambda i: ["predict", str(i / "run"), str(i / "images"), "--out", str(i / "images")],
         (r"--out .*images: the folder of the images being predicted", r"would overwrite"), with_run()),
    Case("out-is-a-file", lambda i: ["predict", str(i / "run"), str(i / "images"), "--out", str(i / "notes.txt")],
         (r"--out .*notes\.txt: a file, not a folder",), with_run(lambda i: (i / "notes.txt").write_text("mine"))),
    Case("out-holds-the-users-files", lambda i: ["predict", str(i / "run"), str(i / "images"), "--out", str(i / "mine")],
         (r"--out .*mine: a folder that holds other files", r"new or empty folder"),
         with_run(lambda i: (i / "mine").mkdir() or (i / "mine" / "good0.jpg").write_bytes(b"my own picture"))),
    # A folder of the user's that merely holds a file called predictions.csv is not an earlier output (no marker).
    Case("out-holds-the-users-predictions-csv", lambda i: ["predict", str(i / "run"), str(i / "images"), "--out", str(i / "mine")],
         (r"--out .*mine: a folder that holds other files, not one yolo_tools predict wrote", r"\.yolo_tools-predict\.json", r"new or\s+empty folder"),
         with_run(lambda i: (i / "mine").mkdir() or (i / "mine" / "predictions.csv").write_text("patient,finding\n7,nodule\n"))),
    Case("out-under-a-file", lambda i: ["predict", str(i / "run"), str(i / "images"), "--out", str(i / "notes.txt" / "preds")],
         (r"--out .*preds: .*notes\.txt is a file, not a folder",), with_run(lambda i: (i / "notes.txt").write_text("mine"))),
    Case("out-holds-the-class-folders", lambda i: ["predict", str(i / "run"), str(i / "test"), "--out", str(i / "test")],
         (r"--out .*test: the folder of the images being predicted", r"would overwrite"),
         with_run(lambda i: good_images(i / "test" / "normal"))),
    # Ultralytics' own writers would put files into its runs folder, outside --out.
    Case("save-txt", predict("save_txt=True"), (r"save_txt=True: Ultralytics would write these files into its own runs folder", r"--format coco"), with_run()),
    Case("save-crop", predict("save_crop=True"), (r"save_crop=True: Ultralytics would write", r"predictions\.csv"), with_run()),
    Case("all-unreadable-default-out", predict(out=False), (r"none of its 1 image",), only_bad("x.png", b"")),
    Case("conf-not-a-number", predict("conf=abc"), (r"command line: conf: .*int .*or float",), with_run()),
    Case("conf-above-one", predict("conf=2"), (r"conf: .*between 0\.0 and 1\.0",), with_run()),
    Case("iou-not-a-number", predict("iou=high"), (r"command line: iou: .*float",), with_run()),
    Case("max-det-word", predict("max_det=ten"), (r"max_det: .*must be an int",), with_run()),
    Case("max-det-zero", predict("max_det=0"), (r"max_det: .*must be >= 1",), with_run()),
    Case("imgsz-word", predict("imgsz=big"), (r"command line: imgsz: .*imgsz",), with_run()),
    Case("augment-not-bool", predict("augment=maybe"), (r"augment: .*must be a bool",), with_run()),
    Case("unknown-argument", predict("confidence=0.5"), (r"'confidence' is not an Ultralytics train argument",), with_run()),
    Case("reserved-argument", predict("project=elsewhere"), (r"'project' is set by yolo-tools",), with_run()),
    Case("empty-value", predict("conf="), (r"give 'conf' a value",), with_run()),
    Case("not-key-value", predict("fast"), (r"'fast': arguments after .* are key=value",), with_run()),
    Case(
        "weights-garbage",
        lambda i: ["predict", str(i / "model.pt"), str(i / "images")],
        (r"model\.pt: not a readable Ultralytics weights file", r"copy it again|train again"),
        lambda i: (good_images(i / "images"), (i / "model.pt").write_bytes(b"not weights\n")),
    ),
    Case(
        "run-without-weights",
        predict(),
        (r"run: a run folder without weights/best\.pt", r"train again"),
        with_run(lambda i: shutil.rmtree(i / "run" / "weights")),
    ),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    run_case(case, tmp_path, monkeypatch, capfd)


def test_skipped_file_leaves_the_rest_predicted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """Every good image of a folder holding a bomb is predicted and drawn; the bomb is not."""
    case = next(c for c in CASES if c.id == "skips-bomb-png-400mp")
    run_case(case, tmp_path, monkeypatch, capfd)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["good0.jpg", "good1.jpg"]
    assert (tmp_path / "out" / "predictions.csv").is_file()


@pytest.mark.parametrize("size", [20000, 60000])
def test_an_uploaded_bomb_is_a_message_not_a_crash(tmp_path: Path, size: int) -> None:
    """The dashboard's and the mapping path's reader (read_model_input) refuses a bomb's header before OpenCV reads it."""
    from yolo_tools.errors import UserError
    from yolo_tools.imaging.model_input import read_model_input
    from yolo_tools.recipe import Preprocess

    (tmp_path / "bomb.png").write_bytes(png_header(size, size))
    with pytest.raises(UserError, match=r"bomb\.png: a decompression bomb"):
        read_model_input(tmp_path / "bomb.png", Preprocess())
