"""`yolo_tools predict RUN URL [--store]`: predict on a PACS's studies and store the results back into it.

The studies a DICOMweb URL names are found with QIDO-RS; each image series of the run's modality is
fetched (WADO-RS) into a throwaway folder, predicted exactly as a DICOM series in a folder is
(`prediction_formats`: the run's slicing and intensity mapping, its operating point), and written as a
DICOM SEG (segmentation) or a TID 1500 structured report (boxes, classes) that names the algorithm. With
`--store` each object goes back to the same server with STOW-RS, into one new series per study and
weights; the workbench only ever adds such series, never changes or removes anything on the server.

A batch over many studies can stop anywhere and start again: an object's SOP Instance UID is fixed by
the weights' digest and its source series (`dicom_series.Algorithm.uid`), so before predicting on a series
one QIDO-RS search per study asks whether that instance is there, and series already done are skipped. A
server stores an instance whole or not at all, so a failed or interrupted store leaves nothing that a later
run takes as done: the series it was storing is simply predicted and stored again.

Copies of the objects stay in the output folder (`<run>/predict-pacs/<StudyInstanceUID>/`), each put there
only once the server has stored it (or, without `--store`, once written).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from yolo_tools import engine, operating_point, tasks
from yolo_tools.engine import args as yolo_args
from yolo_tools.errors import UserError
from yolo_tools.imaging import dicom_series
from yolo_tools.inference import predictors
from yolo_tools.locations import runs_dir
from yolo_tools.outputs import prediction_formats
from yolo_tools.recipe import Recipe
from yolo_tools.runs import first_new_folder, next_free, run_dataset, run_recipe, weights_of
from yolo_tools.sources import dicomweb

LOG = logging.getLogger(__name__)


def run_modalities(recipe: Recipe | None, run_dir: Path | None) -> set[str]:
    """The modalities the run was trained on: its recipe's DICOMweb query, else its dataset's DICOM volumes."""
    import json

    source = recipe.data.source if recipe else None
    if source is not None and source.kind == "dicomweb" and source.query and source.query.modality:
        return {m.strip().upper() for m in source.query.modality.replace("\\", ",").split(",") if m.strip()}
    dataset = run_dataset(run_dir) if run_dir else None
    volumes = dataset / "volumes.json" if dataset else None
    if volumes and volumes.is_file():
        try:
            found = {str(v.get("modality", "")).upper() for v in json.loads(volumes.read_text(encoding="utf-8")).values()}
        except (ValueError, AttributeError):
            return set()
        return {m for m in found if m}
    return set()


def _targets(server: dicomweb.Server, address: dicomweb.Address, modalities: set[str], nothing: str) -> list[dicomweb.SeriesInfo]:
    """The image series to predict on; series of another modality or not images are named and left out."""
    wanted = set(address.modalities) or modalities
    targets: list[dicomweb.SeriesInfo] = []
    studies = server.studies(address, nothing)
    for study in studies:
        for info in server.series(study, address, nothing):
            why = None
            if info.modality in dicomweb.NON_IMAGE:
                why = f"a {info.modality} object, not images"
            elif wanted and info.modality not in wanted:
                why = f"{info.modality or 'no modality'}, and the run was trained on {'/'.join(sorted(wanted))}"
            if why and address.series:
                raise UserError(f"{address.describe()}: {why}; give a series the run can read; {nothing}")
            if why:  # SEGs and reports beside the images are usual; images of another modality are worth a warning
                log = LOG.info if info.modality in dicomweb.NON_IMAGE else LOG.warning
                log("study %s, series %s (%s): %s; left out", study, info.uid, info.description or "no description", why)
                continue
            targets.append(info)
    if not targets:
        raise UserError(
            f"{address.describe()}: none of the {len(studies)} studies holds an image series the run can read"
            f"{' (' + '/'.join(sorted(wanted)) + ')' if wanted else ''}; {nothing}"
        )
    return targets


def predict(
    run: str | Path,
    url: str,
    fmt: str | None = None,
    store: bool = False,
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    verify_tls: bool = True,
) -> Path:
    """Predict on the studies `url` names; with `store`, STOW-RS each object back. Returns the output folder."""
    from yolo_tools import pipeline

    if not dicomweb.is_dicomweb_url(url):
        raise UserError(f"--store stores into a PACS: give the studies as a DICOMweb URL, not '{url}'; {dicomweb.ACCEPTED}")
    address = dicomweb.parse_url(url)  # a login or token in the URL is refused here, before anything else
    weights, run_dir = weights_of(run)
    args = yolo_args.check_command_line(dict(overrides or {}))  # names and types as every predict checks them
    pipeline._check_device(args)
    recipe = run_recipe(run_dir) if run_dir else None
    task, classes = engine.task_and_names(weights)
    names = [classes[i] for i in sorted(classes)]
    fmt = fmt or prediction_formats.default_dicom_format(task)
    prediction_formats.check_dicom_format(fmt, task, weights)
    args = predictors.prediction_args(task, recipe, run_dir, args)  # as evaluate predicts: the run's point, max_det, full-size masks
    spec = tasks.TASKS.get(task)  # None: a model of a task the workbench does not evaluate
    point = operating_point.load(run_dir) if spec and spec.decides_by == "threshold" else None  # a classifier's threshold
    algorithm = prediction_formats.algorithm_of(weights, recipe, args, point)
    kind = "SEG" if fmt == "dicom-seg" else "SR"
    out_dir = Path(out) if out else next_free((run_dir or runs_dir()) / "predict-pacs")
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise UserError(f"--out {out_dir}: already holds files (or is a file); give a new or empty folder")
    nothing = "nothing was stored" if store else "nothing was written"
    server = dicomweb.Server(address.root, verify_tls)
    targets = _targets(server, address, run_modalities(recipe, run_dir), nothing)
    created = first_new_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done_before = made = 0
    try:
        for study in dict.fromkeys(t.study for t in targets):
            ours = algorithm.uid(kind, study)
            there = server.instance_uids(study, ours, nothing) if store else set()
            for info in (t for t in targets if t.study == study):
                if algorithm.uid(kind, info.uid) in there:
                    LOG.info("study %s, series %s: already has the %s of these weights (series %s); skipped", study, info.uid, kind, ours)
                    done_before += 1
                    continue
                path = _predict_series(server, info, weights, recipe, names, task, fmt, args, point, algorithm, out_dir)
                if store:
                    import pydicom

                    server.store([pydicom.dcmread(path)], f"the {kind} of series {info.uid} (study {study})")
                final = out_dir / study / path.name.split(".partial-", 1)[0].removeprefix(".")
                final.parent.mkdir(exist_ok=True)
                path.replace(final)
                made += 1
                print(f"study {study}, series {info.uid}: {kind} {'stored on ' + address.root if store else 'written'} ({final})")
    except BaseException:
        for leftover in out_dir.glob("**/.*.partial-*"):
            leftover.unlink(missing_ok=True)
        if created is not None and not any(out_dir.rglob("*.dcm")):
            shutil.rmtree(created, ignore_errors=True)
        raise
    if not made and created is not None:
        shutil.rmtree(created, ignore_errors=True)
    verb = "stored in" if store else "written for"
    print(f"{made} {kind} object(s) {verb} {address.describe()}; {done_before} series already done by these weights, skipped"
          + (f"; copies in {out_dir}" if made else ""))
    return out_dir


def _predict_series(
    server: dicomweb.Server,
    info: dicomweb.SeriesInfo,
    weights: Path,
    recipe: Recipe | None,
    names: list[str],
    task: str,
    fmt: str,
    args: dict[str, Any],
    point: dict | None,
    algorithm: dicom_series.Algorithm,
    out_dir: Path,
) -> Path:
    """Fetch one series into a throwaway folder, predict on it, write its object as a hidden partial file."""
    with tempfile.TemporaryDirectory(prefix="yolo-tools-pacs-") as scratch:
        folder = Path(scratch) / info.uid
        server.fetch(info, folder, lambda _: None, "nothing of it was stored")
        inputs = prediction_formats.volume_inputs(folder, recipe)
        if len(inputs) != 1 or inputs[0].series is None:
            raise UserError(f"series {info.uid}: its instances do not form one image volume; {len(inputs)} found")
        (prediction,) = prediction_formats.predict_volumes(weights, inputs, recipe, len(names), args)
        partial = out_dir / f".{info.uid}.partial-{os.getpid()}"
        partial.mkdir()
        try:
            if fmt == "dicom-seg":
                written = prediction_formats.write_dicom_seg(prediction, partial, names, algorithm)
            else:
                findings = prediction_formats.findings_of(prediction, names, task, args, point)
                written = prediction_formats.write_dicom_sr(prediction, partial, findings, algorithm)
            named = out_dir / f".{info.modality or 'series'}_{info.uid}{''.join(written.suffixes[-2:])}.partial-{os.getpid()}"
            written.replace(named)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return named
