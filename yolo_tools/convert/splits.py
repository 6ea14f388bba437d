"""Patient-wise train/val splits: slices of one patient (or one study) never straddle train and val.

A group rule turns file names into group keys. Rules: 'file' (each sample alone, for sets with no patient
information), a regular expression whose first group is the patient id (`person(\\d+)_`), or a named rule
from RULES for ids that no regex can recover.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from yolo_tools.errors import UserError


class RuleDoesNotFit(UserError):
    """A split rule that finds no patient in some name: a recipe's error, but for a set from elsewhere
    (`evaluate --data`) a reason to count each image as its own patient."""


def acquisition_session(names: Sequence[str], gap_minutes: float = 10.0) -> list[str]:
    """Group DICOM-UID file names by scanner time stamp: slices taken minutes apart come from one study.

    Philips UIDs (root 1.3.46.670589) carry a .NET tick count (100 ns since year 1) in their 7th
    component; exporters replace the dots with dashes. Consecutive slices of one examination lie seconds
    apart, while examinations are hours or days apart, so a gap larger than `gap_minutes` starts a study.
    """
    ticks = []
    for name in names:
        parts = re.split(r"[-.]", name)
        if len(parts) < 7 or not parts[6][:18].isdigit():
            raise RuleDoesNotFit(f"{name}: not a DICOM-UID file name with a time stamp; use another split rule")
        ticks.append(int(parts[6][:18]))
    order = np.argsort(ticks, kind="stable")
    sorted_ticks = np.asarray(ticks, dtype=np.int64)[order]
    new_study = np.diff(sorted_ticks, prepend=sorted_ticks[0]) > gap_minutes * 60 * 10**7
    study_ids = np.cumsum(new_study)
    groups = np.empty(len(names), dtype=object)
    groups[order] = [f"study{i:04d}" for i in study_ids]
    return list(groups)


RULES: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "file": lambda names: list(names),
    "acquisition_session": acquisition_session,
}


def group_keys(names: Sequence[str], rule: str) -> list[str]:
    """Map sample names to the patient or study they belong to, by a named rule or a regex."""
    if rule in RULES:
        return RULES[rule](names)
    try:
        pattern = re.compile(rule)
    except re.error as exc:
        raise UserError(f"split rule '{rule}' is neither one of {sorted(RULES)} nor a valid regex: {exc}") from None
    keys = []
    for name in names:
        match = pattern.search(name)
        if not match:
            raise RuleDoesNotFit(f"{name}: split regex '{rule}' finds no patient id in this name")
        keys.append(match.group(1) if pattern.groups else match.group(0))
    return keys


def grouped_split(groups: Sequence[str], val_fraction: float | int, seed: int) -> np.ndarray:
    """Boolean mask of samples that go to val; whole groups move together (`val_fraction` an int: that many groups)."""
    from sklearn.model_selection import GroupShuffleSplit  # here: scikit-learn takes seconds to import

    groups = np.asarray(groups, dtype=object)
    if len(set(groups)) < 2:
        raise UserError("a train/val split needs at least two patients or studies")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_index = next(splitter.split(np.zeros(len(groups)), groups=groups))
    is_val = np.zeros(len(groups), dtype=bool)
    is_val[val_index] = True
    return is_val


def patients_in_several_splits(groups: Sequence[str], splits: Sequence[str]) -> list[str]:
    """Patients with images in more than one split: none where the workbench drew the split by patient; a
    published split kept as it is may have some."""
    groups, splits = np.asarray(groups, dtype=object), np.asarray(splits, dtype=object)
    sides = [set(groups[splits == split]) for split in set(splits.tolist())]
    return sorted({g for i, side in enumerate(sides) for other in sides[i + 1 :] for g in side & other})


def held_out(
    groups: Sequence[str], published_test: Sequence[bool], val: float, test: float | str | None, seed: int
) -> list[str]:
    """'train', 'val' or 'test' per sample, whole patients together.

    `test` is a fraction of all patients carved first, 'source' to keep the samples flagged in
    `published_test`, or None for no test set; val is then `val` of all patients, taken from the rest.
    """
    groups = np.asarray(groups, dtype=object)
    is_test = np.asarray(published_test, dtype=bool) if test == "source" else np.zeros(len(groups), bool)
    if isinstance(test, float):
        is_test = grouped_split(groups, test, seed)
    rest = np.flatnonzero(~is_test)
    split = np.where(is_test, "test", "train").astype(object)
    # val as a number of patients (a share of all of them), so float rounding of val / (1 - test) cannot add one
    share = val if test == "source" or test is None else max(1, round(val * len(set(groups))))
    split[rest[grouped_split(groups[rest], share, seed)]] = "val"
    return list(split)
