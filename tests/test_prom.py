"""score -o FILE.prom: Prometheus text for node_exporter's textfile collector."""

import shutil
import subprocess

import pandas as pd
import pytest

from lstmae.cli import run

from .conftest import run_lstmae


@pytest.fixture(scope="module")
def setup(tmp_path_factory, small_detector, small_frame):
    folder = tmp_path_factory.mktemp("prom")
    model = folder / "m.lstmae"
    small_detector.save(model)
    frame = small_frame.copy()
    frame.loc[150:160, "b"] += 3.0
    return folder, model, frame


def _metrics(text: str) -> dict[str, float]:
    """name{labels} -> value, for the sample lines of the exposition."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_prom_file_has_the_latest_scores_and_counts_events_across_runs(setup, tmp_path):
    folder, model, frame = setup
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.iloc[:200].to_csv(first, index=False)
    frame.iloc[180:].to_csv(second, index=False)
    prom, state = tmp_path / "lstmae.prom", tmp_path / "s.json"
    totals = []
    for data in (first, second):
        assert run(["score", str(data), "-m", str(model), "--state", str(state), "-o", str(prom),
                    "-q"]) == 0
        samples = _metrics(prom.read_text())
        totals.append(samples[f'lstmae_events_opened_total{{model="{model}"}}'])
    windows = pd.read_csv(_score_csv(model, frame, tmp_path))
    label = f'{{model="{model}"}}'
    assert samples[f"lstmae_window_error{label}"] == pytest.approx(windows["error"].iloc[-1],
                                                                  rel=1e-12)
    assert samples[f"lstmae_threshold{label}"] == windows["threshold"].iloc[0]
    assert samples[f"lstmae_anomaly{label}"] == float(windows["anomaly"].iloc[-1])
    assert f'lstmae_column_error{{column="b",model="{model}"}}' in samples or (
        f'lstmae_column_error{{model="{model}",column="b"}}' in samples)
    events = pd.read_csv(_score_csv(model, frame, tmp_path, "--level", "event"))
    assert totals[-1] == len(events)  # a counter: every event opened since the state began
    assert totals[0] <= totals[1]
    assert samples[f"lstmae_new_events{label}"] == totals[1] - totals[0]
    assert samples[f"lstmae_last_scored_timestamp_seconds{label}"] == pd.Timestamp(
        frame["timestamp"].iloc[-1]).tz_localize("UTC").timestamp()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _score_csv(model, frame, tmp_path, *args):
    data, out = tmp_path / "whole.csv", tmp_path / "whole.out.csv"
    frame.to_csv(data, index=False)
    assert run(["score", str(data), "-m", str(model), "-o", str(out), "-q", *args]) == 0
    return out


def test_promtool_accepts_the_file(setup, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    folder, model, frame = setup
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    for extra in ([], ["--state", str(tmp_path / "s.json")]):
        prom = tmp_path / "out.prom"
        assert run(["score", str(data), "-m", str(model), "-o", str(prom), "-q",
                    "--per-column", *extra]) == 0
        check = subprocess.run([promtool, "check", "metrics"], input=prom.read_bytes(),
                               capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.strip() == b"" and check.stderr.strip() == b""  # no lint either


def test_format_prom_to_stdout_and_only_for_score(setup, tmp_path):
    folder, model, frame = setup
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    proc = run_lstmae("score", str(data), "-m", str(model), "--format", "prom", "-q")
    assert proc.returncode == 0
    assert "# TYPE lstmae_threshold gauge" in proc.stdout_text
    assert "lstmae_events_opened_total" not in proc.stdout_text  # no state: no counter
    proc = run_lstmae("encode", str(data), "-m", str(model), "--format", "prom")
    assert proc.returncode == 2 and "is for score" in proc.stderr_text
