"""The installed `lstmae` command, run as a subprocess the way users and cron run it."""

import io
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from .conftest import SAMPLES, readme_block, run_lstmae

WINDOW_COLUMNS = ["window", "start", "end", "error", "threshold", "anomaly"]


def test_readme_quickstart_runs_as_written(quickstart):
    fit, score = quickstart["runs"]
    assert fit.returncode == 0, fit.stderr
    assert "fitted model.lstmae" in fit.stderr and "threshold" in fit.stderr
    assert score.returncode == 0, score.stderr
    assert "anomalous" in score.stderr + score.stdout
    assert quickstart["model"].exists()


def test_piped_score_is_csv_with_the_contract_columns(quickstart):
    proc = run_lstmae("score", "sample_data/server_test.csv", "--threshold", "0.05",
                      cwd=quickstart["folder"], check=True)
    frame = pd.read_csv(io.StringIO(proc.stdout_text))
    assert list(frame.columns) == WINDOW_COLUMNS
    assert len(frame) == 3024 - 64 + 1  # the default window is 64 rows
    assert frame["window"].tolist() == list(range(len(frame)))
    assert frame["start"].iloc[0] == "2026-01-26 00:00:00"
    assert frame["end"].iloc[0] == "2026-01-26 05:15:00"  # 64 rows of 5 minutes
    assert (frame["threshold"] == 0.05).all()
    assert (frame["anomaly"] == (frame["error"] > 0.05)).all()
    assert "anomalous" in proc.stderr_text  # the summary goes to people, not the data


def test_csv_and_parquet_score_alike(quickstart):
    folder = quickstart["folder"]
    from_csv = run_lstmae("score", "sample_data/server_test.csv", "-o", "a.parquet",
                          cwd=folder, check=True)
    from_parquet = run_lstmae("score", "sample_data/server_test.parquet", "-o", "b.parquet",
                              cwd=folder, check=True)
    assert from_csv.stdout == from_parquet.stdout == b""
    a = pd.read_parquet(folder / "a.parquet")
    b = pd.read_parquet(folder / "b.parquet")
    assert list(a.columns) == WINDOW_COLUMNS
    np.testing.assert_allclose(a["error"], b["error"], rtol=1e-6)
    assert (a["anomaly"] == b["anomaly"]).all()


def test_stdin_json_lines_and_fail_on_anomaly(quickstart):
    folder = quickstart["folder"]
    data = (SAMPLES / "server_test.csv").read_bytes()
    proc = run_lstmae("score", "-", "--format", "json", "--fail-on-anomaly", "-q",
                      cwd=folder, input=data)
    assert proc.returncode == 1  # the sample has anomalies
    assert proc.stderr_text == ""
    rows = [json.loads(line) for line in proc.stdout_text.splitlines()]
    assert list(rows[0]) == WINDOW_COLUMNS and any(r["anomaly"] for r in rows)
    calm = run_lstmae("score", "sample_data/server_train.csv", "--threshold", "1e9",
                      "--fail-on-anomaly", "-o", "calm.csv", cwd=folder)
    assert calm.returncode == 0, calm.stderr_text


def test_encode_and_reconstruct_outputs(quickstart):
    folder = quickstart["folder"]
    enc = run_lstmae("encode", "sample_data/server_test.csv", cwd=folder, check=True)
    latent = pd.read_csv(io.StringIO(enc.stdout_text))
    assert list(latent.columns) == ["window", "start", "end"] + [f"z{i}" for i in range(16)]
    assert len(latent) == 3024 - 63
    rec = run_lstmae("reconstruct", "sample_data/server_test.csv", "-o", "rec.jsonl",
                     cwd=folder, check=True)
    assert rec.returncode == 0
    recon = pd.read_json(folder / "rec.jsonl", lines=True)
    cols = ["load", "cpu", "memory", "latency"]
    assert list(recon.columns) == ["timestamp"] + [x for c in cols for x in (c, f"{c}_recon")]
    assert len(recon) == 3024
    normal = recon.iloc[:400]  # before the first injected anomaly
    for col in cols:  # reconstruction tracks the data in its own units
        assert np.corrcoef(normal[col], normal[f"{col}_recon"])[0, 1] > 0.9


def test_info_shows_what_the_model_holds(quickstart):
    proc = run_lstmae("info", "model.lstmae", "--json", cwd=quickstart["folder"], check=True)
    meta = json.loads(proc.stdout_text)
    assert meta["columns"] == ["load", "cpu", "memory", "latency"]
    assert meta["window"] == 64 and meta["threshold"]["method"] == "max"
    table = run_lstmae("info", "model.lstmae", cwd=quickstart["folder"], check=True)
    assert "load, cpu, memory, latency" in table.stdout_text
    assert re.search(r"mse \(training\) / mae\+peak \(window error, peaks x 0\.\d+\)",
                     table.stdout_text)


def test_fit_error_and_precision_options_reach_the_model(quickstart):
    folder = quickstart["folder"]
    run_lstmae("fit", "sample_data/server_train.csv", "-m", "mse.lstmae", "--error", "mse",
               "--precision", "fp32", "--epochs", "2", "-q", cwd=folder, check=True)
    meta = json.loads(run_lstmae("info", "mse.lstmae", "--json", cwd=folder, check=True)
                      .stdout_text)
    assert meta["error"] == "mse" and meta["params"]["precision"] == "fp32"
    assert meta["training"]["precision"] == "fp32"


def test_score_margin_rederives_the_threshold(quickstart):
    folder = quickstart["folder"]
    meta = json.loads(run_lstmae("info", "model.lstmae", "--json", cwd=folder, check=True)
                      .stdout_text)
    assert meta["threshold"]["margin"] == 1.2  # held-out windows: 1.2 x the largest error
    proc = run_lstmae("score", "sample_data/server_test.csv", "--margin", "1.5", cwd=folder,
                      check=True)
    frame = pd.read_csv(io.StringIO(proc.stdout_text))
    assert np.allclose(frame["threshold"], 1.5 / 1.2 * meta["threshold"]["value"])


@pytest.mark.parametrize("args,needle", [
    (["score", "missing.csv"], "missing.csv: no such file"),
    (["score", "sample_data/server_test.csv", "-m", "nope.lstmae"], "nope.lstmae: no such model"),
    (["score", "sample_data/univariate_test.csv"], "missing column(s) load, cpu, memory, latency"),
    (["score", "sample_data/server_test.csv", "--threshold", "-1"], "--threshold"),
    (["score", "sample_data/server_test.csv", "--format", "xml"], "--format"),
    (["score", "sample_data/server_test.csv", "-o", "no/such/dir/out.csv"], "does not exist"),
    (["score", "sample_data/server_test.csv", "-o", "out.xlsx"], "cannot tell the format"),
    (["fit", "sample_data/server_train.csv", "-m", "new.lstmae", "--window", "0"], "--window"),
    (["fit", "sample_data/server_train.csv", "-m", "new.lstmae", "--epochs", "0"], "--epochs"),
    (["fit", "sample_data/server_train.csv", "-m", "new.lstmae", "--columns", "load,nope"],
     "missing column(s) nope"),
    (["fit", "sample_data/server_train.csv", "-m", "new.lstmae", "--device", "tpu"], "--device"),
    (["fit", "sample_data/server_train.csv", "-m", "new.lstmae", "--precision", "fp16"],
     "--precision"),
    (["score", "sample_data/server_test.csv", "--margin", "1.2", "--risk", "1e-3"], "only one of"),
    (["fit", "sample_data/server_train.csv", "-m", "new.lstmae", "--device", "cuda"], "cuda"),
    (["info", "sample_data/server_test.csv"], "not an lstmae model file"),
])
def test_errors_are_one_line_exit_2_and_write_nothing(quickstart, args, needle):
    folder = quickstart["folder"]
    before = sorted(p.name for p in folder.iterdir())
    proc = run_lstmae(*args, cwd=folder)
    assert proc.returncode == 2, proc.stderr_text
    lines = proc.stderr_text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr_text
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr_text and proc.stdout == b""
    assert sorted(p.name for p in folder.iterdir()) == before


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys; from lstmae.cli import run; "
        "codes = [run(['--help']), run(['fit', '--help']), run(['--version'])]; "
        "print(codes, 'torch' in sys.modules, 'pandas' in sys.modules, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "[0, 0, 0] False False"
    assert "lstmae fit data.csv" in proc.stdout
    assert "Example: lstmae fit" in proc.stdout


def test_every_command_has_an_example_in_its_help():
    for command in ("fit", "score", "encode", "reconstruct", "info"):
        proc = run_lstmae(command, "--help", check=True)
        assert "Example: lstmae " + command in proc.stdout_text


def test_python_dash_m_and_version():
    proc = subprocess.run([sys.executable, "-m", "lstmae", "--version"],
                          capture_output=True, text=True, check=True)
    import lstmae

    assert proc.stdout.strip() == f"lstmae {lstmae.__version__}"


def test_readme_setup_and_test_blocks_exist():
    assert any("pip install" in line for line in readme_block("setup"))
    assert readme_block("test") == ["pytest"]
