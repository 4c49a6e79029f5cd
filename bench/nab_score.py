"""NAB (Numenta Anomaly Benchmark) scoring for binary alarms.

A re-implementation of the rules in numenta/NAB (nab/sweeper.py
``Sweeper.calcSweepScore`` + ``calcScoreByThreshold``, nab/util.py
``getProbationPeriod``, nab/runner.py ``Runner.normalize``), for a detector
that already gives one yes/no alarm per row, so there is no threshold sweep.
numpy + pandas only, so that any bench script can import it.

Sign convention: PROFILES holds signed weights (fp and fn negative); NAB's
profiles.json holds their magnitudes and subtracts them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

# NAB config/profiles.json, with the signs applied.
PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": -0.11, "fn": -1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": -0.22, "fn": -1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": -0.11, "fn": -2.0},
}

PROBATION_PERCENT = 0.15


def scaled_sigmoid(x: float) -> float:
    """NAB's scaledSigmoid: +0.987 at x=-1 (window start), 0 at x=0 (window end),
    -> -1 as x grows; beyond 3 window lengths it is exactly -1 (full FP cost)."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


# NAB divides every TP by this, so a detection at a window's first row earns
# exactly A_tp (which is why the perfect detector scores A_tp per window).
_MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(n_rows: int) -> int:
    """Rows at the start of a file whose alarms NAB ignores (detectors are still
    learning there): min(floor(0.15 * n), 0.15 * 5000 = 750), as getProbationPeriod.
    The float product is kept as NAB computes it, so rounding matches exactly."""
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


def _profile(profile: str) -> dict[str, float]:
    if profile not in PROFILES:
        raise ValueError(f"unknown NAB profile {profile!r}; known: {sorted(PROFILES)}")
    return PROFILES[profile]


def _window_rows(ts: pd.DatetimeIndex, windows: Sequence) -> list[tuple[int, int] | None]:
    """Row span (first, last) of each window, in file order; None if no row falls in it.

    NAB enters a window at the row equal to its start and leaves it at the row
    equal to its end, walking the file in row order (real NAB files have a
    duplicated or backward hour at DST changes, so we must not rely on sorting).
    Here: first row >= start, then the first later row >= end if it equals end,
    else the row before it. With exact timestamps (as in NAB's labels) that is
    NAB's rule; with inexact ones it is the rows inside [start, end]."""
    spans: list[tuple[int, int] | None] = []
    n = len(ts)
    prev_hi = -1
    for start, end in sorted(windows, key=lambda w: pd.Timestamp(w[0])):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        if end < start:
            raise ValueError(f"window ends before it starts: {start} .. {end}")
        after_start = np.flatnonzero(np.asarray(ts >= start))
        if after_start.size == 0:
            spans.append(None)
            continue
        lo = int(after_start[0])
        reach_end = np.flatnonzero(np.asarray(ts[lo:] >= end))
        if reach_end.size == 0:
            hi = n - 1
        else:
            j = lo + int(reach_end[0])
            hi = j if ts[j] == end else j - 1
        if hi < lo:
            spans.append(None)
            continue
        if lo <= prev_hi:
            raise ValueError(f"overlapping windows at {start}; NAB windows never overlap")
        prev_hi = hi
        spans.append((lo, hi))
    return spans


def file_score(timestamps, alarms, windows, profile: str = "standard") -> dict:
    """NAB raw score of one file for a binary alarm series.

    timestamps: the file's timestamps in file order (datetimes or strings);
    alarms: one bool per row; windows: (start, end) pairs, both inclusive.
    Returns raw score, event counts (tp/fn per window, fp per alarm row, as
    NAB charges each false-alarm row), the number of labelled windows, the
    number NAB scores ("scored_windows": windows with a row after probation,
    which is what the null detector is charged for) and, for each detected
    window, the delay in rows from its first row to its first alarm.
    """
    weights = _profile(profile)
    ts = pd.DatetimeIndex(pd.to_datetime(pd.Series(timestamps).reset_index(drop=True)))
    alarms = np.asarray(alarms, dtype=bool).reshape(-1)
    if len(alarms) != len(ts):
        raise ValueError(f"{len(alarms)} alarms for {len(ts)} timestamps")
    n = len(ts)
    probation = probation_rows(n)
    spans = [s for s in _window_rows(ts, windows) if s is not None]

    raw, tp, fp, fn, scored, delays = 0.0, 0, 0, 0, 0, []
    in_window = np.zeros(n, dtype=bool)
    for lo, hi in spans:
        in_window[lo:hi + 1] = True
        first_scored = max(lo, probation)
        if first_scored > hi:
            continue  # wholly in probation: NAB gives it no TP/FN part at all
        scored += 1
        hits = np.flatnonzero(alarms[first_scored:hi + 1])
        if hits.size == 0:
            raw += weights["fn"]
            fn += 1
            continue
        # Only the earliest alarm counts: NAB keeps the max per window and the
        # credit falls along the window. Position runs -1 (first row) to -1/width
        # (last row): sweeper's -(right - i + 1) / width.
        i = first_scored + int(hits[0])
        width = hi - lo + 1
        raw += weights["tp"] * scaled_sigmoid(-(hi - i + 1) / width) / _MAX_TP
        tp += 1
        delays.append(float(i - lo))

    ends = np.array([hi for _, hi in spans], dtype=np.int64)
    widths = np.array([hi - lo + 1 for lo, hi in spans], dtype=np.int64)
    for i in np.flatnonzero(alarms & ~in_window):
        if i < probation:
            continue
        k = int(np.searchsorted(ends, i)) - 1  # last window ending before row i
        if k < 0:
            sig = -1.0  # no window yet: NAB charges the full FP cost
        else:
            # Distance past the preceding window's end, in (width - 1) rows as
            # NAB does; NAB divides by zero for a 1-row window, we use 1 row.
            sig = scaled_sigmoid((i - ends[k]) / max(widths[k] - 1, 1))
        raw += weights["fp"] * -sig  # sig < 0 after a window, so this is a cost
        fp += 1

    return {"raw": raw, "tp": tp, "fp": fp, "fn": fn, "windows": len(windows),
            "scored_windows": scored, "delays": delays, "profile": profile}


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def corpus_score(results: list[dict], profile: str = "standard") -> dict:
    """NAB's normalised corpus score from file_score dicts (Runner.normalize):
    100 * (raw - null) / (perfect - null), where null is the no-alarm detector
    (A_fn for every scored window) and perfect is A_tp for every labelled window.
    0 = no better than never alarming, 100 = every window caught at its first row
    with no false alarm. NaN when the corpus has no window at all."""
    weights = _profile(profile)
    for r in results:
        if r.get("profile", profile) != profile:
            raise ValueError(f"file scored with profile {r['profile']!r}, corpus asks {profile!r}")
    raw = float(sum(r["raw"] for r in results))
    null = weights["fn"] * sum(r.get("scored_windows", r["windows"]) for r in results)
    perfect = weights["tp"] * sum(r["windows"] for r in results)
    tp = sum(r["tp"] for r in results)
    fp = sum(r["fp"] for r in results)
    fn = sum(r["fn"] for r in results)
    delays = [d for r in results for d in r["delays"]]
    return {
        "score": 100.0 * _ratio(raw - null, perfect - null),
        "raw": raw, "null": float(null), "perfect": float(perfect),
        "tp": tp, "fp": fp, "fn": fn,
        "event_precision": _ratio(tp, tp + fp),
        "event_recall": _ratio(tp, tp + fn),
        "median_delay_rows": float(np.median(delays)) if delays else float("nan"),
    }
