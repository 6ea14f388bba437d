"""The process Ultralytics runs in: the device it trains and predicts on, torch's CPU threads, and the usage
events it would send.

Every spelling of `device=` goes through Ultralytics' own parsing; the thread count and the usage events are
set in this process's memory only, never in the user's Ultralytics settings file.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from yolo_tools.engine.args import THREADS_ENV, requested_threads
from yolo_tools.errors import UserError

LOG = logging.getLogger(__name__)


def available_devices() -> str:
    """What this machine offers, in the spellings `device=` takes, for messages about a device it lacks."""
    import torch

    found = ["cpu"]
    found += [f"{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return ", ".join(found)


def pick_device(requested: Any = None, origin: str = "command line", announce: bool = True) -> str:
    """The device to run on, as Ultralytics reads it; the GPU when there is one, an explicit `device=` always wins.

    Every spelling Ultralytics accepts (`0`, `cuda:0`, `0,1`, `[0,1]`, `cpu`, `mps`, `-1` for the idlest
    GPU) goes through its own `parse_device` and `select_device`, so the workbench accepts exactly what
    `yolo` does. The canonical string comes back (`-1` resolved once, so a training and its DDP workers
    agree), and a device the machine lacks is one message naming `device` and what there is.
    """
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import parse_device, select_device

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # select_device logs a version banner before refusing; the refusal is ours to say
    try:
        device = parse_device("" if requested is None else requested)
        selected = select_device(device, verbose=False)
    except ValueError:
        raise UserError(
            f"{origin}: device={requested}: not available on this machine; available: {available_devices()}.\n"
            "  Use device=cpu, or one GPU index (device=0) or several for multi-GPU training (device=0,1)."
        ) from None
    finally:
        LOGGER.setLevel(level)
    kind = getattr(selected, "type", str(selected))
    if kind == "cuda":
        import torch

        device = device or str(selected.index)
        names = ", ".join(torch.cuda.get_device_name(int(i)) for i in device.split(","))
        label = f"GPU {device} ({names})"
    else:
        device = device if device and kind != "cpu" else "cpu"
        label = kind.upper()
        if kind == "cpu":  # the threads decide speed, and a model's last digits (torch's sums): say how many
            threads = use_every_core()
            label += f" ({threads} thread{'s' if threads != 1 else ''})"
    if announce:
        print(f"device: {label}")
    return device


def device_label(device: str) -> str:
    """A device as `pick_device` returns it, in words for a record of the compute used: 'GPU 0 (NVIDIA H100 80GB
    HBM3)', 'MPS', 'CPU'."""
    if device in ("cpu", "mps"):
        return device.upper()
    import torch

    return f"GPU {device} ({', '.join(torch.cuda.get_device_name(int(i)) for i in device.split(','))})"


def check_multi_gpu_batch(device: str, batch: Any, origin: str = "command line") -> None:
    """Under DDP `batch` is the total over the GPUs, and Ultralytics refuses AutoBatch (`batch` below 1)
    there only once the run folder exists: refuse it first, naming `batch` and a size that works."""
    gpus = len(device.split(",")) if device and device not in ("cpu", "mps") else 1
    if gpus > 1 and isinstance(batch, (int, float)) and not isinstance(batch, bool) and batch < 1:
        raise UserError(
            f"{origin}: batch={batch}: AutoBatch does not work on {gpus} GPUs (device={device}); "
            f"give the total batch, a multiple of {gpus}, e.g. batch={8 * gpus}"
        )


def cpu_threads(cores: int, machine_cores: int, load: float, requested: int | None) -> tuple[int, str | None]:
    """How many threads torch gets for CPU work, and why when that is not every core of the process.

    `cores` is the process's CPU set (taskset and container limits included), `machine_cores` the
    machine's, `load` its 1-minute load average. Torch keeps every thread it is given busy, and threads
    beyond the idle cores only contend with the other work: a training slowed 3x with two others running
    (docs/benchmarks.md, "Every core for CPU training"), and at load 8-22 the demo and the tests ran 17-63 times slower
    (issue #32). So when the
    process may use the whole machine and it is busy, torch gets its idle cores (the load average less one
    for this process's own start, at least one thread). A CPU set chosen with `taskset`, and
    YOLO_TOOLS_THREADS, are used as they are: the user decided. At most 8, Ultralytics' own ceiling.
    """
    if requested is not None:
        return requested, None
    every = max(1, min(cores, 8))
    if cores < machine_cores:
        return every, None
    idle = int(round(cores - max(0.0, load - 1.0)))
    if idle >= every:
        return every, None
    threads = max(1, idle)
    return threads, (
        f"CPU: {threads} of {cores} cores for torch: the machine is busy (load average {load:.1f}); "
        f"{THREADS_ENV}=N sets the threads, or `taskset -c CORES yolo_tools ...` gives this process its own cores"
    )


@functools.cache
def use_every_core() -> int:
    """Let Ultralytics' CPU work use every core this process may run on, or the idle ones on a busy machine.

    Ultralytics sets torch's threads to one fewer than the machine's cores (`NUM_THREADS`, at most 8)
    whenever it picks a device, and trains on the CPU with the data loaded in the training process itself
    (`workers=0`): the spare core was meant for loader workers that a CPU training does not start. On
    the 2-core machines the workbench targets that is one core, and half the machine idles through every
    training, validation and prediction (benchmarks/training.py measures the difference). Its device
    selection reads the constant each time, so it is set once: to the cores of the process's CPU set
    (`taskset` and container limits included, which Ultralytics' count ignores), fewer when other work is
    running (`cpu_threads`, which says so in one line). A GPU run is unaffected: its threads only feed the GPU.
    Returns the threads chosen.
    """
    from ultralytics.utils import torch_utils

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads, why = cpu_threads(cores, os.cpu_count() or cores, load, requested_threads())
    if why:
        LOG.warning(why)
    torch_utils.NUM_THREADS = threads
    return threads


# Set to 1 to let Ultralytics send its anonymous usage events from the workbench's processes (`usage_events_off`).
SYNC_ENV = "YOLO_TOOLS_ULTRALYTICS_SYNC"


def usage_events_allowed() -> bool:
    return os.environ.get(SYNC_ENV, "").strip().lower() in ("1", "true", "yes")


def usage_events_off() -> None:
    """No Ultralytics usage events from this process, and the user's Ultralytics settings file left as it is.

    Ultralytics sends anonymous usage events (mode, task, model name, device, speeds) to Google Analytics
    after every training, validation, prediction and export while `sync` is on in its global settings.json,
    which its first run creates with `sync: True`. A workbench for medical images must not do that from a
    hospital network unless asked. `SETTINGS["sync"] = False` would rewrite the user's file for every
    other program, so the value is changed in this process's memory only (the dict's own `__setitem__`,
    which skips the save), and the event sender, made when its module was imported, is switched off too.
    Trainings run it again in their own process (`UsageEventsOff`, for DDP workers); Ray trials get
    `usage_events_environment`. YOLO_TOOLS_ULTRALYTICS_SYNC=1 leaves everything as set.
    """
    if usage_events_allowed():
        return
    from ultralytics.utils import SETTINGS, events

    dict.__setitem__(SETTINGS, "sync", False)
    events.events.enabled = False


def usage_events_environment() -> dict[str, str]:
    """The environment that keeps the Ray workers a search trains in (`tune.py`: Ray rebuilds each trial's
    callbacks there) from sending usage events: YOLO_OFFLINE=1, Ultralytics' own switch for its network
    calls (usage events, error reports, version checks, automatic pip installs); a trial downloads nothing.
    Empty when the user allowed the events or set YOLO_OFFLINE themselves."""
    if usage_events_allowed() or "YOLO_OFFLINE" in os.environ:
        return {}
    return {"YOLO_OFFLINE": "1"}


class UsageEventsOff:
    """A trainer callback that runs `usage_events_off` in the process that trains (a DDP worker too: the
    trainer's callbacks travel to the workers pickled, like `Trackers`)."""

    def __call__(self, trainer: Any) -> None:
        usage_events_off()
