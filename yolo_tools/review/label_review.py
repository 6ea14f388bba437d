"""From mistakes to better labels: a run's worst images go to Label Studio, a reviewer's edits come back as corrections.

`yolo_tools inspect RUN --annotate` builds the run's FiftyOne dataset (yolo_tools/review/fiftyone_inspect.py),
chooses the images to review there (the worst N, those with chosen tags, or a view saved in the App) and
makes one Label Studio project of them: each task is an image with its current labels (the published ones,
with the corrections made so far) as regions in the reviewer's colour for labels, and the model's false
findings as regions labelled `model: <class>` in another (classify: the model's class above the image). The
reviewer moves, redraws, deletes and adds labels, and relabels a model finding to its class to accept it.
`--load KEY` reads the reviewed tasks back and writes what changed, region by region, as one corrections file
(yolo_tools/convert/corrections.py): a region of the labels moved or relabelled is `changed`, one deleted
`removed`, a new one or an accepted finding `added`; tasks nobody annotated change nothing.

An open review is recorded in `corrections/<recipe>/reviews/<key>.json` (server address, project, task →
image and the labels as sent; never the token). One review per recipe is open at a time: corrections are
diffs against the labels as sent, and a second review of the same images would make diffs that no longer fit
once the first is loaded. Failures leave nothing behind: a send that fails removes the project it made; a
load that finds a task deleted in Label Studio, a label of a class the recipe lacks or an image the source no
longer has writes nothing and keeps the review open.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from yolo_tools.conversion import run_version
from yolo_tools.convert import corrections
from yolo_tools.convert.registry import converter
from yolo_tools.dataset import Dataset, place
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe
from yolo_tools.review import fiftyone_inspect, label_studio
from yolo_tools.review.fiftyone_inspect import labels_of
from yolo_tools.runs import run_recipe, weights_of
from yolo_tools.sources import locate

LOG = logging.getLogger(__name__)

REVIEWS = "reviews"
CONTROL = {"boxes": "RectangleLabels", "masks": "PolygonLabels", "classes": "Choices"}  # per kind of label (`Task.labels`)


def _run(run: str | Path) -> tuple[Path, Recipe]:
    _, run_dir = weights_of(run)
    recipe = run_recipe(run_dir) if run_dir else None
    if recipe is None:
        raise UserError(f"{run}: a review needs a run folder made by yolo_tools train (runs/<recipe>/<name>)")
    return run_dir, recipe


def reviews_dir(recipe_name: str) -> Path:
    return corrections.folder(recipe_name) / REVIEWS


def _records(recipe_name: str) -> dict[str, dict[str, Any]]:
    folder = reviews_dir(recipe_name)
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise UserError(f"{path}: this review record is damaged (not JSON); restore it or remove it") from None
    return found


def _save(recipe_name: str, record: dict[str, Any]) -> Path:
    """The review record, whole or not at all."""
    path = reviews_dir(recipe_name) / f"{record['key']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    partial.replace(path)
    return path


def _pending(recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
    """Corrections made since the run's own dataset version, by image: the labels a reviewer starts from include them."""
    own = {entry.file for entry in recipe.data.corrections or []}
    by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in corrections.current(recipe.name):
        if entry.file not in own:
            for record in corrections.read(recipe.name, entry):
                by_image[str(record["image"])].append(record)
    return by_image


def _labels_now(
    recipe: Recipe, converted: Dataset, split: str, item: dict[str, Any], pending: dict[str, list[dict[str, Any]]]
) -> list[str] | str:
    """An image's labels as the corrected dataset would hold them now."""
    records = pending.get(item["image"], [])
    if labels_of(recipe.task) == "classes":
        label = Path(item["path"]).parent.name
        for record in records:
            label = record["new"]
        return label
    path = converted.label_file(split, item["image"])
    lines = path.read_text().splitlines() if path.is_file() else []
    return corrections.corrected_lines(lines, records)


def annotate(
    run: str | Path, overrides: dict[str, Any] | None = None, worst: int = 10, tags: list[str] | None = None,
    view: str | None = None, split: str = "val",
) -> dict[str, Any]:
    """Send the run's worst images of `split` (or those with `tags`, or the saved FiftyOne `view`) to a new Label
    Studio project, their labels and the model's false findings as the pre-annotation; returns the review record.

    `split="train"` reviews the images the run learnt from: the corrections then change what the next run learns,
    while a review of val changes what runs are scored against."""
    run_dir, recipe = _run(run)
    fiftyone_inspect.check_split(split)
    if worst < 1:
        raise UserError(f"--worst {worst}: give how many images to review (1 or more)")
    unknown = sorted(set(tags or []) - set(fiftyone_inspect.REVIEW_TAGS))
    if unknown:
        raise UserError(f"--tags: {', '.join(unknown)} is no tag inspect sets; choose from {', '.join(fiftyone_inspect.REVIEW_TAGS)}")
    open_ = {key: record for key, record in _records(recipe.name).items() if record.get("status") == "open"}
    if open_:
        key, record = next(iter(open_.items()))
        raise UserError(
            f"review {key} of recipe '{recipe.name}' is still open (Label Studio project {record['project']} at "
            f"{record['url']}); one review per dataset at a time, since its corrections are made against the labels "
            f"it sent. Load it first: yolo_tools inspect {record['run']} --load {key}"
        )
    corrections.check_place(recipe.name)
    server = label_studio.connect()  # a server that is down or a wrong token fails now, before the predictions
    if view is None:
        # the printed table stays the default ten rows however many images go to review
        fiftyone_inspect.inspect_run(run_dir, overrides, app=False, split=split)
    items = fiftyone_inspect.select_for_review(recipe, run_dir, worst, list(tags or []), view, split)
    if not items:
        raise UserError(f"no image of run {run_dir} has the tags {', '.join(tags or [])}; nothing to review")
    converted = Dataset(place(recipe.name, run_version(recipe, run_dir), latest=False), recipe.task)
    pending = _pending(recipe)
    key = "ls-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    tasks, truth = [], {}
    for item in items:
        labels = _labels_now(recipe, converted, split, item, pending)
        regions = fiftyone_inspect.truth_regions(recipe.task, labels, list(recipe.classes), item["width"], item["height"])
        truth[item["image"]] = {region["id"]: line for region, line in zip(regions, labels if isinstance(labels, list) else [labels])}
        tasks.append({
            "data": {"image": item["path"], "yolo_tools_image": item["image"], "model": f"model: {item['model_text']}"},
            "predictions": [{"model_version": key, "result": regions + item["model"]}],
        })  # fmt: skip
    dimmed = [fiftyone_inspect.MODEL_PREFIX + name for name in recipe.classes] if labels_of(recipe.task) != "classes" else []
    config = label_studio.label_config(
        CONTROL[labels_of(recipe.task)], fiftyone_inspect.FROM_NAME[labels_of(recipe.task)], list(recipe.classes), dimmed,
        header="$model" if labels_of(recipe.task) == "classes" else None,
    )  # fmt: skip
    description = (f"yolo-tools review {key} of run {run_dir}: labels in green, the model's false findings in orange "
                   "('model: <class>': relabel one to its class to accept it)")
    project = label_studio.create_project(server, f"yolo-tools {recipe.name}/{run_dir.name} {key}", config, description, key)
    try:
        urls = label_studio.upload_images(server, project, [Path(item["path"]) for item in items])
        for task in tasks:
            task["data"]["image"] = urls[Path(task["data"]["image"])]
        ids = label_studio.import_tasks(server, project, tasks, "yolo_tools_image")
        record = {
            "key": key, "status": "open", "recipe": recipe.name, "task": recipe.task, "classes": list(recipe.classes),
            "run": str(run_dir), "dataset_fingerprint": run_version(recipe, run_dir), "url": server.url, "project": project,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by": server.user,
            "tasks": {str(ids[item["image"]]): {"image": item["image"], "split": split, "truth": truth[item["image"]]} for item in items},
        }  # fmt: skip
        path = _save(recipe.name, record)
    except BaseException:
        label_studio.delete_project(server, project)
        raise
    first = min(int(task_id) for task_id in record["tasks"])
    print(f"review {key}: {len(items)} images of {run_dir} in Label Studio project {project} ({server.url}/projects/{project})")
    print(f"  first task: {label_studio.task_page(server, project, first)}")
    print("  labels are green; the model's false findings orange ('model: <class>': relabel one to its class to accept it)")
    print(f"  when reviewed: yolo_tools inspect {run_dir} --load {key}    (record: {path})")
    return record


def load(run: str | Path, key: str, without_deleted: bool = False) -> Path | None:
    """Read review `key` back from Label Studio and write its corrections; returns the corrections file (None
    when the reviewers changed nothing)."""
    run_dir, recipe = _run(run)
    records = _records(recipe.name)
    if key not in records:
        known = ", ".join(f"{k} ({r.get('status')})" for k, r in records.items()) or "none"
        raise UserError(f"no review {key!r} of recipe '{recipe.name}' in {reviews_dir(recipe.name)} (reviews: {known})")
    record = records[key]
    if record.get("status") != "open":
        raise UserError(f"review {key} was loaded already (into {record.get('corrections') or 'no corrections: nothing changed'}); "
                        "start a new review to change more")
    server = label_studio.connect(record["url"])
    project = int(record["project"])
    if not label_studio.project_exists(server, project):
        raise UserError(
            f"Label Studio at {server.url}: project {project} of review {key} is gone (deleted in Label Studio?); "
            f"nothing was loaded and the review stays open. To drop it, remove {reviews_dir(recipe.name) / (key + '.json')}"
        )
    tasks = {str(task["id"]): task for task in label_studio.project_tasks(server, project)}
    missing = [task_id for task_id in record["tasks"] if task_id not in tasks]
    if missing and not without_deleted:
        names = ", ".join(f"task {t} ({record['tasks'][t]['image']})" for t in missing[:5])
        raise UserError(
            f"Label Studio at {server.url}, project {project}: {len(missing)} task(s) of review {key} are gone "
            f"(deleted in Label Studio): {names}; nothing was loaded and the review stays open. Load the others "
            f"with: yolo_tools inspect {run_dir} --load {key} --without-deleted"
        )
    _check_images_exist(recipe, record)
    who = label_studio.users(server)
    found: list[dict[str, Any]] = []
    unreviewed = 0
    for task_id, sent in record["tasks"].items():
        task = tasks.get(task_id)
        annotations = [a for a in (task or {}).get("annotations", []) if not a.get("was_cancelled")]
        if not annotations:
            unreviewed += task is not None
            continue
        latest = max(annotations, key=lambda a: a.get("updated_at") or "")
        try:
            now = fiftyone_inspect.labels_from_results(record["task"], latest.get("result") or [], record["classes"])
        except ValueError as error:
            raise UserError(
                f"Label Studio at {server.url}, project {project}, task {task_id} ({sent['image']}): label {error} is "
                f"not a class of recipe '{recipe.name}' ({', '.join(record['classes'])}); relabel it in Label Studio "
                "(or add the class to the recipe and convert again), then load again. Nothing was loaded"
            ) from None
        stamp = {"image": sent["image"], "split": sent["split"], "task": int(task_id), "review": key,
                 "who": who.get(latest.get("completed_by"), str(latest.get("completed_by", ""))),
                 "when": latest.get("updated_at") or latest.get("created_at")}  # fmt: skip
        found += _diff(record["task"], sent["truth"], now, stamp)
    path = corrections.write(recipe.name, key, found) if found else None
    counts = {action: sum(r["action"] == action for r in found) for action in corrections.ACTIONS}
    _save(recipe.name, {**record, "status": "loaded", "loaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "corrections": path.name if path else None, "counts": counts, "unreviewed": unreviewed,
                        "deleted_tasks": missing})  # fmt: skip
    reviewed = len(record["tasks"]) - unreviewed - len(missing)
    print(f"review {key}: {reviewed} of {len(record['tasks'])} tasks reviewed; {counts['changed']} labels changed, "
          f"{counts['added']} added, {counts['removed']} removed" + (f"; {len(missing)} deleted tasks left out" if missing else ""))
    if path:
        print(f"corrections: {path}\n  the next convert or train of recipe '{recipe.name}' makes the corrected dataset version; "
              f"score this run on it with: yolo_tools evaluate {run_dir} --corrected")
    return path


def _diff(task: str, sent: dict[str, str], now: dict[str, str], stamp: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed, region by region: regions are matched by the ids they were sent with."""
    found = []
    for region, old in sent.items():
        if region not in now:
            found.append({**stamp, "action": "removed", "old": old, "new": None})
        elif (now[region] != old) if labels_of(task) == "classes" else not corrections.same_line(now[region], old):
            found.append({**stamp, "action": "changed", "old": old, "new": now[region]})
    for region, new in now.items():
        if region not in sent:
            if labels_of(task) == "classes" and sent:  # one class per image: a new choice replaces the old one
                old = next(iter(sent.values()))
                if new != old:
                    found.append({**stamp, "action": "changed", "old": old, "new": new})
                continue
            found.append({**stamp, "action": "added", "old": None, "new": new})
    return found


def _check_images_exist(recipe: Recipe, record: dict[str, Any]) -> None:
    """Every reviewed image is still in the recipe's source: a correction of an image that is gone would only fail later."""
    src = locate(recipe, None)
    names = {sample.name for sample in converter(recipe.data.converter).samples(src, recipe)}
    gone = [(task_id, sent["image"]) for task_id, sent in record["tasks"].items() if sent["image"] not in names]
    if gone:
        shown = ", ".join(f"{image} (task {task_id})" for task_id, image in gone[:5])
        raise UserError(
            f"{src}: {len(gone)} reviewed image(s) are no longer in the source of recipe '{recipe.name}': {shown}; "
            "restore them and load again. Nothing was loaded and the review stays open"
        )
