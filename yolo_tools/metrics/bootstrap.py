"""95% bootstrap intervals over patients: how far a number could move on another sample of patients.

Images of one patient are not independent (slices of one volume, films of one child), so resampling
images would give intervals that are too narrow. Patients are drawn with replacement, `n_boot` times,
seeded; every image of a drawn patient counts as often as its patient was drawn. The draw is one NumPy
call: a (n_boot, patients) matrix of draw counts, expanded to a (n_boot, images) weight matrix, so
metrics that are means or ratios of per-image numbers are one matrix product for all replicates. Metrics
that need the whole ranking (ROC AUC, AP) are recomputed per replicate by their own library function,
with the weights as sample weights or as repeated rows. The interval is the percentile interval (2.5th
and 97.5th percentiles of the replicates); replicates where a metric is undefined (e.g. no positive
patient drawn) are left out, and how many were kept is reported.

Examples:
    >>> boot = Bootstrap(["a", "a", "b", "c"], n_boot=2000, seed=0)
    >>> boot.mean(np.array([1.0, 1.0, 0.0, 1.0]))   # accuracy of 4 images of 3 patients
    (0.6..., 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

N_BOOT = 1000
SEED = 0
LEVEL = 0.95


class Bootstrap:
    """Replicate weights of images, drawn by patient; one instance scores every metric of a split on the same draws."""

    def __init__(self, patients: Sequence[str], n_boot: int = N_BOOT, seed: int = SEED):
        import pandas as pd  # here, not at the top: the tasks import this module, and reading a recipe imports the tasks

        codes, uniques = pd.factorize(pd.Series(list(patients), dtype=object))
        self.n_boot, self.seed, self.patients = int(n_boot), int(seed), len(uniques)
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, self.patients, size=(self.n_boot, self.patients))
        offsets = (np.arange(self.n_boot) * self.patients)[:, None]
        per_patient = np.bincount((draws + offsets).ravel(), minlength=self.n_boot * self.patients)
        self.patient_weights = per_patient.reshape(self.n_boot, self.patients).astype(np.float64)
        self.weights = self.patient_weights[:, codes]  # (n_boot, images)
        self.codes = codes

    def interval(self, replicates: np.ndarray) -> tuple[float, float] | None:
        """The percentile interval of replicate values computed on `weights`' rows (NaN: undefined there)."""
        kept = replicates[np.isfinite(replicates)]
        if len(kept) < 0.5 * self.n_boot:  # mostly undefined: no honest interval
            return None
        low, high = np.percentile(kept, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
        return float(low), float(high)

    def mean(self, values: np.ndarray) -> tuple[float, float] | None:
        """Interval of the mean of a per-image number (NaN images ignored)."""
        values = np.asarray(values, np.float64)
        ok = np.isfinite(values)
        return self.ratio(np.where(ok, values, 0.0), ok.astype(np.float64))

    def ratio(self, numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float] | None:
        """Interval of sum(numerator) / sum(denominator) over images, e.g. found / (found + missed)."""
        top = self.weights @ np.asarray(numerator, np.float64)
        bottom = self.weights @ np.asarray(denominator, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.interval(np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan))

    def ratio_replicates(self, numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        """sum(numerator) / sum(denominator) on every replicate (NaN where a replicate drew no denominator)."""
        top = self.weights @ np.asarray(numerator, np.float64)
        bottom = self.weights @ np.asarray(denominator, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)

    def paired_difference(
        self, first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
    ) -> tuple[float, float] | None:
        """Interval of ratio(second) - ratio(first), both scored on the same images and the same draws of patients:
        a paired bootstrap, so what the two share (which patients were drawn) cancels, and only their
        difference on those patients varies. Each side is (numerator, denominator) per image, as for `ratio`."""
        return self.interval(self.ratio_replicates(*second) - self.ratio_replicates(*first))

    def weighted(self, metric: Callable[[np.ndarray], float | None]) -> tuple[float, float] | None:
        """Interval of a metric that takes per-image sample weights (e.g. a partial `roc_auc_score`)."""
        values = np.array([_finite(metric(row)) for row in self.weights])
        return self.interval(values)

    def repeated(self, metric: Callable[[np.ndarray], float | None]) -> tuple[float, float] | None:
        """Interval of a metric that takes image indices, each drawn image repeated as often as its patient."""
        indices = np.arange(len(self.codes))
        values = np.array([_finite(metric(np.repeat(indices, row.astype(int)))) for row in self.weights])
        return self.interval(values)

    def describe(self, unit: str = "patient") -> dict:
        """How the intervals were made; `unit` says what was resampled (images, when no patient is known)."""
        return {"n_boot": self.n_boot, "seed": self.seed, "unit": unit, "patients": self.patients, "level": LEVEL}


def _finite(value: float | None) -> float:
    return np.nan if value is None else float(value)
