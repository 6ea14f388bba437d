"""What every benchmark shares: interleaved repeats, medians, paired ratios, one process per case, tables, JSON.

The machines these run on are noisy (shared cores), so no absolute time is reported on its own: each
candidate is timed next to its baseline in the same run, the cases take turns within every round (the
starting case rotates), and the headline is the median over rounds of the per-round ratio
baseline time / candidate time (> 1: the candidate is faster). Medians and the min-max range of the
ratios are stored beside it in `benchmarks/results/<topic>.json`.

Each case also records the CPU time its process spent (user + system, all threads). When other work
competes for the cores, wall time mostly measures the scheduler while CPU time still measures the work
done, so the CPU-time ratio is given beside the wall-time ratio, and a "not slower" requirement between
two cases running the same engine (workbench vs plain Ultralytics) is judged on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
# Converted datasets, tiny trained weights and run folders the benchmarks make for themselves (git-ignored).
WORK_ENV = "YOLO_TOOLS_BENCH_WORK"


def work_dir() -> Path:
    path = Path(os.environ.get(WORK_ENV, RESULTS_DIR / "work")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def isolate_outputs(work: Path) -> None:
    """Converted datasets and runs go under the work folder (children inherit the environment)."""
    os.environ.setdefault("YOLO_TOOLS_DATASETS", str(work / "datasets"))
    os.environ.setdefault("YOLO_TOOLS_RUNS", str(work / "runs"))


def data_root() -> Path:
    from yolo_tools.locations import data_root as located

    return located()


# --------------------------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run `fn` once; its dict result (if any) is kept beside the measured seconds."""
    cpu_started, started = time.process_time(), time.perf_counter()
    value = fn()
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    out = {"seconds": seconds, "cpu_s": cpu_s}
    if isinstance(value, dict):
        out.update(value)
    return out


def interleave(
    cases: dict[str, Callable[[], dict[str, Any]]],
    repeats: int,
    warmup: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, list[dict[str, Any]]]:
    """Every case once per round, rounds `repeats` times; the first case of a round rotates.

    Each callable returns a dict with at least `seconds`. Warm-up rounds (file cache, lazy imports,
    first-call compilation) are run and thrown away.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            sample = cases[name]()
            samples[name].append(sample)
            log(f"  round {round_ + 1}/{repeats}  {name:<34} {sample['seconds']:8.3f} s")
    return samples


def summarize(samples: Sequence[dict[str, Any]], items: int | None = None, unit: str = "items") -> dict[str, Any]:
    """Median, min and max seconds; throughput per second of the median when `items` is given."""
    seconds = [s["seconds"] for s in samples]
    median = statistics.median(seconds)
    out: dict[str, Any] = {
        "repeats": len(seconds),
        "seconds": [round(s, 4) for s in seconds],
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
    }
    if items:
        out["items"] = items
        out["unit"] = unit
        out["per_s"] = items / median if median > 0 else float("inf")
    for key in ("cpu_s", "peak_rss_mb", "peak_increase_mb", "rss_before_mb", "import_s"):
        values = [s[key] for s in samples if key in s]
        if values:
            out[key] = statistics.median(values)
    return out


def paired_ratio(
    baseline: Sequence[dict[str, Any]], candidate: Sequence[dict[str, Any]], key: str = "seconds"
) -> dict[str, float]:
    """Per-round baseline / candidate (> 1: the candidate takes less), summarised by median and range."""
    ratios = [b[key] / c[key] for b, c in zip(baseline, candidate) if c[key] > 0]
    return {"ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios), "rounds": len(ratios)}


# "Not slower" / "no measurable overhead" is met when the median ratio is at least this: a 5 % margin, the
# least the spread between rounds on a shared machine lets one resolve.
NOT_SLOWER = 0.95


def comparison(
    candidate: str, baseline: str, samples: dict[str, list[dict[str, Any]]], what: str, key: str = "seconds",
    not_slower: bool = False,
) -> dict[str, Any]:
    """The paired ratio of two cases (wall time, or `key`), and of their CPU time when both have it.

    `not_slower` marks a requirement: met when the median CPU-time ratio (else the wall-time ratio) is at
    least NOT_SLOWER.
    """
    out = {"candidate": candidate, "baseline": baseline, "what": what, "key": key,
           **paired_ratio(samples[baseline], samples[candidate], key)}
    if key == "seconds" and all("cpu_s" in x for x in samples[baseline] + samples[candidate]):
        cpu = paired_ratio(samples[baseline], samples[candidate], "cpu_s")
        out.update({"cpu_ratio": cpu["ratio"], "cpu_ratio_min": cpu["ratio_min"], "cpu_ratio_max": cpu["ratio_max"]})
    if not_slower:
        judged = out.get("cpu_ratio", out["ratio"])
        out["requirement"] = f"not slower ({'CPU-time' if 'cpu_ratio' in out else 'median'} ratio >= {NOT_SLOWER})"
        out["met"] = judged >= NOT_SLOWER
    return out


def verdict(c: dict[str, Any]) -> str:
    return "" if "met" not in c else "met" if c["met"] else "NOT met"


# ------------------------------------------------------------------------------------- one process per case


def in_subprocess(target: str, kwargs: dict[str, Any] | None = None, imports: Sequence[str] = (),
                  env: dict[str, str] | None = None, timeout: float | None = None,
                  cpus: set[int] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Call `module:function(**kwargs)` in a fresh interpreter, so that peak memory and imported state
    belong to this case alone; `imports` are loaded before the clock starts (their time is `import_s`).
    `cpus` pins the child (and the processes it starts) to those cores. `cwd` runs it in another folder
    (plain Ultralytics drops its MLflow store, `mlflow.db` and `mlruns/`, in the working folder). Returns
    the child's measurements (see benchmarks/_case.py)."""
    with tempfile.TemporaryDirectory(prefix="bench-case-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "benchmarks._case", target, json.dumps(kwargs or {}), str(out),
                   json.dumps(list(imports))]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        done = subprocess.run(command, cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": path, **(env or {})},
                              capture_output=True, text=True, timeout=timeout,
                              preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        if done.returncode or not out.is_file():
            tail = (done.stdout + done.stderr)[-3000:]
            raise RuntimeError(f"benchmark case {target} failed (exit {done.returncode}):\n{tail}")
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------- reporting


def machine(probe_gpu: bool = True) -> dict[str, Any]:
    """Where the numbers were measured: cores, CPU, GPU (asks torch, unless `probe_gpu` is False), memory,
    library versions, load."""
    info: dict[str, Any] = {
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for package in ("torch", "ultralytics", "onnxruntime", "numpy"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            pass
    info["gpu"] = None
    if probe_gpu:
        try:
            import torch

            info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
            info["torch_threads"] = torch.get_num_threads()
        except ImportError:
            pass
    return info


def command_line(topic: str, argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["nice -n 5 .venv/bin/python -m", f"benchmarks.{topic}", *args]).strip()


def save(topic: str, payload: dict[str, Any], results_dir: Path | None = None) -> Path:
    folder = Path(results_dir or RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{topic}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"\nresults: {path}")
    return path


def header(topic: str, argv: Sequence[str] | None, settings: dict[str, Any], probe_gpu: bool = True) -> dict[str, Any]:
    return {
        "topic": topic,
        "command": command_line(topic, argv),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(probe_gpu),
        "settings": settings,
    }


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain text table; columns are (key, heading, format spec)."""
    cells = [[heading for _, heading, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key)
            line.append("-" if value is None else format(value, spec) if spec else str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def ratio_rows(comparisons: Sequence[dict[str, Any]]) -> str:
    rows = [
        {"what": c["what"], "ratio": c["ratio"], "range": f"{c['ratio_min']:.2f}-{c['ratio_max']:.2f}",
         "cpu": c.get("cpu_ratio"), "rounds": c["rounds"], "verdict": verdict(c)}
        for c in comparisons
    ]
    return table(rows, [("what", "baseline time / candidate time (> 1: candidate faster)", ""),
                        ("ratio", "wall ratio", ".2f"), ("range", "range", ""), ("cpu", "CPU-time ratio", ".2f"),
                        ("rounds", "rounds", "d"), ("verdict", "not slower?", "")])


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeats", type=int, default=None, help="rounds per comparison (default per topic)")
    p.add_argument("--quick", action="store_true", help="minimal inputs, one round: checks the script still runs")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes (default benchmarks/results)")
    return p


def print_cases(payload: dict[str, Any], columns: list[tuple[str, str, str]]) -> None:
    """The per-case table of a topic, then its baseline/candidate ratios."""
    rows = [{"case": name, **summary} for name, summary in payload["cases"].items()]
    print()
    print(table(rows, [("case", "case", ""), *columns]))
    print()
    print(ratio_rows(payload["comparisons"]))
