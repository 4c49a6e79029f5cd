"""Property tests (hypothesis, derandomised): windowing, output round trips, thresholds, to_series.

Everything here runs in-process and fast; the only models are three tiny
detectors (one per stride) trained once for the module, outside any hypothesis loop.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lstmae import windows as W
from lstmae.errors import DataError, LstmaeWarning
from lstmae.output import write_table
from lstmae.series import to_series
from lstmae.windows import window_starts

FAST = settings(derandomize=True, max_examples=150, deadline=None, database=None)
SLOW = settings(derandomize=True, max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (n_rows, window, stride) with n_rows >= window
shapes = st.integers(1, 40).flatmap(
    lambda window: st.tuples(st.integers(window, window + 300), st.just(window),
                             st.integers(1, 350))
)


# ---------------------------------------------------------------- windows
# the same, with stride <= window: windows that overlap or touch
covering_shapes = shapes.filter(lambda shape: shape[2] <= shape[1])


@FAST
@given(shapes)
def test_window_starts_every_stride_plus_one_on_the_last_row(shape):
    n_rows, window, stride = shape
    starts = window_starts(n_rows, window, stride)
    assert starts.dtype.kind == "i"
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0)  # strictly increasing
    assert starts[-1] + window - 1 == n_rows - 1  # the last window ends on the last row
    assert np.all(starts + window <= n_rows)  # no window runs past the data
    # ceil((n - window) / stride) strides fit, plus the first window
    assert len(starts) == math.ceil((n_rows - window) / stride) + 1
    gaps = np.diff(starts)
    assert np.all(gaps[:-1] == stride)  # every stride rows ...
    if len(gaps):
        assert 0 < gaps[-1] <= stride  # ... except a shorter last step onto the end


@FAST
@given(covering_shapes)
def test_window_starts_cover_every_row(shape):
    """README: "one last window ends on the last row, so every row is covered".

    fit refuses a stride larger than the window, which would skip rows.
    """
    n_rows, window, stride = shape
    starts = window_starts(n_rows, window, stride)
    uncovered = np.flatnonzero(_coverage(starts, window, n_rows) == 0)
    assert uncovered.size == 0, (
        f"window_starts({n_rows}, {window}, {stride}) = {starts.tolist()} leaves rows "
        f"{uncovered.tolist()} in no window"
    )


@FAST
@given(st.integers(2, 50), st.data())
def test_window_starts_refuse_too_few_rows(window, data):
    n_rows = data.draw(st.integers(0, window - 1))
    stride = data.draw(st.integers(1, 10))
    with pytest.raises(DataError, match="fewer than the window"):
        window_starts(n_rows, window, stride)


def _average(per_window: np.ndarray, starts: np.ndarray, n_rows: int):
    """Per-row mean over covering windows, and the per-row counts."""
    sums = np.zeros((n_rows, per_window.shape[2]))
    counts = np.zeros(n_rows, dtype=np.int64)
    W.accumulate_windows(per_window, starts, sums, counts)
    return sums / counts[:, None], counts


def _coverage(starts: np.ndarray, window: int, n_rows: int) -> np.ndarray:
    counts = np.zeros(n_rows, dtype=np.int64)
    for start in starts:
        counts[start : start + window] += 1
    return counts


def _latest_ending_by(starts: np.ndarray, window: int, n_rows: int) -> np.ndarray:
    """Reference: for each row the latest window ending at or before it, -1 when none."""
    ends = starts + window - 1
    which = np.full(n_rows, -1)
    for row in range(n_rows):
        done = np.flatnonzero(ends <= row)
        if done.size:
            which[row] = done[-1]
    return which


@FAST
@given(covering_shapes, st.integers(1, 3), st.floats(-1e6, 1e6, allow_nan=False))
def test_average_of_a_constant_is_that_constant(shape, width, value):
    n_rows, window, stride = shape
    starts = window_starts(n_rows, window, stride)
    per_window = np.full((len(starts), window, width), value)
    averaged, counts = _average(per_window, starts, n_rows)
    assert averaged.shape == (n_rows, width)
    np.testing.assert_allclose(averaged, value, rtol=1e-12, atol=0)
    if counts is not None:
        np.testing.assert_array_equal(counts, _coverage(starts, window, n_rows))


@FAST
@given(covering_shapes, st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_average_over_windows_matches_a_brute_force_mean(shape, width, seed):
    n_rows, window, stride = shape
    assume(n_rows <= 120)
    starts = window_starts(n_rows, window, stride)
    per_window = np.random.default_rng(seed).normal(size=(len(starts), window, width))
    averaged, counts = _average(per_window, starts, n_rows)
    coverage = _coverage(starts, window, n_rows)
    assert coverage.min() >= 1
    if counts is not None:
        np.testing.assert_array_equal(counts, coverage)
    # the mean of ones is one everywhere: each row is divided by its own coverage
    np.testing.assert_array_equal(_average(np.ones_like(per_window), starts, n_rows)[0], 1.0)
    for row in range(n_rows):
        parts = [per_window[i, row - s] for i, s in enumerate(starts) if s <= row < s + window]
        assert len(parts) == coverage[row]
        np.testing.assert_allclose(averaged[row], np.mean(parts, axis=0), rtol=1e-12,
                                   atol=1e-12)


# ---------------------------------------------------------------- output round trips
BASE = np.datetime64("2026-01-01T00:00:00", "ns")
errors_ = st.floats(0, 1e6, allow_nan=False, allow_subnormal=False)


@st.composite
def score_frames(draw, sub_second: bool = False):
    """Frames shaped like `lstmae score` output (window level or point level)."""
    n = draw(st.integers(1, 12))
    seconds = draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n))
    steps = np.array(seconds, dtype=np.int64) * 1_000_000_000  # nanoseconds
    if sub_second:  # add 1..999 microseconds and 1..999 nanoseconds to each step
        steps += np.array(draw(st.lists(st.integers(1, 999), min_size=n, max_size=n))) * 1000
        steps += np.array(draw(st.lists(st.integers(0, 999), min_size=n, max_size=n)))
    times = BASE + np.cumsum(steps).astype("timedelta64[ns]")
    use_rows = draw(st.booleans()) and not sub_second
    index = np.arange(n, dtype=np.int64) * draw(st.integers(1, 5)) if use_rows else times
    error = np.array(draw(st.lists(errors_, min_size=n, max_size=n)))
    threshold = draw(errors_)
    level = draw(st.sampled_from(["window", "point"]))
    if level == "window":
        frame = pd.DataFrame({"window": np.arange(n), "start": index,
                              "end": index + (index[-1] - index[0]) // max(n, 1),
                              "error": error})
    else:
        unscored = draw(st.integers(0, n))
        error[:unscored] = np.nan  # the first rows have no full window yet
        frame = pd.DataFrame({"row" if use_rows else "timestamp": index, "score": error})
    frame["threshold"] = threshold
    frame["anomaly"] = np.nan_to_num(error, nan=-1.0) > threshold
    frame[draw(st.sampled_from(["error_cpu", "error_a b"]))] = draw(
        st.lists(errors_, min_size=n, max_size=n))
    return frame


def _read_back(path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "json":  # Python's json parses each number to the nearest double, exactly
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return pd.DataFrame.from_records([json.loads(line) for line in lines])
    return pd.read_parquet(path)


def _assert_same(original: pd.DataFrame, back: pd.DataFrame) -> None:
    assert list(back.columns) == list(original.columns)
    assert len(back) == len(original)
    for col in original.columns:
        want = original[col]
        got = back[col]
        if pd.api.types.is_datetime64_any_dtype(want):
            got = pd.to_datetime(got, format="ISO8601")
            np.testing.assert_array_equal(got.to_numpy("datetime64[ns]"),
                                          want.to_numpy("datetime64[ns]"), err_msg=col)
        elif pd.api.types.is_bool_dtype(want):
            assert got.astype(bool).tolist() == want.tolist(), col
        else:
            np.testing.assert_array_equal(got.to_numpy(dtype=np.float64),
                                          want.to_numpy(dtype=np.float64), err_msg=col)


@pytest.mark.parametrize("fmt,suffix", [("csv", ".csv"), ("json", ".jsonl"),
                                        ("parquet", ".parquet")])
@SLOW
@given(frame=score_frames())
def test_score_output_round_trips(fmt, suffix, frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("rt") / f"scores{suffix}"
    write_table(frame, str(path), fmt)
    _assert_same(frame, _read_back(path, fmt))


@pytest.mark.parametrize("fmt,suffix", [("csv", ".csv"), ("json", ".jsonl"),
                                        ("parquet", ".parquet")])
@SLOW
@given(frame=score_frames(sub_second=True))
def test_sub_second_timestamps_round_trip(fmt, suffix, frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("rt") / f"scores{suffix}"
    write_table(frame, str(path), fmt)
    _assert_same(frame, _read_back(path, fmt))


def test_json_lines_keep_anomaly_consistent_with_error_and_threshold(tmp_path):
    """A flagged window's written error must still exceed its written threshold."""
    frame = pd.DataFrame({"window": [0, 1], "error": [1.00000000004, 3.3e-12],
                          "threshold": [1.00000000001, 1e-12], "anomaly": [True, True]})
    path = tmp_path / "s.jsonl"
    write_table(frame, str(path), "json")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        assert row["error"] > row["threshold"], f"anomalous, yet written as {row}"


def test_json_lines_are_one_object_per_row(tmp_path):
    frame = pd.DataFrame({"window": [0, 1], "start": [BASE, BASE + np.timedelta64(1, "s")],
                          "error": [0.5, np.nan], "anomaly": [True, False]})
    path = tmp_path / "s.jsonl"
    write_table(frame, str(path), "json")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["window"] for r in rows] == [0, 1]
    assert rows[1]["error"] is None and rows[0]["anomaly"] is True


# ---------------------------------------------------------------- thresholds
WINDOW = 6
STRIDES = (1, 3, 5)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    t = np.arange(160)
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2026-01-01", periods=len(t), freq="min"),
        "a": np.sin(t / 4) + 0.1 * rng.standard_normal(len(t)),
        "b": np.cos(t / 4) + 0.1 * rng.standard_normal(len(t)),
    })
    frame.loc[100:104, "a"] += 3.0
    return frame


@pytest.fixture(scope="module")
def detectors(frame) -> dict:
    """Tiny detectors (one per stride), each trained once for the module.

    One torch thread: on a small, shared machine more threads make these tiny
    models ten times slower.
    """
    import torch

    from lstmae import Detector

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {stride: Detector(window=WINDOW, stride=stride, hidden=4, latent=2, epochs=1,
                                device="cpu").fit(frame)
               for stride in STRIDES}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted(detectors, frame):
    det = detectors[1]
    errors = det.score(frame, threshold=0.0)["error"].to_numpy()
    return det, frame, errors


@SLOW
@given(data=st.data())
def test_point_scores_use_the_latest_finished_window(detectors, frame, data):
    stride = data.draw(st.sampled_from(STRIDES), label="stride")
    n_rows = data.draw(st.integers(WINDOW, 60), label="n_rows")
    first = data.draw(st.integers(0, len(frame) - n_rows), label="first")
    part = frame.iloc[first : first + n_rows].reset_index(drop=True)
    det = detectors[stride]
    limit = data.draw(st.floats(0, 3, allow_nan=False), label="threshold")
    windows = det.score(part, threshold=limit)
    points = det.score(part, threshold=limit, level="point")
    starts = window_starts(n_rows, WINDOW, stride)
    assert len(windows) == len(starts)
    np.testing.assert_array_equal(pd.to_datetime(windows["start"]).to_numpy(),
                                  part["timestamp"].to_numpy()[starts])
    assert len(points) == n_rows
    np.testing.assert_array_equal(pd.to_datetime(points["timestamp"]).to_numpy(),
                                  part["timestamp"].to_numpy())
    which = _latest_ending_by(starts, WINDOW, n_rows)
    scored = which >= 0
    assert np.isnan(points["score"].to_numpy()[~scored]).all()
    assert not points["anomaly"].to_numpy()[~scored].any()
    np.testing.assert_array_equal(points["score"].to_numpy()[scored],
                                  windows["error"].to_numpy()[which[scored]])
    np.testing.assert_array_equal(points["anomaly"].to_numpy()[scored],
                                  windows["anomaly"].to_numpy()[which[scored]])


@st.composite
def threshold_pairs(draw, errors):
    pick = st.one_of(st.floats(0, float(errors.max()) * 1.5, allow_nan=False),
                     st.sampled_from(sorted(errors.tolist())), st.just(0.0))
    a, b = draw(pick), draw(pick)
    return (a, b) if a <= b else (b, a)


@SLOW
@given(data=st.data())
def test_a_higher_threshold_flags_a_subset(fitted, data):
    det, frame, errors = fitted
    low, high = data.draw(threshold_pairs(errors))
    at_low = det.score(frame, threshold=low)
    at_high = det.score(frame, threshold=high)
    np.testing.assert_array_equal(at_low["error"], at_high["error"])  # errors do not move
    flags_low, flags_high = at_low["anomaly"].to_numpy(), at_high["anomaly"].to_numpy()
    assert not np.any(flags_high & ~flags_low)
    np.testing.assert_array_equal(flags_low, errors > low)
    np.testing.assert_array_equal(flags_high, errors > high)
    assert (at_high["threshold"] == high).all()
    events_low = det.score(frame, threshold=low, level="event")
    events_high = det.score(frame, threshold=high, level="event")
    assert events_high["windows"].sum() <= events_low["windows"].sum()


# ---------------------------------------------------------------- to_series
finite = st.floats(-1e37, 1e37, allow_nan=False, allow_infinity=False)


@st.composite
def shuffled_frames(draw):
    n = draw(st.integers(1, 30))
    width = draw(st.integers(1, 4))
    seconds = draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n, unique=True))
    order = draw(st.permutations(range(n)))
    times = (np.datetime64("2000-01-01T00:00:00", "s")
             + np.array(seconds, dtype="timedelta64[s]")[order])
    columns = {f"c{i}": draw(st.lists(finite, min_size=n, max_size=n)) for i in range(width)}
    frame = pd.DataFrame(columns)
    frame.insert(draw(st.integers(0, width)), "timestamp", times)
    return frame


@FAST
@given(shuffled_frames())
def test_to_series_keeps_values_exactly_and_sorts_by_time(frame):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = to_series(frame)
    value_cols = [c for c in frame.columns if c != "timestamp"]
    assert series.columns == value_cols
    assert series.time_col == "timestamp"
    times = frame["timestamp"].to_numpy()
    # A shuffle that reads as a clock stepping back and running on (3, 1, 2 after 0)
    # keeps file order, as a clock reset does; any other is sorted.
    kept = series.order.steps_back > 0
    order = np.arange(len(times)) if kept else np.argsort(times, kind="stable")
    expected = frame[value_cols].to_numpy(dtype=np.float64)[order]
    assert series.values.dtype == np.float64
    # bit for bit (so -0.0 stays -0.0 and nothing is rounded)
    np.testing.assert_array_equal(series.values.view(np.int64), expected.view(np.int64))
    np.testing.assert_array_equal(series.index, times[order])
    if kept:
        return
    assert np.all(np.diff(series.index) > np.timedelta64(0, "s"))
    was_sorted = bool(np.all(order == np.arange(len(order))))
    sorted_warnings = [w for w in caught if issubclass(w.category, LstmaeWarning)
                       and "time order" in str(w.message)]
    assert len(sorted_warnings) == (0 if was_sorted else 1)
