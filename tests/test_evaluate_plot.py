"""`lstmae evaluate` and `lstmae plot`, through the installed command."""

import io
import json
import os
import struct

import numpy as np
import pandas as pd
import pytest

from lstmae.errors import DataError
from lstmae.evaluate import evaluate, read_labels

from .conftest import SAMPLES, run_lstmae


def test_evaluate_on_known_incidents(quickstart):
    folder = quickstart["folder"]
    proc = run_lstmae("evaluate", "sample_data/server_test.csv", "--labels",
                      "sample_data/server_test_labels.csv", "--json", cwd=folder, check=True)
    report = json.loads(proc.stdout_text)
    assert report["events"] == 4 and report["event_recall"] == 1.0
    assert report["rows_unscored"] == 63 and report["rows_scored"] == 3024 - 63
    assert report["auc_roc"] > 0.9 and report["vus_pr"] > 0.6
    assert 0 < report["precision"] <= 1 and report["recall"] > 0.7
    table = run_lstmae("evaluate", "sample_data/server_test.csv", "-l",
                       "sample_data/server_test_labels.csv", cwd=folder, check=True)
    assert "vus_pr" in table.stdout_text


def test_the_best_f1_threshold_given_back_gives_the_best_f1(quickstart):
    # Scoring flags error > threshold; the reported best threshold must follow that rule.
    folder = quickstart["folder"]
    args = ("evaluate", "sample_data/server_test.csv", "-l", "sample_data/server_test_labels.csv",
            "--json")
    first = json.loads(run_lstmae(*args, cwd=folder, check=True).stdout_text)
    again = json.loads(run_lstmae(*args, "--threshold", repr(first["best_f1_threshold"]),
                                  cwd=folder, check=True).stdout_text)
    assert again["f1"] == pytest.approx(first["best_f1"], rel=1e-12)
    assert again["best_f1"] == first["best_f1"]


def test_the_best_threshold_flags_exactly_the_best_rows():
    scores = np.array([0.1, 0.9, 0.4, 0.5, 0.8, 0.2, 0.3, 0.05, 0.4])
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1])
    report = evaluate(scores, labels, threshold=1.0, sliding_window=0)
    assert report["best_f1_threshold"] == 0.3  # flags the 0.4s too, as best_f1 counts them
    again = evaluate(scores, labels, report["best_f1_threshold"], 0)
    assert again["f1"] == pytest.approx(report["best_f1"], rel=1e-12)
    everything = evaluate(np.array([0.2, 0.2, 0.3]), np.array([1, 1, 0]), 1.0, 0)
    assert everything["best_f1_threshold"] < 0.2 and everything["best_f1"] == 0.8


def test_labels_as_intervals_rows_or_label_column(tmp_path):
    index = np.arange(10)
    intervals = tmp_path / "rows.csv"
    intervals.write_text("start,end\n2,3\n7,7\n")
    assert read_labels(str(intervals), index).tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    column = tmp_path / "col.csv"
    column.write_text("label\n" + "\n".join(["0"] * 9 + ["1"]) + "\n")
    assert read_labels(str(column), index).tolist() == [0] * 9 + [1]
    short = tmp_path / "short.csv"
    short.write_text("label\n0\n1\n")
    with pytest.raises(DataError, match="2 label rows but the data has 10 rows"):
        read_labels(str(short), index)
    times = pd.date_range("2026-01-01", periods=4, freq="h").to_numpy()
    stamps = tmp_path / "times.csv"
    stamps.write_text("start,end,kind\n2026-01-01 01:00,2026-01-01 02:00,spike\n")
    assert read_labels(str(stamps), times).tolist() == [0, 1, 1, 0]


def test_evaluate_counts_only_scored_rows_and_no_point_adjustment():
    scores = np.array([np.nan, np.nan, 0.1, 0.9, 0.2, 0.1, 0.8, 0.1])
    labels = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    report = evaluate(scores, labels, threshold=0.5, sliding_window=0)
    assert report["rows_scored"] == 6
    # flagged rows 3 and 6: one true, one false; row 4 is missed (no point adjustment)
    assert report["precision"] == 0.5 and report["recall"] == 0.5
    assert report["event_recall"] == 1.0


def test_plot_writes_a_png(quickstart):
    folder = quickstart["folder"]
    proc = run_lstmae("plot", "sample_data/server_test.csv", "-o", "report.png", cwd=folder)
    assert proc.returncode == 0, proc.stderr_text
    data = (folder / "report.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 800 and height > 600  # 4 channels + the error panel, readable
    assert not list(folder.glob(".report.png.*"))


def test_plot_without_matplotlib_says_how_to_install(quickstart, tmp_path):
    blocker = tmp_path / "block"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('blocked')\n")
    env_path = f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    os.environ["PYTHONPATH"], saved = env_path, os.environ.get("PYTHONPATH")
    try:
        proc = run_lstmae("plot", "sample_data/server_test.csv", "-o", "x.png",
                          cwd=quickstart["folder"])
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    assert proc.returncode == 2
    assert proc.stderr_text.strip() == (
        "error: lstmae plot needs matplotlib; install it with: pip install 'lstmae[plot]'"
    )
    assert not (quickstart["folder"] / "x.png").exists()


def test_score_levels_through_the_cli(quickstart):
    folder = quickstart["folder"]
    events = run_lstmae("score", "sample_data/server_test.csv", "--level", "event",
                        cwd=folder, check=True)
    frame = pd.read_csv(io.StringIO(events.stdout_text))
    assert list(frame.columns) == ["event", "onset", "start", "end", "windows", "peak_error",
                                   "top_column", "status"]
    labels = pd.read_csv(SAMPLES / "server_test_labels.csv")
    spike = labels[labels["kind"] == "spike"].iloc[0]
    hit = frame[(frame["start"] <= spike["end"]) & (frame["end"] >= spike["start"])]
    assert set(hit["top_column"]) <= {"cpu", "latency"}  # the spike is in cpu and latency
    assert "mostly" in events.stderr_text  # the summary names the column at fault
    points = run_lstmae("score", "sample_data/server_test.csv", "--level", "point",
                        "--per-column", cwd=folder, check=True)
    frame = pd.read_csv(io.StringIO(points.stdout_text))
    assert list(frame.columns)[:5] == ["timestamp", "score", "threshold", "anomaly", "alarm"]
    assert frame["alarm"].sum() == len(pd.read_csv(io.StringIO(events.stdout_text)))
    assert len(frame) == 3024 and frame["score"].iloc[:63].isna().all()
    assert "error_memory" in frame.columns
    assert "first 63 rows have no score" in points.stderr_text
