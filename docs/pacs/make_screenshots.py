"""Make the screenshots of docs/pacs.md: the walk-through's commands on a throwaway Orthanc, then its own web
explorer (Orthanc Explorer, what the Debian package serves) in headless Chromium, as a radiologist opens it.

    PYTHONPATH=. .venv/bin/python docs/pacs/make_screenshots.py      # about two minutes on a CPU

Needs Orthanc with its DICOMweb plugin (`make system-deps`), Chromium and the DICOM sets in ../shared/data.
Writes docs/pacs/study.png, docs/pacs/seg.png and docs/pacs/sr.png; everything else goes to a temporary folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))

import orthanc_server  # noqa: E402  (tests/orthanc_server.py: start, fill)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def main() -> None:
    import requests
    from playwright.sync_api import sync_playwright

    from yolo_tools.cli import main as cli

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        server = orthanc_server.start(work / "orthanc")
        try:
            studies = orthanc_server.fill(server, work / "made")
            os.environ.update(NETRC=str(server.netrc(work / "netrc")), YOLO_TOOLS_DATA=str(work / "data"),
                              YOLO_TOOLS_DATASETS=str(work / "datasets"), YOLO_TOOLS_RUNS=str(work / "runs"))
            recipe = {
                "name": "pacs-liver", "task": "segment", "classes": ["liver", "bright"], "model": "yolov8n-seg.yaml",
                "data": {"source": {"kind": "dicomweb", "server": server.dicomweb, "studies": [studies.ct_study, studies.mr_study]},
                         "converter": "dicom", "split": {"by": "file", "seed": 3}},
                "train": {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False, "device": "cpu"},
            }
            (work / "pacs-liver.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
            steps = [
                ["pull", str(work / "pacs-liver.yaml")],
                ["train", str(work / "pacs-liver.yaml"), "--name", "train"],
                ["predict", str(work / "runs" / "pacs-liver" / "train"), f"{server.dicomweb}/studies/{studies.ct_study}", "--store", "conf=0.001", "imgsz=64"],
                ["predict", str(work / "runs" / "pacs-liver" / "train"), f"{server.dicomweb}/studies/{studies.ct_study}", "--store", "--format", "dicom-sr", "conf=0.001", "imgsz=64"],
            ]
            for step in steps:
                assert cli(step) == 0, step
            auth = ("radiologist", server.password)

            def orthanc_id(level: str, **uids: str) -> str:
                found = requests.post(f"{server.base}/tools/find", json={"Level": level, "Query": uids}, auth=auth, timeout=30).json()
                return found[0]

            study = orthanc_id("Study", StudyInstanceUID=studies.ct_study)
            series = requests.get(f"{server.base}/studies/{study}/series", auth=auth, timeout=30).json()
            ours = {s["MainDicomTags"].get("Modality"): s for s in series if s["MainDicomTags"].get("SeriesDescription", "").startswith("yolo-tools")}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1100, "height": 760}, http_credentials={"username": auth[0], "password": auth[1]}).new_page()
                page.goto(f"{server.base}/app/explorer.html#study?uuid={study}")
                page.wait_for_selector("text=yolo-tools SEG")
                page.screenshot(path=str(HERE / "study.png"))
                page.goto(f"{server.base}/app/explorer.html#series?uuid={ours['SEG']['ID']}")
                page.wait_for_selector("text=yolo-tools SEG")
                page.screenshot(path=str(HERE / "seg.png"))
                instance = ours["SR"]["Instances"][0]
                page.goto(f"{server.base}/app/explorer.html#instance?uuid={instance}")
                page.wait_for_selector("text=0040,a730")
                page.screenshot(path=str(HERE / "sr.png"), full_page=False)
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
