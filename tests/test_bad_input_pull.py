"""Bad `yolo_tools pull` specs: only Roboflow dataset versions (WORKSPACE/PROJECT/VERSION, a Roboflow URL,
or a recipe with a roboflow source) are taken; any other site's URL, a malformed spec or version 0 is
refused before any request, with the accepted forms in the message, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bad_input import TINY_RECIPE, Case, parametrize, run_case

ACCEPTED = r"WORKSPACE/PROJECT/VERSION .*universe\.roboflow\.com/WORKSPACE/PROJECT/dataset/VERSION"
KEY = {"ROBOFLOW_API_KEY": "rfTestKeyNeverSent"}  # a key is set: the refusal must come before any request


def pull(spec: str):
    return lambda inputs: ["pull", spec, "--data-root", str(inputs.parent / "pulled")]


def refused(case_id: str, spec: str, *says: str, env: dict[str, str] | None = None) -> Case:
    return Case(case_id, pull(spec), says or (rf"'{spec}'|{spec}", ACCEPTED), env=env or {})


def not_roboflow(case_id: str, spec: str, host: str) -> Case:
    return Case(case_id, pull(spec), (rf"{host} is not Roboflow", r"only Roboflow datasets and DICOMweb studies can be pulled", ACCEPTED), env=KEY)


def recipe(inputs: Path, **source) -> None:
    (inputs / "r.yaml").write_text(yaml.safe_dump({**TINY_RECIPE, "data": {**TINY_RECIPE["data"], "source": source}}))


CASES: list[Case] = [
    refused("two-parts", "a/b", r"'a/b': name a Roboflow dataset version", ACCEPTED),
    refused("version-a-word", "a/b/x", r"'a/b/x': name a Roboflow dataset version", ACCEPTED),
    refused("version-zero", "a/b/0", r"'a/b/0': Roboflow versions start at 1, not 0", ACCEPTED),
    refused("version-negative", "a/b/-1", r"'a/b/-1': name a Roboflow dataset version", ACCEPTED),
    refused("version-zero-padded-zero", "a/b/000", r"versions start at 1", env=KEY),
    refused("four-parts", "a/b/c/1", r"'a/b/c/1': name a Roboflow dataset version", ACCEPTED),
    refused("trailing-junk", "a/b/1/export", r"name a Roboflow dataset version", ACCEPTED),
    refused("spaces-in-name", "my workspace/p/1", r"name a Roboflow dataset version", ACCEPTED),
    refused("roboflow-url-without-version", "https://universe.roboflow.com/w/p", r"name a Roboflow dataset version", ACCEPTED, env=KEY),
    refused("roboflow-url-version-zero", "https://universe.roboflow.com/w/p/dataset/0", r"versions start at 1", env=KEY),
    not_roboflow("other-site-https", "https://example.com/w/p/1", r"example\.com"),
    not_roboflow("other-site-dataset-path", "https://github.com/w/p/dataset/1", r"github\.com"),
    not_roboflow("other-site-no-scheme", "example.org/w/1", r"example\.org"),
    not_roboflow("lookalike-host", "https://roboflow.com.attacker.io/w/p/1", r"roboflow\.com\.attacker\.io"),
    not_roboflow("lookalike-suffix", "https://notroboflow.com/w/p/1", r"notroboflow\.com"),
    not_roboflow("ftp-url", "ftp://files.example.net/w/p/1", r"files\.example\.net"),
    not_roboflow("file-url", "file:///etc/w/p/1", r"that address"),
    not_roboflow("ip-address", "http://10.0.0.1/w/p/1", r"10\.0\.0\.1"),
    Case("bare-word", pull("kidney-stones"), (r"'kidney-stones': neither a recipe nor a dataset", ACCEPTED)),
    Case("missing-recipe", pull("nothing.yaml"), (r"nothing\.yaml: no such recipe file",)),
    Case("local-recipe", lambda i: ["pull", str(i / "r.yaml")], (r"r\.yaml: data\.source\.kind is 'local', not roboflow",),
         lambda i: recipe(i, kind="local", path="somewhere")),
    Case("synthetic-recipe", lambda i: ["pull", str(i / "r.yaml")], (r"r\.yaml: data\.source\.kind is 'synthetic', not roboflow",),
         lambda i: recipe(i, kind="synthetic")),
    Case("no-api-key", pull("w/p/1"), (r"cannot pull w/p/1 from Roboflow: no API key", r"ROBOFLOW_API_KEY")),
    # A key, but Roboflow cannot be reached (conftest points the client at a closed port): the data root the
    # pull made for the download goes again, or an empty ./data would hide ../shared/data from then on.
    Case("unreachable-api-leaves-no-data-root", pull("w/p/1"), (r"could not reach Roboflow", r"nothing was downloaded"), env=KEY),
    Case("data-root-is-a-file", lambda i: ["pull", "w/p/1", "--data-root", str(i / "notes.txt")],
         (r"notes\.txt is a file, not a folder", r"--data-root"), lambda i: (i / "notes.txt").write_text("mine"), env=KEY),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    run_case(case, tmp_path, monkeypatch, capfd)
    assert not (tmp_path / "pulled").exists(), f"{case.id}: a refused pull left {tmp_path / 'pulled'}"
