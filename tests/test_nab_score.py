"""Tests for bench/nab_score.py, the NAB scoring rules for binary alarms.

Expected numbers come from NAB's formulas (nab/sweeper.py), worked out by hand.
Useful identity: NAB's scaledSigmoid(x) = 2 / (1 + exp(5x)) - 1 = -tanh(2.5 x).
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import nab_score  # noqa: E402
from nab_score import PROFILES, corpus_score, file_score, probation_rows  # noqa: E402

NAB_DEV = Path("/work/shared/data/nab-dev")
MAX_TP = math.tanh(2.5)  # scaledSigmoid(-1) = 0.98661...


def stamps(n):
    return pd.date_range("2014-01-01", periods=n, freq="5min")


def window(ts, lo, hi):
    """A window covering rows lo..hi, written as in NAB's windows.json."""
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return (ts[lo].strftime(fmt), ts[hi].strftime(fmt))


def alarms_at(n, *rows):
    a = np.zeros(n, dtype=bool)
    a[list(rows)] = True
    return a


def test_profiles_match_nab_config():
    assert PROFILES["standard"] == {"tp": 1.0, "fp": -0.11, "fn": -1.0}
    assert PROFILES["reward_low_FP_rate"] == {"tp": 1.0, "fp": -0.22, "fn": -1.0}
    assert PROFILES["reward_low_FN_rate"] == {"tp": 1.0, "fp": -0.11, "fn": -2.0}


def test_probation_rows():
    assert probation_rows(0) == 0
    assert probation_rows(6) == 0
    assert probation_rows(7) == 1
    assert probation_rows(100) == 15
    assert probation_rows(4032) == 604  # floor(604.8)
    assert probation_rows(5000) == 750
    assert probation_rows(22695) == 750  # capped at 0.15 * 5000


def test_scaled_sigmoid_shape():
    assert nab_score.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab_score.scaled_sigmoid(0.0) == 0.0
    assert nab_score.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab_score.scaled_sigmoid(3.5) == -1.0


def test_no_alarm_costs_fn_per_window_and_normalises_to_zero():
    ts = stamps(300)
    wins = [window(ts, 100, 119), window(ts, 200, 219)]
    r = file_score(ts, np.zeros(300, bool), wins)
    assert r["raw"] == -2.0
    assert (r["tp"], r["fp"], r["fn"], r["windows"]) == (0, 0, 2, 2)
    c = corpus_score([r])
    assert c["score"] == 0.0
    assert (c["null"], c["perfect"]) == (-2.0, 2.0)
    r2 = file_score(ts, np.zeros(300, bool), wins, profile="reward_low_FN_rate")
    assert r2["raw"] == -4.0
    assert corpus_score([r2], profile="reward_low_FN_rate")["score"] == 0.0


def test_alarm_at_window_start_is_the_perfect_detector():
    # NAB (sweeper.calcSweepScore) divides the TP credit by maxTP =
    # scaledSigmoid(-1) = 0.98661, so the first row of a window earns exactly
    # A_tp = 1.0, the same as Runner.normalize's perfect = A_tp * n_windows.
    ts = stamps(300)
    wins = [window(ts, 100, 119), window(ts, 200, 219)]
    r = file_score(ts, alarms_at(300, 100, 200), wins)
    assert r["raw"] == pytest.approx(2.0, abs=1e-12)
    assert r["delays"] == [0.0, 0.0]
    c = corpus_score([r])
    assert c["raw"] == pytest.approx(c["perfect"])
    assert c["score"] == pytest.approx(100.0)


def test_alarm_at_window_last_row_earns_almost_nothing():
    # Last row: position = -(hi - hi + 1) / width = -1/width.
    ts = stamps(3000)
    r = file_score(ts, alarms_at(3000, 1399), [window(ts, 1000, 1399)])  # width 400
    expected = math.tanh(2.5 / 400) / MAX_TP  # 0.00633
    assert r["raw"] == pytest.approx(expected, rel=1e-12)
    assert r["raw"] < 0.01 and r["delays"] == [399.0]
    # For a short window NAB's +1 keeps it clearly above 0: width 10 -> 0.2482.
    ts = stamps(300)
    r = file_score(ts, alarms_at(300, 109), [window(ts, 100, 109)])
    assert r["raw"] == pytest.approx(math.tanh(0.25) / MAX_TP, rel=1e-12)
    assert r["raw"] == pytest.approx(0.24824, abs=1e-5)


def test_only_first_alarm_in_window_counts():
    ts = stamps(300)
    wins = [window(ts, 100, 119)]
    one = file_score(ts, alarms_at(300, 105), wins)
    many = file_score(ts, alarms_at(300, 105, 106, 110, 119), wins)
    assert many["raw"] == one["raw"]
    assert (many["tp"], many["fp"], many["delays"]) == (1, 0, [5.0])
    # An earlier alarm is worth more than a later one.
    assert file_score(ts, alarms_at(300, 101), wins)["raw"] > one["raw"]


def test_false_positive_far_from_windows_costs_full_fp_weight():
    ts = stamps(1000)
    wins = [window(ts, 500, 519)]
    base = file_score(ts, np.zeros(1000, bool), wins)["raw"]  # -1 (FN)
    before = file_score(ts, alarms_at(1000, 300), wins)  # before any window
    far_after = file_score(ts, alarms_at(1000, 900), wins)  # 381/19 > 3 windows
    assert before["raw"] - base == pytest.approx(-0.11, abs=1e-15)
    assert far_after["raw"] - base == pytest.approx(-0.11, abs=1e-15)
    assert before["fp"] == far_after["fp"] == 1
    low_fp = file_score(ts, alarms_at(1000, 300), wins, profile="reward_low_FP_rate")
    assert low_fp["raw"] + 1.0 == pytest.approx(-0.22, abs=1e-15)


def test_false_positive_just_after_window_costs_less():
    ts = stamps(1000)
    wins = [window(ts, 500, 519)]  # width 20
    base = -1.0
    near = file_score(ts, alarms_at(1000, 520), wins)["raw"] - base
    mid = file_score(ts, alarms_at(1000, 538), wins)["raw"] - base
    far = file_score(ts, alarms_at(1000, 900), wins)["raw"] - base
    assert -0.11 == pytest.approx(far) and far < mid < near < 0
    # One row after the end: position = 1 / (width - 1) = 1/19.
    assert near == pytest.approx(-0.11 * math.tanh(2.5 / 19), rel=1e-12)


def test_alarms_in_probation_are_ignored():
    ts = stamps(100)  # probation = 15 rows
    wins = [window(ts, 40, 49)]
    quiet = file_score(ts, np.zeros(100, bool), wins)
    early = file_score(ts, alarms_at(100, 0, 5, 14), wins)
    assert early == quiet
    assert file_score(ts, alarms_at(100, 15), wins)["fp"] == 1  # first scored row


def test_window_across_probation_boundary():
    ts = stamps(100)  # probation = 15 rows
    wins = [window(ts, 10, 29)]  # width 20, rows 10..14 in probation
    r = file_score(ts, alarms_at(100, 12, 20), wins)  # row 12 ignored
    # Position still relative to the whole window: -(29 - 20 + 1) / 20 = -0.5.
    assert r["raw"] == pytest.approx(math.tanh(1.25) / MAX_TP, rel=1e-12)
    assert r["delays"] == [10.0]
    # A window wholly inside probation has no TP/FN part (NAB never scores its
    # rows), but Runner.normalize still counts it in the perfect score.
    r = file_score(ts, np.zeros(100, bool), [window(ts, 2, 8)])
    assert (r["raw"], r["fn"], r["windows"], r["scored_windows"]) == (0.0, 0, 1, 0)
    assert corpus_score([r])["perfect"] == 1.0 and corpus_score([r])["null"] == 0.0


def test_hand_derived_mixed_case():
    """100 rows (probation 15), one window at rows 40..49 (width 10), standard.

    alarm row 10: in probation                                  ->  0
    alarm row 20: FP before any window, full cost               -> -0.11
    alarm row 45: TP, position -(49-45+1)/10 = -0.5
                  scaledSigmoid(-0.5) = tanh(1.25) = 0.8482836
                  / maxTP tanh(2.5) = 0.9866143                 -> +0.8597926
    alarm row 47: second alarm in the window                    ->  0
    alarm row 52: FP, position (52-49)/(10-1) = 1/3
                  scaledSigmoid(1/3) = -tanh(5/6) = -0.6822618
                  cost -0.11 * 0.6822618                        -> -0.0750488
    alarm row 90: FP, position 41/9 = 4.56 > 3, full cost       -> -0.11
    raw = 0.8597926 - 0.11 - 0.0750488 - 0.11                  =  0.5647438
    corpus alone: null = -1, perfect = +1
    score = 100 * (0.5647438 + 1) / (1 + 1)                    = 78.23719
    """
    ts = stamps(100)
    r = file_score(ts, alarms_at(100, 10, 20, 45, 47, 52, 90), [window(ts, 40, 49)])
    assert r["raw"] == pytest.approx(0.5647438, abs=1e-7)
    assert (r["tp"], r["fp"], r["fn"], r["delays"]) == (1, 3, 0, [5.0])
    c = corpus_score([r])
    assert c["score"] == pytest.approx(78.23719, abs=1e-5)


def test_event_precision_recall_and_delays_over_corpus():
    ts = stamps(300)
    a = file_score(ts, alarms_at(300, 104, 250), [window(ts, 100, 119)])  # tp, fp
    b = file_score(ts, np.zeros(300, bool), [window(ts, 100, 119)])  # fn
    c = file_score(ts, alarms_at(300, 60, 200), [])  # no windows: 2 fp only
    assert c["raw"] == pytest.approx(-0.22)
    s = corpus_score([a, b, c])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 3, 1)
    assert s["event_precision"] == pytest.approx(0.25)
    assert s["event_recall"] == pytest.approx(0.5)
    assert s["median_delay_rows"] == 4.0
    assert (s["null"], s["perfect"]) == (-2.0, 2.0)
    assert s["score"] == pytest.approx(100 * (s["raw"] + 2) / 4)
    empty = corpus_score([b])
    assert math.isnan(empty["event_precision"]) and empty["event_recall"] == 0.0
    assert math.isnan(empty["median_delay_rows"])
    assert math.isnan(corpus_score([c])["score"])  # no window anywhere


def test_string_timestamps_and_row_order():
    ts = stamps(300)
    wins = [window(ts, 100, 119)]
    al = alarms_at(300, 110, 150)
    as_str = file_score(pd.Series(ts.strftime("%Y-%m-%d %H:%M:%S")), al, wins)
    assert as_str == file_score(ts, al, wins)
    # A repeated hour (as at a DST change in NAB's files) before the window
    # must not move it: rows are walked in file order.
    back = ts.tolist()
    back[50:62] = ts[38:50]
    assert file_score(back, al, wins) == file_score(ts, al, wins)


def test_window_bounds_between_rows_cover_the_rows_inside():
    # NAB's labels always sit on row timestamps; others are taken as [start, end].
    ts = stamps(300)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    loose = [((ts[100] - pd.Timedelta("2min")).strftime(fmt),
              (ts[119] + pd.Timedelta("2min")).strftime(fmt))]
    exact = [window(ts, 100, 119)]
    for rows in [(100,), (110,), (119,), (120,), (99,)]:
        al = alarms_at(300, *rows)
        assert file_score(ts, al, loose) == file_score(ts, al, exact), rows
    assert file_score(ts, alarms_at(300, 120), loose)["fp"] == 1


def test_median_delay():
    ts = stamps(300)
    wins = [window(ts, 60, 79), window(ts, 150, 169), window(ts, 240, 259)]
    r = file_score(ts, alarms_at(300, 60, 151, 250), wins)
    assert r["delays"] == [0.0, 1.0, 10.0]
    assert corpus_score([r])["median_delay_rows"] == 1.0


def test_bad_inputs():
    ts = stamps(10)
    with pytest.raises(ValueError):
        file_score(ts, np.zeros(9, bool), [])
    with pytest.raises(ValueError):
        file_score(ts, np.zeros(10, bool), [], profile="nope")
    with pytest.raises(ValueError):
        file_score(ts, np.zeros(10, bool), [window(ts, 2, 5), window(ts, 4, 8)])
    r = file_score(ts, np.zeros(10, bool), [], profile="reward_low_FP_rate")
    with pytest.raises(ValueError):
        corpus_score([r], profile="standard")


@pytest.mark.skipif(not (NAB_DEV / "windows.json").exists(), reason="no nab-dev data")
def test_real_file_null_and_perfect():
    name = "realKnownCause/nyc_taxi.csv"
    wins = json.loads((NAB_DEV / "windows.json").read_text())[name]
    ts = pd.read_csv(NAB_DEV / name)["timestamp"]
    quiet = file_score(ts, np.zeros(len(ts), bool), wins)
    assert quiet["fn"] == len(wins) == 5
    starts = pd.to_datetime(ts).isin(pd.to_datetime([w[0] for w in wins]))
    best = file_score(ts, starts.to_numpy(), wins)
    assert best["delays"] == [0.0] * 5
    assert corpus_score([quiet])["score"] == 0.0
    assert corpus_score([best])["score"] == pytest.approx(100.0)
