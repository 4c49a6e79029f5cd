"""score --state: overlapping cron runs give exactly one run's rows, and page once per incident."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmae import Detector
from lstmae.cli import run

from .conftest import run_lstmae

N_ROWS = 400


@pytest.fixture(scope="module")
def incidents(small_frame) -> pd.DataFrame:
    """The small series with three incidents, all over before the data ends."""
    frame = small_frame.copy()
    frame.loc[120:127, "b"] += 3.0
    frame.loc[230:231, "a"] -= 4.0
    frame.loc[300:340, "c"] += 2.5
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_detector, incidents):
    folder = tmp_path_factory.mktemp("state")
    model = folder / "m.lstmae"
    small_detector.save(model)
    data = folder / "all.csv"
    incidents.to_csv(data, index=False)
    whole = {}
    for level in ("window", "point", "event"):
        out = folder / f"whole.{level}.csv"
        assert run(["score", str(data), "-m", str(model), "--level", level, "--per-column",
                    "-o", str(out), "-q"]) == 0
        whole[level] = out.read_bytes()
    events = pd.read_csv(folder / "whole.event.csv")
    assert len(events) >= 2 and (events["status"] == "closed").all()  # the test's premise
    return {"folder": folder, "model": model, "frame": incidents, "whole": whole,
            "events": events}


def _chunks(cuts: list[int], overlaps: list[int]) -> list[tuple[int, int]]:
    """Rows [begin, end) of each run: each starts up to `overlap` rows before the last ended."""
    ends = sorted(set(cuts) | {N_ROWS})
    spans, last = [], 0
    for end, overlap in zip(ends, overlaps + [0] * len(ends), strict=False):
        spans.append((max(0, last - overlap), end))
        last = end
    return spans


def _score_in_runs(files, spans, level: str, folder: Path, extra=()) -> tuple[bytes, list[int]]:
    """The runs' outputs joined (one header), and each run's exit status."""
    state = folder / f"{level}.state"
    joined, statuses = b"", []
    for i, (begin, end) in enumerate(spans):
        chunk = folder / f"chunk{i}{files.get('suffix', '.csv')}"
        _write(files["frame"].iloc[begin:end], chunk)
        out = folder / f"out{i}.csv"
        statuses.append(run(["score", str(chunk), "-m", str(files["model"]), "--level", level,
                             "--per-column", "--state", str(state), "-o", str(out), "-q",
                             *extra]))
        text = out.read_bytes()
        joined += text if i == 0 else text.split(b"\n", 1)[1]
    return joined, statuses


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, N_ROWS - 1), min_size=1, max_size=4),
       overlaps=st.lists(st.integers(0, 40), min_size=4, max_size=4))
def test_overlapping_runs_with_a_state_give_one_runs_rows_byte_for_byte(files, cuts,
                                                                        overlaps):
    spans = _chunks(cuts, overlaps)
    with tempfile.TemporaryDirectory() as tmp:
        for level in ("window", "point", "event"):
            joined, statuses = _score_in_runs(files, spans, level, Path(tmp))
            assert set(statuses) == {0}
            assert joined == files["whole"][level], (level, spans)


def test_fail_on_anomaly_pages_once_per_new_incident(files, tmp_path):
    spans = [(0, 100), (60, 125), (110, 126), (120, 240), (200, 320), (300, 400)]
    _, statuses = _score_in_runs(files, spans, "window", tmp_path, ["--fail-on-anomaly"])
    onsets = pd.to_datetime(files["events"]["onset"]).to_numpy()
    times = files["frame"]["timestamp"].to_numpy()
    expected, scored_to = [], times[0] - np.timedelta64(1, "m")
    for _, end in spans:  # exit 1 when an onset falls in the rows new to this run
        expected.append(int(((onsets > scored_to) & (onsets <= times[end - 1])).any()))
        scored_to = times[end - 1]
    assert statuses == expected
    assert 0 < sum(statuses) < len(spans)  # runs that only saw incidents go on exit 0


def test_a_run_shorter_than_the_window_carries_its_rows_on(files, tmp_path):
    # Rows 0..9 and then 10..39: window 16, so the first run has no full window.
    joined, statuses = _score_in_runs(files, [(0, 10), (10, 40), (40, N_ROWS)], "window",
                                      tmp_path)
    assert statuses == [0, 0, 0]
    assert joined == files["whole"]["window"]


def _state_run(files, data, state, *extra):
    return run_lstmae("score", str(data), "-m", str(files["model"]), "--state", str(state),
                      "-q", "-o", str(Path(state).parent / "out.csv"), *extra)


def test_a_state_of_another_model_is_refused_and_kept(files, tmp_path, small_detector):
    state = tmp_path / "s.json"
    data = tmp_path / "part.csv"
    files["frame"].iloc[:200].to_csv(data, index=False)
    assert _state_run(files, data, state).returncode == 0
    before = state.read_bytes()
    other = Detector.load(files["model"])
    other.threshold_ = other.threshold_ * 2  # another model file: another checksum
    other_model = tmp_path / "other.lstmae"
    other.save(other_model)
    proc = run_lstmae("score", str(data), "-m", str(other_model), "--state", str(state), "-q")
    assert proc.returncode == 2
    assert proc.stderr_text.count("\n") == 1
    assert "belongs to another model" in proc.stderr_text and "--reset-state" in proc.stderr_text
    assert state.read_bytes() == before
    proc = run_lstmae("score", str(data), "-m", str(other_model), "--state", str(state), "-q",
                      "--reset-state", "-o", str(tmp_path / "o.csv"))
    assert proc.returncode == 0, proc.stderr_text
    assert json.loads(state.read_bytes())["state"]["model"] != json.loads(before)["state"]["model"]


@pytest.mark.parametrize("damage", ["truncated", "edited", "not json", "empty"])
def test_a_damaged_state_is_one_error_and_left_alone(files, tmp_path, damage):
    state = tmp_path / "s.json"
    data = tmp_path / "part.csv"
    files["frame"].iloc[:200].to_csv(data, index=False)
    assert _state_run(files, data, state).returncode == 0
    text = state.read_text()
    damaged = {"truncated": text[: len(text) // 2],
               "edited": text.replace('"offset": ', '"offset": 1', 1),
               "not json": "hello\n", "empty": ""}[damage]
    state.write_text(damaged)
    proc = _state_run(files, data, state)
    assert proc.returncode == 2
    assert proc.stderr_text.startswith("error: --state") and "damaged" in proc.stderr_text
    assert proc.stderr_text.count("\n") == 1
    assert state.read_text() == damaged


def test_a_state_ahead_of_the_data_is_refused(files, tmp_path):
    state = tmp_path / "s.json"
    late, early = tmp_path / "late.csv", tmp_path / "early.csv"
    files["frame"].iloc[200:300].to_csv(late, index=False)
    files["frame"].iloc[0:100].to_csv(early, index=False)
    assert _state_run(files, late, state).returncode == 0
    proc = _state_run(files, early, state)
    assert proc.returncode == 2
    assert "after every row" in proc.stderr_text and "--reset-state" in proc.stderr_text
    # The same file again is no error: nothing new, nothing written twice.
    proc = _state_run(files, late, state)
    assert proc.returncode == 0, proc.stderr_text
    assert "0 new row(s), 100 scored before and skipped" in run_lstmae(
        "score", str(late), "-m", str(files["model"]), "--state", str(state),
        "-o", str(tmp_path / "o.csv")).stderr_text


def test_without_a_time_column_every_row_is_new(tmp_path, small_frame):
    frame = small_frame.drop(columns=["timestamp"])
    det = Detector(window=8, hidden=4, latent=2, epochs=1, device="cpu").fit(frame)
    model = tmp_path / "rows.lstmae"
    det.save(model)
    whole = tmp_path / "whole.csv"
    data = tmp_path / "all.csv"
    frame.to_csv(data, index=False)
    assert run(["score", str(data), "-m", str(model), "-o", str(whole), "-q"]) == 0
    joined = b""
    for i, (begin, end) in enumerate([(0, 150), (150, 155), (155, 400)]):
        chunk = tmp_path / f"c{i}.csv"
        frame.iloc[begin:end].to_csv(chunk, index=False)
        proc = run_lstmae("score", str(chunk), "-m", str(model), "--state",
                          str(tmp_path / "s"), "-o", str(tmp_path / "o.csv"))
        assert proc.returncode == 0
        assert "every row given is taken as new" in proc.stderr_text
        text = (tmp_path / "o.csv").read_bytes()
        joined += text if i == 0 else text.split(b"\n", 1)[1]
    assert joined == whole.read_bytes()


def test_state_options_are_checked(files, tmp_path):
    data = tmp_path / "d.csv"
    files["frame"].iloc[:50].to_csv(data, index=False)
    proc = run_lstmae("score", str(data), "-m", str(files["model"]), "--reset-state")
    assert proc.returncode == 2 and "--reset-state goes with --state" in proc.stderr_text
    proc = run_lstmae("score", str(data), "-m", str(files["model"]), "--state", str(data))
    assert proc.returncode == 2 and "--state" in proc.stderr_text
    assert data.read_bytes().startswith(b"timestamp")  # the data was not overwritten
    proc = run_lstmae("score", str(data), "-m", str(files["model"]), "--state", "/dev/null")
    assert proc.returncode == 2 and "not a regular file" in proc.stderr_text
    same = tmp_path / "same.csv"
    proc = run_lstmae("score", str(data), "-m", str(files["model"]), "--state", str(same),
                      "-o", str(same))
    assert proc.returncode == 2 and "is also the --output" in proc.stderr_text


@pytest.mark.parametrize("written", ["offsets", "utc", "parquet zone"])
def test_a_state_keeps_times_as_written_across_daylight_saving(tmp_path, small_detector,
                                                              incidents, written):
    """Offsets that change (+01:00, then +02:00), UTC (Z) and a Parquet column's named
    zone go on exactly, as the data wrote them."""
    frame = incidents.copy()
    zoned = pd.date_range("2026-03-29 00:00", periods=len(frame), freq="min",
                          tz="Europe/Berlin") + pd.Timedelta(minutes=-180)
    suffix = ".parquet" if written == "parquet zone" else ".csv"
    if written == "offsets":
        frame["timestamp"] = [t.isoformat() for t in zoned]
    elif written == "utc":
        frame["timestamp"] = [t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") for t in zoned]
    else:
        frame["timestamp"] = zoned
    model = tmp_path / "m.lstmae"
    small_detector.save(model)
    files = {"frame": frame, "model": model, "suffix": suffix}
    data = tmp_path / f"all{suffix}"
    _write(frame, data)
    for level in ("event", "point"):
        whole = tmp_path / f"whole.{level}.csv"
        assert run(["score", str(data), "-m", str(model), "--level", level, "--per-column",
                    "-o", str(whole), "-q"]) == 0
        joined, _ = _score_in_runs(files, [(0, 130), (100, 305), (290, 400)], level, tmp_path)
        assert joined == whole.read_bytes()
    if written != "utc":
        assert b"+01:00" in joined and b"+02:00" in joined


def _write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def test_one_run_at_a_time_per_state(files, tmp_path):
    from lstmae.state import locked

    state = tmp_path / "s.json"
    data = tmp_path / "d.csv"
    files["frame"].iloc[:100].to_csv(data, index=False)
    with locked(str(state)):  # a run still scoring
        proc = _state_run(files, data, state)
    assert proc.returncode == 2
    assert "another lstmae score is using it" in proc.stderr_text
    assert not state.exists()
    assert _state_run(files, data, state).returncode == 0  # the lock went with its run


def test_a_stride_and_steps_go_on_across_runs(tmp_path, small_frame, incidents):
    """With a stride, windows stay on one grid across runs (one run adds a last window
    to cover the last row; runs with a state cannot know which row is last); with
    --resample, a step whose rows span two runs is averaged whole."""
    spans = [(0, 133), (120, 251), (251, 400)]
    for params in ({"stride": 5}, {"resample": "2min"}):
        tmp_path = tmp_path / next(iter(params))  # a state (and model) of its own
        tmp_path.mkdir()
        det = Detector(window=16, hidden=8, latent=3, epochs=1, device="cpu",
                       **params).fit(small_frame)
        model = tmp_path / "m.lstmae"
        det.save(model)
        files = {"frame": incidents, "model": model}
        data = tmp_path / "all.csv"
        incidents.to_csv(data, index=False)
        whole = tmp_path / "whole.csv"
        assert run(["score", str(data), "-m", str(model), "-o", str(whole), "-q",
                    "--per-column"]) == 0
        joined, statuses = _score_in_runs(files, spans, "window", tmp_path)
        assert set(statuses) == {0}
        expected = whole.read_bytes().splitlines(keepends=True)
        got = joined.splitlines(keepends=True)
        # One run's data ends: its last window (off the grid) or its last step. A run
        # with a state holds them for the next.
        assert got == expected[:len(got)] and len(expected) - len(got) == 1, params


def test_an_incident_open_across_runs_of_a_model_with_context(tmp_path, small_frame,
                                                              incidents):
    """An event's totals are per scored column: a state holding an open event of a
    model with context columns goes on, not refused as damaged."""
    def with_flag(frame):
        return frame.assign(cmd=(np.arange(len(frame)) % 50 == 0).astype(float))

    det = Detector(window=16, hidden=8, latent=3, epochs=1, device="cpu").fit(
        with_flag(small_frame))
    assert det.context_ == ["cmd"]
    model = tmp_path / "m.lstmae"
    det.save(model)
    files = {"frame": with_flag(incidents), "model": model}
    data = tmp_path / "all.csv"
    files["frame"].to_csv(data, index=False)
    whole = tmp_path / "whole.csv"
    assert run(["score", str(data), "-m", str(model), "--level", "event", "--per-column",
                "-o", str(whole), "-q"]) == 0
    # the cut at 320 falls inside the incident of rows 300..340
    joined, statuses = _score_in_runs(files, [(0, 320), (300, 400)], "event", tmp_path)
    assert statuses == [0, 0]
    assert joined == whole.read_bytes()
