"""Point, window and event levels, per-column errors, thresholds, --window auto."""

import numpy as np
import pandas as pd
import pytest

from lstmae import Detector
from lstmae.errors import LstmaeWarning, OptionError
from lstmae.threshold import MIN_THRESHOLD, calibrate, describe, pot_threshold
from lstmae.windows import dominant_period


def test_point_scores_are_causal_and_unscored_rows_are_nan(small_detector, small_frame):
    windows = small_detector.score(small_frame)
    points = small_detector.score(small_frame, level="point")
    assert list(points.columns) == ["timestamp", "score", "threshold", "anomaly", "alarm"]
    assert len(points) == len(small_frame)
    assert points["score"].iloc[:15].isna().all()  # window 16: rows 0..14 have no full window
    assert not points["anomaly"].iloc[:15].any()
    # row t scores the window that ends at t
    np.testing.assert_array_equal(points["score"].iloc[15:].to_numpy(), windows["error"])
    assert (points["timestamp"].iloc[15:].to_numpy() == pd.to_datetime(windows["end"])).all()


def test_point_score_uses_only_past_rows(small_detector, small_frame):
    changed = small_frame.copy()
    changed.loc[300:, ["a", "b", "c"]] += 5.0  # the future changes...
    before = small_detector.score(small_frame, level="point")["score"]
    after = small_detector.score(changed, level="point")["score"]
    np.testing.assert_array_equal(before.iloc[:300], after.iloc[:300])  # ...the past does not
    assert (after.iloc[300:] > before.iloc[300:]).all()


def test_point_scores_with_a_stride_use_the_latest_window(small_frame):
    det = Detector(window=16, stride=5, hidden=8, latent=2, epochs=1, device="cpu")
    det.fit(small_frame)
    windows = det.score(small_frame)
    points = det.score(small_frame, level="point")
    ends = pd.to_datetime(windows["end"]).to_numpy()
    for row in (14, 15, 16, 20, 21, 399):
        time = small_frame["timestamp"].to_numpy()[row]
        done = np.flatnonzero(ends <= time)
        expected = windows["error"].iloc[done[-1]] if done.size else np.nan
        assert points["score"].iloc[row] == expected or (
            np.isnan(expected) and np.isnan(points["score"].iloc[row]))


def test_the_window_error_is_its_worst_column(small_detector, small_frame):
    windows = small_detector.score(small_frame, per_column=True)
    per_col = windows[["error_a", "error_b", "error_c"]].to_numpy()
    np.testing.assert_array_equal(per_col.max(axis=1), windows["error"])
    points = small_detector.score(small_frame, level="point", per_column=True)
    assert {"error_a", "error_b", "error_c"} <= set(points.columns)


def test_events_merge_runs_and_name_the_column_at_fault(small_detector, small_frame):
    broken = small_frame.copy()
    broken.loc[200:209, "b"] += 4.0  # only column b misbehaves
    events = small_detector.score(broken, level="event")
    assert list(events.columns) == ["event", "onset", "start", "end", "windows", "peak_error",
                                    "top_column", "status"]
    assert len(events) >= 1
    main = events.loc[events["peak_error"].idxmax()]
    assert main["top_column"] == "b"
    assert pd.Timestamp(main["start"]) <= broken["timestamp"][200]
    assert pd.Timestamp(main["end"]) >= broken["timestamp"][209]
    windows = small_detector.score(broken)
    # Every anomalous window of an incident counts; stretches that were never news
    # (lstmae.events.Surprise) open none.
    assert 0 < events["windows"].sum() <= windows["anomaly"].sum()


def test_threshold_methods():
    rng = np.random.default_rng(0)
    errors = rng.exponential(1.0, 20000)
    q, how = calibrate(errors, "quantile", quantile=0.99)
    assert how == {"method": "quantile", "quantile": 0.99} and abs(q - np.log(100)) < 0.15
    m, how = calibrate(errors, "max", margin=1.5)
    assert how == {"method": "max", "margin": 1.5} and m == 1.5 * errors.max()
    # default margin: 1.2 on held-out errors, 1.5 on training windows' (optimistic) errors
    assert calibrate(errors, "max") == (1.2 * errors.max(), {"method": "max", "margin": 1.2})
    assert calibrate(errors, "max", heldout=False) == (1.5 * errors.max(),
                                                       {"method": "max", "margin": 1.5})
    s, _ = calibrate(errors, "sigma", sigma=3.0)
    assert abs(s - (errors.mean() + 3 * errors.std())) < 1e-9
    # exponential tail: P(X > x) = exp(-x), so risk 1e-4 sits at ln(1e4) = 9.2,
    # beyond every sample but a few: POT extrapolates where a quantile cannot
    p = pot_threshold(errors, 1e-4)
    assert abs(p - np.log(1e4)) < 1.0
    with pytest.raises(OptionError, match="'risk'"):
        calibrate(errors, "pot", risk=2.0)
    with pytest.raises(OptionError, match="'threshold_method'"):
        calibrate(errors, "median")
    with pytest.raises(OptionError, match="'margin'"):
        calibrate(errors, "max", margin=0)


def test_a_threshold_is_never_below_the_floor():
    # What the held-out errors of a column that never moved in training look like:
    # rounding. A threshold of 1.2 x 4e-4 flagged every row of new data 0.001 off.
    rounding = np.random.default_rng(0).uniform(1e-4, 4e-4, 200)
    for method in ("max", "quantile", "pot", "sigma"):
        value, how = calibrate(rounding, method)
        assert value == MIN_THRESHOLD == how["floor"], method
        assert "raised to the floor of 0.01" in describe({**how, "source": "validation",
                                                          "windows": 200})
    assert "floor" not in calibrate(rounding * 100, "max")[1]


def test_a_column_constant_in_training_pages_on_a_jump_not_on_a_rounding_step():
    t = pd.date_range("2026-01-01", periods=600, freq="min")
    train = pd.DataFrame({"timestamp": t, "level": 0.999})
    with pytest.warns(LstmaeWarning, match="constant"):
        det = Detector(window=16, hidden=8, latent=3, epochs=20, device="cpu",
                       precision="fp32").fit(train)
    assert det.threshold_ == MIN_THRESHOLD and det.threshold_info_["floor"] == MIN_THRESHOLD
    new = pd.DataFrame({"timestamp": t + pd.Timedelta("10h"), "level": 1.003})
    # 0.004 off: above 1.2 x the largest held-out error (rounding), below the floor
    assert (det.score(new)["error"] > 1.2 * det.heldout_errors_.max()).all()
    assert not det.score(new)["anomaly"].any()
    new.loc[300, "level"] = -1.0
    assert det.score(new)["anomaly"].sum() == 16  # every window that holds the jump


def test_without_held_out_rows_the_margin_is_1_5(small_frame):
    det = Detector(window=16, hidden=8, latent=3, epochs=2, val_fraction=0.0, device="cpu")
    det.fit(small_frame)
    assert det.threshold_info_["source"] == "training" and det.threshold_info_["margin"] == 1.5
    assert det.threshold_ == pytest.approx(1.5 * det.heldout_errors_.max())


def test_threshold_rederived_from_stored_errors_without_refit(small_detector, small_frame):
    loose, source = small_detector.threshold_for(quantile=0.5)
    assert loose == pytest.approx(np.quantile(small_detector.heldout_errors_, 0.5))
    assert "quantile 0.5" in source
    strict, _ = small_detector.threshold_for(quantile=0.999)
    low = small_detector.score(small_frame, threshold=loose)["anomaly"].sum()
    high = small_detector.score(small_frame, threshold=strict)["anomaly"].sum()
    assert low >= high
    assert small_detector.threshold_for(risk=1e-3)[1].startswith("pot")
    with pytest.raises(OptionError, match="only one of"):
        small_detector.threshold_for(quantile=0.9, risk=1e-3)
    wider, source = small_detector.threshold_for(margin=1.5)
    assert wider == pytest.approx(1.5 * small_detector.heldout_errors_.max())
    assert source == "1.5 x the largest held-out error"
    with pytest.raises(OptionError, match="'margin'"):
        small_detector.threshold_for(margin=-1)


@pytest.mark.parametrize("method,key", [("quantile", "quantile"), ("pot", "risk"),
                                        ("sigma", "sigma")])
def test_fit_with_other_threshold_methods_records_them(small_frame, method, key):
    det = Detector(window=16, hidden=8, latent=2, epochs=2, threshold_method=method,
                   device="cpu").fit(small_frame)
    assert det.threshold_info_["method"] == method and key in det.threshold_info_
    assert det.threshold_ > 0


def test_dominant_period_and_window_auto():
    t = np.arange(3000)
    daily = np.sin(2 * np.pi * t / 48)[:, None]
    assert dominant_period(daily) == 48
    weekly_and_daily = daily + 0.3 * np.sin(2 * np.pi * t / 336)[:, None]
    assert dominant_period(weekly_and_daily) == 48  # the short cycle, not the week
    noise = np.random.default_rng(0).standard_normal((3000, 1))
    assert dominant_period(noise) is None
    frame = pd.DataFrame({"value": np.sin(2 * np.pi * np.arange(600) / 40)})
    det = Detector(window="auto", hidden=8, latent=2, epochs=1, device="cpu").fit(frame)
    assert det.window_ == 40
    assert det.metadata()["window"] == 40 and det.metadata()["params"]["window"] == "auto"
