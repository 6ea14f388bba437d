"""Studies on a PACS over DICOMweb: the only module that touches `dicomweb-client`.

The client (on a `requests` session) speaks the protocol: QIDO-RS finds studies, series and instances,
WADO-RS fetches a series' instances, STOW-RS stores new ones. This module decides what is asked for, where a
pulled series lands, and what a user is told when the server is down, refuses the login, lacks a study or
answers something that is not DICOM JSON: one message naming the server, never a traceback.

- Addresses are what servers publish: the DICOMweb root followed by `/studies/<StudyInstanceUID>`
  (optionally `/series/<SeriesInstanceUID>`) or `/studies?<QIDO query>` (`parse_url`). Study-level keys
  (ModalitiesInStudy, StudyDate, AccessionNumber, PatientID) go to the studies search; series-level ones
  (Modality, BodyPartExamined, SeriesDescription) pick series within the studies found.
- Credentials never come from the command line: `requests` reads a netrc file itself (the file `NETRC`
  names, else `~/.netrc`) for the server's host, or a bearer token comes from `DICOMWEB_TOKEN`. A URL
  carrying a login or a token is refused without echoing it. TLS certificates are checked
  (`REQUESTS_CA_BUNDLE` names a hospital's CA) unless a user turns the check off by name.
- A pull is a cached copy, never fetched twice: `<folder>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`,
  each series fetched into a hidden folder beside `<folder>` and renamed into place only when all its
  instances arrived, so an interrupted pull resumes at the first missing series and the `dicom` converter
  never sees half a series. `card.json`/`card.md` list studies, series, instance counts and when each was
  pulled; `complete` says whether the last pull finished.
- The workbench's own results (series described `yolo-tools ...`) are never pulled as training labels.

Examples:
    >>> address = parse_url("http://127.0.0.1:8042/dicom-web/studies?ModalitiesInStudy=CT")
    >>> pull(address, Path("data/dicomweb-127.0.0.1-8042-1a2b3c4d"))
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from yolo_tools.errors import UserError
from yolo_tools.recipe import Source

LOG = logging.getLogger(__name__)

TOKEN_ENV = "DICOMWEB_TOKEN"
OURS = "yolo-tools"  # SeriesDescription prefix of every series the workbench stores
ACCEPTED = (
    "give the server's DICOMweb root followed by /studies/<StudyInstanceUID> or /studies?<QIDO query>, e.g. "
    "http://pacs:8042/dicom-web/studies/1.2.3 or http://pacs:8042/dicom-web/studies?ModalitiesInStudy=CT&StudyDate=20240101-20241231"
)
HOW_TO_LOG_IN = (
    f"credentials come from a netrc file (the file $NETRC names, else ~/.netrc: a line `machine HOST login USER "
    f"password PASSWORD`, chmod 600) or a bearer token in ${TOKEN_ENV}; never from the command line"
)
STUDY_KEYS = {"ModalitiesInStudy", "StudyDate", "StudyTime", "AccessionNumber", "PatientID", "PatientName", "StudyDescription", "StudyID"}
SERIES_KEYS = {"Modality", "BodyPartExamined", "SeriesDescription", "SeriesNumber"}
QIDO_PARAMS = {"fuzzymatching", "includefield"}
SECRET_KEYS = re.compile(r"pass|token|secret|key|auth|credential|session", re.IGNORECASE)
IMAGE_LABELS = {"SEG"}  # what a training pull takes beside image series
NON_IMAGE = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "KO", "PR", "DOC", "REG", "FID", "OT_NONIMAGE"}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_STUDIES_PATH = re.compile(r"^(?P<root>.*?)/studies(?:/(?P<study>[^/]+)(?:/series/(?P<series>[^/]+))?)?/?$")
# QIDO-RS attribute tags (DICOM JSON keys) read from the answers
TAG = {
    "StudyInstanceUID": "0020000D", "SeriesInstanceUID": "0020000E", "SOPInstanceUID": "00080018",
    "Modality": "00080060", "SeriesDescription": "0008103E", "SeriesNumber": "00200011",
    "NumberOfSeriesRelatedInstances": "00201209", "BodyPartExamined": "00180015",
}


@dataclass(frozen=True)
class Address:
    """Which studies (and series) of which DICOMweb server."""

    root: str
    studies: tuple[str, ...] = ()
    series: str | None = None
    study_filters: dict[str, str] = field(default_factory=dict)
    series_filters: dict[str, str] = field(default_factory=dict)
    modalities: frozenset[str] = frozenset()  # image series of these modalities only (empty: any)

    @property
    def host(self) -> str:
        parts = urlsplit(self.root)
        return f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def describe(self) -> str:
        if self.series:
            return f"series {self.series} of study {self.studies[0]} on {self.root}"
        if self.studies:
            return f"{len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'} on {self.root}"
        filters = {**self.study_filters, **self.series_filters}
        return f"studies matching {'&'.join(f'{k}={v}' for k, v in filters.items())} on {self.root}"


@dataclass(frozen=True)
class SeriesInfo:
    study: str
    uid: str
    modality: str
    description: str
    instances: int | None  # as QIDO-RS reports it


def is_dicomweb_url(text: str) -> bool:
    """An http(s) address: predict and pull read it as DICOMweb (and refuse it clearly when it is not)."""
    return bool(re.match(r"^https?://", text.strip(), re.IGNORECASE))


def _masked(text: str) -> str:
    """The URL without its login or query values, safe to print."""
    parts = urlsplit(text.strip())
    host = parts.hostname or ""
    netloc = f"***@{host}" if parts.username or parts.password else parts.netloc
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _check_uid(uid: str, what: str, origin: str) -> str:
    if not (_UID.match(uid) and len(uid) <= 64):
        raise UserError(f"{origin}: '{uid}' is not a DICOM {what} UID (digits and dots, at most 64 characters)")
    return uid


def parse_url(text: str) -> Address:
    """A DICOMweb study, series or QIDO-RS query URL; a login, a token or anything else in it is refused."""
    text = text.strip()
    parts = urlsplit(text)
    if parts.username or parts.password:
        raise UserError(
            f"'{_masked(text)}': the URL carries a login; secrets are never taken on the command line (they would "
            f"stay in the shell's history and in process lists). Remove it: {HOW_TO_LOG_IN}"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = [key for key, _ in pairs if SECRET_KEYS.search(key)]
    if secret:
        raise UserError(
            f"'{_masked(text)}': the URL carries '{secret[0]}'; secrets are never taken on the command line. "
            f"Remove it: {HOW_TO_LOG_IN}"
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UserError(f"'{text}': not a DICOMweb address (http:// or https://); {ACCEPTED}")
    match = _STUDIES_PATH.match(parts.path)
    if not match:
        raise UserError(f"'{text}': not a DICOMweb address: its path does not end in /studies...; {ACCEPTED}")
    root = urlunsplit((parts.scheme.lower(), parts.netloc, match["root"], "", ""))
    study, series = match["study"], match["series"]
    if study:
        if pairs:
            raise UserError(f"'{text}': a QIDO query follows /studies, not a study UID; {ACCEPTED}")
        _check_uid(study, "StudyInstanceUID", text)
        if series:
            _check_uid(series, "SeriesInstanceUID", text)
        return Address(root, (study,), series)
    if not pairs:
        raise UserError(f"'{text}': /studies alone would take every study on the server; name studies: {ACCEPTED}")
    study_filters, series_filters = {}, {}
    for key, value in pairs:
        if key in STUDY_KEYS or key in QIDO_PARAMS:
            study_filters[key] = value
        elif key in SERIES_KEYS:
            series_filters[key] = value
        elif key == "StudyInstanceUID":
            return Address(root, tuple(_check_uid(uid, "StudyInstanceUID", text) for uid in re.split(r"[,\\]", value)))
        else:
            raise UserError(
                f"'{text}': '{key}' is not a QIDO-RS key this workbench searches by; use "
                f"{', '.join(sorted(STUDY_KEYS | SERIES_KEYS))}"
            )
    return _with_modalities(Address(root, study_filters=study_filters, series_filters=series_filters))


def _with_modalities(address: Address) -> Address:
    """ModalitiesInStudy (or Modality) names the image series wanted; the series search itself stays open."""
    series_filters = dict(address.series_filters)
    named = series_filters.pop("Modality", None) or address.study_filters.get("ModalitiesInStudy", "")
    modalities = frozenset(m.strip().upper() for m in re.split(r"[,\\]", named) if m.strip())
    return Address(address.root, address.studies, address.series, address.study_filters, series_filters, modalities)


def address_of(source: Source) -> Address:
    """The studies a recipe's `dicomweb` source names."""
    if "/studies" in urlsplit(source.server or "").path:
        raise UserError(f"data.source.server: '{_masked(source.server)}' names studies; give the DICOMweb root alone (without /studies...) and "
                        "name the studies with data.source.studies or data.source.query")
    root = parse_url(f"{(source.server or '').rstrip('/')}/studies/1").root  # the same checks as a URL on the command line
    if source.studies:
        return Address(root, tuple(_check_uid(uid, "StudyInstanceUID", "data.source.studies") for uid in source.studies))
    query = source.query
    study_filters = {
        key: value for key, value in {
            "ModalitiesInStudy": query.modality, "StudyDate": query.study_date,
            "AccessionNumber": query.accession_number, "PatientID": query.patient_id,
        }.items() if value
    }
    series_filters = {k: v for k, v in {"BodyPartExamined": query.body_part, "SeriesDescription": query.series_description}.items() if v}
    return _with_modalities(Address(root, study_filters=study_filters, series_filters=series_filters))


def default_folder(address: Address) -> str:
    """The cache folder under the data root: the server and a digest of which studies, so the same studies
    pulled by a recipe and by `yolo_tools pull URL` land in the same place."""
    import hashlib

    what = json.dumps([address.studies, address.series, address.study_filters, address.series_filters], sort_keys=True)
    host = re.sub(r"[^A-Za-z0-9.-]", "-", address.host)
    return f"dicomweb-{host}-{hashlib.sha256(what.encode()).hexdigest()[:8]}"


# --- talking to the server --------------------------------------------------------------------------------


class Server:
    """One DICOMweb server, through dicomweb-client on a requests session that holds the credentials."""

    def __init__(self, root: str, verify_tls: bool = True) -> None:
        import requests
        from dicomweb_client import DICOMwebClient

        self.root = root
        self._token = os.environ.get(TOKEN_ENV, "").strip() or None
        if not LOG.isEnabledFor(logging.DEBUG):  # the client logs every search and store at INFO; -v shows them
            logging.getLogger("dicomweb_client").setLevel(logging.WARNING)
        session = requests.Session()
        session.verify = verify_tls
        if self._token:
            session.auth = _Bearer(self._token)  # set as auth, so a netrc entry for the host cannot replace it
        if not verify_tls:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            LOG.warning("TLS certificate checks are off for %s (turned off by name); use this only for a test server", root)
        self._client = DICOMwebClient(root, session=session, timeout=(10, 300))
        # A busy server (429/503) is asked again twice, briefly; anything else is answered at once.
        self._client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=250)

    # -- errors

    def _credentials(self) -> str:
        import requests

        netrc_file = os.environ.get("NETRC") or str(Path("~/.netrc").expanduser())
        host = urlsplit(self.root).hostname
        if self._token:
            return f"the bearer token in ${TOKEN_ENV} was refused; get a new one from the server's administrator"
        if requests.utils.get_netrc_auth(self.root):
            return f"the login for {host} in {netrc_file} was refused (a wrong password?); correct it there"
        return f"it asks for a login: {HOW_TO_LOG_IN}"

    @contextlib.contextmanager
    def _talking(self, doing: str, nothing: str) -> Iterator[None]:
        import requests

        try:
            yield
        except requests.exceptions.SSLError:
            raise UserError(
                f"{self.root}: its TLS certificate could not be verified while {doing}; name your hospital's CA with "
                "REQUESTS_CA_BUNDLE=/path/to/ca.pem, or (a test server only) turn the check off by name: "
                f"--no-verify-tls (verify_tls: false in a recipe); {nothing}"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            raise UserError(
                f"cannot reach the DICOMweb server at {self.root} while {doing} ({type(error).__name__}); check that "
                f"it runs and the address and port; {nothing}"
            ) from None
        except requests.HTTPError as error:
            response = error.response
            status = response.status_code if response is not None else 0
            if status in (401, 403):
                raise UserError(f"the DICOMweb server at {self.root} refused access (HTTP {status}) while {doing}: {self._credentials()}; {nothing}") from None
            reason = response.reason if response is not None else ""
            raise UserError(f"the DICOMweb server at {self.root} answered HTTP {status} {reason} while {doing}; {nothing}") from None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise UserError(
                f"the DICOMweb server at {self.root} answered {doing} with something that is not DICOM JSON/DICOM "
                f"({type(error).__name__}); is {self.root} the server's DICOMweb root (Orthanc: http://HOST:8042/dicom-web)? "
                f"{nothing}"
            ) from None

    # -- QIDO-RS

    def _records(self, answer: Any, doing: str) -> list[dict]:
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise ValueError(f"{doing}: not a list of DICOM JSON objects")
        return answer

    def _all(self, search: Any, doing: str, **kwargs: Any) -> list[dict]:
        """Every page of a QIDO-RS search (a server may cap an answer and expect `offset`). The client's own
        `get_remaining` asks until a page comes back empty, so a server that ignores `offset` would be asked
        forever: here a page that brings nothing new ends it."""
        records: list[dict] = []
        seen: set[str] = set()
        params = dict(kwargs.pop("additional_params", None) or {})
        while True:
            page = self._records(search(**kwargs, offset=len(records) or None, additional_params=params or None), doing)
            new = [r for r in page if json.dumps(r, sort_keys=True) not in seen]
            if not new:
                return records
            seen.update(json.dumps(r, sort_keys=True) for r in new)
            records += new

    @staticmethod
    def _value(record: dict, keyword: str, required: bool = False) -> Any:
        entry = record.get(TAG[keyword])
        if entry is None:
            if required:
                raise KeyError(keyword)
            return None
        values = entry.get("Value") if isinstance(entry, dict) else None
        if not values:
            if required:
                raise KeyError(keyword)
            return None
        return values[0]

    def _uid(self, record: dict, keyword: str) -> str:
        uid = self._value(record, keyword, required=True)
        if not (isinstance(uid, str) and _UID.match(uid) and len(uid) <= 64):
            raise ValueError(f"{keyword} {uid!r} is not a UID")
        return uid

    def studies(self, address: Address, nothing: str) -> list[str]:
        """The StudyInstanceUIDs the address names, each checked to be on the server."""
        found: list[str] = []
        if address.studies:
            for uid in address.studies:
                with self._talking(f"searching for study {uid} (QIDO-RS)", nothing):
                    records = self._records(self._client.search_for_studies(search_filters={"StudyInstanceUID": uid}), "studies")
                    matches = [self._uid(r, "StudyInstanceUID") for r in records]
                if uid not in matches:
                    raise UserError(f"study {uid} is not on {self.root} (QIDO-RS found no such study); check the UID; {nothing}")
                found.append(uid)
            return found
        filters = {k: v for k, v in address.study_filters.items() if k not in QIDO_PARAMS}
        params = {k: v for k, v in address.study_filters.items() if k in QIDO_PARAMS}
        with self._talking("searching for studies (QIDO-RS)", nothing):
            records = self._all(self._client.search_for_studies, "studies", search_filters=filters, additional_params=params)
            found = list(dict.fromkeys(self._uid(r, "StudyInstanceUID") for r in records))
        if not found:
            raise UserError(f"no study on {self.root} matches {address.describe()}; {nothing}")
        return found

    def series(self, study: str, address: Address, nothing: str) -> list[SeriesInfo]:
        """The series of a study that the address's series filters (and series UID) let through."""
        filters = dict(address.series_filters)
        if address.series:
            filters["SeriesInstanceUID"] = address.series
        with self._talking(f"searching for the series of study {study} (QIDO-RS)", nothing):
            records = self._all(self._client.search_for_series, "series", study_instance_uid=study, search_filters=filters or None)
            found = [
                SeriesInfo(
                    study, self._uid(r, "SeriesInstanceUID"), str(self._value(r, "Modality") or "").upper(),
                    str(self._value(r, "SeriesDescription") or ""),
                    int(count) if (count := self._value(r, "NumberOfSeriesRelatedInstances")) is not None else None,
                )
                for r in records
            ]
        if address.series and not found:
            raise UserError(f"series {address.series} is not in study {study} on {self.root}; check the UID; {nothing}")
        return sorted(found, key=lambda s: s.uid)

    def instance_uids(self, study: str, series: str, nothing: str) -> set[str]:
        """The SOPInstanceUIDs a series holds on the server (none when the series is not there)."""
        with self._talking(f"searching for the instances of series {series} (QIDO-RS)", nothing):
            records = self._all(self._client.search_for_instances, "instances", study_instance_uid=study, series_instance_uid=series)
            return {self._uid(r, "SOPInstanceUID") for r in records}

    # -- WADO-RS, STOW-RS

    def fetch(self, info: SeriesInfo, folder: Path, on_bytes: Any, nothing: str) -> int:
        """Every instance of a series into `folder` (new), one `<SOPInstanceUID>.dcm` each; returns the count."""
        folder.mkdir(parents=True)
        count = 0
        with self._talking(f"fetching series {info.uid} (WADO-RS)", nothing):
            for dataset in self._client.iter_series(info.study, info.uid):
                uid = str(dataset.SOPInstanceUID)
                if not _UID.match(uid) or str(dataset.SeriesInstanceUID) != info.uid:
                    raise ValueError(f"an instance of another series or with a malformed UID ({uid!r})")
                path = folder / f"{uid}.dcm"
                dataset.save_as(path, enforce_file_format=True)
                on_bytes(path.stat().st_size)
                count += 1
        if info.instances is not None and count != info.instances:
            raise UserError(
                f"the DICOMweb server at {self.root} sent {count} of the {info.instances} instances of series {info.uid}; "
                f"run again; {nothing}"
            )
        return count

    def store(self, datasets: list, what: str) -> None:
        """STOW-RS, then QIDO-RS for each instance: the server stores an instance whole or not at all, and one
        that answers success but keeps nothing (a filter that drops results: Orthanc answers 200) is caught
        here too, so nothing is ever taken as stored that is not there."""
        nothing = f"{what} was not stored (instances stored earlier are whole, and a later run finds them)"
        with self._talking(f"storing {what} (STOW-RS)", nothing):
            answer = self._client.store_instances(datasets)
            failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
            raise UserError(f"the DICOMweb server at {self.root} refused {what} (STOW-RS failure reason {', '.join(reasons)}); {nothing}")
        for dataset in datasets:
            kept = self.instance_uids(str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), nothing)
            if str(dataset.SOPInstanceUID) not in kept:
                raise UserError(
                    f"the DICOMweb server at {self.root} answered that it stored {what} but does not hold it (STOW-RS "
                    f"accepted, QIDO-RS finds nothing: a filter or policy on the server drops such objects); ask its "
                    f"administrator to accept them; {nothing}"
                )


class _Bearer:
    """`Authorization: Bearer <token>` on every request (a requests auth callable; never logged)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request):  # requests.PreparedRequest
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer(***)"


# --- the cached copy --------------------------------------------------------------------------------------

CARD_JSON, CARD_MD = "card.json", "card.md"


def read_card(dest: Path) -> dict | None:
    try:
        card = json.loads((dest / CARD_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("source") == "dicomweb" else None


def _write_card(dest: Path, card: dict) -> None:
    partial = dest / f".{CARD_JSON}.partial-{os.getpid()}"
    partial.write_text(json.dumps(card, indent=2) + "\n")
    partial.replace(dest / CARD_JSON)
    lines = [
        f"# Studies pulled from {card['server']} over DICOMweb",
        "",
        f"- which: {card['which']}",
        f"- pulled: {card['pulled']}, complete: {'yes' if card['complete'] else 'no (run the pull again to resume)'}",
        f"- client: {card['client']}",
        "",
        "| study | series | modality | description | instances | MB | pulled |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['study']} | {s['series']} | {s['modality']} | {s['description']} | {s['instances']} | {s['bytes'] / 1e6:.1f} | {s['pulled']} |"
        for s in card["series"]
    ]
    partial_md = dest / f".{CARD_MD}.partial-{os.getpid()}"
    partial_md.write_text("\n".join(lines) + "\n")
    partial_md.replace(dest / CARD_MD)


def wanted_for_training(found: list[SeriesInfo], address: Address) -> tuple[list[SeriesInfo], list[str]]:
    """Image series of the asked modalities and the SEGs beside them; the rest, each with why it is left out."""
    keep, left = [], []
    for info in found:
        if info.description.startswith(OURS):
            left.append(f"series {info.uid}: a {info.modality} this workbench stored (a prediction, never a label)")
        elif info.modality in IMAGE_LABELS:
            keep.append(info)
        elif info.modality in NON_IMAGE:
            left.append(f"series {info.uid}: a {info.modality or 'non-image'} object, neither images nor a SEG")
        elif address.modalities and info.modality not in address.modalities:
            left.append(f"series {info.uid}: {info.modality or 'no modality'}, not {'/'.join(sorted(address.modalities))}")
        else:
            keep.append(info)
    return keep, left


def pull(address: Address, dest: Path, verify_tls: bool = True, refresh: bool = True) -> Path:
    """The address's studies into `dest` as a cached copy: series already there are never fetched again.

    With `refresh` False a finished pull is used as it is, without asking the server (a recipe's data);
    otherwise the server is asked again and only series not yet here are fetched.
    """
    from tqdm import tqdm

    card = read_card(dest)
    covered = not address.studies or set(address.studies) <= set(card.get("studies", []) if card else [])
    if card and card.get("complete") and not refresh and covered:
        return dest  # a recipe's studies all here: its data, without asking the server (a recipe naming more asks)
    if dest.exists() and card is None and any(dest.iterdir()):
        raise UserError(f"{dest}: holds files that no DICOMweb pull wrote; give another --path (or remove it)")
    nothing = "nothing was pulled"
    server = Server(address.root, verify_tls)
    studies = server.studies(address, nothing)
    chosen: list[SeriesInfo] = []
    for study in studies:
        found = server.series(study, address, nothing)
        keep, left = wanted_for_training(found, address)
        for reason in left:
            LOG.info("study %s: %s; left out", study, reason)
        if not [s for s in keep if s.modality not in IMAGE_LABELS]:
            what = "/".join(sorted(address.modalities)) or "image"
            if address.series:
                raise UserError(f"{address.describe()}: {left[0] if left else 'not an image series'}; {nothing}")
            LOG.warning("study %s has no %s series (%s); left out", study, what, ", ".join(sorted({s.modality for s in found})) or "no series")
            continue
        chosen += keep
    if not chosen:
        raise UserError(f"none of the {len(studies)} studies of {address.describe()} holds a series to pull; {nothing}")
    dest.mkdir(parents=True, exist_ok=True)
    pulling = dest.parent / f".{dest.name}.pulling"
    card = card or {}
    done = {s["series"]: s for s in card.get("series", []) if (dest / s["study"] / s["series"]).is_dir()}
    from dicomweb_client import __version__ as client_version

    card = {
        "source": "dicomweb",
        "server": address.root,
        "which": address.describe(),
        "studies": sorted({s.study for s in chosen} | {s["study"] for s in done.values()}),
        "series": list(done.values()),
        "complete": False,
        "pulled": card.get("pulled", ""),
        "client": f"dicomweb-client {client_version}",
    }
    todo = [s for s in chosen if s.uid not in done and not (dest / s.study / s.uid).is_dir()]
    LOG.info("%s: %d series to fetch, %d already here", address.describe(), len(todo), len(chosen) - len(todo))
    try:
        with tqdm(total=len(todo), unit="series", desc="series", position=0) as series_bar, \
                tqdm(unit="B", unit_scale=True, desc="bytes", position=1) as bytes_bar:
            for info in todo:
                partial = pulling / f"{info.uid}.partial-{os.getpid()}"
                shutil.rmtree(partial, ignore_errors=True)
                before = bytes_bar.n
                count = server.fetch(info, partial, bytes_bar.update, f"series {info.uid} was not kept (the pull resumes there)")
                (dest / info.study).mkdir(exist_ok=True)
                partial.rename(dest / info.study / info.uid)
                now = datetime.now(timezone.utc).isoformat(timespec="seconds")
                card["series"].append({**asdict(info), "series": info.uid, "instances": count, "bytes": bytes_bar.n - before, "pulled": now})
                card["series"][-1].pop("uid")
                card["pulled"] = now
                _write_card(dest, card)
                series_bar.update(1)
    finally:
        shutil.rmtree(pulling, ignore_errors=True)
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
    card["complete"] = True
    card["pulled"] = card["pulled"] or datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_card(dest, card)
    total = sum(s["instances"] for s in card["series"])
    LOG.info("pulled %s into %s: %d studies, %d series, %d instances", address.describe(), dest, len(card["studies"]), len(card["series"]), total)
    return dest
