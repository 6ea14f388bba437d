"""The 44 items of CLAIM's 2024 update, by number, each answered from what a study knows.

CLAIM, the Checklist for Artificial Intelligence in Medical Imaging, 2024 update: Tejani AS, Klontzas ME,
Gatti AA, Mongan JT, Moy L, Park SH, Kahn CE Jr. Radiology: Artificial Intelligence 2024; 6(4): e240300.
The subjects below are our own short paraphrases of each item (the checklist itself is RSNA's; consult it
for the full wording). An answer says what the workbench knows (data card, split, headers, recipe,
training, evaluation) and, where only the authors can say it (the clinical question, the annotators,
registration, funding), what is left for them: such an item is marked `for the authors`, one the
workbench answers in part `partly`.

Each answer reads the study's summary.json (`s`) and the sentences the pages share (`f`), so the
checklist states the same numbers as the study page and the model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yolo_tools import tasks

ANSWERED, PARTLY, AUTHORS = "answered", "partly", "for the authors"


@dataclass(frozen=True)
class Answer:
    text: str
    status: str  # ANSWERED, PARTLY or AUTHORS
    authors: str = ""  # what is left for the authors


@dataclass(frozen=True)
class Item:
    number: int
    section: str
    subject: str
    answer: Callable[[dict[str, Any], dict[str, str]], Answer]


def _authors(what: str) -> Callable[[dict[str, Any], dict[str, str]], Answer]:
    """An item only the authors can answer: `what` is left to them."""
    return lambda s, f: Answer("", AUTHORS, what)


def _model(s: dict[str, Any]) -> str:
    start = s["recipe"]["start"] or s["recipe"]["model"]
    return f"Ultralytics YOLO `{start}`, a convolutional network for {tasks.get(s['recipe']['task']).kind}"


def _initialisation(s: dict[str, Any], f: dict[str, str]) -> Answer:
    start = str(s["recipe"]["start"] or s["recipe"]["model"])
    pretrained = s["setup"]["train"].get("pretrained")
    if start.endswith((".yaml", ".yml")) and not (isinstance(pretrained, str) and pretrained.endswith(".pt")):
        return Answer(f"Random initialisation (Ultralytics' defaults): every model started from the architecture `{start}`, "
                      "without pretrained weights.", ANSWERED)
    source = pretrained if isinstance(pretrained, str) and pretrained.endswith(".pt") else start
    return Answer(f"Transfer learning: the models started from the weights `{source}` (matching layers copied by Ultralytics).",
                  PARTLY, "name the data those weights were trained on (COCO for Ultralytics' official weights)")


def _preprocessing(s: dict[str, Any], f: dict[str, str]) -> Answer:
    pre, train = s["recipe"]["preprocess"], s["setup"]["train"]
    intensity = pre.get("intensity")
    settings = ", ".join(f"{k} {v}" for k, v in (intensity or {}).items() if k != "mode" and v is not None)
    mapping = (f"intensities mapped to 8 bits by the `{intensity['mode']}` rule" + (f" ({settings})" if settings else "") if intensity
               else "images used as published (8-bit) or mapped by the file's own window (DICOM)")
    context = ", with neighbouring slices as the other two channels (2.5D)" if pre.get("context") else ""
    return Answer(f"Converted by the `{s['data']['converter']}` reader; {mapping}{context}; resized by "
                  f"Ultralytics to imgsz={train.get('imgsz', 640)}; augmentation: Ultralytics' defaults for the task with "
                  f"the recipe's and command line's arguments ({f['train_args']}).", ANSWERED)


def _sources(s: dict[str, Any], f: dict[str, str]) -> Answer:
    data = s["data"]
    url = f" ({data['url']})" if data["url"] else ""
    where = f" (read from {data['licence_from']})" if data["licence_from"] else ""
    text = f"`{data['source']}`{url}; licence or terms: {f['licence']}{where}."
    return Answer(text, ANSWERED if data["licence"] else PARTLY, "" if data["licence"] else "state the data's licence or terms of use")


def _eligibility(s: dict[str, Any], f: dict[str, str]) -> Answer:
    data = s["data"]
    left = sum(data["left_out"].values())
    text = (f"Every image the converter could read was included: {sum(data['images'].values())} images of "
            f"{sum(data['patients'].values())} patients; {data['skipped']} skipped as unusable (reasons in the dataset card)"
            + (f", {left} left out before conversion" if left else "") + ".")
    return Answer(text, PARTLY, "how, where and when the source's patients were selected")


def _deidentification(s: dict[str, Any], f: dict[str, str]) -> Answer:
    found = s["data"]["deidentification"]
    if not found:
        return Answer("The source holds no DICOM files, so no header says how it was de-identified.", AUTHORS,
                      "the publisher's de-identification method")
    removed = ", ".join(f"{value} in {count}" for value, count in found["patient_identity_removed"].items())
    methods = "; ".join(f"'{value}' in {count}" for value, count in found["method"].items())
    return Answer(f"DICOM headers of {found['files']} files: Patient Identity Removed (0012,0062) {removed}; "
                  f"De-identification Method (0012,0063) {methods}" + (f"; {found['unreadable']} unreadable" if found["unreadable"] else "")
                  + ".", PARTLY, "confirm the method meets the applicable rules (HIPAA, GDPR)")


def _missing(s: dict[str, Any], f: dict[str, str]) -> Answer:
    data = s["data"]
    meta = data["metadata"]
    text = f"{data['skipped']} source files were skipped (unreadable or unusable labels; listed in the dataset card), none imputed."
    if meta:
        text += (f" Patient fields: {meta['patients_matched']} of {meta['patients']} patients matched; images without are "
                 "grouped as '(unknown)'.")
    return Answer(text, ANSWERED)


def _partitions(s: dict[str, Any], f: dict[str, str]) -> Answer:
    balance = s["recipe"]["class_balance"]
    imbalance = ("smaller classes oversampled in training" if balance == "oversample"
                 else f"class weighting cls_pw={s['setup']['train']['cls_pw']}" if "cls_pw" in s["setup"]["train"]
                 else "no resampling or weighting of classes")
    return Answer(f"Test split first: {f['test_rule']} ({f['test_patients']} patients, {f['test_images']} images), by the rule "
                  f"`{f['split_by']}`; the other {f['cv_patients']} patients ({f['cv_images']} images) cut into {s['cv']['folds']} "
                  f"folds by patient (scikit-learn's group k-fold, seed {s['cv']['fold_seed']}). Class imbalance: {imbalance}.", ANSWERED)


def _training(s: dict[str, Any], f: dict[str, str]) -> Answer:
    folds = s["cv"]["folds"]
    models = f"{folds} fold models" + (" and one retrained on all train and val images" if s["retrained"] else "")
    return Answer(f"Ultralytics' trainer (optimizer, learning-rate schedule and augmentation as its defaults unless set): "
                  f"{f['train_args']}; {models}; convergence followed on each fold's held-out patients (learning curves).", ANSWERED)


def _selection(s: dict[str, Any], f: dict[str, str]) -> Answer:
    text = ("Each fold kept the epoch with the best Ultralytics fitness on its own held-out patients (best.pt); "
            f"the operating point: {f['point']}.")
    if s["retrained"]:
        text += f" The retrained model: {f['retrained']}, its last epoch kept."
    return Answer(text, ANSWERED)


def _uncertainty(s: dict[str, Any], f: dict[str, str]) -> Answer:
    boot = s["test"].get("bootstrap") or {}
    return Answer(f"95% percentile-bootstrap intervals over patients ({boot.get('n_boot')} resamples, seed {boot.get('seed')}, "
                  f"{boot.get('patients')} test patients); mean ± SD over the {s['cv']['folds']} folds. No significance test.",
                  PARTLY, "tests against a comparator, if any")


def _robustness(s: dict[str, Any], f: dict[str, str]) -> Answer:
    groups = " and by patient field on the test split" if s["data"]["demographics"] else ""
    return Answer(f"Spread over the {s['cv']['folds']} folds (SD){groups}.", PARTLY, "further sensitivity analyses")


def _internal(s: dict[str, Any], f: dict[str, str]) -> Answer:
    return Answer(f"Cross-validation on {f['cv_patients']} patients, then once on {f['test_patients']} held-out patients of the same "
                  f"source with {f['ensemble']}: {f['headline']}. Patient-wise split: {f['patient_wise']}.", ANSWERED)


def _flow(s: dict[str, Any], f: dict[str, str]) -> Answer:
    data = s["data"]
    images = data["images"]
    return Answer(f"{sum(images.values()) + data['skipped']} source images, {data['skipped']} skipped; converted: train "
                  f"{images.get('train', 0)}, val {images.get('val', 0)}, test {images.get('test', 0)} images "
                  f"({data['patients'].get('train', 0)}, {data['patients'].get('val', 0)}, {data['patients'].get('test', 0)} patients); "
                  f"train and val pooled into {s['cv']['folds']} folds.", PARTLY, "a flow diagram from the source population")


def _demographics(s: dict[str, Any], f: dict[str, str]) -> Answer:
    rows = s["data"]["demographics"]
    if not rows:
        return Answer("The data holds no patient fields (no data.metadata in the recipe).", AUTHORS,
                      "age, sex and clinical characteristics per split, where the source gives them")
    fields = sorted({row["field"] for row in rows})
    return Answer(f"Patients per split by {', '.join(fields)}: the table 'Patients per split by patient field' of the study page.",
                  PARTLY, "clinical characteristics the metadata lacks")


def _performance(s: dict[str, Any], f: dict[str, str]) -> Answer:
    groups = "; per patient field on the study page" if s["data"]["demographics"] else ""
    return Answer(f"Out of fold (mean ± SD over folds): {f['cv_headline']}. Test: {f['headline']}{groups}.", ANSWERED)


def _accuracy(s: dict[str, Any], f: dict[str, str]) -> Answer:
    roc = " ROC curve and calibration on the study page." if s["test"].get("roc") else ""
    return Answer(f"On the test split, with 95% intervals over patients: {f['headline']}.{roc} Calibration: {f['calibration']}.", ANSWERED)


def _failures(s: dict[str, Any], f: dict[str, str]) -> Answer:
    matrix = " and the confusion matrix" if s["test"].get("metrics", {}).get("confusion_matrix") else ""
    metric = s["test"]["per_image_metric"]["column"]
    return Answer(f"The worst test images by {metric} are shown with truth and prediction{matrix} (study page; every image in "
                  "test/per_image.csv).", PARTLY, "the clinical reading of the failures")


def _limitations(s: dict[str, Any], f: dict[str, str]) -> Answer:
    known = [f"one source ({s['data']['source']}), no external test", f"{f['test_patients']} test patients (see the intervals' width)"]
    if f["caveat"]:
        known.append(f["caveat"])
    if f["point_shift"]:
        known.append(f"the operating point's rates moved from the folds to the test ensemble ({f['point_shift']})")
    return Answer("Known to the workbench: " + "; ".join(known) + ".", PARTLY, "bias, generalisability and the clinical limits")


def _availability(s: dict[str, Any], f: dict[str, str]) -> Answer:
    return Answer(f"Software: {f['software']}; the study is repeated by "
                  f"`{s['command']}`; weights in {s['root']}/cv/fold<i>/weights/; data from {s['data']['url'] or s['data']['source']}.",
                  PARTLY, "whether and where code, weights and data are released, and on what terms")


ITEMS: list[Item] = [
    Item(1, "Title and abstract", "The title says the study uses AI and names the kind (e.g. deep learning)",
         lambda s, f: Answer(f"The model is deep learning: {_model(s)}.", PARTLY, "the title")),
    Item(2, "Title and abstract", "A structured abstract: design, methods, results, conclusions",
         lambda s, f: Answer(f"Results to quote: {f['headline']} ({f['test_patients']} test patients).", PARTLY, "the abstract")),
    Item(3, "Introduction", "Scientific and clinical background; the intended use and role of the AI",
         lambda s, f: Answer(f"Intended task (the recipe's description): {(s['recipe']['description'] or s['recipe']['name']).rstrip('.')}.", PARTLY,
                             "the clinical background and the role in the care pathway")),
    Item(4, "Introduction", "Aims, objectives and hypotheses", _authors("the aims and hypotheses")),
    Item(5, "Methods: study design", "Prospective or retrospective",
         lambda s, f: Answer(f"Retrospective: the images were published before this study ({s['data']['source']}).", ANSWERED)),
    Item(6, "Methods: study design", "The study's goal (model development, feasibility, non-inferiority, ...)",
         lambda s, f: Answer("Model development with cross-validation by patient and a held-out internal test set.", PARTLY,
                             "the goal in clinical terms")),
    Item(7, "Methods: data", "Where the data come from, with links to public sets", _sources),
    Item(8, "Methods: data", "Inclusion and exclusion criteria", _eligibility),
    Item(9, "Methods: data", "Preprocessing of the data", _preprocessing),
    Item(10, "Methods: data", "Which subsets of the data were selected, and why",
         lambda s, f: Answer("No subset was selected: every convertible image was used (see item 8).", PARTLY,
                             "any selection made before the data reached the workbench")),
    Item(11, "Methods: data", "How the data were de-identified", _deidentification),
    Item(12, "Methods: data", "How missing data were handled", _missing),
    Item(13, "Methods: data", "Image acquisition: equipment and protocol", _authors("scanners, protocols and resolution of the source")),
    Item(14, "Methods: reference standard", "Definition of the reference standard, precise enough to replicate",
         lambda s, f: Answer(f"The annotations as published with the data, read by the `{s['data']['converter']}` converter "
                             f"(classes: {', '.join(s['recipe']['classes'])}).", PARTLY, "how the publisher defined them")),
    Item(15, "Methods: reference standard", "Why this reference standard was chosen", _authors("the rationale")),
    Item(16, "Methods: reference standard", "Who annotated, with what qualifications and instructions", _authors("the annotators")),
    Item(17, "Methods: reference standard", "Annotation procedures and tools", _authors("the annotation tools and procedure")),
    Item(18, "Methods: reference standard", "Inter- and intra-rater variability, and how disagreements were resolved",
         _authors("the variability of the annotations")),
    Item(19, "Methods: data partitions", "How data were assigned to partitions, in what proportions", _partitions),
    Item(20, "Methods: data partitions", "The level at which partitions are disjoint (patient, study, image)",
         lambda s, f: Answer(f"Patient-wise: {f['patient_wise']} (rule `{f['split_by']}`); the cv folds are cut by the same patients.",
                             ANSWERED if s["data"]["patient_wise"] else PARTLY, "" if s["data"]["patient_wise"] else "how patients map to images")),
    Item(21, "Methods: testing data", "Size of the test set and how it was determined",
         lambda s, f: Answer(f"{f['test_images']} images of {f['test_patients']} patients: {f['test_rule']}; not from a power calculation.",
                             PARTLY, "a justification of the size")),
    Item(22, "Methods: model", "The model in detail: inputs, outputs, layers",
         lambda s, f: Answer(f"{_model(s)}; input {s['setup']['train'].get('imgsz', 640)} px, 3 channels; output: "
                             f"{ {'detect': 'boxes with class and confidence', 'segment': 'masks with class and confidence', 'classify': 'class probabilities'}[s['recipe']['task']] } "
                             f"for {', '.join(s['recipe']['classes'])}. Layers: Ultralytics' model definition of that name.", ANSWERED)),
    Item(23, "Methods: model", "Software libraries and their versions",
         lambda s, f: Answer(f"{f['software']}.", ANSWERED)),
    Item(24, "Methods: model", "How parameters were initialised (random, transfer learning)", _initialisation),
    Item(25, "Methods: training", "Training details: augmentation, hyperparameters, number of models", _training),
    Item(26, "Methods: training", "How the final model was selected", _selection),
    Item(27, "Methods: training", "Ensembling, if any",
         lambda s, f: Answer(f"Yes: {f['ensemble']}, scored on the test split.", ANSWERED)),
    Item(28, "Methods: evaluation", "Performance metrics, and comparison with published models",
         lambda s, f: Answer(f"{', '.join(s['headline'])}: {s['test']['conventions']}.", PARTLY, "a comparison with published models")),
    Item(29, "Methods: evaluation", "Uncertainty (intervals) and statistical tests", _uncertainty),
    Item(30, "Methods: evaluation", "Robustness or sensitivity analysis", _robustness),
    Item(31, "Methods: evaluation", "Explainability methods and how they were checked",
         lambda s, f: Answer("None applied; predictions are shown drawn on the worst test images.", AUTHORS, "any explainability analysis")),
    Item(32, "Methods: evaluation", "Testing on internal data", _internal),
    Item(33, "Methods: evaluation", "Testing on external data, or why not",
         lambda s, f: Answer("None in this study (`yolo_tools evaluate RUN --data SRC` scores an outside set).", AUTHORS,
                             "external testing or the reason for its absence")),
    Item(34, "Methods: evaluation", "Trial registration, where it applies", _authors("registration")),
    Item(35, "Results: data", "Numbers of cases included and excluded, as a flow", _flow),
    Item(36, "Results: data", "Demographic and clinical characteristics of each partition", _demographics),
    Item(37, "Results: model performance", "Performance of the final model(s) on every partition and subgroup", _performance),
    Item(38, "Results: model performance", "Accuracy estimates with 95% intervals", _accuracy),
    Item(39, "Results: model performance", "Analysis of the failures", _failures),
    Item(40, "Discussion", "Limitations: bias, uncertainty, generalisability", _limitations),
    Item(41, "Discussion", "Implications for practice and intended use", _authors("the implications for practice")),
    Item(42, "Other information", "Where the full protocol can be read",
         lambda s, f: Answer(f"The command `{s['command']}` and {s['root']}/study.json hold the settings.", PARTLY, "the protocol")),
    Item(43, "Other information", "Availability of software, models and data", _availability),
    Item(44, "Other information", "Funding and the funders' role", _authors("funding")),
]
