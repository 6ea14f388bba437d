"""Bad input between the workbench and a PACS (DICOMweb), against a real Orthanc (tests/orthanc_server.py).

Server down, a refused login, a study that is not there, a series of another modality, a server that
refuses STOW-RS, an interrupt in the middle of a batch, answers that are not DICOM JSON (a tiny fake
server), an address that is not DICOMweb, a secret on the command line: each is one message naming the
server and what to do, nothing half-stored on the server or half-pulled on disk, and no secret printed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

import ultralytics  # noqa: F401  (see test_bad_input_predict: Ultralytics' log handler binds at first import)
from bad_input import Case, copy_run, logs_on_stderr, parametrize, run_case, train_tiny_run
from conftest import SHARED_DATA, needs_data

pytest.importorskip("dicomweb_client")
pytestmark = [needs_data("dicom-ct-liver-seg"), needs_data("dicom-mr-brain-series"), needs_data("dicom-samples")]

PACS: dict = {}  # the module's servers, run and UIDs, filled by `_servers`
SECRET = "hunter2-Zq9"  # a secret a user might type: it must never come back in any output
# Orthanc refuses SEG and SR objects here: a PACS that will not take STOW-RS of results
REFUSE_RESULTS = """
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= 'SR' and dicom.Modality ~= 'SEG'
end
"""


class _Malformed(BaseHTTPRequestHandler):
    """Answers every QIDO-RS search with what its path's first part asks for: JSON that is not DICOM JSON, or HTML."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        kind = self.path.split("/")[1]
        body, media = {
            "wrong-json": (json.dumps([{"0020000D": "not an attribute object"}]), "application/dicom+json"),
            "html": ("<html><body>Welcome to the hospital portal</body></html>", "text/html"),
            "bad-uid": (json.dumps([{"0020000D": {"vr": "UI", "Value": ["../../etc"]}}]), "application/dicom+json"),
        }[kind]
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module", autouse=True)
def _servers(tmp_path_factory: pytest.TempPathFactory):
    import orthanc_server

    root = tmp_path_factory.mktemp("pacs-bad")
    main = orthanc_server.start(root / "orthanc")
    refusing = None
    fake = ThreadingHTTPServer(("127.0.0.1", 0), _Malformed)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        studies = orthanc_server.fill(main, root / "made")
        refusing = orthanc_server.start(root / "refusing", lua=REFUSE_RESULTS)
        refusing.upload(sorted((SHARED_DATA / "dicom-ct-liver-seg").glob("ct-*.dcm")))
        PACS.update(
            main=main, refusing=refusing, studies=studies, run=train_tiny_run(tmp_path_factory.mktemp("tiny-run")),
            fake=f"http://127.0.0.1:{fake.server_address[1]}", down=f"http://127.0.0.1:{orthanc_server.free_port()}/dicom-web",
            rtstruct=_series_of(SHARED_DATA / "dicom-samples" / "SEG_RTSTRUCT" / "RT.dcm"),
            liver_seg=_series_of(SHARED_DATA / "dicom-ct-liver-seg" / "liver.dcm"),
        )
        yield
    finally:
        fake.shutdown()
        main.stop()
        if refusing is not None:
            refusing.stop()


@pytest.fixture(autouse=True)
def _warnings_on_stderr(capfd: pytest.CaptureFixture) -> None:
    with logs_on_stderr():
        yield


def _series_of(path: Path) -> tuple[str, str]:
    import pydicom

    header = pydicom.dcmread(path, stop_before_pixels=True)
    return str(header.StudyInstanceUID), str(header.SeriesInstanceUID)


# --- building cases ---------------------------------------------------------------------------------------


def web(server: str = "main") -> str:
    return PACS[server].dicomweb


def ct_url() -> str:
    return f"{web()}/studies/{PACS['studies'].ct_study}"


def run_in(inputs: Path) -> Path:
    return inputs.parent / "runs" / "demo" / "train"


def with_run(inputs: Path) -> None:
    copy_run(PACS["run"], run_in(inputs))


def ct_run(inputs: Path) -> None:
    """The tiny run, its recipe saying it was trained on CT studies of a PACS."""
    with_run(inputs)
    path = run_in(inputs) / "recipe.yaml"
    recipe = yaml.safe_load(path.read_text())
    recipe["data"]["source"] = {"kind": "dicomweb", "server": web(), "query": {"modality": "CT"}}
    recipe["data"]["converter"] = "dicom"
    recipe["data"].pop("options", None)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))


def predict(url, *extra: str):
    return lambda inputs: ["predict", str(run_in(inputs)), url() if callable(url) else url, "--store", "imgsz=32", *extra]


def pull(url):
    return lambda inputs: ["pull", url() if callable(url) else url, "--data-root", str(inputs.parent / "pulled")]


NETRC = {"NETRC": "{root}/netrc"}


def netrc(password: str | None = None, server: str = "main"):
    def setup(inputs: Path) -> None:
        PACS[server].netrc(inputs.parent / "netrc", password)

    return setup


def both(*steps):
    def setup(inputs: Path) -> None:
        for step in steps:
            step(inputs)

    return setup


def no_secret(root: Path, stderr: str) -> None:
    assert SECRET not in stderr and PACS["main"].password not in stderr


def nothing_pulled(root: Path, stderr: str) -> None:
    assert not (root / "pulled").exists() or not any((root / "pulled").rglob("*.dcm"))


def our_objects(server: str, study: str) -> int:
    """Instances in series the workbench stored (SeriesDescription 'yolo-tools ...') in a study of a server."""
    import requests

    base = PACS[server].base
    auth = ("radiologist", PACS[server].password)
    found = requests.get(f"{base}/dicom-web/studies/{study}/series", auth=auth, timeout=30)
    series = found.json() if found.status_code == 200 and found.text.strip() else []
    ours = [s["0020000E"]["Value"][0] for s in series if s.get("0008103E", {}).get("Value", [""])[0].startswith("yolo-tools")]
    return sum(len(requests.get(f"{base}/dicom-web/studies/{study}/series/{uid}/instances", auth=auth, timeout=30).json()) for uid in ours)


def nothing_stored_on_refusing(root: Path, stderr: str) -> None:
    assert our_objects("refusing", PACS["studies"].ct_study) == 0


def resumed_batch(root: Path, stderr: str) -> None:
    """One MR series was stored before the interrupt; the same command again skips it and stores the rest."""
    from yolo_tools.cli import main

    study = PACS["studies"].mr_study
    assert our_objects("main", study) == 1
    assert main(["predict", str(root / "runs" / "demo" / "train"), mr_batch(), "--store", "imgsz=32"]) == 0
    assert our_objects("main", study) == len(PACS["studies"].mr_series)


def resumed_pull(root: Path, stderr: str) -> None:
    """The pull stopped after its first series: that one is kept whole, the card says incomplete, and the same
    pull again fetches only the others."""
    from yolo_tools.cli import main
    from yolo_tools.sources import dicomweb

    (folder,) = [p for p in (root / "pulled").iterdir() if p.is_dir()]
    card = dicomweb.read_card(folder)
    assert card and not card["complete"] and len(card["series"]) == 1
    kept = {p: p.stat().st_mtime_ns for p in folder.rglob("*.dcm")}
    assert main(["pull", mr_batch(), "--data-root", str(root / "pulled")]) == 0
    card = dicomweb.read_card(folder)
    assert card["complete"] and len(card["series"]) == len(PACS["studies"].mr_series) + 1  # and the crop's SEG
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items())


def mr_batch() -> str:
    return f"{web()}/studies?PatientID=PGBM-003"


CASES: list[Case] = [
    # the server cannot be reached, or refuses who is asking
    Case("predict-server-down", predict(lambda: f"{PACS['down']}/studies/1.2.3"), (r"cannot reach the DICOMweb server at http://127\.0\.0\.1:\d+/dicom-web", "check that it runs", "nothing was stored"), with_run),
    Case("pull-server-down", pull(lambda: f"{PACS['down']}/studies/1.2.3"), (r"cannot reach the DICOMweb server", "nothing was pulled"), check=nothing_pulled),
    Case("wrong-password", predict(ct_url), (r"refused access \(HTTP 401\)", r"the login for 127\.0\.0\.1 in .*netrc was refused", "correct it there"),
         both(with_run, netrc(SECRET)), env=NETRC, check=no_secret),
    Case("pull-wrong-password", pull(ct_url), (r"refused access \(HTTP 401\)", r"netrc was refused"), netrc(SECRET), env=NETRC,
         check=lambda root, err: (no_secret(root, err), nothing_pulled(root, err))),
    Case("no-login", predict(ct_url), (r"HTTP 401", r"it asks for a login", r"netrc", r"DICOMWEB_TOKEN", "never from the command line"),
         with_run, env={"NETRC": "{root}/no-such-netrc"}),
    Case("wrong-token", predict(ct_url), (r"HTTP 401", r"the bearer token in \$DICOMWEB_TOKEN was refused"), with_run,
         env={"NETRC": "{root}/no-such-netrc", "DICOMWEB_TOKEN": SECRET}, check=no_secret),
    # what the URL names is not there, or not something the run can read
    Case("study-not-there", predict(lambda: f"{web()}/studies/1.2.3.999"), (r"study 1\.2\.3\.999 is not on http://127\.0\.0\.1:\d+/dicom-web", "check the UID", "nothing was stored"),
         both(with_run, netrc()), env=NETRC),
    Case("pull-study-not-there", pull(lambda: f"{web()}/studies/1.2.3.999"), (r"study 1\.2\.3\.999 is not on", "nothing was pulled"), netrc(), env=NETRC, check=nothing_pulled),
    Case("series-not-there", predict(lambda: f"{ct_url()}/series/1.2.3.4"), (r"series 1\.2\.3\.4 is not in study", "check the UID"), both(with_run, netrc()), env=NETRC),
    Case("series-of-another-modality",
         predict(lambda: f"{web()}/studies/{PACS['studies'].mr_study}/series/{PACS['studies'].mr_crop_series}"),
         (r"series .* of study .*: MR, and the run was trained on CT", "give a series the run can read", "nothing was stored"), both(ct_run, netrc()), env=NETRC),
    Case("series-is-a-seg", predict(lambda: f"{web()}/studies/{PACS['liver_seg'][0]}/series/{PACS['liver_seg'][1]}"),
         (r"a SEG object, not images", "give a series the run can read"), both(with_run, netrc()), env=NETRC),
    Case("pull-series-is-an-rtstruct", pull(lambda: f"{web()}/studies/{PACS['rtstruct'][0]}/series/{PACS['rtstruct'][1]}"),
         (r"a RTSTRUCT object, neither images nor a SEG", "nothing was pulled"), netrc(), env=NETRC, check=nothing_pulled),
    Case("no-study-matches", predict(lambda: f"{web()}/studies?PatientID=NOBODY"), (r"no study on http://127\.0\.0\.1:\d+/dicom-web matches", "PatientID=NOBODY"),
         both(with_run, netrc()), env=NETRC),
    Case("seg-from-a-detector", predict(ct_url, "--format", "dicom-seg"), (r"--format dicom-seg writes masks; .* is a detect model", "use --format dicom-sr"), with_run),
    # the server will not store, or the batch is stopped midway
    Case("stow-refused", predict(lambda: f"{web('refusing')}/studies/{PACS['studies'].ct_study}"),
         (r"the DICOMweb server at http://127\.0\.0\.1:\d+/dicom-web (refused|answered HTTP|answered that it stored)", r"the SR of series .* was not stored", "a later run finds them"),
         both(with_run, netrc(server="refusing")), env=NETRC, check=nothing_stored_on_refusing),
    Case("interrupt-mid-batch", predict(mr_batch), (r"interrupted; run the same command again", r"studies already stored are found and skipped"),
         both(with_run, netrc()), code=130, env=NETRC, may_write=("runs",), check=resumed_batch),
    Case("pull-interrupted", pull(mr_batch), (r"interrupted; run the same pull again", "only the others are fetched"), netrc(), code=130, env=NETRC,
         check=resumed_pull),
    # answers that are not DICOMweb, addresses that are not DICOMweb
    Case("qido-answer-not-dicom-json", predict(lambda: f"{PACS['fake']}/wrong-json/dicom-web/studies?PatientID=x"),
         (r"answered searching for studies \(QIDO-RS\) with something that is not DICOM JSON", "DICOMweb root", "nothing was stored"), with_run),
    Case("qido-answer-html", predict(lambda: f"{PACS['fake']}/html/dicom-web/studies?PatientID=x"), (r"not DICOM JSON", r"Orthanc: http://HOST:8042/dicom-web"), with_run),
    Case("qido-answer-hostile-uid", pull(lambda: f"{PACS['fake']}/bad-uid/dicom-web/studies?PatientID=x"), (r"not DICOM JSON", "nothing was pulled"), check=nothing_pulled),
    Case("orthanc-rest-not-dicomweb", predict(lambda: f"{PACS['main'].base}/studies?PatientID=PGBM-003"), (r"not DICOM JSON", r"is http://127\.0\.0\.1:\d+ the server's DICOMweb root"),
         both(with_run, netrc()), env=NETRC),
    Case("url-not-dicomweb", predict(lambda: f"{PACS['main'].base}/app/explorer.html"), (r"not a DICOMweb address", r"/studies/<StudyInstanceUID> or /studies\?<QIDO query>"), with_run),
    Case("every-study", predict(lambda: f"{web()}/studies"), (r"/studies alone would take every study", "name studies"), with_run),
    Case("unknown-qido-key", predict(lambda: f"{web()}/studies?Colour=red"), (r"'Colour' is not a QIDO-RS key", "ModalitiesInStudy"), with_run),
    Case("store-without-a-pacs", lambda inputs: ["predict", str(run_in(inputs)), str(inputs), "--store"], (r"--store stores into a PACS", "DICOMweb URL"), with_run),
    # secrets never on the command line, never echoed
    Case("login-in-url", predict(lambda: f"http://radiologist:{SECRET}@127.0.0.1:{PACS['main'].port}/dicom-web/studies/1.2"),
         (r"the URL carries a login; secrets are never taken on the command line", r"\*\*\*@127\.0\.0\.1", "netrc"), with_run, check=no_secret),
    Case("token-in-query", pull(lambda: f"{web()}/studies?PatientID=x&access_token={SECRET}"), (r"the URL carries 'access_token'", "DICOMWEB_TOKEN"), check=no_secret),
    Case("recipe-server-names-studies", lambda inputs: ["pull", str(inputs / "r.yaml"), "--data-root", str(inputs.parent / "pulled")],
         (r"data\.source\.server: .* names studies; give the DICOMweb root alone",),
         lambda inputs: (inputs / "r.yaml").write_text(yaml.safe_dump({
             "name": "p", "task": "segment", "classes": ["liver"], "model": "yolov8n-seg.yaml",
             "data": {"source": {"kind": "dicomweb", "server": f"{web()}/studies/1.2", "studies": ["1.2"]}, "converter": "dicom"},
         }))),
    Case("recipe-dicomweb-without-studies", lambda inputs: ["pull", str(inputs / "r.yaml")],
         (r"a dicomweb source needs 'server' \(the DICOMweb root\) and 'studies' \(StudyInstanceUIDs\) or 'query'",),
         lambda inputs: (inputs / "r.yaml").write_text(yaml.safe_dump({
             "name": "p", "task": "segment", "classes": ["liver"], "model": "yolov8n-seg.yaml",
             "data": {"source": {"kind": "dicomweb", "server": "http://127.0.0.1:1/dicom-web"}, "converter": "dicom"},
         }))),
]


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, owner, name: str, calls: int) -> None:
    """`owner.name` works `calls` times, then Ctrl-C hits once (KeyboardInterrupt), then it works again."""
    original = getattr(owner, name)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls + 1:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    from yolo_tools.sources import dicomweb

    monkeypatch.delenv("DICOMWEB_TOKEN", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    if case.id == "interrupt-mid-batch":
        _interrupt_after(monkeypatch, dicomweb.Server, "store", 1)
    if case.id == "pull-interrupted":
        _interrupt_after(monkeypatch, dicomweb.Server, "fetch", 1)
    with monkeypatch.context() as patch:
        run_case(case, tmp_path, patch, capfd)
