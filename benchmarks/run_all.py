"""Every benchmark in turn, then RESULTS.md rebuilt from their JSON (`make bench`).

    nice -n 5 .venv/bin/python -m benchmarks.run_all                 # convert, inference, training, accuracy
    nice -n 5 .venv/bin/python -m benchmarks.run_all --only convert inference
    .venv/bin/python -m benchmarks.run_all --quick                   # one small round of each: does it still run?

About 45 minutes on 2 shared CPU cores, most of it the accuracy trainings (30 epochs per recipe). A topic
that fails is reported and the others still run; the exit status says whether all of them passed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from benchmarks import accuracy, common, convert, inference, report, training

TOPICS = {"convert": convert.main, "inference": inference.main, "training": training.main, "accuracy": accuracy.main}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=list(TOPICS), help="run only these topics")
    p.add_argument("--quick", action="store_true", help="one small round of each (results go to a scratch folder)")
    args = p.parse_args(argv)
    failed = []
    extra = ["--quick", "--results", str(common.work_dir() / "quick-results")] if args.quick else []
    for topic, run in TOPICS.items():
        if args.only and topic not in args.only:
            continue
        print(f"\n######## {topic}")
        started = time.perf_counter()
        try:
            run(extra)
        except (Exception, SystemExit) as exc:  # one broken topic must not hide the others' numbers
            if isinstance(exc, SystemExit) and not exc.code:
                continue
            traceback.print_exc()
            failed.append(topic)
        print(f"######## {topic}: {time.perf_counter() - started:.0f} s")
    if not args.quick:
        report.main([])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
