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

Whichever the method, the threshold is at least MIN_THRESHOLD, and with held-out
windows at least the error that TRAINING_SHARE of the training windows exceed: a
model is not to call more than 1 % of the data it was told is normal anomalous. The
held-out rows are the last tenth of the fit, one stretch of time, and need not show
everything the rest does: on a daily cycle two days long, fitted with a window of 32,
they held the quiet night hours, and a threshold made of them flagged 45 % of later
rows that repeated the training days exactly; on SMAP channels A-2 to A-4 the
training windows' 0.99 quantile is 1.5-2 x the largest held-out error.
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
# At most this share of the training windows' errors are above a threshold set on
# held-out windows (bench/README.md, "What we tried": 1.2 x this bound flagged fewer
# normal rows and lost 0.05 of smap-dev-more's F1).
TRAINING_SHARE = 0.01


def calibrate(
    errors: np.ndarray,
    method: str,
    quantile: float = 0.99,
    risk: float = 1e-3,
    sigma: float = 3.0,
    margin: float | None = None,
    heldout: bool = True,
    bound: dict | None = None,
) -> tuple[float, dict]:
    """The threshold and a description of how it was set (stored in the model).

    heldout: whether `errors` come from held-out windows (not from training windows);
    it sets the default margin. bound: training_bound()'s, for held-out errors. A rule
    that gives less than the bound gives the bound ("raised"); one that gives from 0 to
    MIN_THRESHOLD gives that instead ("floor").
    """
    value, how = _by_rule(errors, method, quantile, risk, sigma, margin, heldout)
    if bound is not None:
        how = {**how, **bound}
        if 0 <= value < bound["training_bound"]:
            value, how = bound["training_bound"], {**how, "raised": True}
    if 0 <= value < MIN_THRESHOLD:  # a negative one stays, to be refused by the caller
        return MIN_THRESHOLD, {**how, "floor": MIN_THRESHOLD}
    return value, how


def training_bound(training_errors: np.ndarray) -> dict:
    """The error that TRAINING_SHARE of the training windows exceed, as calibrate takes it
    (and the model file keeps it, for thresholds re-derived at score time)."""
    errors = np.asarray(training_errors, dtype=np.float64)
    return {"training_bound": float(np.quantile(errors, 1.0 - TRAINING_SHARE)),
            "training_windows": int(errors.size)}


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
    return f"{how} of {info['windows']} {info['source']} windows' errors" + raised_note(info)


def raised_note(info: dict) -> str:
    """What raised calibrate's rule, if anything: ', raised to the error that 1 % of the
    2601 training windows exceed', ', raised to the floor of 0.01', or ''."""
    note = ""
    if info.get("raised"):
        note += (f", raised to the error that {TRAINING_SHARE:.0%} of the "
                 f"{info['training_windows']} training windows exceed")
    if "floor" in info:
        note += f", raised to the floor of {info['floor']:g}"
    return note
