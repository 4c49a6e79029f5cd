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

from lstmae.errors import DataError
from lstmae.metrics import (
    auc_pr,
    auc_roc,
    best_f1,
    event_recall,
    labels_from_intervals,
    precision_recall_f1,
    vus_pr,
)


def read_labels(path: str, index: np.ndarray) -> np.ndarray:
    """0/1 labels aligned with the data's rows (index: its timestamps or row numbers)."""
    from lstmae.io import read_table

    frame = read_table(path)
    columns = [str(c).strip().lower() for c in frame.columns]
    frame.columns = columns
    if "label" in columns:
        labels = pd.to_numeric(frame["label"], errors="coerce")
        if len(labels) != len(index):
            raise DataError(
                f"{path}: has {len(labels)} label rows but the data has {len(index)} rows; "
                "give one label per data row, or start,end intervals"
            )
        if not labels.isin([0, 1]).all():
            raise DataError(f"{path}: column 'label' must hold only 0 and 1")
        return labels.to_numpy(dtype=np.int8)
    if not {"start", "end"} <= set(columns):
        raise DataError(
            f"{path}: needs start,end columns (anomalous intervals) or a 0/1 label column"
        )
    is_time = np.issubdtype(np.asarray(index).dtype, np.datetime64)
    try:
        if is_time:
            starts = pd.to_datetime(frame["start"], format="mixed").to_numpy()
            ends = pd.to_datetime(frame["end"], format="mixed").to_numpy()
        else:
            starts = pd.to_numeric(frame["start"]).to_numpy()
            ends = pd.to_numeric(frame["end"]).to_numpy()
    except (ValueError, TypeError):
        kind = "timestamps" if is_time else "row numbers"
        raise DataError(f"{path}: start/end must be {kind}, like the data's index") from None
    if (ends < starts).any():
        row = int(np.flatnonzero(ends < starts)[0])
        raise DataError(f"{path}: interval on row {row + 1} ends before it starts")
    return labels_from_intervals(np.asarray(index), list(zip(starts, ends, strict=True)))


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
    best, best_threshold = best_f1(y, s)
    return {
        "rows_scored": int(scored.sum()),
        "rows_unscored": int((~scored).sum()),
        "anomalous_rows": int(y.sum()),
        "events": int(np.sum(np.diff(np.concatenate([[0], y])) == 1)),
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
        "best_f1_threshold": best_threshold,
    }
