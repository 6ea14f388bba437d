"""`yolo_tools VERB ...`: argument parsing only; the work is in `pipeline` and the modules it calls.

Like `yolo` itself, every verb takes Ultralytics arguments as trailing `key=value` pairs.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from yolo_tools import __version__
from yolo_tools.convert import registry
from yolo_tools.errors import UserError

EXAMPLES = """examples:
  yolo_tools demo                                   synthetic data, CPU, a few minutes
  yolo_tools train recipes/kidney.yaml epochs=3 imgsz=320
  yolo_tools train --resume runs/kidney/train
  yolo_tools val runs/kidney/train
  yolo_tools tune recipes/kidney.yaml iterations=20 epochs=10 use_ray=True   best → runs/kidney/tune/best_recipe.yaml
  yolo_tools predict runs/kidney/train path/to/images/ conf=0.25
  yolo_tools predict runs/hippocampus/train imagesTs/ --format nifti   label volumes on the inputs' grids
  yolo_tools predict runs/heart/a images/ augment=True --ensemble runs/heart/b   two models fused, with TTA
  yolo_tools evaluate runs/heart/a --ensemble runs/heart/b   the ensemble on a's val split (<run>/eval-ensemble/)
  yolo_tools evaluate runs/kidney/train             Dice/IoU, errors per image, AUC... in <run>/eval/
  yolo_tools evaluate runs/kidney/train --split test   the held-out test split, in <run>/eval-test/
  yolo_tools evaluate runs/pneumonia/a --data chest_xray/test --format class-folders   an outside set (<run>/eval-outside-test/)
  yolo_tools evaluate runs/hippocampus/a --data other_mri/ --format nifti --option layout=folders
  yolo_tools cv recipes/heart.yaml folds=5          patient-wise cross-validation: runs/heart/cv/cv/summary.md
  yolo_tools study heart-test.yaml folds=5 epochs=100   cv, operating point, test, model card, CLAIM: runs/heart/study/
  yolo_tools report runs/kidney/train               <run>/report/report.html and report.md
  yolo_tools inspect runs/kidney/train --port 5151  mistakes in FiftyOne, worst images first
  yolo_tools inspect runs/kidney/train --annotate --worst 50   the 50 worst into Label Studio; then --load KEY
  yolo_tools evaluate runs/kidney/train --corrected   the run on the corrected labels (<run>/eval-corrected/)
  yolo_tools compare runs/kidney/a runs/kidney/b    two runs on the same patients, paired bootstrap intervals
  yolo_tools export runs/kidney/train format=onnx
  yolo_tools convert recipes/kidney.yaml
  yolo_tools pull WORKSPACE/PROJECT/VERSION         a Roboflow dataset into the data root (ROBOFLOW_API_KEY)
  yolo_tools pull http://pacs:8042/dicom-web/studies?ModalitiesInStudy=CT   a PACS's studies (DICOMweb; ~/.netrc)
  yolo_tools predict runs/liver/train http://pacs:8042/dicom-web/studies/1.2.3 --store   SEG/SR back into the PACS
  yolo_tools app --port 7860                        a local web page: upload an image, pick a run, see findings
"""


# `evaluate --data SRC --format F`: the readers of published formats, from the one registry (yolo_tools/convert/,
# which imports no reader: the command line stays quick to start).
OUTSIDE_FORMATS = list(registry.FORMATS)
# What is true after Ctrl-C, by verb, where the interrupt carries no advice of its own; others say only that they
# were interrupted.
INTERRUPTED = {
    "cv": "run the same cv command again: it goes on at the first unfinished fold",
    "study": "run the same command again: the study goes on from its first unfinished step",
    "convert": "nothing was half-written (a dataset appears whole or not at all, and an earlier one is kept): run the "
               "same convert command again",
    "pull": "run the same pull again: the series already here are kept and only the others are fetched",
    "predict": "run the same command again (with --store, the studies already stored are found and skipped)",
}


def _train(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    if args.resume:
        if args.recipe or args.overrides:
            extra = " ".join([*([args.recipe] if args.recipe else []), *args.overrides])
            raise UserError(
                f"--resume continues a run with its own recipe and arguments; '{extra}' would be ignored. "
                f"To train longer or differently, start a new run from its weights: "
                f"yolo_tools train {args.resume}/recipe.yaml model={args.resume}/weights/last.pt epochs=N"
            )
        pipeline.resume_run(args.resume)
        return
    if not args.recipe:
        raise UserError("train needs a recipe (yolo_tools train recipes/kidney.yaml) or --resume RUN")
    pipeline.train_recipe(args.recipe, pipeline.parse_overrides(args.overrides), args.name, args.data_root, args.track)


def _tune(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline
    from yolo_tools.training import tune

    tune.tune_recipe(args.recipe, pipeline.parse_overrides(args.overrides), args.name, args.data_root)


def _val(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    pipeline.validate(args.run, pipeline.parse_overrides(args.overrides))


def _predict(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    if args.store or args.no_verify_tls or _is_url(args.source):
        from yolo_tools import pacs

        if args.ensemble:
            raise UserError("predicting on a PACS's studies takes one run; leave out --ensemble")
        pacs.predict(args.weights, args.source, args.format, args.store, args.out, pipeline.parse_overrides(args.overrides), not args.no_verify_tls)
        return
    if args.format:
        if args.ensemble:
            raise UserError("--format writes one run's predictions; leave out --ensemble")
        pipeline.predict_format(args.weights, args.source, args.format, args.out, pipeline.parse_overrides(args.overrides))
        return
    pipeline.predict([args.weights, *args.ensemble], args.source, args.out, pipeline.parse_overrides(args.overrides))


def _evaluate(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    from yolo_tools.convert.options import read_pairs

    pipeline.evaluate(
        [args.run, *args.ensemble], pipeline.parse_overrides(args.overrides), args.split, args.data, args.format,
        args.operating_point, read_pairs(args.option), corrected=args.corrected,
    )


def _cv(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    pipeline.cross_validate(args.recipe, pipeline.parse_overrides(args.overrides), args.name, args.data_root)


def _study(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    pipeline.study(args.recipe, pipeline.parse_overrides(args.overrides), args.name, args.data_root, args.retrain, args.operating_point)


def _report(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    pipeline.report(args.run, pipeline.parse_overrides(args.overrides), args.eval)


def _export(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline

    pipeline.export(args.weights, pipeline.parse_overrides(args.overrides))


def _convert(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline
    from yolo_tools.conversion import FORMATS
    from yolo_tools.recipe import bundled_recipe

    given = Path(args.recipe)
    is_recipe = args.recipe not in FORMATS and (given.suffix in (".yaml", ".yml") or given.is_file() or bundled_recipe(args.recipe).is_file())
    if args.paths and args.recipe not in FORMATS and not is_recipe:
        raise UserError(f"convert: format '{args.recipe}' is unknown; allowed: {', '.join(FORMATS)} (or give a recipe YAML)")
    if args.recipe not in FORMATS:
        if args.paths:  # a recipe converts alone: what follows it is not a FORMAT's SRC DST
            raise UserError(
                f"convert {args.recipe}: '{' '.join(args.paths)}' is not understood; a recipe is converted alone "
                f"(yolo_tools convert {args.recipe}), a folder in a published format with yolo_tools convert FORMAT SRC DST "
                f"(FORMAT: {', '.join(FORMATS)})"
            )
        if args.option:
            raise UserError(f"--option {args.option[0]}: a recipe sets its reader's options in data.options; --option is for convert FORMAT SRC DST")
        pipeline.convert(args.recipe, args.data_root, args.force)
        return
    if len(args.paths) != 2:
        given = f"; got {len(args.paths)} ({' '.join(args.paths)})" if args.paths else ""
        raise UserError(f"convert {args.recipe} takes a source and a destination folder: yolo_tools convert {args.recipe} SRC DST{given}")
    from yolo_tools.convert.options import read_pairs

    pipeline.convert_format(
        args.recipe, *args.paths, task=args.task, split_by=args.split_by, val=args.val, seed=args.seed, options=read_pairs(args.option)
    )


def _pull(args: argparse.Namespace) -> None:
    from yolo_tools import sources

    sources.pull(args.dataset, args.data_root, args.format, args.path, args.force, not args.no_verify_tls)


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _no_verify_tls(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--no-verify-tls", action="store_true",
        help="DICOMweb: do not check the server's TLS certificate (a test server only; REQUESTS_CA_BUNDLE names a hospital's CA)",
    )


def _inspect(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline
    from yolo_tools.review import fiftyone_inspect

    secret = [item.split("=", 1)[0] for item in args.overrides if SECRET_NAME.search(item.split("=", 1)[0])]
    if secret:  # never echo the value: it would land in the terminal's scrollback and logs
        raise UserError(f"command line: '{secret[0]}=...' looks like a secret; {SECRET_HINT}")
    if args.annotate or args.load or args.tags or args.view or args.without_deleted:
        _review(args)
        return
    fiftyone_inspect.inspect_run(
        args.run, pipeline.parse_overrides(args.overrides), worst=args.worst, app=not args.no_app, port=args.port,
        split=args.split,
    )


SECRET_NAME = re.compile(r"token|api_?key|password|secret", re.IGNORECASE)
SECRET_HINT = (
    "a token is never taken from the command line (shell history, the process list); set LABEL_STUDIO_API_KEY "
    "(and LABEL_STUDIO_URL) in the environment, or put 'machine HOST password TOKEN' in ~/.netrc"
)


def _refuse_secret(text: str) -> str:
    raise argparse.ArgumentTypeError(SECRET_HINT)


def _review(args: argparse.Namespace) -> None:
    """inspect --annotate / --load: the review loop with Label Studio (yolo_tools/review/label_review.py)."""
    from yolo_tools import pipeline
    from yolo_tools.review import label_review

    if args.annotate and args.load:
        raise UserError("--annotate sends a new review, --load KEY reads one back: give one of them")
    if args.load:
        if args.split != "val":
            raise UserError(f"--split goes with --annotate: review {args.load} loads the images it sent, whichever split they are in")
        label_review.load(args.run, args.load, without_deleted=args.without_deleted)
        return
    if not args.annotate:
        raise UserError("--tags, --view and --without-deleted go with --annotate (or --load KEY): e.g. inspect RUN --annotate --tags missed")
    tags = [tag.strip() for tag in (args.tags or "").split(",") if tag.strip()]
    label_review.annotate(
        args.run, pipeline.parse_overrides(args.overrides), worst=args.worst, tags=tags, view=args.view, split=args.split
    )


def _compare(args: argparse.Namespace) -> None:
    from yolo_tools import pipeline
    from yolo_tools.evaluation import compare

    compare.compare_runs(args.run, args.other, pipeline.parse_overrides(args.overrides))


def _app(args: argparse.Namespace) -> None:
    from yolo_tools.review import app

    app.serve(args.port, args.runs)


def _demo(args: argparse.Namespace) -> None:
    from yolo_tools import demo, pipeline

    demo.run(pipeline.parse_overrides(args.overrides))


def _fraction(text: str) -> float:
    """A fraction of the patients, checked when the command line is read so the message names the option."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a fraction between 0 and 1 (exclusive); e.g. --val 0.2 holds out a fifth of the patients")
    return value


def _port(text: str) -> int:
    """A TCP port a local server can listen on, checked before anything is loaded."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number; give one from 1024 to 65535, e.g. --port 7860") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1-65535); give one from 1024 to 65535, e.g. --port 7860")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolo_tools",
        description="Medical images from raw public datasets to trained, evaluated and inspected YOLO models.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"yolo-tools {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, handler: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    def data_root(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-root", help="folder holding raw datasets (default: $YOLO_TOOLS_DATA, else each dataset from ./data or ../shared/data, the first that holds it)")

    def overrides(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("overrides", nargs="*", metavar="key=value", help="Ultralytics arguments")

    def held_out_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--split", choices=["val", "test"], default="val", help="the run's val split (default) or its held-out test split (<run>/eval-test/)")
        sub.add_argument("--data", metavar="SRC", help="an outside folder, converted with the run's recipe, scored whole (<run>/eval-outside-<folder>/)")
        sub.add_argument("--format", choices=OUTSIDE_FORMATS, help="with --data: its reader (default: the recipe's converter)")
        reader_options(sub, "with --data")
        sub.add_argument("--operating-point", metavar="RULE", help="choose a classifier's threshold on val again: youden (default) or sensitivity=0.95")

    def reader_options(sub: argparse.ArgumentParser, when: str) -> None:
        sub.add_argument(
            "--option", action="append", default=[], metavar="KEY=VALUE",
            help=f"{when}: one of the reader's data.options (repeatable), e.g. layout=folders, label_values=[1,2]",
        )

    def ensemble(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--ensemble", action="append", default=[], metavar="RUN",
            help="another run or weights to combine with the first (repeatable): boxes fused (WBF), probabilities or masks averaged",
        )

    sub = verb("train", _train, "train a recipe's model on its data (converted on first use)")
    sub.add_argument("recipe", nargs="?", help="recipe YAML, e.g. recipes/kidney.yaml")
    sub.add_argument("--name", help="run name under runs/<recipe>/ (default: train, train2, ...)")
    sub.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last.pt")
    sub.add_argument("--track", choices=["mlflow", "tensorboard"], help="log this run to MLflow or TensorBoard (overrides the recipe's track)")
    data_root(sub)
    overrides(sub)

    sub = verb("tune", _tune, "search a recipe's hyperparameters (use_ray=True: on Ray Tune); writes a recipe with the best")
    sub.add_argument("recipe", help="recipe YAML, e.g. recipes/kidney.yaml")
    sub.add_argument("--name", help="folder under runs/<recipe>/ (default: tune, tune2, ...)")
    data_root(sub)
    overrides(sub)

    sub = verb("cv", _cv, "patient-wise k-fold cross-validation (folds=5): train and evaluate every fold, mean ± SD in <runs>/<recipe>/<name>/cv/")
    sub.add_argument("recipe", help="recipe YAML, e.g. recipes/heart.yaml; then folds=K fold_seed=S and Ultralytics train arguments")
    sub.add_argument("--name", default="cv", help="folder under runs/<recipe>/ (default: cv); an unfinished cv of that name resumes")
    data_root(sub)
    overrides(sub)

    sub = verb("study", _study, "a whole study: test split apart, cv by patient, operating point out of fold, the fold ensemble "
               "on test with intervals over patients; study.html, model_card.md, claim.md (CLAIM 2024), methods.md in <runs>/<recipe>/study/")
    sub.add_argument("recipe", help="recipe YAML with data.split.test; then folds=K fold_seed=S and Ultralytics train arguments")
    sub.add_argument("--name", default="study", help="folder under runs/<recipe>/ (default: study); an unfinished study of that name resumes")
    sub.add_argument("--retrain", action="store_true", help="also retrain one model on all train+val data for the folds' mean best epoch, scored on test")
    sub.add_argument("--operating-point", metavar="RULE", help="a classifier's threshold rule on the out-of-fold predictions: youden (default), sensitivity=0.95, specificity=0.9")
    data_root(sub)
    overrides(sub)

    sub = verb("val", _val, "validate a run (or weights with data=) and store its metrics")
    sub.add_argument("run", help="run folder (runs/<recipe>/<name>) or weights .pt")
    overrides(sub)

    sub = verb("predict", _predict, "predict on images, or on a PACS's studies; saves annotated images, predictions.csv and .json")
    sub.add_argument("weights", help="run folder or weights .pt/.onnx")
    sub.add_argument(
        "source", help="image, folder or glob; or a PACS's studies as a DICOMweb URL: ROOT/studies/<StudyInstanceUID> or ROOT/studies?<QIDO query>",
    )
    sub.add_argument("--out", help="output folder (default: <run>/predict)")
    sub.add_argument(
        "--format", metavar="FORMAT",
        help="write nifti | dicom-seg (label volumes for NIfTI/DICOM volume inputs), dicom-sr (a TID 1500 Structured Report per "
        "DICOM series: boxes or classes), coco (results JSON) or rle-csv (id,class,segmentation)",
    )
    sub.add_argument(
        "--store", action="store_true",
        help="with a DICOMweb URL: store the SEG or SR into the same server (STOW-RS), one new series per study; studies "
        "these weights already did are skipped",
    )
    _no_verify_tls(sub)
    ensemble(sub)
    overrides(sub)

    sub = verb("evaluate", _evaluate, "score a run on its val split per image, class and patient (files in <run>/eval/)")
    sub.add_argument("run", help="run folder (runs/<recipe>/<name>)")
    held_out_options(sub)
    sub.add_argument("--corrected", action="store_true", help="score on the val split with the label corrections made so far (<run>/eval-corrected/)")
    ensemble(sub)
    overrides(sub)

    sub = verb("report", _report, "write an HTML page and a Markdown file about a run (evaluates it first if needed)")
    sub.add_argument("run", help="run folder (runs/<recipe>/<name>)")
    sub.add_argument("--eval", default="eval", metavar="FOLDER", help="which evaluation to report: eval (val, default), eval-test, eval-outside-<set>")
    overrides(sub)

    sub = verb("export", _export, "export weights, e.g. format=onnx")
    sub.add_argument("weights", help="run folder or weights .pt")
    overrides(sub)

    sub = verb("convert", _convert, "convert a recipe's raw data (or a folder in a published format) into a YOLO dataset")
    sub.add_argument("recipe", metavar="RECIPE|FORMAT", help="recipe YAML, or a format: coco, masks, box-csv, class-folders, nifti, dicom")
    sub.add_argument("paths", nargs="*", metavar="SRC DST", help="with a FORMAT: the source folder and the dataset to write")
    sub.add_argument("--task", choices=list(registry.CONVERTERS["coco"].tasks), help="with coco: boxes (detect, default) or polygons (segment)")
    sub.add_argument("--split-by", default="file", help="with a FORMAT: 'file' (default) or a regex whose group is the patient id")
    sub.add_argument("--val", type=_fraction, default=0.2, help="with a FORMAT: fraction of patients for val (default 0.2)")
    sub.add_argument("--seed", type=int, default=0, help="with a FORMAT: split seed (default 0)")
    reader_options(sub, "with a FORMAT")
    sub.add_argument("--force", action="store_true", help="convert again even if an identical conversion exists")
    data_root(sub)

    sub = verb(
        "pull", _pull,
        "download a Roboflow dataset version (needs ROBOFLOW_API_KEY) or a PACS's studies (DICOMweb) into the data root",
    )
    sub.add_argument(
        "dataset",
        help="WORKSPACE/PROJECT/VERSION, the dataset's Roboflow URL, a recipe with a roboflow or dicomweb source, or a "
        "DICOMweb URL: the server's DICOMweb root followed by /studies/<StudyInstanceUID> or /studies?<QIDO query> "
        "(ModalitiesInStudy, StudyDate=YYYYMMDD-YYYYMMDD, AccessionNumber, PatientID, BodyPartExamined, SeriesDescription). "
        "A DICOMweb login comes from ~/.netrc (or the file NETRC names) or a bearer token in DICOMWEB_TOKEN, never "
        "from the command line; series already pulled are not fetched again, an interrupted pull resumes",
    )
    sub.add_argument("--format", help="Roboflow export format (default: the recipe's, else yolov8; folder for classify)")
    sub.add_argument("--path", help="folder under the data root (default: the recipe's, else <project>-v<version>, or dicomweb-<host>-<digest>)")
    sub.add_argument("--force", action="store_true", help="Roboflow: pull again and replace the folder if it is already there")
    _no_verify_tls(sub)
    data_root(sub)

    sub = verb("inspect", _inspect, "look at a run's mistakes in FiftyOne: evaluate, tag, rank, open the App")
    sub.add_argument("run", help="run folder (runs/<recipe>/<name>)")
    sub.add_argument("--worst", type=int, default=10, metavar="N", help="how many of the worst images to print (default: 10); with --annotate, how many to send")
    sub.add_argument("--port", type=_port, help="App port on 127.0.0.1 (default: FiftyOne's, 5151)")
    sub.add_argument("--no-app", action="store_true", help="build, evaluate and print only; do not serve the App")
    sub.add_argument("--split", default="val", metavar="SPLIT",
                     help="val (default), or train: the images the run learnt from, to find label errors it was taught")
    review = sub.add_argument_group("review in Label Studio (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY; see docs/labels.md)")
    review.add_argument("--annotate", action="store_true", help="send the worst N images (--worst) with their labels and the model's false findings to a new Label Studio project")
    review.add_argument("--tags", metavar="TAG,TAG", help="with --annotate: only images with these tags (false_positive, missed, misclassified)")
    review.add_argument("--view", metavar="NAME", help="with --annotate: every image of a view saved in the FiftyOne App (no new predictions)")
    review.add_argument("--load", metavar="KEY", help="read review KEY back from Label Studio into corrections/<recipe>/KEY.jsonl")
    review.add_argument("--without-deleted", action="store_true", help="with --load: leave out tasks deleted in Label Studio")
    for flag in ("--token", "--api-key", "--label-studio-token"):
        review.add_argument(flag, type=_refuse_secret, help=argparse.SUPPRESS)
    overrides(sub)

    sub = verb("compare", _compare, "two runs on the same patients and labels: each metric's change with a paired bootstrap interval")
    sub.add_argument("run", help="the run to compare against (runs/<recipe>/<name>), e.g. one trained on the published labels")
    sub.add_argument("other", help="the other run of the same recipe, e.g. one trained on the corrected labels")
    overrides(sub)

    sub = verb("app", _app, "serve a local web page (127.0.0.1) to try trained runs on uploaded images")
    sub.add_argument("--port", type=_port, default=7860, help="port on 127.0.0.1 (default: 7860)")
    sub.add_argument("--runs", help="folder of runs to offer (default: $YOLO_TOOLS_RUNS or ./runs)")

    sub = verb("demo", _demo, "train, validate and predict on a synthetic set (no data, GPU or network)")
    overrides(sub)
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Like `yolo`, accept key=value pairs anywhere after the verb, also after options such as --name."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # a verb that has something to say next puts it in the interrupt
        hint = str(stop) or INTERRUPTED.get(args.verb, "")
        print(f"interrupted; {hint}" if hint else "interrupted", file=sys.stderr)
        return 130
    return 0
