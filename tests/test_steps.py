"""--resample: rows averaged into steps of time, the same whole or in batches; and what
--window auto says about periods longer than a window."""

import warnings

import numpy as np
import pandas as pd
import pytest

from lstmae import Detector
from lstmae.errors import LstmaeWarning, OptionError
from lstmae.params import step_us
from lstmae.series import to_series
from lstmae.steps import StepAverager, average
from lstmae.windows import dominant_period

from .conftest import run_lstmae

MINUTE_US = 60 * 10**6


def daily(days=7, noise=0.05, seed=0):
    """One-minute rows of a daily cycle: 1,440 rows a period."""
    rng = np.random.default_rng(seed)
    n = 1440 * days
    t = pd.date_range("2026-01-01", periods=n, freq="1min")
    v = np.sin(2 * np.pi * np.arange(n) / 1440) + noise * rng.standard_normal(n)
    return pd.DataFrame({"timestamp": t, "value": v})


def test_steps_hold_the_mean_of_their_rows_and_begin_on_the_step():
    frame = pd.DataFrame({"time": pd.date_range("2026-01-01 00:05", periods=30, freq="1min"),
                          "v": np.arange(30.0)})
    steps = average(to_series(frame), step_us("15min"), "data")
    # rows 00:05..00:14 (10 rows), 00:15..00:29 (15), 00:30..00:34 (5)
    np.testing.assert_allclose(steps.values[:, 0], [4.5, 17.0, 27.0])
    assert [str(pd.Timestamp(x)) for x in steps.labels] == [
        "2026-01-01 00:00:00", "2026-01-01 00:15:00", "2026-01-01 00:30:00"]
    assert steps.rows.tolist() == [0, 10, 25]  # each step's first row in the file


def test_steps_keep_the_zone_the_times_were_written_in():
    frame = pd.DataFrame({"time": [f"2026-03-01T10:{m:02d}:00+02:00" for m in range(0, 40, 7)],
                          "v": np.arange(6.0)})
    steps = average(to_series(frame), step_us("30min"), "data")
    assert [str(x) for x in steps.labels] == ["2026-03-01 10:00:00+02:00",
                                              "2026-03-01 10:30:00+02:00"]


@pytest.mark.parametrize("batch", [1, 7, 15, 16, 100])
def test_batches_give_the_steps_of_one_read(batch):
    frame = daily(days=1).iloc[:600]
    frame = frame.drop(index=range(200, 260))  # a gap: a step with no rows is no row
    whole = average(to_series(frame), step_us("15min"), "data")
    averager, parts = StepAverager(step_us("15min")), []
    for i in range(0, len(frame), batch):
        part = to_series(frame.iloc[i:i + batch], first_row=i)
        parts.append(averager.feed(part, last=i + batch >= len(frame)))
    np.testing.assert_array_equal(np.concatenate([p.values for p in parts]), whole.values)
    np.testing.assert_array_equal(np.concatenate([p.index for p in parts]), whole.index)
    np.testing.assert_array_equal(np.concatenate([p.rows for p in parts]), whole.rows)


@pytest.mark.parametrize("text", ["15m", "0min", "1.5h", "fortnight", "400d"])
def test_a_bad_step_is_refused_naming_the_parameter(text):
    with pytest.raises(OptionError, match="'resample'"):
        step_us(text)


def test_a_smooth_daily_cycle_is_found_not_its_noise():
    values = daily()["value"].to_numpy()[:, None]
    assert abs(dominant_period(values) - 1440) <= 10


def test_window_auto_says_what_it_capped_and_steps_see_the_whole_cycle(tmp_path):
    frame = daily()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        capped = Detector(window="auto", epochs=1, seed=0).fit(frame)
    assert capped.window_ == 256
    said = " ".join(str(w.message) for w in caught if isinstance(w.message, LstmaeWarning))
    assert "repeats every" in said and "using 256" in said and "'resample' 15min" in said

    det = Detector(window="auto", resample="15min", epochs=2, seed=0).fit(frame)
    assert det.window_ == 96  # a day of 15-minute steps
    assert det.training_["rows"] == 7 * 96
    det.save(tmp_path / "m.lstmae")
    loaded = Detector.load(tmp_path / "m.lstmae")
    assert loaded.params.data.resample == "15min"
    points = loaded.score(frame, level="point")
    assert len(points) == 7 * 96 and points["timestamp"].iloc[1] == pd.Timestamp("2026-01-01 00:15")
    batched = pd.concat([p["window"] for p in loaded.iter_score(
        (frame.iloc[i:i + 777] for i in range(0, len(frame), 777)), levels={"window"})],
        ignore_index=True)
    whole = loaded.score(frame)
    pd.testing.assert_frame_equal(batched[whole.columns], whole)


def test_resample_without_a_time_column_is_one_error_line(tmp_path):
    data = tmp_path / "rows.csv"
    pd.DataFrame({"v": np.sin(np.arange(400) / 5)}).to_csv(data, index=False)
    proc = run_lstmae("fit", str(data), "-m", str(tmp_path / "m.lstmae"), "--resample", "5min")
    assert proc.returncode == 2
    assert "--resample" in proc.stderr_text and "time column" in proc.stderr_text
    assert len(proc.stderr_text.strip().splitlines()) == 1
    assert not (tmp_path / "m.lstmae").exists()
    bad = run_lstmae("fit", str(data), "-m", str(tmp_path / "m.lstmae"), "--resample", "5m")
    assert bad.returncode == 2 and "--resample" in bad.stderr_text


def test_errors_in_a_later_batch_name_the_file_row_after_dropped_rows(tmp_path):
    # pieces() counts the rows it read, not the rows left after --fill drop
    v = np.sin(np.arange(300) / 5).astype(object)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=300, freq="1min")
                          .astype(str), "v": v})
    frame.loc[10:19, "v"] = np.nan
    frame.to_csv(tmp_path / "train.csv", index=False)
    run_lstmae("fit", str(tmp_path / "train.csv"), "-m", str(tmp_path / "m.lstmae"), "--fill",
               "drop", "--window", "8", "--epochs", "1", "-q", check=True)
    frame.loc[250, "v"] = "oops"  # the 251st data row, in the third batch of 100
    frame.to_csv(tmp_path / "bad.csv", index=False)
    proc = run_lstmae("score", str(tmp_path / "bad.csv"), "-m", str(tmp_path / "m.lstmae"),
                      "--batch-rows", "100", "-q", "-o", str(tmp_path / "out.csv"))
    assert proc.returncode == 2 and "row 251" in proc.stderr_text
