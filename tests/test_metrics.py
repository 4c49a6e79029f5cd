"""Tests for lstmae.metrics.

The reference cases come from the TSB-AD benchmark's own evaluation
(``get_metrics``, VUS version "opt", 250 thresholds); see the ``source`` key of
metrics-reference.json.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lstmae.metrics import (
    auc_pr,
    auc_roc,
    best_f1,
    event_recall,
    labels_from_intervals,
    precision_recall_f1,
    runs,
    vus_pr,
    vus_roc,
)

from .conftest import SHARED_DATA

# The reference lives with the shared development data (CI has it too); a
# missing file must fail loudly, not skip the one check of VUS-PR.
_CASES = json.loads((SHARED_DATA / "metrics-reference.json").read_text())["cases"]


# --------------------------------------------------------------------------- #
# TSB-AD reference values
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "case", _CASES, ids=[f"case{i}-w{c['sliding_window']}" for i, c in enumerate(_CASES)]
)
def test_matches_tsb_ad_reference(case):
    labels = np.array(case["labels"])
    scores = np.array(case["scores"], dtype=float)
    window = case["sliding_window"]
    expected = case["expected"]
    got = {
        "AUC-PR": auc_pr(labels, scores),
        "AUC-ROC": auc_roc(labels, scores),
        "VUS-PR": vus_pr(labels, scores, window),
        "VUS-ROC": vus_roc(labels, scores, window),
        "Standard-F1": best_f1(labels, scores)[0],
    }
    for name, value in got.items():
        assert value == pytest.approx(expected[name], abs=1e-3), name


# --------------------------------------------------------------------------- #
# hand-checkable cases
# --------------------------------------------------------------------------- #

LABELS = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0])


def test_perfect_scores():
    scores = LABELS.astype(float)
    assert auc_roc(LABELS, scores) == 1.0
    assert auc_pr(LABELS, scores) == 1.0
    assert best_f1(LABELS, scores) == (1.0, 1.0)
    for window in (0, 1, 4, 20):
        assert vus_roc(LABELS, scores, window) == pytest.approx(1.0)
        assert vus_pr(LABELS, scores, window) == pytest.approx(1.0)


def test_reversed_scores():
    scores = 1.0 - LABELS
    assert auc_roc(LABELS, scores) == 0.0
    # The anomalies are only found once everything is flagged: AP = prevalence.
    assert auc_pr(LABELS, scores) == pytest.approx(0.3)


def test_constant_scores():
    scores = np.full(len(LABELS), 0.7)
    assert auc_roc(LABELS, scores) == 0.5
    assert auc_pr(LABELS, scores) == pytest.approx(0.3)
    f1, threshold = best_f1(LABELS, scores)
    assert f1 == pytest.approx(2 * 0.3 / 1.3)  # precision 0.3, recall 1
    assert threshold == 0.7


def test_auc_roc_ties_count_half():
    # One anomaly tied with one of two normal points, above the other.
    assert auc_roc([1, 0, 0], [0.5, 0.5, 0.1]) == 0.75


def test_runs_of_flags():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert list(zip(*runs(flags), strict=True)) == [(1, 2), (5, 5), (7, 9)]
    assert [len(r) for r in runs(np.zeros(3, bool))] == [0, 0]


def test_best_f1_threshold_reproduces_f1():
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 0])
    scores = np.array([0.1, 0.9, 0.4, 0.5, 0.8, 0.2, 0.3, 0.05])
    f1, threshold = best_f1(labels, scores)
    assert threshold == 0.4  # flag the top 4: TP 3, FP 1 -> F1 6/7
    assert f1 == pytest.approx(6 / 7)
    assert precision_recall_f1(labels, scores >= threshold)[2] == pytest.approx(f1)


def test_vus_window_buffer_rewards_near_misses():
    # Scores peak just after the labelled stretch: a buffer gives credit.
    labels = np.zeros(60, dtype=int)
    labels[20:25] = 1
    scores = np.zeros(60)
    scores[26:29] = 1.0
    assert vus_pr(labels, scores, 10) > vus_pr(labels, scores, 0)
    assert vus_roc(labels, scores, 10) > vus_roc(labels, scores, 0)


def test_precision_recall_f1():
    labels = [0, 1, 1, 1, 0, 0]
    predicted = [1, 1, 0, 1, 0, 0]
    precision, recall, f1 = precision_recall_f1(labels, predicted)
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 / 3)


def test_precision_recall_f1_undefined_is_zero():
    assert precision_recall_f1([0, 1, 0], [0, 0, 0]) == (0.0, 0.0, 0.0)
    assert precision_recall_f1([0, 0, 0], [0, 1, 0]) == (0.0, 0.0, 0.0)
    assert precision_recall_f1([0, 1, 0], [1, 0, 1]) == (0.0, 0.0, 0.0)


def test_event_recall():
    labels = [0, 1, 1, 0, 0, 1, 1, 1, 0]
    assert event_recall(labels, [0, 0, 0, 0, 0, 0, 1, 0, 0]) == 0.5
    assert event_recall(labels, [1, 0, 0, 1, 1, 0, 0, 0, 1]) == 0.0
    assert event_recall(labels, [0, 0, 1, 0, 0, 1, 0, 0, 0]) == 1.0
    # events touching both ends of the series
    assert event_recall([1, 0, 0, 1], [0, 0, 0, 1]) == 0.5
    assert event_recall([0, 0, 0], [1, 1, 1]) == 0.0


def test_labels_from_intervals_timestamps():
    index = np.arange("2024-01-01T00:00", "2024-01-01T01:00", 10, dtype="datetime64[m]")
    labels = labels_from_intervals(
        index,
        [
            ("2024-01-01T00:10", "2024-01-01T00:20"),  # ends inclusive
            (np.datetime64("2024-01-01T00:45"), np.datetime64("2024-01-01T00:49")),  # no point
        ],
    )
    np.testing.assert_array_equal(labels, [0, 1, 1, 0, 0, 0])
    assert labels.dtype.kind == "i"


def test_labels_from_intervals_unsorted_index_and_mixed_units():
    index = np.array(
        ["2024-03-01T12:00:30", "2024-03-01T12:00:00", "2024-03-01T12:01:00"],
        dtype="datetime64[ns]",
    )
    labels = labels_from_intervals(index, [(np.datetime64("2024-03-01T12:00:30", "s"),) * 2])
    np.testing.assert_array_equal(labels, [1, 0, 0])


def test_labels_from_intervals_row_numbers():
    index = np.arange(10)
    np.testing.assert_array_equal(
        labels_from_intervals(index, [(2, 3), (3, 4), (9, 12)]), [0, 0, 1, 1, 1, 0, 0, 0, 0, 1]
    )
    np.testing.assert_array_equal(labels_from_intervals(index, []), np.zeros(10))
    with pytest.raises(ValueError, match="ends before it starts"):
        labels_from_intervals(index, [(5, 4)])


# --------------------------------------------------------------------------- #
# invalid input
# --------------------------------------------------------------------------- #

THRESHOLD_FREE = [
    auc_roc,
    auc_pr,
    lambda y, s: best_f1(y, s)[0],
    lambda y, s: vus_pr(y, s, 4),
    lambda y, s: vus_roc(y, s, 4),
]


@pytest.mark.parametrize("metric", THRESHOLD_FREE)
def test_nan_scores_rejected(metric):
    with pytest.raises(ValueError, match="NaN"):
        metric([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4])


@pytest.mark.parametrize("metric", THRESHOLD_FREE)
def test_no_anomalies_rejected(metric):
    with pytest.raises(ValueError, match="no anomalous"):
        metric([0, 0, 0], [0.1, 0.2, 0.3])


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="no normal"):
        auc_roc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="no normal"):
        vus_roc([1, 1], [0.1, 0.2], 2)
    with pytest.raises(ValueError, match="length"):
        auc_roc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="only 0 and 1"):
        auc_pr([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="sliding_window"):
        vus_pr([0, 1], [0.1, 0.2], -1)
    with pytest.raises(ValueError, match="length"):
        precision_recall_f1([0, 1], [1])


def test_vus_is_fast_on_long_series():
    rng = np.random.default_rng(0)
    n = 20_000
    labels = np.zeros(n, dtype=int)
    for start in rng.choice(n - 200, 30, replace=False):
        labels[start : start + rng.integers(1, 150)] = 1
    scores = rng.random(n) + 0.5 * labels
    start = time.perf_counter()
    value = vus_pr(labels, scores, 100)
    assert time.perf_counter() - start < 2.0
    assert 0.0 < value < 1.0


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #


@st.composite
def labelled_scores(draw, max_size=60):
    n = draw(st.integers(2, max_size))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    assume(0 < sum(labels) < n)
    # Small integer scores produce many ties; floats produce few.
    element = st.one_of(
        st.integers(0, 5).map(float),
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    )
    scores = draw(st.lists(element, min_size=n, max_size=n))
    return np.array(labels), np.array(scores)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(labelled_scores())
def test_point_metrics_match_sklearn(data):
    skm = pytest.importorskip("sklearn.metrics")
    labels, scores = data
    assert auc_roc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert auc_pr(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-12
    )
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    assert best_f1(labels, scores)[0] == pytest.approx(f1.max(), abs=1e-12)


def _runs(labels):
    runs, start = [], None
    for i, value in enumerate([*labels, 0]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def _vus_naive(labels, scores, max_window, n_thresholds):
    """Point-by-point, threshold-by-threshold version of the vus_pr docstring."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=float)
    n = len(labels)
    runs = _runs(labels)
    thresholds = np.sort(scores)[::-1][np.linspace(0, n - 1, n_thresholds).astype(int)]
    roc_areas, pr_areas = [], []
    for w in range(max_window + 1):
        half = w // 2
        soft = labels.astype(float)
        for start, end in runs:
            for d in range(1, half + 1):
                for i in (start - d, end + d):
                    if 0 <= i < n and labels[i] == 0:
                        soft[i] += math.sqrt(1 - d / w)
        soft = np.minimum(soft, 1.0)
        ranges = []
        for start, end in runs:
            lo, hi = max(start - half, 0), min(end + half, n - 1)
            if ranges and lo <= ranges[-1][1]:
                ranges[-1][1] = hi
            else:
                ranges.append([lo, hi])
        tpr, fpr, precision = [0.0], [0.0], []
        for threshold in thresholds:
            pred = scores >= threshold
            bonus = soft[pred & (labels == 0)].sum()
            tp = labels[pred].sum() + bonus
            p_new = labels.sum() + bonus / 2
            found = sum(pred[lo : hi + 1].any() for lo, hi in ranges) / len(ranges)
            tpr.append(min(tp / p_new, 1.0) * found)
            fpr.append((pred.sum() - tp) / (n - p_new))
            precision.append(tp / pred.sum())
        pr_areas.append(sum(np.diff(tpr) * precision))
        tpr.append(1.0)
        fpr.append(1.0)
        roc_areas.append(sum(np.diff(fpr) * (np.array(tpr[1:]) + tpr[:-1]) / 2))
    return float(np.mean(roc_areas)), float(np.mean(pr_areas))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(labelled_scores(max_size=30), st.integers(0, 12), st.integers(1, 25))
def test_vus_matches_naive_definition(data, window, n_thresholds):
    labels, scores = data
    expected_roc, expected_pr = _vus_naive(labels, scores, window, n_thresholds)
    roc = vus_roc(labels, scores, window, n_thresholds=n_thresholds)
    pr = vus_pr(labels, scores, window, n_thresholds=n_thresholds)
    assert roc == pytest.approx(expected_roc, abs=1e-9)
    assert pr == pytest.approx(expected_pr, abs=1e-9)
