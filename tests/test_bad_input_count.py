"""The bad-input suite cannot shrink unnoticed, and the count the docs state (docs/reliability.md) stays true."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from bad_input import Case

TESTS = Path(__file__).resolve().parent
RELIABILITY = TESTS.parent / "docs" / "reliability.md"


def cases_by_area() -> dict[str, int]:
    """Cases per table file (`tests/test_bad_input_<area>.py`), from each module's `CASES`."""
    counts = {}
    for path in sorted(TESTS.glob("test_bad_input_*.py")):
        if path.stem == Path(__file__).stem:
            continue
        cases = importlib.import_module(path.stem).CASES
        assert cases and all(isinstance(case, Case) for case in cases), f"{path.name}: CASES must list Case rows"
        counts[path.stem.removeprefix("test_bad_input_")] = len(cases)
    return counts


def test_every_area_has_cases_and_the_suite_holds_at_least_150() -> None:
    counts = cases_by_area()
    expected = {"cli", "convert", "device", "hospital", "labels", "predict", "pull", "recipe", "runs", "tune"}
    assert expected <= set(counts), f"missing tables: {sorted(expected - set(counts))}"
    assert sum(counts.values()) >= 150


def test_the_reliability_page_states_the_counts_as_they_are() -> None:
    counts = cases_by_area()
    text = RELIABILITY.read_text(encoding="utf-8")
    stated = re.search(r"bad-input suite: \*\*(\d+) cases\*\*", text)
    assert stated, "docs/reliability.md states 'bad-input suite: **N cases**'"
    assert int(stated.group(1)) == sum(counts.values())
    for area, count in counts.items():
        assert f"`{area}` {count}" in text, f"docs/reliability.md: no '`{area}` {count}'"
