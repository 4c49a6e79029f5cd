"""Choosing the anomaly threshold from errors of windows known to be normal.

Four methods, all on the held-out windows' errors (stored in the model, so a
threshold can be re-derived at score time without refitting):

- max (the default): `margin` times the largest held-out error. Held-out sets
  are small and their windows overlap, so their 0.99 quantile is close to
  their maximum and new normal data exceeds it often. On held-out windows the
  default margin is 1.2 (on SMAP the F1 of the threshold came closest to the
  best possible; on the sample data 1.0 flags a few % of normal windows, 1.2
  none; bench/README.md). When too few rows could be held out, the errors are those of the
  training windows, which the model has fitted and which understate new
  data's: then the default margin is 1.5, which kept NAB series with no anomaly
  at 0 % flagged where 1.0 flagged up to 2 % (bench/README.md).
- quantile: the q-quantile; about (1 - q) of normal windows exceed it.
- pot: peaks over threshold (Siffer et al., KDD 2017). The errors above an
  initial high quantile are fitted with a generalised Pareto distribution, and
  the threshold is where the fitted tail's probability falls to `risk`. It
  extrapolates beyond the largest held-out error, which a quantile cannot.
- sigma: mean + k standard deviations.

Whichever the method, the threshold is at least MIN_THRESHOLD.
"""

from __future__ import annotations

import math

import numpy as np

from lstmae.params import check_threshold_settings

# Default margins of "max": on truly held-out windows, and on training windows.
HELDOUT_MARGIN, TRAINING_MARGIN = 1.2, 1.5
POT_INITIAL_QUANTILE = 0.98
MIN_POT_PEAKS = 10
# Errors are in training standard deviations (a constant column's unit is 1). On data
# the model rebuilds all but exactly (a column that never moved in training), held-out
# errors are rounding, about 4e-4, and a threshold made of them flagged every row of new
# data 0.001 off (SMAP A-1's whole test set). A hundredth of a standard deviation is
# below any error worth an alarm, and above bf16's resolution (1/256 of a value).
MIN_THRESHOLD = 0.01


def calibrate(
    errors: np.ndarray,
    method: str,
    quantile: float = 0.99,
    risk: float = 1e-3,
    sigma: float = 3.0,
    margin: float | None = None,
    heldout: bool = True,
) -> tuple[float, dict]:
    """The threshold and a description of how it was set (stored in the model).

    heldout: whether `errors` come from held-out windows (not from training windows);
    it sets the default margin. A rule that gives from 0 to MIN_THRESHOLD gives that
    instead, and the description says so ("floor").
    """
    value, how = _by_rule(errors, method, quantile, risk, sigma, margin, heldout)
    if 0 <= value < MIN_THRESHOLD:  # a negative one stays, to be refused by the caller
        return MIN_THRESHOLD, {**how, "floor": MIN_THRESHOLD}
    return value, how


def _by_rule(errors: np.ndarray, method: str, quantile: float, risk: float, sigma: float,
             margin: float | None, heldout: bool) -> tuple[float, dict]:
    check_threshold_settings(method, quantile, risk, sigma, margin)
    if margin is None:
        margin = HELDOUT_MARGIN if heldout else TRAINING_MARGIN
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        raise ValueError("no errors to calibrate a threshold from")
    if method == "max":
        with np.errstate(over="ignore"):  # an infinite threshold is refused by the caller
            return float(margin * errors.max()), {"method": method, "margin": margin}
    if method == "quantile":
        return float(np.quantile(errors, quantile)), {"method": method, "quantile": quantile}
    if method == "sigma":
        value = float(errors.mean() + sigma * errors.std())
        return value, {"method": method, "sigma": sigma}
    return pot_threshold(errors, risk), {"method": method, "risk": risk}


def pot_threshold(errors: np.ndarray, risk: float) -> float:
    """Peaks-over-threshold: the level exceeded with probability `risk` under a GPD tail."""
    from scipy.stats import genpareto

    initial = float(np.quantile(errors, POT_INITIAL_QUANTILE))
    peaks = errors[errors > initial] - initial
    if peaks.size < MIN_POT_PEAKS or np.ptp(peaks) <= 0:
        # Too few peaks for a tail fit: fall back to the empirical quantile.
        return float(np.quantile(errors, 1.0 - risk))
    shape, _, scale = genpareto.fit(peaks, floc=0.0)
    ratio = risk * errors.size / peaks.size
    if abs(shape) < 1e-8:
        return initial - scale * math.log(ratio)
    return initial + scale / shape * (ratio ** (-shape) - 1.0)


def describe(info: dict) -> str:
    """How a threshold was set, in words: 'quantile 0.99 of 1179 validation windows'."""
    method = info.get("method")
    if method == "max":
        how = "the largest" if info["margin"] == 1 else f"{info['margin']:g} x the largest"
    elif method == "quantile":
        how = f"quantile {info['quantile']}"
    elif method == "pot":
        how = f"peaks over threshold at risk {info['risk']:g}"
    else:
        how = f"mean + {info['sigma']:g} sd"
    return f"{how} of {info['windows']} {info['source']} windows' errors" + floor_note(info)


def floor_note(info: dict) -> str:
    """', raised to the floor of 0.01' when calibrate's rule gave less; else ''."""
    return f", raised to the floor of {info['floor']:g}" if "floor" in info else ""
