"""A real Orthanc with its DICOMweb plugin, started for a test module on 127.0.0.1 and stopped after.

Orthanc and orthanc-dicomweb are Debian packages (`make system-deps` installs them, as it installs Chromium).
Where they are missing and apt-get is there, `orthanc_binary` installs them itself (as root, or through
sudo); only where there is no apt-get at all are the PACS tests skipped, saying why. Each server gets a free
port, a throwaway storage folder, HTTP basic authentication with a random password (written to a netrc
file the tests point NETRC at) and no DICOM (DIMSE) port.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ORTHANC = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER = "radiologist"


def orthanc_binary() -> str:
    """Orthanc with the DICOMweb plugin, installed with apt-get when missing; a skip only without apt-get."""
    if Path(ORTHANC).is_file() and Path(PLUGIN).is_file():
        return ORTHANC
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("no Orthanc and no apt-get to install it (Debian packages orthanc, orthanc-dicomweb): the PACS tests need a real server")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([*sudo, apt, "update", "-qq"], [*sudo, apt, "install", "-y", "-qq", "--no-install-recommends", "orthanc", "orthanc-dicomweb"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            pytest.fail(f"installing Orthanc failed ({' '.join(command)}): {done.stderr[-500:]}; run `make system-deps`")
    return ORTHANC


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Orthanc:
    folder: Path
    port: int
    password: str
    process: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    def netrc(self, path: Path, password: str | None = None) -> Path:
        path.write_text(f"machine 127.0.0.1 login {USER} password {password or self.password}\n")
        path.chmod(0o600)
        return path

    def upload(self, files: list[Path]) -> list[dict]:
        """Orthanc's own REST upload (POST /instances), as an archive import would fill a PACS."""
        import requests

        answers = []
        for path in files:
            response = requests.post(f"{self.base}/instances", data=path.read_bytes(), auth=(USER, self.password), timeout=60)
            response.raise_for_status()
            answers.append(response.json())
        return answers

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(folder: Path, lua: str | None = None) -> Orthanc:
    """Orthanc on a free port with storage in `folder` (a `lua` script may filter what it accepts)."""
    binary = orthanc_binary()
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    port = free_port()
    config = {
        "Name": "yolo-tools-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: password},
        "Plugins": [PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "HttpThreadsCount": 8,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
    }
    if lua:
        (folder / "filter.lua").write_text(lua)
        config["LuaScripts"] = [str(folder / "filter.lua")]
    (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
    log = (folder / "orthanc.log").open("w")
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Orthanc(folder, port, password, process)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc stopped at start: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            if requests.get(f"{server.base}/system", auth=(USER, password), timeout=2).ok:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within 60 s: {(folder / 'orthanc.log').read_text()[-2000:]}")


@dataclass
class Studies:
    """What `fill` uploaded: the UIDs a test names."""

    ct_study: str
    ct_series: str
    mr_study: str
    mr_crop_series: str
    mr_series: list[str]
    samples: int  # instances uploaded from dicom-samples


def fill(server: Orthanc, scratch: Path) -> Studies:
    """The DICOM sets of ../shared/data in the server: the liver CT with its two SEGs, the MR brain study with a
    SEG of its hippocampus crop (the brightest tenth of its voxels, written here: a second patient to train
    on), and every transfer-syntax sample."""
    import pydicom

    from conftest import SHARED_DATA
    from hospital_data import LIVER, MR_CROP, mr_label
    from yolo_tools.imaging import dicom_series

    brain = SHARED_DATA / "dicom-mr-brain-series"
    samples = sorted((SHARED_DATA / "dicom-samples").rglob("*.dcm"))
    crop = dicom_series.find(MR_CROP).series[0]
    pixels, _ = dicom_series.load(crop)
    scratch.mkdir(parents=True, exist_ok=True)
    seg = dicom_series.write_seg(scratch / "crop.seg.dcm", crop, mr_label(pixels)[..., None].astype(bool), ["bright"], "test")
    server.upload([*sorted(LIVER.glob("*.dcm")), *sorted(brain.rglob("*.dcm")), seg, *samples])
    ct = pydicom.dcmread(next(LIVER.glob("ct-*.dcm")), stop_before_pixels=True)
    mr = pydicom.dcmread(crop.files[0], stop_before_pixels=True)
    found = dicom_series.find(brain)
    return Studies(
        str(ct.StudyInstanceUID), str(ct.SeriesInstanceUID), str(mr.StudyInstanceUID), crop.uid,
        sorted(s.uid for s in found.series), len(samples),
    )
