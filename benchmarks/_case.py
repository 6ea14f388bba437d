"""Child process of `common.in_subprocess`: `python -m benchmarks._case module:function '{kwargs}' out.json '[imports]'`.

The listed modules (the library under test, e.g. `yolo_tools.convert`) are imported first and their
import time is reported as `import_s`; then the call is timed. Memory: the kernel's high-water mark of
resident memory (VmHWM) is reset just before the call (`/proc/self/clear_refs`), so `peak_rss_mb` is the
peak during the call alone, imports included in the floor but not in the peak; `peak_increase_mb` is
that peak minus the resident memory just before the call. Both go to out.json with whatever dict the
function returned (a function may return its own `seconds` to time only part of its work), and the CPU
time of the call (`cpu_s`: user + system, all threads and waited-for children).
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _cpu_s() -> float:
    """User + system CPU seconds of this process (all threads) and of the children it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb(was_reset: bool) -> float:
    if was_reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    target, kwargs, out, *rest = argv
    started = time.perf_counter()
    for module in json.loads(rest[0]) if rest else []:
        importlib.import_module(module)
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    import_s = time.perf_counter() - started
    rss_before = _rss_mb()
    was_reset = _reset_peak()
    cpu_started = _cpu_s()
    started = time.perf_counter()
    value = function(**json.loads(kwargs))
    seconds = time.perf_counter() - started
    cpu_s = _cpu_s() - cpu_started
    peak = _peak_mb(was_reset)
    result = {"seconds": seconds, "cpu_s": cpu_s, "import_s": import_s, "peak_rss_mb": peak, "rss_before_mb": rss_before,
              "peak_increase_mb": max(0.0, peak - rss_before)}
    if isinstance(value, dict):
        result.update(value)
    Path(out).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
