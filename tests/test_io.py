"""Reading, validating and windowing data."""

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from lstmae.errors import DataError, LstmaeWarning, OptionError
from lstmae.output import format_for, write_table
from lstmae.read import read_table
from lstmae.series import to_series
from lstmae.windows import accumulate_windows, window_starts

from .conftest import SAMPLES


def test_csv_gzip_and_parquet_read_alike(tmp_path):
    csv = read_table(SAMPLES / "server_test.csv")
    gz = tmp_path / "server.csv.gz"
    gz.write_bytes(gzip.compress((SAMPLES / "server_test.csv").read_bytes()))
    parquet = read_table(SAMPLES / "server_test.parquet")
    a, b, c = (to_series(f) for f in (csv, read_table(gz), parquet))
    assert a.columns == b.columns == c.columns == ["load", "cpu", "memory", "latency"]
    assert a.time_col == c.time_col == "timestamp"
    np.testing.assert_array_equal(a.values, c.values)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.index.astype("datetime64[s]"), c.index.astype("datetime64[s]"))


def test_time_column_found_by_name_or_type_else_row_numbers():
    by_name = pd.DataFrame({"Time": ["2026-01-01 00:00", "2026-01-01 00:01"], "x": [1.0, 2.0]})
    assert to_series(by_name).time_col == "Time"
    by_type = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=2), "x": [1.0, 2.0]})
    assert to_series(by_type).time_col == "when"
    none = to_series(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    assert none.time_col is None and none.index.tolist() == [0, 1, 2]


def test_unsorted_rows_are_sorted_with_a_warning():
    frame = pd.DataFrame({"timestamp": ["2026-01-02", "2026-01-01", "2026-01-03"],
                          "x": [2.0, 1.0, 3.0]})
    with pytest.warns(LstmaeWarning, match="not in time order"):
        series = to_series(frame)
    assert series.values[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_duplicate_timestamps_are_kept_in_file_order_with_a_warning():
    frame = pd.DataFrame({"timestamp": ["2026-01-01", "2026-01-02", "2026-01-02"],
                          "x": [1.0, 2.0, 3.0]})
    with pytest.warns(LstmaeWarning, match="repeats 2026-01-02 00:00:00 .*kept the rows"):
        series = to_series(frame)
    assert series.values[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_missing_values_error_names_row_and_column_unless_filled():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, np.nan, 3.0, np.inf]})
    with pytest.raises(DataError, match=r"row 2, column 'y' is missing .*2 bad value"):
        to_series(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LstmaeWarning)
        assert to_series(frame, fill="ffill").values[:, 1].tolist() == [1.0, 1.0, 3.0, 3.0]
        assert to_series(frame, fill="interpolate").values[:, 1].tolist() == [1.0, 2.0, 3.0, 3.0]
        dropped = to_series(frame, fill="drop")
    assert dropped.values[:, 1].tolist() == [1.0, 3.0] and dropped.index.tolist() == [0, 2]


def test_columns_must_exist_and_be_numeric():
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": ["1,234", "2,345"]})
    with pytest.raises(DataError, match=r"missing column\(s\) z; columns are: x, y"):
        to_series(frame, columns=["x", "z"])
    with pytest.raises(DataError, match="column 'y' is not numeric \\(row 1: '1,234'\\)"):
        to_series(frame, columns=["y"])
    with pytest.raises(DataError, match="no numeric columns"):
        to_series(frame[["y"]])


def test_unparsable_time_column_is_named():
    frame = pd.DataFrame({"timestamp": ["2026-01-01", "yesterday-ish"], "x": [1.0, 2.0]})
    with pytest.raises(DataError, match="time column 'timestamp': cannot parse 'yesterday-ish'"):
        to_series(frame)


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"a,b\n", "holds no data rows"),
    (b"\xff\xfe\x00junk\x00\xff", "not UTF-8"),
])
def test_unreadable_csv_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_missing_file_and_bad_parquet(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_table(bad)


@pytest.mark.parametrize("n_rows,window,stride,expected", [
    (10, 4, 1, [0, 1, 2, 3, 4, 5, 6]),
    (10, 4, 3, [0, 3, 6]),
    (10, 4, 4, [0, 4, 6]),  # a last window is added so row 9 is covered
    (5, 5, 1, [0]),
])
def test_window_starts_cover_every_row(n_rows, window, stride, expected):
    starts = window_starts(n_rows, window, stride)
    assert starts.tolist() == expected
    covered = np.zeros(n_rows, bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()


def test_too_few_rows_for_the_window():
    with pytest.raises(DataError, match="3 row\\(s\\), fewer than the window of 5"):
        window_starts(3, 5, 1)


def test_accumulate_windows():
    # windows [0,1] and [1,2] of one feature: row 1 gets both windows' values
    per_window = np.array([[[1.0], [2.0]], [[4.0], [6.0]]])
    sums, counts = np.zeros((3, 1)), np.zeros(3, dtype=int)
    accumulate_windows(per_window, np.array([0, 1]), sums, counts)
    assert (sums[:, 0] / counts).tolist() == [1.0, 3.0, 6.0]


def test_output_format_from_extension():
    assert format_for("x.jsonl", None) == "json"
    assert format_for("x.parquet", None) == "parquet"
    assert format_for("x.csv.gz", None) == "csv"
    assert format_for("x.txt", "csv") == "csv"
    with pytest.raises(OptionError, match="cannot tell the format from '.txt'"):
        format_for("x.txt", None)


def test_write_table_round_trips(tmp_path):
    frame = pd.DataFrame({"window": [0, 1], "start": pd.date_range("2026-01-01", periods=2),
                          "error": [0.5, 1.5], "anomaly": [False, True]})
    for name in ("out.csv", "out.jsonl", "out.parquet", "out.csv.gz"):
        path = tmp_path / name
        write_table(frame, str(path), format_for(str(path), None))
        if name.endswith("parquet"):
            back = pd.read_parquet(path)
        elif name.endswith("jsonl"):
            back = pd.read_json(path, lines=True)
        else:
            back = pd.read_csv(path)
        assert back["error"].tolist() == [0.5, 1.5]
        assert back["anomaly"].tolist() == [False, True]
    assert not list(tmp_path.glob(".*.tmp"))


def _minutes(*values) -> pd.DataFrame:
    times = pd.Timestamp("2026-01-01") + pd.to_timedelta(list(values), unit="min")
    return pd.DataFrame({"timestamp": times.astype(str), "x": np.arange(len(values), dtype=float)})


@pytest.mark.parametrize("minutes,kept", [
    ((0, 1, 2, 3, 1, 2, 3, 4, 5), True),  # a clock reset by 2 minutes that runs on
    ((0, 2, 1), False),  # the last row out of place
    ((0, 1, 5, 3, 6, 7), False),  # one row out of place
    ((5, 6, 7, 8, 0, 1, 2, 3), False),  # the file's halves in the wrong order
    ((3, 2, 1, 0), False),  # newest first
])
def test_a_clock_stepping_back_keeps_file_order_but_disorder_is_sorted(minutes, kept):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = to_series(_minutes(*minutes))
    messages = " ".join(str(w.message) for w in caught)
    if kept:
        assert series.values[:, 0].tolist() == list(range(len(minutes)))
        assert "steps back 1 time(s)" in messages and "kept the rows in file order" in messages
    else:
        assert np.all(np.diff(series.index) >= np.timedelta64(0)), series.index
        assert "sorted them" in messages
    # scoring reads in batches: disorder is refused there, a clock step is not; a
    # step on a batch's last row may be a clock the next batch runs on, so it is kept
    if kept or minutes == (0, 2, 1):
        to_series(_minutes(*minutes), sort=False, report=False)
    else:
        with pytest.raises(DataError, match="not in time order"):
            to_series(_minutes(*minutes), sort=False)


def test_times_keep_the_offset_they_were_written_with():
    frame = pd.DataFrame({"timestamp": ["2026-03-29T01:50:00+01:00", "2026-03-29T03:00:00+02:00",
                                        "2026-03-29T03:10:00+02:00"], "x": [1.0, 2.0, 3.0]})
    series = to_series(frame)
    assert [str(t) for t in series.labels] == [
        "2026-03-29 01:50:00+01:00", "2026-03-29 03:00:00+02:00", "2026-03-29 03:10:00+02:00"]
    assert series.index.tolist()[1] - series.index.tolist()[0] == pd.Timedelta("10min")
    assert series.time_kind == "aware"


def test_ambiguous_day_month_dates_are_refused_and_read_with_a_format():
    frame = pd.DataFrame({"timestamp": ["01/02/2026", "02/02/2026"], "x": [1.0, 2.0]})
    with pytest.raises(DataError, match="day first or month first.*'time_format' '%d/%m/%Y'"):
        to_series(frame)
    series = to_series(frame, time_format="%d/%m/%Y")
    assert str(series.labels[0]) == "2026-02-01 00:00:00"
