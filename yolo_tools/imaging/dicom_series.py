"""DICOM series as volumes: files found anywhere under a folder, grouped and ordered as the scanner made them.

A PACS export or a scanner's CD puts slices in folders and files whose names mean nothing: series are
found by SeriesInstanceUID, slices ordered by their ImagePositionPatient projected on the slice normal
(the cross product of ImageOrientationPatient's row and column directions; InstanceNumber when a file
has no position), and the pixels put into modality units (Hounsfield for CT) by `imaging.dicom`. A
multi-frame file (enhanced CT/MR, or any file with NumberOfFrames > 1) is a series of its own, its
frames placed by the per-frame plane positions. The volume's array is (slices, rows, columns), so slice
images are the files' own images, and its affine maps that array to RAS+ mm (DICOM's patient axes are
LPS; the two first axes flip).

A volume is only drawn through slices that make one, checked as DICOM defines a series and as nnU-Net's
readers stack one:
- one SeriesInstanceUID can hold several series (anonymisers that rewrite UIDs do this): files are split
  by plane (orientation, rows x columns, pixel spacing), by the series-level SeriesNumber and
  SeriesDescription, and, where images at one position still differ, by echo, acquisition, time point
  or folder; each part becomes a volume of its own and the split is said (`Found.notes`);
- a slice stored twice is kept once when the copies' pixels are identical (said, `Series.dropped`);
  different images at one position that nothing tells apart refuse the series;
- slices must lie on a uniform grid (`geometry.irregular_spacing`): a missing slice refuses the series
  instead of shifting every slice after it by a fraction of a spacing.
A refused series stays in `Found.series` with its reason in `Series.refused`, so a converter names it on
its card and carries on with the others; `load` raises that reason.

DICOM SEG objects (Segmentation Storage) are found in the same walk and read with highdicom, which
matches each SEG frame to the source instance it annotates by SOP Instance UID. The objects the workbench
writes about a series are made here too, with highdicom (the only module that touches it): a SEG of
predicted masks (`write_seg`) and a TID 1500 measurement report (`write_sr`) of boxes or classes, each
naming the algorithm that made it (`Algorithm`: recipe, run, weights digest, version).

Examples:
    >>> found = find("../shared/data/dicom-ct-liver-seg")
    >>> series = found.series[0]; pixels, geometry = load(series)
    >>> masks = segment_masks(found.segs_of(series)[0], series)   # {segment label: (slices, rows, cols) bool}
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.errors import UserError
from yolo_tools.imaging import dicom, require_finite
from yolo_tools.imaging.geometry import Geometry, along_normal, irregular_spacing, same_positions

LOG = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "AccessionNumber",
)
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "KO", "PR"}
# Series-level attributes: DICOM gives a series one value of each, so two values under one UID are two series.
SERIES_LEVEL = ("SeriesNumber", "SeriesDescription")
# What else tells apart different images at one position, tried in turn: echoes, acquisitions, time points,
# and the folder each series was exported into.
TELL_APART = ("EchoNumbers", "AcquisitionNumber", "TemporalPositionIdentifier", "folder")
ORIENTATION_TOLERANCE = 1e-3  # direction cosines closer than this are one orientation


@dataclass
class Series:
    uid: str
    patient_id: str
    modality: str
    description: str
    files: list[Path]  # one per slice, in slice order (a single multi-frame file for enhanced objects)
    instance_uids: list[str]  # SOP Instance UID of each file, same order
    name: str = ""  # a readable unique name: the folder when it holds only this series, else the UID
    refused: str = ""  # why these files are not one volume (`load` raises it); "" when they are
    dropped: list[str] = field(default_factory=list)  # identical copies of a slice left out: "copy (the image of kept)"


@dataclass(frozen=True)
class Algorithm:
    """Who made a stored object, as DICOM asks (Algorithm Identification, the SR's device observer).

    `weights` is the weights file's SHA-256: results of the same weights on the same series get the same
    SOP Instance UID (`uid`), so a PACS can be asked whether they are there already.
    """

    recipe: str
    run: str
    weights: str
    version: str
    operating_point: str = ""  # how findings were thresholded, e.g. "conf 0.25" or "threshold 0.41 (youden)"

    def uid(self, *parts: str) -> str:
        from pydicom.uid import generate_uid

        return str(generate_uid(entropy_srcs=["yolo-tools", self.weights, *parts]))

    def series_description(self, kind: str) -> str:
        """`yolo-tools SEG <recipe> <weights digest>` (at most 64 characters): how a PACS user finds them."""
        return f"yolo-tools {kind} {self.recipe[:28]} {self.weights[:12]}"

    def parameters(self) -> dict[str, str]:
        return {"recipe": self.recipe, "run": self.run, "weights_sha256": self.weights, **({"operating_point": self.operating_point} if self.operating_point else {})}


@dataclass(frozen=True)
class Finding:
    """One finding on one image of a series: a box (pixels x1, y1, x2, y2 as the model gives them) or, for a
    classifier, the whole image (box None); its confidence and the threshold it was kept at."""

    index: int  # the image's place in the series (file, or frame of a multi-frame file)
    label: str
    class_id: int
    box: tuple[float, float, float, float] | None
    confidence: float
    threshold: float | None


@dataclass
class SegFile:
    path: Path
    series_uid: str  # the series it references
    labels: list[str]  # segment labels, segment 1 first
    instance_uids: frozenset[str] = frozenset()  # the images it references (tells apart series sharing a UID)


@dataclass
class Found:
    series: list[Series] = field(default_factory=list)
    segs: list[SegFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason" for files that are not usable images
    notes: list[str] = field(default_factory=list)  # what was decided for the user: a UID split into series

    def segs_of(self, series: Series) -> list[SegFile]:
        own = set(series.instance_uids)
        return [
            seg for seg in self.segs
            if seg.series_uid == series.uid and (not seg.instance_uids or seg.instance_uids & own)
        ]


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    if path.suffix:
        return False
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _position(header) -> tuple[np.ndarray | None, np.ndarray | None]:
    position, orientation = header.get("ImagePositionPatient"), header.get("ImageOrientationPatient")
    as_array = (lambda v: np.asarray([float(x) for x in v]) if v else None)  # noqa: E731
    return as_array(position), as_array(orientation)


def find(src: str | Path) -> Found:
    """Every image series and DICOM SEG under `src` (headers; pixels only to compare slices stored twice)."""
    src = Path(src)
    groups: dict[str, list[tuple]] = defaultdict(list)
    found = Found()
    for path in sorted(p for p in src.rglob("*") if p.is_file() and _is_dicom_file(p)):
        try:
            header = dicom.dataset(path, pixels=False)
        except UserError as error:
            found.skipped.append(str(error))
            continue
        modality = str(header.get("Modality", ""))
        if str(header.get("SOPClassUID", "")) == SEG_SOP_CLASS:
            referenced = header.get("ReferencedSeriesSequence")
            labels = [str(item.get("SegmentLabel", item.get("SegmentNumber"))) for item in header.get("SegmentSequence", [])]
            instances = frozenset(
                str(item.get("ReferencedSOPInstanceUID", ""))
                for item in (referenced[0].get("ReferencedInstanceSequence", []) if referenced else [])
            )
            found.segs.append(SegFile(path, str(referenced[0].SeriesInstanceUID) if referenced else "", labels, instances))
            continue
        if modality in NON_IMAGE_MODALITIES or "Rows" not in header:
            found.skipped.append(f"{path}: a {modality or 'non-image'} object, not an image series")
            continue
        uid = str(header.get("SeriesInstanceUID", "")) or f"file:{path}"
        if int(header.get("NumberOfFrames", 1) or 1) > 1:
            uid = f"{uid}/{header.SOPInstanceUID}"  # each multi-frame file is a volume of its own
        groups[uid].append((path, header))
    referenced = frozenset().union(*(seg.instance_uids for seg in found.segs))
    parts: dict[str, tuple[str, _Part]] = {}  # key -> (uid, part); key is the uid unless the uid was split
    split: dict[str, list[str]] = {}
    for uid, members in groups.items():
        pieces = _parts(members, referenced, src)
        for number, part in enumerate(pieces, start=1):
            parts[uid if len(pieces) == 1 else f"{uid}#{number}"] = (uid, part)
        if len(pieces) > 1:
            split[uid] = sorted({part.told_apart_by for part in pieces})
    folders = defaultdict(set)
    for key, (_, part) in parts.items():
        for path, _ in part.members:
            folders[path.parent].add(key)
    keys: dict[int, str] = {}
    for key, (uid, part) in parts.items():
        files = [path for path, _ in part.members]
        headers = [header for _, header in part.members]
        first = headers[0]
        parent = files[0].parent
        name = parent.name if len(folders[parent]) == 1 and all(f.parent == parent for f in files) else _safe(key)
        series = Series(
            uid=uid.split("/")[0],
            patient_id=str(first.get("PatientID", "")) or name,
            modality=str(first.get("Modality", "")),
            description=str(first.get("SeriesDescription", "")),
            files=files,
            instance_uids=[str(h.get("SOPInstanceUID", "")) for h in headers],
            name=name,
            refused=part.problem,
            dropped=part.dropped,
        )
        found.series.append(series)
        keys[id(series)] = key
    names = [s.name for s in found.series]
    for series in found.series:  # patientA/CT and patientB/CT: the path below src tells them apart
        if names.count(series.name) > 1:
            parent = series.files[0].parent
            series.name = _safe("_".join(parent.relative_to(src).parts)) if parent != src else _safe(keys[id(series)])
    if len({s.name for s in found.series}) < len(found.series):
        for series in found.series:
            series.name = _safe(keys[id(series)])
    found.series.sort(key=lambda s: s.name)
    for uid, reasons in split.items():
        named = [s.name for s in found.series if s.uid == uid.split("/")[0]]
        found.notes.append(
            f"SeriesInstanceUID {uid} holds {len(named)} series, told apart by {' and '.join(reasons)}: "
            f"read as {', '.join(named)}"
        )
    return found


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in text)


@dataclass
class _Part:
    """Files of one SeriesInstanceUID that make one volume, in stack order, and what was found about them."""

    members: list[tuple[Path, Any]]  # (path, header)
    dropped: list[str] = field(default_factory=list)
    conflicts: list[list[str]] = field(default_factory=list)  # files at one position holding different images
    problem: str = ""
    told_apart_by: str = ""


def _value(member: tuple[Path, Any], key: str) -> str:
    path, header = member
    return str(path.parent) if key == "folder" else str(header.get(key, ""))


def _group_by(members: list[tuple[Path, Any]], keys: tuple[str, ...]) -> list[list[tuple[Path, Any]]]:
    groups: dict[tuple[str, ...], list] = defaultdict(list)
    for member in members:
        groups[tuple(_value(member, key) for key in keys)].append(member)
    return list(groups.values())


def _by_plane(members: list[tuple[Path, Any]]) -> list[list[tuple[Path, Any]]]:
    """Files grouped by what the slices of one volume share: orientation (within a tolerance), rows x
    columns and pixel spacing."""
    clusters: list[tuple[np.ndarray | None, tuple, list]] = []
    for path, header in members:
        orientation = _position(header)[1]
        grid = (header.get("Rows"), header.get("Columns"), tuple(round(float(v), 4) for v in header.get("PixelSpacing") or ()))
        for reference, reference_grid, group in clusters:
            if reference_grid == grid and (
                (orientation is None and reference is None)
                or (orientation is not None and reference is not None and np.abs(orientation - reference).max() <= ORIENTATION_TOLERANCE)
            ):
                group.append((path, header))
                break
        else:
            clusters.append((orientation, grid, [(path, header)]))
    return [group for *_, group in clusters]


def _parts(members: list[tuple[Path, Any]], referenced: frozenset[str], src: Path) -> list[_Part]:
    """One UID's files as the volumes they make (see the module doc for the order of the splits)."""
    if len(members) == 1:
        return [_Part(members)]
    by_plane = _by_plane(members)
    parts: list[_Part] = []
    for plane in by_plane:
        by_series = _group_by(plane, SERIES_LEVEL)
        for group in by_series:
            part = _stack(group, referenced, src)
            part.told_apart_by = "SeriesNumber/SeriesDescription" if len(by_series) > 1 else "plane (orientation, size, spacing)"
            parts += _told_apart(group, part, referenced, src) if part.conflicts else [part]
    return parts


def _told_apart(members: list[tuple[Path, Any]], part: _Part, referenced: frozenset[str], src: Path) -> list[_Part]:
    """Different images at one position: split by the first of TELL_APART that leaves no such conflict."""
    for key in TELL_APART:
        groups = _group_by(members, (key,))
        if len(groups) > 1:
            stacked = [_stack(group, referenced, src) for group in groups]
            if not any(p.conflicts for p in stacked):
                for p in stacked:
                    p.told_apart_by = key
                return stacked
    shown = "; ".join(" and ".join(files) for files in part.conflicts[:3])
    more = f" and {len(part.conflicts) - 3} more" if len(part.conflicts) > 3 else ""
    part.problem = (
        f"{len(part.conflicts)} slice position(s) hold different images ({shown}{more}): two series under one "
        "SeriesInstanceUID, or a 4D or multi-echo series, and neither series number, description, echo, "
        "acquisition, time point nor folder tells them apart. Give each series its own folder or SeriesInstanceUID"
    )
    return [part]


def _stack(members: list[tuple[Path, Any]], referenced: frozenset[str], src: Path) -> _Part:
    """Files of one plane in stack order, identical copies of a slice kept once, and why they are not a
    uniform stack ("" when they are). Files without a position are ordered by InstanceNumber, unchecked."""
    positions = [_position(header) for _, header in members]
    if len(members) == 1 or any(p is None or o is None for p, o in positions):
        return _Part(sorted(members, key=lambda m: int(m[1].get("InstanceNumber", 0) or 0)))
    points = np.stack([p for p, _ in positions])
    order = np.argsort(along_normal(points, positions[0][1]), kind="stable")
    members, points = [members[i] for i in order], points[order]
    names = [_shown(path, src) for path, _ in members]
    keep = np.ones(len(members), bool)
    part = _Part(members)
    for run in same_positions(points):
        if not _identical([members[i][0] for i in run]):
            part.conflicts.append([names[i] for i in run])
            continue
        kept = next((i for i in run if str(members[i][1].get("SOPInstanceUID", "")) in referenced), run[0])
        keep[run] = False
        keep[kept] = True
        part.dropped += [f"{names[i]} (the image of {names[kept]})" for i in run if i != kept]
    part.members = [m for m, k in zip(members, keep) if k]
    if not part.conflicts:
        part.problem = irregular_spacing(points[keep], [n for n, k in zip(names, keep) if k])
    return part


def _identical(paths: list[Path]) -> bool:
    """Whether files at one position hold the same image (modality values compared; an unreadable one differs)."""
    try:
        first = dicom.read(paths[0]).pixels
        return all(np.array_equal(first, dicom.read(path).pixels) for path in paths[1:])
    except UserError:
        return False


def _shown(path: Path, src: Path) -> str:
    return str(path.relative_to(src)) if path.is_relative_to(src) else str(path)


def _frame_positions(data) -> list[np.ndarray] | None:
    groups = data.get("PerFrameFunctionalGroupsSequence")
    if not groups:
        return None
    try:
        return [np.asarray([float(x) for x in g.PlanePositionSequence[0].ImagePositionPatient]) for g in groups]
    except (AttributeError, IndexError):
        return None


def _frame_orientation_spacing(data) -> tuple[np.ndarray | None, tuple[float, float] | None]:
    shared = data.get("SharedFunctionalGroupsSequence")
    orientation, spacing = _position(data)[1], data.get("PixelSpacing")
    if shared:
        item = shared[0]
        if "PlaneOrientationSequence" in item:
            orientation = np.asarray([float(x) for x in item.PlaneOrientationSequence[0].ImageOrientationPatient])
        if "PixelMeasuresSequence" in item and "PixelSpacing" in item.PixelMeasuresSequence[0]:
            spacing = item.PixelMeasuresSequence[0].PixelSpacing
    return orientation, (float(spacing[0]), float(spacing[1])) if spacing else None


def _affine(positions: list[np.ndarray | None], orientation, spacing, fallback_dz: float) -> np.ndarray:
    """(slice, row, column) -> RAS mm. Without positions: identity directions and the stated spacings."""
    row_mm, col_mm = spacing or (1.0, 1.0)
    lps = np.eye(4)
    if orientation is None or any(p is None for p in positions):
        lps[:3, :3] = np.diag([fallback_dz, row_mm, col_mm])
        return LPS_TO_RAS @ lps
    along_row, along_col = orientation[:3], orientation[3:]  # column index grows along_row, row index along_col
    normal = np.cross(along_row, along_col)
    if len(positions) > 1:
        step = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        step = normal * fallback_dz
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = step, along_col * row_mm, along_row * col_mm
    lps[:3, 3] = positions[0]
    return LPS_TO_RAS @ lps


def load(series: Series) -> tuple[np.ndarray, Geometry]:
    """The series as float32 (slices, rows, columns) in modality units, and its geometry (slice axis 0)."""
    if series.refused:
        raise UserError(f"series {series.name} ({series.files[0].parent}): {series.refused}")
    if len(series.files) == 1:
        data = dicom.dataset(series.files[0])
        image = dicom.read(series.files[0])
        if not image.photometric.startswith("MONOCHROME"):
            raise UserError(f"{series.files[0]}: a {image.photometric} image is not a volume; give greyscale series")
        pixels = image.pixels if image.pixels.ndim == 3 else image.pixels[None]
        positions = _frame_positions(data) if len(pixels) > 1 else [_position(data)[0]]
        orientation, spacing = _frame_orientation_spacing(data)
        if positions is None or len(positions) != len(pixels):
            positions = [None]
        elif orientation is not None and len(positions) > 1:
            problem = _frames_problem(np.stack(positions), orientation)
            if problem:
                raise UserError(f"{series.files[0]}: {problem}")
    else:
        images = [dicom.read(path) for path in series.files]
        shapes = {image.pixels.shape for image in images}
        if len(shapes) != 1:
            raise UserError(f"series {series.name}: slices differ in size {sorted(shapes)}; one series must share one grid")
        pixels = np.stack([image.pixels for image in images])
        if pixels.ndim != 3:
            raise UserError(f"series {series.name}: colour or multi-frame slices; give one greyscale image per file")
        headers = [dicom.dataset(path, pixels=False) for path in series.files]
        positions = [_position(h)[0] for h in headers]
        orientation, spacing = _position(headers[0])[1], images[0].spacing
        data = headers[0]
    thickness = float(data.get("SpacingBetweenSlices", 0) or data.get("SliceThickness", 0) or 1.0)
    affine = _affine(positions, orientation, spacing, thickness)
    require_finite(pixels, f"series {series.name} ({series.files[0].parent})")
    return pixels.astype(np.float32), Geometry(tuple(pixels.shape), affine, 0)


def _frames_problem(positions: np.ndarray, orientation: np.ndarray) -> str:
    """Why a multi-frame file's frames, as stored, are not one uniform stack ("" when they are). Frames are
    not reordered: a SEG of the file refers to them by number."""
    along = along_normal(positions, orientation)
    order = np.argsort(along, kind="stable")
    same = same_positions(positions[order])
    if same:
        return f"{sum(map(len, same))} frames share {len(same)} position(s) (a 4D or multi-echo file); give one 3D volume per file"
    steps = np.diff(along)
    if not ((steps > 0).all() or (steps < 0).all()):
        return "its frames are not stored in order along the slice normal; export them in slice order"
    return irregular_spacing(positions, [f"frame {i + 1}" for i in range(len(positions))])


def _highdicom():
    """highdicom, without what it says that no one can act on: an INFO line per DICOM module it copies into
    a SEG ("copy attributes of module ...", shown because the command line logs INFO), and its warning that
    the source's PatientName has a single component (the name is the source's, copied as it is; anonymised
    exports are like that). Its other warnings stay; with -v its INFO lines do too."""
    import highdicom as hd

    if not LOG.isEnabledFor(logging.DEBUG):
        logging.getLogger("highdicom").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent the intended person name",
                            category=UserWarning, module="highdicom")
    return hd


def segment_masks(seg: SegFile, series: Series) -> dict[str, np.ndarray]:
    """Each segment of a DICOM SEG as (slices, rows, cols) bool on the series' grid, by segment label.

    highdicom matches SEG frames to the series' instances by SOP Instance UID; slices the SEG does not
    cover are empty. Segments that share a label are OR-ed.
    """
    hd = _highdicom()

    try:
        segmentation = hd.seg.segread(seg.path)
        referenced = {uid for _, _, uid in segmentation.get_source_image_uids()}
        covered = [uid for uid in series.instance_uids if uid in referenced]
        if not covered:
            raise UserError(
                f"{seg.path}: the SEG references none of the {len(series.instance_uids)} images of series "
                f"{series.name}; keep each SEG with the series it was drawn on"
            )
        stack = segmentation.get_pixels_by_source_instance(
            source_sop_instance_uids=covered,
            assert_missing_frames_are_empty=True,
            # Many tools (dcmqi among them) leave SpatialLocationsPreserved unset; frames are matched by UID.
            ignore_spatial_locations=True,
        )
    except UserError:
        raise
    except Exception as exc:  # highdicom raises ValueError/KeyError/AttributeError for malformed SEGs
        raise UserError(f"{seg.path}: cannot read the DICOM SEG: {exc}") from None
    rows, cols = stack.shape[1:3]
    masks: dict[str, np.ndarray] = {}
    index = {uid: i for i, uid in enumerate(series.instance_uids)}
    for number, label in enumerate(seg.labels):
        volume = np.zeros((len(series.instance_uids), rows, cols), bool)
        volume[[index[uid] for uid in covered]] = stack[..., number] > 0
        masks[label] = masks[label] | volume if label in masks else volume
    return masks


def _sources(series: Series, pixels: bool = True) -> list:
    """The series' files as highdicom's source images: Type 2 patient/study attributes present (possibly empty)."""
    import pydicom

    sources = [pydicom.dcmread(f, stop_before_pixels=not pixels) for f in series.files]
    for source in sources:  # anonymised files often lack them; the new object must copy them
        for keyword in TYPE2_COPIED:
            if keyword not in source:
                setattr(source, keyword, "")
        if "SpecificCharacterSet" in source and not source.SpecificCharacterSet:
            del source.SpecificCharacterSet  # empty means the default repertoire; highdicom wants it absent
    return sources


def write_seg(
    path: Path, series: Series, masks: np.ndarray, labels: list[str], software: str, algorithm: Algorithm | None = None
) -> Path:
    """A DICOM SEG of `series` (highdicom): one binary segment per label, frames referencing its instances.

    `masks` is (slices, rows, cols, segments) bool in the series' slice order. Segments may overlap.
    The SEG joins the source's study and patient, so a PACS or OHIF files it with the images it annotates.
    With an `algorithm`, it names it and its UIDs are fixed by the weights and the source series: one new
    series per study (`Algorithm.uid`), found again by a later run of the same weights.
    """
    hd = _highdicom()
    from pydicom.sr.codedict import codes

    sources = _sources(series)
    identity = hd.AlgorithmIdentificationSequence(
        name=f"yolo-tools {algorithm.recipe}" if algorithm else "yolo-tools", version=software,
        family=codes.cid7162.ArtificialIntelligence, parameters=algorithm.parameters() if algorithm else None,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,  # what a class is, the recipe does not code: generic
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identity,
        )
        for number, label in enumerate(labels, start=1)
    ]
    study = str(sources[0].StudyInstanceUID)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=algorithm.uid("SEG", study) if algorithm else hd.UID(),
        series_number=900,
        sop_instance_uid=algorithm.uid("SEG", series.uid) if algorithm else hd.UID(),
        instance_number=1,
        manufacturer="yolo-tools",
        manufacturer_model_name=algorithm.recipe[:64] if algorithm else "yolo-tools",
        software_versions=software,
        device_serial_number=algorithm.weights[:16] if algorithm else "0",
        series_description=algorithm.series_description("SEG") if algorithm else None,
        series_date=_now().date(),
        series_time=_now().time(),
        content_label="YOLO_TOOLS",
        omit_empty_frames=False,
    )
    seg.save_as(path)
    return path


def _now():
    """When an object is made: its series date and time, so a PACS lists it under today, not under no date."""
    from datetime import datetime

    return datetime.now()


def _class_concept(label: str, class_id: int):
    """A recipe's class as a coded concept: the recipe does not code its classes, so a local scheme (99YOLOTOOLS)
    carries the class index as the code and the class name as its meaning."""
    hd = _highdicom()

    return hd.sr.CodedConcept(value=str(class_id), scheme_designator="99YOLOTOOLS", meaning=label[:64] or str(class_id))


def _findings_summary(found: bool):
    """TID 1500's report-level Qualitative Evaluations container holding CAD Processing and Findings Summary:
    'All algorithms succeeded; with (or without) findings'. highdicom builds the report's other parts but not
    this container, so it is added here. It sits at report level rather than in a measurement group because a
    group without an image region is what OHIF (3.13) fails to open a report on."""
    hd = _highdicom()
    from pydicom.sr.codedict import codes

    container = hd.sr.ContainerContentItem(
        name=hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations"), relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    value = codes.DCM.AllAlgorithmsSucceededWithFindings if found else codes.DCM.AllAlgorithmsSucceededWithoutFindings
    container.ContentSequence = hd.sr.ContentSequence([
        hd.sr.CodeContentItem(name=codes.DCM.CADProcessingAndFindingsSummary, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    ])
    return container


def findings_summary(dataset) -> str:
    """The report-level summary `write_sr` writes ('All algorithms succeeded; without findings', ...), read back."""
    for item in dataset.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "C0034375":
            return str(item.ContentSequence[0].ConceptCodeSequence[0].CodeMeaning)
    return ""


def write_sr(path: Path, series: Series, findings: list[Finding], software: str, algorithm: Algorithm) -> Path:
    """A TID 1500 measurement report (Comprehensive 3D SR, highdicom) of `findings` on `series`.

    One planar ROI group per finding: the class as a coded concept, the box as a closed polyline in the
    image's pixel space (a classifier's finding: the whole image), referencing the source instance (and
    frame), with its Probability (DCM 122157) and the Threshold Value (DCM 122411) it was kept at. The
    report says whether anything was found (`_findings_summary`: with / without findings), so a series with
    no finding still gets a report that says so. Every source instance is in the evidence.
    """
    hd = _highdicom()
    from pydicom.sr.codedict import codes

    sources = _sources(series, pixels=False)
    frames = len(series.files) == 1 and int(sources[0].get("NumberOfFrames", 1) or 1) > 1
    identity = hd.sr.AlgorithmIdentification(
        name=f"yolo-tools {algorithm.recipe}", version=software, parameters=[f"{k}={v}" for k, v in algorithm.parameters().items()],
    )
    unit = codes.UCUM.NoUnits
    groups: list = []
    for number, finding in enumerate(findings, start=1):
        source = sources[0 if frames else finding.index]
        rows, cols = int(source.Rows), int(source.Columns)
        x1, y1, x2, y2 = finding.box if finding.box is not None else (0.0, 0.0, float(cols), float(rows))
        corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=float)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=corners,
            source_image=hd.sr.SourceImageForRegion.from_source_image(source, [finding.index + 1] if frames else None),
        )
        measurements = [hd.sr.Measurement(name=codes.DCM.Probability, value=float(finding.confidence), unit=unit)]
        if finding.threshold is not None:
            measurements.append(hd.sr.Measurement(name=codes.DCM.ThresholdValue, value=float(finding.threshold), unit=unit))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=algorithm.uid("SR finding", series.uid, str(number)), identifier=f"{finding.label} {number}"),
            referenced_region=region,
            finding_type=_class_concept(finding.label, finding.class_id),
            algorithm_id=identity,
            measurements=measurements,
        ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=algorithm.uid("device"), name=f"yolo-tools {algorithm.recipe}"[:64], manufacturer_name="yolo-tools",
            model_name=algorithm.recipe[:64], serial_number=algorithm.weights[:16],
        ),
    )
    placeholder = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=algorithm.uid("SR none", series.uid), identifier="none"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups or [placeholder],  # highdicom wants one group; TID 1500 lets the container go
        title=codes.DCM.ImagingMeasurementReport,
        referenced_images=sources,
    )
    content = report[0].ContentSequence
    if not groups:  # nothing found: no Imaging Measurements container at all, only the summary saying so
        for item in [i for i in content if i.ConceptNameCodeSequence[0].CodeValue == codes.DCM.ImagingMeasurements.value]:
            content.remove(item)
    content.append(_findings_summary(bool(findings)))
    study = str(sources[0].StudyInstanceUID)
    sr = hd.sr.Comprehensive3DSR(
        evidence=sources,
        content=report,
        series_instance_uid=algorithm.uid("SR", study),
        series_number=901,
        sop_instance_uid=algorithm.uid("SR", series.uid),
        instance_number=1,
        manufacturer="yolo-tools",
        is_complete=True,
        series_description=algorithm.series_description("SR"),
        series_date=_now().date(),
        series_time=_now().time(),
        manufacturer_model_name=algorithm.recipe[:64],
        software_versions=software,
        device_serial_number=algorithm.weights[:16],
    )
    sr.save_as(path)
    return path
