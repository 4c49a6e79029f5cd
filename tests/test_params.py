"""lstmae.params: one home for every fit parameter, and messages that name each
parameter the way its reader types it."""

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from lstmae import Detector
from lstmae.errors import OptionError
from lstmae.params import DEFAULTS, FLAT_NAMES, GROUPS, FitParams

from .conftest import run_lstmae


def test_flat_names_are_unique_and_round_trip():
    names = [f.name for group in GROUPS.values() for f in dataclasses.fields(group)]
    assert len(names) == len(set(names)) == len(FLAT_NAMES)
    params = FitParams.from_flat({"window": 32, "threshold_method": "quantile", "seed": 7})
    assert params.window.window == 32 and params.threshold.threshold_method == "quantile"
    assert FitParams.from_flat(params.flat()) == params
    assert FitParams().flat() == DEFAULTS


def test_an_unknown_parameter_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'windw'"):
        Detector(windw=32)


def test_parameters_read_and_set_by_name_live_in_params():
    det = Detector(window=32)
    assert det.window == det.params.window.window == 32
    det.lr, det.time_format = 1e-2, "%d/%m/%Y"
    assert det.params.training.lr == 1e-2 and det.params.data.time_format == "%d/%m/%Y"
    assert "lr" not in vars(det)
    with pytest.raises(AttributeError, match="'windw'"):
        det.windw  # noqa: B018


def test_unknown_outputs_are_refused(small_detector, small_frame):
    with pytest.raises(OptionError, match="outputs must be among"):
        small_detector.outputs(small_frame, ["points"])
    assert set(small_detector.outputs(small_frame, "point")) == {"point"}


def test_l1_is_another_name_for_the_mae_loss():
    assert Detector(loss="l1").params.training.loss == "mae"
    assert Detector(loss="mae").params == Detector(loss="l1").params


def test_python_messages_name_arguments_and_the_cli_renders_flags(small_frame, tmp_path):
    with pytest.raises(OptionError) as caught:
        Detector(threshold_quantile=2.0).fit(small_frame)
    assert str(caught.value).startswith("'threshold_quantile' must be between 0 and 1")
    assert caught.value.for_cli().startswith("--threshold-quantile must be between 0 and 1")
    with pytest.raises(OptionError, match="'hidden' 4096, 'latent' 16 and 'layers' 16 with 1"):
        Detector(hidden=4096, layers=16, columns=["a"]).check_params()

    data = tmp_path / "data.csv"
    small_frame.to_csv(data, index=False)
    proc = run_lstmae("fit", str(data), "-m", str(tmp_path / "m.lstmae"),
                      "--threshold-quantile", "2")
    assert proc.returncode == 2
    assert proc.stderr_text.startswith("error: --threshold-quantile must be between 0 and 1")
    assert "'threshold_quantile'" not in proc.stderr_text


def test_the_model_file_stores_every_parameter(small_detector):
    stored = small_detector.metadata()["params"]
    assert set(stored) == set(FLAT_NAMES)
    assert json.loads(json.dumps(stored)) == stored
    again = Detector(**stored)
    assert again.params == small_detector.params


def test_cli_defaults_are_the_parameters_defaults():
    proc = run_lstmae("fit", "--help", check=True)
    text = " ".join(proc.stdout_text.split())
    for name in ("hidden", "latent", "epochs", "batch_size", "lr", "patience", "seed"):
        assert f"--{name.replace('_', '-')} <" in text
        assert f"[default: {DEFAULTS[name]}]" in text


def test_warnings_name_arguments_in_python(tmp_path):
    frame = pd.DataFrame({"x": [1.0, None, 3.0] * 30})
    det = Detector(window=4, hidden=4, latent=2, epochs=1, fill="ffill", device="cpu")
    with pytest.warns(UserWarning, match="handled with 'fill' ffill"):
        det.fit(frame)
    with warnings.catch_warnings():  # a filter matches the text Python users read
        warnings.filterwarnings("error")
        warnings.filterwarnings("ignore", message=".*handled with 'fill' ffill")
        det.fit(frame)


@pytest.mark.parametrize(("rows", "window"), [(10_000, 64), (320, 64), (319, 63), (200, 40),
                                               (80, 16), (40, 16)])
def test_the_default_window_is_at_most_a_fifth_of_the_training_rows(rows, window):
    from lstmae.params import default_window

    assert default_window(rows) == window


def test_a_short_fit_gets_a_shorter_default_window_and_a_given_one_is_kept(tmp_path):
    rows = 200
    t = pd.Series(range(rows), dtype=float)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=rows, freq="5min"),
                          "load": np.sin(t / 6)})
    fast = {"hidden": 8, "latent": 2, "epochs": 1, "device": "cpu"}
    assert Detector(**fast).fit(frame).window_ == 40
    assert Detector(**fast, window=64).fit(frame).window_ == 64
    frame.to_csv(tmp_path / "short.csv", index=False)
    small = ["--hidden", "8", "--latent", "2", "--epochs", "1"]
    proc = run_lstmae("fit", "short.csv", "-m", "m.lstmae", *small, cwd=tmp_path, check=True)
    said = " ".join(proc.stderr_text.split())
    assert "windows of 40 rows (64 is more than a fifth of the 200 rows)" in said, said
    proc = run_lstmae("fit", "short.csv", "-m", "m.lstmae", "-w", "64", *small, cwd=tmp_path,
                      check=True)
    assert "windows of 64 rows," in " ".join(proc.stderr_text.split()), proc.stderr_text
    assert "Default: 64, or a fifth of the rows fit on" in " ".join(
        run_lstmae("fit", "--help", check=True).stdout_text.split())


def test_the_default_window_refuses_what_it_refused_before_and_says_when_it_is_shortened(
        tmp_path):
    from lstmae.errors import DataError

    t = np.arange(300)
    frame = pd.DataFrame({"load": np.sin(t / 6)})
    fast = {"hidden": 4, "latent": 2, "epochs": 1, "device": "cpu"}
    # A truncated export of 40 rows: refused, as with window 64, not fitted on 16-row windows.
    with pytest.raises(DataError, match="40 row.*fewer than the 64 that the default window"):
        Detector(**fast).fit(frame.iloc[:40], source="cut.csv")
    assert Detector(**fast, window=16).fit(frame.iloc[:40]).window_ == 16
    with pytest.raises(OptionError, match=r"the default window of 60 \(a fifth of the 300 rows"):
        Detector(**fast, stride=64).fit(frame)
    with pytest.raises(OptionError, match="not a multiple of the default window of 60"):
        Detector(**fast, long_window=128).fit(frame)
    # The model file's params hold the window used: earlier readers need a number there.
    det = Detector(**fast).fit(frame)
    det.save(tmp_path / "m.lstmae")
    assert det.metadata()["params"]["window"] == 60 == Detector.load(tmp_path / "m.lstmae").window_
