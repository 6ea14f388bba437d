"""Make the screenshots of docs/pacs.md: the walk-through's commands on a throwaway Orthanc, then the stored SEG and
SR as a radiologist opens them, in headless Chromium: Orthanc's own explorer and the OHIF viewer.

    PYTHONPATH=. .venv/bin/python docs/pacs/make_screenshots.py      # about ten minutes on a CPU (30 epochs)

Needs Orthanc with its DICOMweb plugin and Chromium (`make system-deps`), Playwright's Python client, the DICOM
sets in ../shared/data, and npm: the OHIF viewer is the npm package `@ohif/app` (its built `dist/`), fetched
with `npm pack` into the temporary folder and served on 127.0.0.1 beside a small proxy that hands its DICOMweb
requests to Orthanc with the login (so the browser holds no password and there is one origin, no CORS).
Writes docs/pacs/*.png; everything else goes to a temporary folder and is removed.
"""

from __future__ import annotations

import mimetypes
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))

import orthanc_server  # noqa: E402  (tests/orthanc_server.py: start, fill)

OHIF = "@ohif/app@3.13.2"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",  # WebGL in software, for OHIF's viewports
]
APP_CONFIG = """window.config = {
  routerBasename: '/', extensions: [], modes: [], showStudyList: true, maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false, showCPUFallbackMessage: false, showLoadingIndicator: true,
  defaultDataSourceName: 'orthanc',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb', sourceName: 'orthanc',
    configuration: {
      friendlyName: 'Orthanc (test)', name: 'orthanc',
      wadoUriRoot: '/dicom-web', qidoRoot: '/dicom-web', wadoRoot: '/dicom-web',
      qidoSupportsIncludeField: false, imageRendering: 'wadors', thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true, supportsFuzzyMatching: false, supportsWildcard: true, staticWado: false,
      singlepart: 'bulkdata,video', bulkDataURI: { enabled: true }, omitQuotationForMultipartRequest: true,
    },
  }],
};
"""


def ohif_dist(work: Path) -> Path:
    """The built OHIF viewer from npm (`npm pack`: the registry's own client), unpacked under `work`."""
    subprocess.run(["npm", "pack", OHIF, "--silent"], cwd=work, check=True, capture_output=True, timeout=600)
    (archive,) = work.glob("ohif-app-*.tgz")
    with tarfile.open(archive) as bundle:
        bundle.extractall(work / "ohif", filter="data")
    return work / "ohif" / "package" / "dist"


def serve_ohif(dist: Path, orthanc: orthanc_server.Orthanc) -> ThreadingHTTPServer:
    """OHIF's files, its config, and /dicom-web/* passed on to Orthanc with the login, on one local origin."""
    import requests

    auth = ("radiologist", orthanc.password)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, media: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path.startswith("/dicom-web/"):
                answer = requests.get(orthanc.base + self.path, auth=auth, headers={"Accept": self.headers.get("Accept", "*/*")}, timeout=120)
                self._send(answer.status_code, answer.content, answer.headers.get("Content-Type", "application/octet-stream"))
                return
            if path == "/app-config.js":
                self._send(200, APP_CONFIG.encode(), "application/javascript")
                return
            file = (dist / path.lstrip("/")).resolve()
            if not (file.is_file() and file.is_relative_to(dist.resolve())):
                file = dist / "index.html"  # the viewer's own routes (/viewer?...)
            media = mimetypes.guess_type(file.name)[0] or ("application/wasm" if file.suffix == ".wasm" else "application/octet-stream")
            self._send(200, file.read_bytes(), media)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", orthanc_server.free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    import requests
    from playwright.sync_api import sync_playwright

    from yolo_tools.cli import main as cli

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        dist = ohif_dist(work)
        server = orthanc_server.start(work / "orthanc")
        try:
            studies = orthanc_server.fill(server, work / "made")
            os.environ.update(NETRC=str(server.netrc(work / "netrc")), YOLO_TOOLS_DATA=str(work / "data"),
                              YOLO_TOOLS_DATASETS=str(work / "datasets"), YOLO_TOOLS_RUNS=str(work / "runs"))
            recipe = {
                "name": "pacs-liver", "task": "segment", "classes": ["liver", "bright"], "model": "yolov8n-seg.yaml",
                "data": {"source": {"kind": "dicomweb", "server": server.dicomweb, "studies": [studies.ct_study, studies.mr_study]},
                         "converter": "dicom", "split": {"by": "file", "seed": 3}},
                # seed 3 puts the CT's patient in train: the pictures show the model on slices it trained on
                "train": {"epochs": 30, "imgsz": 128, "batch": 16, "workers": 0, "plots": False, "device": "cpu", "val": False},
            }
            (work / "pacs-liver.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
            run = str(work / "runs" / "pacs-liver" / "train")
            study_url = f"{server.dicomweb}/studies/{studies.ct_study}"
            for step in (
                ["pull", str(work / "pacs-liver.yaml")],
                ["train", str(work / "pacs-liver.yaml"), "--name", "train"],
                ["predict", run, study_url, "--store", "conf=0.001", "max_det=1", "imgsz=128"],
                ["predict", run, study_url, "--store", "--format", "dicom-sr", "conf=0.001", "max_det=1", "imgsz=128"],
            ):
                assert cli(step) == 0, step
            auth = ("radiologist", server.password)
            (study,) = requests.post(f"{server.base}/tools/find", json={"Level": "Study", "Query": {"StudyInstanceUID": studies.ct_study}}, auth=auth, timeout=30).json()
            series = requests.get(f"{server.base}/studies/{study}/series", auth=auth, timeout=30).json()
            ours = {s["MainDicomTags"]["Modality"] for s in series if s["MainDicomTags"].get("SeriesDescription", "").startswith("yolo-tools")}
            assert ours == {"SEG", "SR"}, f"the study should hold the SEG and the SR stored above, not {ours}"
            viewer = serve_ohif(dist, server)
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                    context = browser.new_context(viewport={"width": 1280, "height": 800}, http_credentials={"username": auth[0], "password": auth[1]})
                    page = context.new_page()
                    page.goto(f"{server.base}/app/explorer.html#study?uuid={study}")
                    page.wait_for_selector("text=yolo-tools SEG")
                    page.screenshot(path=str(HERE / "orthanc-explorer.png"))
                    base = f"http://127.0.0.1:{viewer.server_address[1]}"
                    page.goto(f"{base}/viewer?StudyInstanceUIDs={studies.ct_study}")
                    page.wait_for_selector("text=yolo-tools SEG", timeout=120_000)
                    page.wait_for_timeout(10_000)
                    for notice in ("Skip all", "Confirm and hide"):  # the first-visit tour and the investigational-use banner
                        if page.get_by_text(notice).count():
                            page.get_by_text(notice).first.click()
                    page.get_by_text("yolo-tools SEG").first.dblclick()
                    page.get_by_role("button", name="Yes").first.click(timeout=120_000)  # "open this Segmentation?"
                    page.wait_for_timeout(15_000)
                    page.screenshot(path=str(HERE / "ohif-seg.png"))
                    page.get_by_text("yolo-tools SR").first.dblclick()
                    page.wait_for_timeout(20_000)
                    page.screenshot(path=str(HERE / "ohif-sr.png"))
                    browser.close()
            finally:
                viewer.shutdown()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
