"""Checking a model against incidents the user already knows about.

Labels come as a CSV of `start,end` intervals (timestamps or row numbers,
inclusive) or as a CSV with a 0/1 `label` column, one row per data row. The
detector's causal point scores are compared with them point by point: no
"point adjustment" (which credits a whole labelled stretch for one hit and
inflates F1), only the honest per-row counts, plus event recall for stretches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmae.errors import DataError, shorten
from lstmae.metrics import (
    auc_pr,
    auc_roc,
    best_f1,
    event_recall,
    labels_from_intervals,
    precision_recall_f1,
    runs,
    vus_pr,
)


def read_labels(
    path: str,
    index: np.ndarray,
    rows: np.ndarray | None = None,
    n_rows: int | None = None,
    kind: str | None = None,
    time_format: str | None = None,
) -> np.ndarray:
    """0/1 labels aligned with the scored series' rows.

    index: the series' times (or row numbers), as lstmae.series.Series.index orders
    them; rows: each series row's row number in the data file (rows can be
    sorted or dropped by --fill drop), n_rows: the data file's row count. A 0/1
    `label` column is one label per data file row, in the file's order; start,end
    intervals are read like the data's time column (kind "naive" / "aware" /
    "number" / "rows"; time_format as --time-format).
    """
    from lstmae.read import read_table
    from lstmae.series import parse_time

    index = np.asarray(index)
    rows = np.arange(len(index)) if rows is None else np.asarray(rows)
    n_rows = len(index) if n_rows is None else n_rows
    if kind is None:
        kind = "naive" if np.issubdtype(index.dtype, np.datetime64) else "number"
    frame = read_table(path)
    columns = [str(c).strip().lower() for c in frame.columns]
    frame.columns = columns
    if "label" in columns:
        labels = pd.to_numeric(frame["label"], errors="coerce")
        if len(labels) != n_rows:
            raise DataError(
                f"{path}: has {len(labels)} label rows but the data has {n_rows} rows; "
                "give one label per data row, or start,end intervals"
            )
        if not labels.isin([0, 1]).all():
            raise DataError(f"{path}: column 'label' must hold only 0 and 1")
        return labels.to_numpy(dtype=np.int8)[rows]
    if not {"start", "end"} <= set(columns):
        raise DataError(
            f"{path}: needs start,end columns (anomalous intervals) or a 0/1 label column"
        )
    bounds = []
    for column in ("start", "end"):
        if kind in ("naive", "aware"):
            axis = parse_time(frame[column], column, path, time_format=time_format)
            if axis.kind != kind:
                have = "a UTC offset" if axis.kind == "aware" else "no UTC offset"
                want = "do" if kind == "aware" else "do not"
                raise DataError(f"{path}: column '{column}' has times with {have}, but the "
                                f"data's times {want} have one; write both the same way")
            bounds.append(axis.index)
        else:
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise DataError(f"{path}: column '{column}', row {row + 1}: "
                                f"{shorten(frame[column].iloc[row])!r} is not a row number "
                                "like the data's index; give numbers, or timestamps when the "
                                "data has a time column")
            bounds.append(values.to_numpy(dtype=np.float64))
    starts, ends = bounds
    if (ends < starts).any():
        row = int(np.flatnonzero(ends < starts)[0])
        raise DataError(f"{path}: interval on row {row + 1} ends before it starts")
    return labels_from_intervals(index, list(zip(starts, ends, strict=True)))


def evaluate(
    scores: np.ndarray, labels: np.ndarray, threshold: float, sliding_window: int
) -> dict:
    """Threshold-free and thresholded metrics over the rows that have a score."""
    scored = ~np.isnan(scores)
    y, s = labels[scored].astype(np.int8), scores[scored]
    predicted = s > threshold
    if y.sum() == 0:
        raise DataError("no labelled anomaly among the scored rows; nothing to evaluate")
    if y.sum() == len(y):
        raise DataError("every scored row is labelled anomalous; nothing to compare against")
    precision, recall, f1 = precision_recall_f1(y, predicted)
    best, lowest_flagged = best_f1(y, s)
    return {
        "rows_scored": int(scored.sum()),
        "rows_unscored": int((~scored).sum()),
        "anomalous_rows": int(y.sum()),
        "events": len(runs(y)[0]),
        "auc_roc": auc_roc(y, s),
        "auc_pr": auc_pr(y, s),
        "vus_pr": vus_pr(y, s, sliding_window),
        "sliding_window": int(sliding_window),
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "event_recall": event_recall(y, predicted),
        "best_f1": best,
        "best_f1_threshold": threshold_flagging(s, lowest_flagged),
    }


def threshold_flagging(scores: np.ndarray, lowest: float) -> float:
    """The threshold at which scoring (`score > threshold`) flags exactly the scores at or
    above `lowest`: the next lower score, so that evaluate's best_f1_threshold, given
    back as --threshold, gives best_f1 again (best_f1 sweeps `score >= t`). Thresholds
    are never negative, so rows that score exactly 0 stay unflagged."""
    below = scores[scores < lowest]
    if below.size:
        return float(below.max())
    return max(0.0, float(np.nextafter(lowest, -np.inf)))
