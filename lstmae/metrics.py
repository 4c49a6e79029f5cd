"""Detection metrics for anomaly scores, threshold-free and thresholded.

Conventions shared by every function here:

* ``labels`` is a 1-D array of 0/1 (or bool) per time point, 1 = anomalous.
* ``scores`` is a 1-D float array of the same length; higher = more anomalous.
  Scores must be finite: a NaN (an unscored row) raises ValueError, so callers
  drop unscored rows first.
* A point is *predicted* anomalous at threshold ``t`` when ``score >= t``.

Threshold-free metrics:

* :func:`auc_roc` - area under the ROC curve (ties as scikit-learn's
  ``roc_auc_score``).
* :func:`auc_pr` - average precision (as scikit-learn's
  ``average_precision_score``).
* :func:`vus_roc`, :func:`vus_pr` - Volume Under the Surface of range-aware ROC
  and PR curves (Paparrizos et al., VLDB 2022), as evaluated by the TSB-AD
  benchmark.

Thresholded metrics: :func:`best_f1`, :func:`precision_recall_f1`,
:func:`event_recall`; and :func:`labels_from_intervals` to build labels.

Only numpy is used at runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "auc_pr",
    "auc_roc",
    "best_f1",
    "event_recall",
    "labels_from_intervals",
    "precision_recall_f1",
    "vus_pr",
    "vus_roc",
]

DEFAULT_VUS_THRESHOLDS = 250


# --------------------------------------------------------------------------- #
# input checks
# --------------------------------------------------------------------------- #


def _as_binary(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D int8 array of 0/1, or raise ValueError."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be numeric 0/1 values, got dtype {arr.dtype}")
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        first = arr[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"{name} must contain only 0 and 1; found {int(bad.sum())} other value(s), "
            f"e.g. {first!r}"
        )
    return arr.astype(np.int8)


def _as_scores(values: Any, n: int) -> np.ndarray:
    """Return ``values`` as a 1-D finite float64 array of length ``n``, or raise ValueError."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"scores must be a 1-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"scores must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if len(arr) != n:
        raise ValueError(f"labels and scores differ in length ({n} vs {len(arr)})")
    nan = np.isnan(arr)
    if nan.any():
        raise ValueError(
            f"scores contain NaN at {int(nan.sum())} of {n} points (first at position "
            f"{int(np.flatnonzero(nan)[0])}); drop unscored rows before computing metrics"
        )
    inf = np.isinf(arr)
    if inf.any():
        raise ValueError(
            f"scores contain infinity at {int(inf.sum())} of {n} points (first at position "
            f"{int(np.flatnonzero(inf)[0])})"
        )
    return arr


def _check(labels: Any, scores: Any, *, need_normal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (labels, scores) pair for a threshold-free metric."""
    y = _as_binary(labels, "labels")
    s = _as_scores(scores, len(y))
    if len(y) == 0:
        raise ValueError("labels and scores are empty")
    if not y.any():
        raise ValueError("labels contain no anomalous point (no 1s); the metric is undefined")
    if need_normal and y.all():
        raise ValueError("labels contain no normal point (no 0s); the metric is undefined")
    return y, s


def runs(flags: Any) -> tuple[np.ndarray, np.ndarray]:
    """First and last (inclusive) positions of the maximal runs of 1s (or True) in a
    0/1 array: labelled stretches here, events and shaded stretches elsewhere."""
    edges = np.diff(np.concatenate(([0], np.asarray(flags).astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def _counts_by_threshold(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confusion counts at every distinct score used as a threshold.

    Returns ``(thresholds, n_pred, tp)``: distinct scores in decreasing order,
    and for each, the number of points with ``score >= threshold`` and how many
    of those are labelled anomalous.
    """
    order = np.argsort(-s, kind="mergesort")
    s_desc = s[order]
    last_of_tie = np.concatenate((s_desc[1:] != s_desc[:-1], [True]))
    ends = np.flatnonzero(last_of_tie)
    tp = np.cumsum(y[order], dtype=np.int64)[ends]
    return s_desc[ends], ends + 1, tp


# --------------------------------------------------------------------------- #
# point-wise threshold-free metrics
# --------------------------------------------------------------------------- #


def auc_roc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve.

    Computed as the Mann-Whitney statistic with average ranks for tied scores,
    which equals the trapezoidal area of scikit-learn's ``roc_auc_score``
    (a tie between an anomalous and a normal point counts one half).
    Requires at least one anomalous and one normal point.
    """
    y, s = _check(labels, scores, need_normal=True)
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    new_group = np.concatenate(([True], s_sorted[1:] != s_sorted[:-1]))
    starts = np.flatnonzero(new_group)
    stops = np.concatenate((starts[1:], [len(s)]))
    group_rank = (starts + 1 + stops) / 2.0  # mean of the 1-based ranks start+1 .. stop
    ranks = np.empty(len(s))
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    n_pos = float(y.sum())
    n_neg = float(len(y)) - n_pos
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auc_pr(labels: Any, scores: Any) -> float:
    """Average precision, as scikit-learn's ``average_precision_score``.

    ``AP = sum_k (R_k - R_{k-1}) * P_k`` over the distinct scores taken as
    thresholds in decreasing order (a step function, no interpolation).
    Requires at least one anomalous point.
    """
    y, s = _check(labels, scores, need_normal=False)
    _, n_pred, tp = _counts_by_threshold(y, s)
    precision = tp / n_pred
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def best_f1(labels: Any, scores: Any) -> tuple[float, float]:
    """Best point-wise F1 over all thresholds, and the threshold achieving it.

    Every distinct score is tried as a threshold (predict ``score >= t``); this
    is the "Standard-F1" of TSB-AD. Where several thresholds reach the same F1
    the highest is returned. Requires at least one anomalous point.
    """
    y, s = _check(labels, scores, need_normal=False)
    thresholds, n_pred, tp = _counts_by_threshold(y, s)
    f1 = 2.0 * tp / (n_pred + tp[-1])  # 2TP / (2TP + FP + FN)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


# --------------------------------------------------------------------------- #
# VUS
# --------------------------------------------------------------------------- #


def _vus_curves(
    y: np.ndarray, s: np.ndarray, max_window: int, n_thresholds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range-aware TPR, FPR and precision for every buffer size and threshold.

    Returns three arrays of shape ``(max_window + 1, n_thresholds)``; row ``w``
    holds the curves for buffer size ``w``. See :func:`vus_pr` for the
    definitions.
    """
    n = len(y)
    n_anom = float(y.sum())

    # Thresholds: the scores at n_thresholds evenly spaced positions of the
    # scores sorted in decreasing order (so repeated thresholds are possible).
    positions = np.linspace(0, n - 1, n_thresholds).astype(int)
    thresholds = np.sort(s)[::-1][positions]
    # pred_k = s >= thresholds[k] is monotone in k; `first[i]` is the first k at
    # which point i is predicted. Counts "at threshold k" are then cumulative
    # sums of a bincount over `first`.
    first = np.searchsorted(-thresholds, -s, side="left")

    def cumulative(idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.cumsum(np.bincount(idx, weights, minlength=n_thresholds + 1))[:n_thresholds]

    n_pred = cumulative(first)
    tp_point = cumulative(first[y == 1])

    # Buffer credit of a normal point depends on its distance to the anomalous
    # ranges around it. A range contributes only within w // 2 <= max_window // 2
    # of its edge, so only the ranges ending just before a point and starting
    # just after it matter: two on each side are enough, because two
    # contributions from the same side already sum to at least 2 * sqrt(1/2) > 1
    # (the cap). dist[0:2] are the distances back to the ends of the last two
    # ranges before each point, dist[2:4] forward to the starts of the next two
    # (inf where there is none).
    run_start, run_end = runs(y)
    normal = np.flatnonzero(y == 0)
    ends = np.concatenate(([-np.inf, -np.inf], run_end))
    starts = np.concatenate((run_start, [np.inf, np.inf]))
    k_end = np.searchsorted(run_end, normal)  # ends[k_end + 1] is the last end before
    k_start = np.searchsorted(run_start, normal)  # starts[k_start] is the next start after
    dist = np.stack(
        (
            normal - ends[k_end],
            normal - ends[k_end + 1],
            starts[k_start] - normal,
            starts[k_start + 1] - normal,
        )
    )
    near = dist.min(axis=0) <= max_window // 2
    dist = dist[:, near]
    first_near = first[normal[near]]

    first_padded = np.append(first, n_thresholds)  # so that index n is valid for reduceat

    buffer_tp = np.zeros((max_window + 1, n_thresholds))
    existence = np.zeros((max_window + 1, n_thresholds))
    for w in range(max_window + 1):
        half = w // 2
        if half > 0:
            # Soft label of a normal point: sqrt(1 - d / w) for each anomalous
            # range whose edge is d <= w // 2 away, summed and capped at 1.
            ramps = np.sqrt(1.0 - dist / w, where=dist <= half, out=np.zeros_like(dist))
            soft = np.minimum(ramps.sum(axis=0), 1.0)
            buffer_tp[w] = cumulative(first_near, soft)

        # Anomaly ranges widened by `half` on each side; ranges that overlap
        # (share at least one point) merge into one.
        split = (run_start[1:] - half) > (run_end[:-1] + half)
        seg_start = np.maximum(run_start[np.concatenate(([True], split))] - half, 0)
        seg_end = np.minimum(run_end[np.concatenate((split, [True]))] + half, n - 1)
        bounds = np.column_stack((seg_start, seg_end + 1)).ravel()
        seg_first = np.minimum.reduceat(first_padded, bounds)[::2]
        existence[w] = cumulative(seg_first) / len(seg_start)

    tp = tp_point + buffer_tp
    p_new = n_anom + buffer_tp / 2.0
    tpr = np.minimum(tp / p_new, 1.0) * existence
    with np.errstate(divide="ignore", invalid="ignore"):  # n == n_anom only
        fpr = (n_pred - tp) / (n - p_new)
    precision = tp / n_pred
    return tpr, fpr, precision


def _check_vus_args(sliding_window: Any, n_thresholds: Any) -> tuple[int, int]:
    if isinstance(sliding_window, bool) or not isinstance(sliding_window, int | np.integer):
        raise ValueError(f"sliding_window must be an integer, got {sliding_window!r}")
    if sliding_window < 0:
        raise ValueError(f"sliding_window must be >= 0, got {sliding_window}")
    if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, int | np.integer):
        raise ValueError(f"n_thresholds must be an integer, got {n_thresholds!r}")
    if n_thresholds < 1:
        raise ValueError(f"n_thresholds must be >= 1, got {n_thresholds}")
    return int(sliding_window), int(n_thresholds)


def vus_pr(
    labels: Any,
    scores: Any,
    sliding_window: int,
    *,
    n_thresholds: int = DEFAULT_VUS_THRESHOLDS,
) -> float:
    """Volume Under the range-aware Precision-Recall Surface (VUS-PR).

    From J. Paparrizos, P. Boniol, T. Palpanas, R. S. Tsay, A. Elmore and
    M. J. Franklin, "Volume Under the Surface: A New Accuracy Evaluation
    Measure for Time-Series Anomaly Detection", PVLDB 15(11), 2022. This
    reproduces the TSB-AD benchmark's evaluation (``get_metrics`` with VUS
    version "opt" and 250 thresholds), including its conventions.

    Algorithm. For each buffer size ``w = 0, 1, ..., sliding_window``:

    1. Soft labels: anomalous points get 1; a normal point at distance ``d``
       (``1 <= d <= w // 2``) before or after an anomalous range gets
       ``sqrt(1 - d / w)``; contributions of all such ranges are summed and
       capped at 1.
       The widened ranges ``[start - w//2, end + w//2]`` that overlap are merged;
       call their number ``R``.
    2. Thresholds: the scores at ``n_thresholds`` evenly spaced positions
       (``linspace(0, n - 1).astype(int)``) of the scores sorted in decreasing
       order. At each, predict ``score >= t`` and compute, with ``P`` the number
       of anomalous points and ``B`` the sum of soft labels of predicted normal
       points:

       * ``TP = (predicted anomalous points) + B``, ``P' = P + B / 2``
       * ``TPR = min(TP / P', 1) * (ranges of step 1 with a prediction) / R``
       * ``FPR = (n_predicted - TP) / (n - P')``
       * ``precision = TP / n_predicted``
    3. Range-AUC-PR for this ``w``: ``sum_k (TPR_k - TPR_{k-1}) * precision_k``
       over the thresholds, starting from TPR = 0 (a step function).

    VUS-PR is the mean of the per-``w`` areas. ``sliding_window`` is the
    largest buffer size itself (as in TSB-AD 1.5; some older TSB-AD code passed
    twice the window). Even with ``sliding_window=0`` this differs from
    :func:`auc_pr`: the thresholds are a sample of the scores, and TPR is scaled
    by the fraction of anomalous ranges hit.

    Cost: ``O(n log n + sliding_window * (n + n_thresholds))`` time and
    ``O(n + sliding_window * n_thresholds)`` memory.

    Requires at least one anomalous point.
    """
    window, n_thr = _check_vus_args(sliding_window, n_thresholds)
    y, s = _check(labels, scores, need_normal=False)
    tpr, _, precision = _vus_curves(y, s, window, n_thr)
    steps = np.diff(tpr, axis=1, prepend=0.0)
    return float(np.mean(np.sum(steps * precision, axis=1)))


def vus_roc(
    labels: Any,
    scores: Any,
    sliding_window: int,
    *,
    n_thresholds: int = DEFAULT_VUS_THRESHOLDS,
) -> float:
    """Volume Under the range-aware ROC Surface (VUS-ROC).

    Same curves as :func:`vus_pr` (see there for the paper and algorithm); for
    each buffer size the range-AUC-ROC is the trapezoidal area under the
    (FPR, TPR) points of the thresholds, closed with (0, 0) before the first
    and (1, 1) after the last. VUS-ROC is the mean over buffer sizes
    ``0 .. sliding_window``.

    Requires at least one anomalous and one normal point.
    """
    window, n_thr = _check_vus_args(sliding_window, n_thresholds)
    y, s = _check(labels, scores, need_normal=True)
    tpr, fpr, _ = _vus_curves(y, s, window, n_thr)
    rows = tpr.shape[0]
    tpr = np.hstack((np.zeros((rows, 1)), tpr, np.ones((rows, 1))))
    fpr = np.hstack((np.zeros((rows, 1)), fpr, np.ones((rows, 1))))
    areas = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
    return float(np.mean(areas))


# --------------------------------------------------------------------------- #
# thresholded metrics
# --------------------------------------------------------------------------- #


def _check_predicted(labels: Any, predicted: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(labels, "labels")
    p = _as_binary(predicted, "predicted")
    if len(y) != len(p):
        raise ValueError(f"labels and predicted differ in length ({len(y)} vs {len(p)})")
    return y, p


def precision_recall_f1(labels: Any, predicted: Any) -> tuple[float, float, float]:
    """Point-wise precision, recall and F1 of 0/1 predictions (no point adjustment).

    Each is 0.0 where undefined (no predicted points, no anomalous points, or
    precision + recall = 0).
    """
    y, p = _check_predicted(labels, predicted)
    tp = int(np.sum((y == 1) & (p == 1)))
    n_pred = int(p.sum())
    n_anom = int(y.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_anom if n_anom else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)


def event_recall(labels: Any, predicted: Any) -> float:
    """Fraction of anomalous events detected.

    An event is a maximal run of consecutive 1s in ``labels``; it is detected
    when at least one of its points is predicted. 0.0 when there are no events.
    """
    y, p = _check_predicted(labels, predicted)
    starts, ends = runs(y)
    if len(starts) == 0:
        return 0.0
    hits_before = np.concatenate(([0], np.cumsum(p, dtype=np.int64)))
    detected = hits_before[ends + 1] - hits_before[starts] > 0
    return float(np.mean(detected))


def labels_from_intervals(index: Any, intervals: Sequence[tuple[Any, Any]]) -> np.ndarray:
    """0/1 labels marking the points of ``index`` inside any of ``intervals``.

    ``index`` is a 1-D array of timestamps (numpy ``datetime64``) or row numbers,
    in any order. ``intervals`` is a list of ``(start, end)`` pairs of the same
    kind, both ends inclusive (for timestamps, anything ``numpy.datetime64``
    accepts, e.g. ISO strings). Returns an int8 array of the index's length.
    """
    idx = np.asarray(index)
    if idx.ndim != 1:
        raise ValueError(f"index must be a 1-D array, got shape {idx.shape}")
    is_time = np.issubdtype(idx.dtype, np.datetime64)
    if not is_time and not np.issubdtype(idx.dtype, np.number):
        raise ValueError(
            f"index must hold datetime64 timestamps or row numbers, got dtype {idx.dtype}"
        )
    pairs = list(intervals)
    labels = np.zeros(len(idx), dtype=np.int8)
    if not pairs:
        return labels
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError("intervals must be (start, end) pairs")
    try:
        bounds = np.array(pairs, dtype=idx.dtype if is_time else np.float64)
    except (TypeError, ValueError) as exc:
        kind = "timestamps" if is_time else "numbers"
        raise ValueError(f"intervals must be (start, end) pairs of {kind}: {exc}") from exc
    missing = np.isnat(bounds) if is_time else np.isnan(bounds)
    if missing.any():
        raise ValueError("intervals contain a missing (NaT/NaN) bound")
    reversed_ = bounds[:, 0] > bounds[:, 1]
    if reversed_.any():
        k = int(np.flatnonzero(reversed_)[0])
        raise ValueError(f"interval {k} ends before it starts: {pairs[k]!r}")

    # Mark the intervals on the sorted index with +1/-1 at their edges.
    order = np.argsort(idx, kind="mergesort")
    sorted_idx = idx[order]
    if not is_time:
        sorted_idx = sorted_idx.astype(np.float64)
    lo = np.searchsorted(sorted_idx, bounds[:, 0], side="left")
    hi = np.searchsorted(sorted_idx, bounds[:, 1], side="right")
    edges = np.zeros(len(idx) + 1, dtype=np.int64)
    np.add.at(edges, lo, 1)
    np.add.at(edges, hi, -1)
    labels[order] = np.cumsum(edges[:-1]) > 0
    return labels
