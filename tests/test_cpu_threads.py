"""How many CPU threads torch gets: every core of the process on a quiet machine, the idle ones on a busy one.

The choice (`engine.cpu_threads`) is a function of the process's cores, the machine's, the load average and
YOLO_TOOLS_THREADS; `use_every_core` applies it to Ultralytics' thread count and says why when it holds back.
"""

from __future__ import annotations

import logging
import os

import pytest

from yolo_tools import engine
from yolo_tools.engine import args as yolo_args


@pytest.mark.parametrize(
    "cores, machine, load, requested, threads",
    [
        (2, 2, 0.0, None, 2),  # quiet 2-core machine: both cores (Ultralytics alone: 1)
        (2, 2, 1.0, None, 2),  # this process's own start counts as one
        (2, 2, 1.6, None, 1),  # another process busy most of the time: one core left
        (2, 2, 14.8, None, 1),  # a loaded machine: one thread, never none
        (16, 16, 5.0, None, 8),  # Ultralytics' ceiling of 8 while 12 cores are idle
        (16, 16, 12.0, None, 5),
        (1, 2, 14.8, None, 1),  # `taskset -c 0`: the user's CPU set is used as it is, whatever the load
        (2, 4, 9.0, None, 2),
        (2, 2, 14.8, 2, 2),  # YOLO_TOOLS_THREADS wins
        (2, 2, 0.0, 6, 6),
    ],
)
def test_threads_follow_the_idle_cores_unless_the_user_chose(cores, machine, load, requested, threads) -> None:
    chosen, why = engine.cpu_threads(cores, machine, load, requested)
    assert chosen == threads
    assert (why is not None) == (requested is None and cores == machine and threads < min(cores, 8))


def test_a_busy_machine_is_said_once_with_what_to_do(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from ultralytics.utils import torch_utils

    monkeypatch.setattr(torch_utils, "NUM_THREADS", torch_utils.NUM_THREADS)  # put back afterwards
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (14.8, 12.5, 7.4))
    monkeypatch.delenv(yolo_args.THREADS_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="yolo_tools"):
        assert engine.use_every_core.__wrapped__() == 1 == torch_utils.NUM_THREADS
    assert [r.getMessage() for r in caplog.records] == [
        "CPU: 1 of 2 cores for torch: the machine is busy (load average 14.8); YOLO_TOOLS_THREADS=N sets the "
        "threads, or `taskset -c CORES yolo_tools ...` gives this process its own cores"
    ]
    caplog.clear()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 0.3, 0.2))
    with caplog.at_level(logging.INFO, logger="yolo_tools"):
        assert engine.use_every_core.__wrapped__() == 2 == torch_utils.NUM_THREADS  # quiet: nothing to say
    assert not caplog.records
