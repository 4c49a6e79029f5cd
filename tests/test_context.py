"""Context columns: 0/1 flags the encoder reads but the model neither rebuilds nor scores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lstmae import Detector
from lstmae.errors import ModelFileError, OptionError
from tests.conftest import run_lstmae

FAST = {"window": 16, "epochs": 4, "hidden": 16, "latent": 4, "device": "cpu", "seed": 0}


def frame(rows: int, flag_every: int, seed: int = 0) -> pd.DataFrame:
    """A noisy sine and a command flag set once every `flag_every` rows."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    flag = (t % flag_every == 0).astype(float)
    return pd.DataFrame({
        "timestamp": pd.date_range("2026-01-01", periods=rows, freq="min"),
        "value": np.sin(2 * np.pi * t / 40) + 0.05 * rng.standard_normal(rows),
        "cmd": flag,
    })


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return frame(1200, 200)


@pytest.fixture(scope="module")
def busy() -> pd.DataFrame:
    """Normal values, but the command is sent every 5 rows: a busy day, not a fault."""
    return frame(400, 5, seed=1)


@pytest.fixture(scope="module")
def det(train) -> Detector:
    return Detector(**FAST).fit(train)


def test_flag_columns_are_context_by_default(det, busy):
    assert det.context_ == ["cmd"]
    assert det.scored_ == ["value"]
    windows = det.score(busy, per_column=True)
    assert "error_value" in windows.columns and "error_cmd" not in windows.columns
    recon = det.reconstruct(busy)
    assert [c for c in recon.columns if c != "timestamp"] == ["value", "value_recon"]
    np.testing.assert_array_equal(recon["value"], busy["value"])


def test_a_scored_flag_would_page_on_a_busy_day_a_context_flag_does_not(det, train, busy):
    scored = Detector(**FAST, context=[]).fit(train)
    assert scored.context_ == [] and scored.scored_ == ["value", "cmd"]
    # Standardised, the flag set in 1 row of 200 reads about 14 when set: the scored model
    # sees every window of the busy day as far off; the context model scores only values.
    assert scored.score(busy, per_column=True)["error_cmd"].max() > 5 * scored.threshold_
    assert det.score(busy)["error"].median() < scored.score(busy)["error"].median() / 5


def test_all_flag_data_is_scored(train):
    flags = pd.DataFrame({"a": train["cmd"], "b": 1.0 - train["cmd"]})
    det = Detector(**FAST).fit(flags)
    assert det.context_ == [] and det.scored_ == ["a", "b"]


def test_named_context_columns_and_mistakes(train):
    det = Detector(**FAST, context=["value"]).fit(train)
    assert det.context_ == ["value"] and det.scored_ == ["cmd"]
    with pytest.raises(OptionError, match="'nope', not a value column"):
        Detector(**FAST, context=["nope"]).fit(train)
    with pytest.raises(OptionError, match="every value column"):
        Detector(**FAST, context=["value", "cmd"]).fit(train)
    with pytest.raises(OptionError, match="context"):
        Detector(**FAST, context="cmd").fit(train)


def test_context_survives_the_model_file(det, busy, tmp_path):
    path = tmp_path / "m.lstmae"
    det.save(path)
    loaded = Detector.load(path)
    assert loaded.context_ == ["cmd"] and loaded.config_.outputs == [0]
    pd.testing.assert_frame_equal(loaded.score(busy), det.score(busy))


def test_a_forged_context_is_refused(det, tmp_path):
    from lstmae.artifact import load_model_file, save_model_file

    path = tmp_path / "m.lstmae"
    det.save(path)
    tensors, meta = load_model_file(path)
    for context, outputs in ((["value", "cmd"], [0]), (["other"], [0]), (["cmd"], None),
                             (["cmd"], [1])):
        forged = json.loads(json.dumps(meta))
        forged["context"], forged["model"]["outputs"] = context, outputs
        save_model_file(tmp_path / "forged.lstmae", dict(tensors), forged)
        with pytest.raises(ModelFileError):
            Detector.load(tmp_path / "forged.lstmae")


def test_cli_context_option(train, busy, tmp_path):
    train.to_csv(tmp_path / "train.csv", index=False)
    busy.to_csv(tmp_path / "busy.csv", index=False)
    fast = ["--window", "16", "--epochs", "2", "--hidden", "8", "--latent", "2"]
    run_lstmae("fit", "train.csv", "-m", "none.lstmae", "--context", "none", *fast,
               cwd=tmp_path, check=True)
    out = run_lstmae("score", "busy.csv", "-m", "none.lstmae", "-o", "s.csv", "--per-column",
                     cwd=tmp_path, check=True)
    assert "error_cmd" in pd.read_csv(tmp_path / "s.csv").columns, out.stderr_text
    info = run_lstmae("info", "none.lstmae", cwd=tmp_path, check=True)
    assert "cmd" in info.stdout_text
    for bad, says in (("nope", "--context names 'nope'"), ("value,cmd", "every value column"),
                      (",", "--context: give column names")):
        proc = run_lstmae("fit", "train.csv", "-m", "bad.lstmae", "--context", bad, *fast,
                          cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr_text
        assert says in proc.stderr_text and proc.stderr_text.count("\n") == 1, proc.stderr_text
        assert not (tmp_path / "bad.lstmae").exists()
