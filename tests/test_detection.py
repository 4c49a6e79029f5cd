"""Detection quality on the sample data, with the default options.

Floors here are ones a broken model (one that outputs the mean, or random
weights) cannot meet: injected anomalies must stand out clearly.
"""

import numpy as np
import pandas as pd
import pytest

from lstmae import Detector
from lstmae.metrics import auc_roc

from .conftest import SAMPLES, window_labels


@pytest.fixture(scope="module", params=["defaults", "window 32"])
def server_scores(request, quickstart):
    """The README's model (default options), and one with --window 32 otherwise default."""
    if request.param == "defaults":
        assert quickstart["model"].exists(), quickstart["runs"][0].stderr
        det = Detector.load(quickstart["model"])
    else:
        det = Detector(window=32, device="cpu").fit(pd.read_csv(SAMPLES / "server_train.csv"))
    return det.score(pd.read_csv(SAMPLES / "server_test.csv"))


def test_every_injected_anomaly_scores_above_the_threshold(server_scores):
    labels = pd.read_csv(SAMPLES / "server_test_labels.csv")
    for row in labels.itertuples():
        inside = window_labels(server_scores, labels[labels["kind"] == row.kind])
        assert server_scores.loc[inside, "anomaly"].any(), row.kind
        # most of the stretch's windows, not a lucky one
        assert server_scores.loc[inside, "anomaly"].mean() > 0.5, row.kind


def test_few_normal_windows_flagged_and_ranking_is_good(server_scores):
    labels = pd.read_csv(SAMPLES / "server_test_labels.csv")
    truth = window_labels(server_scores, labels)
    flagged_normal = server_scores.loc[~truth, "anomaly"].mean()
    assert flagged_normal <= 0.05
    assert auc_roc(truth.astype(int), server_scores["error"].to_numpy()) >= 0.95


def test_univariate_sample_anomalies_are_found():
    det = Detector(device="cpu").fit(pd.read_csv(SAMPLES / "univariate_train.csv"))
    scores = det.score(pd.read_csv(SAMPLES / "univariate_test.csv"))
    labels = pd.read_csv(SAMPLES / "univariate_test_labels.csv")
    truth = window_labels(scores, labels)
    for row in labels.itertuples():
        inside = window_labels(scores, labels[labels["kind"] == row.kind])
        assert scores.loc[inside, "anomaly"].any(), row.kind
    # The default threshold is 1.2 times the largest held-out error: it flags no normal
    # window here and still finds every anomaly. The largest error itself is beaten by
    # normal noise on a few % of normal windows (5-11 % over seeds 0-2 in bf16, 15 % at
    # seed 0 in fp32 on a CPU without AMX; the trade-off is measured in bench/README.md).
    assert np.isclose(det.threshold_, 1.2 * det.heldout_errors_.max())
    assert scores.loc[~truth, "anomaly"].mean() <= 0.01
    looser = det.score(pd.read_csv(SAMPLES / "univariate_test.csv"),
                       threshold=det.heldout_errors_.max())
    assert looser.loc[~truth, "anomaly"].mean() <= 0.2
    assert looser["anomaly"].sum() >= scores["anomaly"].sum()
    assert auc_roc(truth.astype(int), scores["error"].to_numpy()) >= 0.9
    # the normal part is reconstructed close to its noise floor (a model that
    # outputs the mean scores about 0.8 in these standardised units: the mean
    # absolute deviation of a standardised series)
    assert np.median(scores.loc[~truth, "error"]) < 0.2


def test_a_one_row_spike_is_flagged_in_every_window_that_holds_it():
    # A latency-style spike: one row off by 7 noise standard deviations. The window's
    # mean absolute error dilutes it over the window's 32 rows and misses it in most
    # windows (0.19-0.22 flagged in fp32 and bf16 on an AMD EPYC; at 10 sd it caught
    # 0.72-0.78 there); the default error (mae+peak) flags nearly every window that holds
    # it (all of them at margin 1.0, 31 of 32 at the default 1.2: the spike on the edge).
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    frame = pd.DataFrame({"value": np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(len(t))})
    train, test = frame[:2000], frame[2000:].reset_index(drop=True)
    test.loc[500, "value"] += 0.7
    flagged = {}
    for error in ("mae+peak", "mae"):
        det = Detector(window=32, hidden=32, latent=8, epochs=20, device="cpu", error=error)
        scores = det.fit(train).score(test)
        holds_spike = (scores["start"] <= 500) & (scores["end"] >= 500)
        flagged[error] = scores.loc[holds_spike, "anomaly"].mean()
        if error == "mae+peak":
            assert scores.loc[~holds_spike, "anomaly"].mean() <= 0.02
    assert flagged["mae+peak"] >= 0.9
    assert flagged["mae"] < 0.5
