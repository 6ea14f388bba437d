"""DICOMweb addresses, recipe queries and the session's safety settings, without a server (tests/test_pacs.py has one)."""

from __future__ import annotations

import pytest

from yolo_tools.errors import UserError
from yolo_tools.recipe import Source
from yolo_tools.sources import dicomweb

pytest.importorskip("dicomweb_client")


def test_study_series_and_query_urls_split_into_what_qido_searches() -> None:
    study = dicomweb.parse_url("https://pacs.example.org:8443/dicom-web/studies/1.2.840.1")
    assert study.root == "https://pacs.example.org:8443/dicom-web" and study.studies == ("1.2.840.1",) and study.series is None
    series = dicomweb.parse_url("http://pacs/dicom-web/studies/1.2/series/1.2.3/")
    assert (series.studies, series.series) == (("1.2",), "1.2.3")
    query = dicomweb.parse_url("http://pacs/rs/studies?ModalitiesInStudy=CT&StudyDate=20240101-20241231&BodyPartExamined=LIVER&AccessionNumber=A1")
    assert query.root == "http://pacs/rs"
    assert query.study_filters == {"ModalitiesInStudy": "CT", "StudyDate": "20240101-20241231", "AccessionNumber": "A1"}
    assert query.series_filters == {"BodyPartExamined": "LIVER"} and query.modalities == {"CT"}
    assert dicomweb.parse_url("http://pacs/studies?StudyInstanceUID=1.2,1.3").studies == ("1.2", "1.3")


@pytest.mark.parametrize("url, says", [
    ("http://pacs/dicom-web/studies/1.2.x", "not a DICOM StudyInstanceUID UID"),
    ("http://pacs/dicom-web/studies/1.2/../../x", "not a DICOMweb address"),
    ("http://pacs/dicom-web/studies/1.2?PatientID=x", "a QIDO query follows /studies"),
    ("ftp://pacs/dicom-web/studies/1.2", "not a DICOMweb address"),
    ("http://u:p4ss@pacs/dicom-web/studies/1.2", r"carries a login"),
    ("http://pacs/dicom-web/studies?PatientID=x&apikey=p4ss", r"carries 'apikey'"),
])
def test_urls_that_are_refused_never_echo_a_secret(url: str, says: str) -> None:
    with pytest.raises(UserError, match=says) as refused:
        dicomweb.parse_url(url)
    assert "p4ss" not in str(refused.value)


def test_a_recipe_query_maps_to_study_and_series_filters_and_one_folder() -> None:
    source = Source(kind="dicomweb", server="http://pacs:8042/dicom-web/", query={
        "modality": "CT", "body_part": "LIVER", "study_date": "20240101-", "series_description": "*portal*", "accession_number": "A9",
    })
    address = dicomweb.address_of(source)
    assert address.root == "http://pacs:8042/dicom-web"
    assert address.study_filters == {"ModalitiesInStudy": "CT", "StudyDate": "20240101-", "AccessionNumber": "A9"}
    assert address.series_filters == {"BodyPartExamined": "LIVER", "SeriesDescription": "*portal*"} and address.modalities == {"CT"}
    folder = dicomweb.default_folder(address)
    assert folder.startswith("dicomweb-pacs-8042-") and folder == dicomweb.default_folder(dicomweb.address_of(source))
    by_url = dicomweb.parse_url("http://pacs:8042/dicom-web/studies/1.2")
    assert dicomweb.default_folder(dicomweb.address_of(Source(kind="dicomweb", server="http://pacs:8042/dicom-web", studies=["1.2"]))) == dicomweb.default_folder(by_url)


def test_tls_is_checked_unless_turned_off_by_name_and_a_token_is_never_shown(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(dicomweb.TOKEN_ENV, "s3cret-token")
    checked = dicomweb.Server("https://pacs/dicom-web")
    assert checked._client._session.verify is True
    assert "s3cret" not in repr(checked._client._session.auth)
    with caplog.at_level("WARNING"):
        unchecked = dicomweb.Server("https://pacs/dicom-web", verify_tls=False)
    assert unchecked._client._session.verify is False and "TLS certificate checks are off" in caplog.text
