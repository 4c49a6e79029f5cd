"""The second model (fit --long-window): how its errors join the first model's, its
place in the model file, and the options that choose it."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from lstmae import Detector
from lstmae.errors import ModelFileError, OptionError
from tests.conftest import run_lstmae


@pytest.fixture(scope="module")
def long_detector(small_frame):
    return Detector(window=16, hidden=16, latent=4, epochs=3, device="cpu",
                    long_window="double").fit(small_frame)


@pytest.fixture(scope="module")
def saved_long(long_detector, tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "m.lstmae"
    long_detector.save(path)
    return path


class _Averaged:
    """The second model as a first model would run it: each [B, T, D] window is turned
    into its T // step means of `step` rows here, by a reshape (lstmae.windows.window_view
    takes the means of the rows before it windows them)."""

    def __init__(self, model, step: int):
        self.model, self.step = model, step

    def _means(self, windows):
        b, t, d = windows.shape
        return windows.reshape(b, t // self.step, self.step, d).mean(dim=2)

    def encode(self, windows):
        return self.model.encode(self._means(windows))

    def decode(self, latent, rows: int):
        return self.model.decode(latent, rows // self.step)

    def target(self, windows):
        return self.model.target(self._means(windows))

    def parameters(self):
        return self.model.parameters()


def _alone(det: Detector, which: str) -> Detector:
    """A copy of `det` that scores with one of its two models only."""
    one = copy.copy(det)
    if which == "long":
        long = det.long_
        one.model_ = _Averaged(long.model, long.step)
        one.window_, one.error_ = long.window, long.error
    one.long_ = None
    return one


def test_a_window_error_joins_both_models_each_over_its_threshold(small_frame):
    frame = small_frame[["timestamp", "a"]].copy()  # one column: window error = column error
    det = Detector(window=16, hidden=16, latent=4, epochs=3, device="cpu",
                   long_window="double").fit(frame)
    assert det.long_.window == 32 and det.long_.step == 2 and det.history_ == 32
    both = det.score(frame)
    short = _alone(det, "short").score(frame)
    long = _alone(det, "long").score(frame)
    assert (both["end"] == short["end"]).all() and (both["window"] == short["window"]).all()
    # The first rows, before a long window fits, are the first model's alone.
    first = short["window"] < det.long_.window - det.window_
    pd.testing.assert_frame_equal(both[first], short[first])
    # Later: the mean of the two for the windows ending at the same row, the long one's
    # error in the first model's threshold units, never below the first model's; and the
    # window spans the long window's rows.
    later = short[~first].merge(long, on="end", suffixes=("", "_long"))
    assert len(later) == (~first).sum() == len(long)
    scale = det.threshold_ / det.long_.threshold
    mean = (later["error"] + scale * later["error_long"]) / 2
    np.testing.assert_allclose(both.loc[~first, "error"].to_numpy(),
                               np.maximum(later["error"], mean).to_numpy(), rtol=1e-5)
    assert (mean > later["error"]).any() and (mean < later["error"]).any()
    assert (both.loc[~first, "start"].to_numpy() == later["start_long"].to_numpy()).all()


def test_batches_give_the_one_run_answers(long_detector, small_frame):
    whole = long_detector.score_all(small_frame)
    parts = list(long_detector.iter_score(
        [small_frame.iloc[i:i + 7] for i in range(0, len(small_frame), 7)]))
    for level in ("window", "point", "event"):
        batched = pd.concat([p[level] for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(batched, whole[level].drop(
            columns=[c for c in whole[level].columns if c not in batched.columns]))
    assert whole["event"].empty or (whole["event"]["start"] <= whole["event"]["end"]).all()


def test_score_with_a_state_across_runs_matches_one_run(saved_long, small_frame, tmp_path):
    data = tmp_path / "all.csv"
    small_frame.to_csv(data, index=False)
    run_lstmae("score", str(data), "-m", str(saved_long), "--level", "point",
               "-o", str(tmp_path / "one.csv"), check=True)
    state = tmp_path / "s.state"
    for i, (lo, hi) in enumerate([(0, 50), (50, 61), (61, 400)]):
        small_frame.iloc[lo:hi].to_csv(tmp_path / f"p{i}.csv", index=False)
        run_lstmae("score", str(tmp_path / f"p{i}.csv"), "-m", str(saved_long), "--level",
                   "point", "--state", str(state), "-o", str(tmp_path / f"r{i}.csv"),
                   check=True)
    runs = pd.concat([pd.read_csv(tmp_path / f"r{i}.csv") for i in range(3)],
                     ignore_index=True)
    pd.testing.assert_frame_equal(runs, pd.read_csv(tmp_path / "one.csv"))


def test_an_error_that_cannot_be_computed_in_either_model_is_anomalous(long_detector,
                                                                       small_frame):
    frame = small_frame.copy()
    frame.loc[300, "a"] = 1e37  # within the range check, far beyond float32 once scaled
    windows = long_detector.score(frame, threshold=1e30)
    at = frame.loc[300, "timestamp"]
    covering = (windows["start"] <= at) & (windows["end"] >= at)
    assert covering.sum() == 32 and windows.loc[covering, "anomaly"].all()
    assert not windows.loc[~covering, "anomaly"].any()


def test_the_second_model_is_saved_and_loaded(long_detector, saved_long, small_frame):
    loaded = Detector.load(saved_long)
    assert loaded.long_.window == 32
    assert loaded.long_.threshold == pytest.approx(long_detector.long_.threshold)
    pd.testing.assert_frame_equal(loaded.score(small_frame, level="point"),
                                  long_detector.score(small_frame, level="point"))
    info = run_lstmae("info", str(saved_long), check=True).stdout_text
    assert "long window" in info and "32, read as 16 means of 2, a second model" in info


def test_the_second_model_reads_its_window_as_means_of_rows():
    from lstmae.windows import window_view

    values = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    values[20, 1] = float("nan")  # stays in the means of the windows that hold row 20
    view = window_view(values, 12, 3)
    assert view.shape == (39, 4, 3)
    for start in (0, 9, 38):
        rows = values[start:start + 12].numpy()
        np.testing.assert_allclose(view[start].numpy(), rows.reshape(4, 3, 3).mean(axis=1),
                                   rtol=1e-6)
    has_nan = torch.isnan(view).any(dim=(1, 2)).numpy()
    assert (np.flatnonzero(has_nan) == np.arange(9, 21)).all()


def test_one_model_by_default(small_detector):
    assert small_detector.long_ is None and small_detector.history_ == 16


def test_double_is_skipped_when_the_training_data_cannot_hold_it(small_frame):
    det = Detector(window=16, hidden=16, latent=4, epochs=2, long_window="double")
    assert det.fit(small_frame.iloc[:50]).long_ is None  # 19 windows of 32: too few


def test_double_is_skipped_beyond_256_rows(small_frame):
    frame = pd.concat([small_frame] * 2, ignore_index=True).drop(columns="timestamp")
    det = Detector(window=200, hidden=8, latent=2, epochs=1, long_window="double")
    assert det.fit(frame).long_ is None


def _ctrl_c_at(second_model_epoch: int):
    """fit's callbacks, pressing Ctrl-C when the second model reports that epoch. The
    report comes before the epoch is kept as the best, so at epoch 1 no epoch is kept."""
    stages: list[str] = []

    def progress(report):
        if any("second model" in s for s in stages) and report.epoch == second_model_epoch:
            raise KeyboardInterrupt

    return {"progress": progress, "on_stage": stages.append}


@pytest.mark.parametrize("epoch", [1, 2])
def test_ctrl_c_while_the_second_model_trains_is_told(small_frame, tmp_path, epoch):
    det = Detector(window=16, hidden=16, latent=4, epochs=3, long_window="double")
    det.fit(small_frame, keep_best_on_interrupt=True, **_ctrl_c_at(epoch))
    # Not the fit that was asked for: a cron job's exit status and `info` must say so.
    assert det.training_["interrupted"] is True
    if epoch == 1:  # no epoch of the second model done: the first model alone
        assert det.long_ is None and det.training_["long_window"] == "interrupted"
    else:
        assert det.long_.training["interrupted"]
    assert det.score(small_frame)["error"].notna().all()
    det.save(tmp_path / "m.lstmae")
    info = run_lstmae("info", "m.lstmae", cwd=tmp_path, check=True).stdout_text
    assert "stopped by Ctrl-C" in info
    assert ("before the second model finished an epoch" in info) == (epoch == 1)


def test_ctrl_c_in_the_second_model_without_keep_best_stops_the_fit(small_frame):
    det = Detector(window=16, hidden=16, latent=4, epochs=3, long_window="double")
    with pytest.raises(KeyboardInterrupt):
        det.fit(small_frame, **_ctrl_c_at(2))


@pytest.mark.parametrize(("value", "says"), [
    ("16", "is not longer than the window of 16"),
    ("500", "is longer than the 400 rows"),
    ("24", "is not a multiple of the window of 16; give 32, 48, ..., double or off"),
    ("twice", "must be a whole number of rows, double or off"),
])
def test_a_long_window_that_cannot_work_is_refused_naming_the_option(
        tmp_path, small_frame, value, says):
    data = tmp_path / "train.csv"
    small_frame.to_csv(data, index=False)
    model = tmp_path / "m.lstmae"
    model.write_bytes(b"keep me")
    proc = run_lstmae("fit", str(data), "-m", str(model), "--window", "16",
                      "--long-window", value, "--epochs", "1")
    assert proc.returncode == 2, proc.stderr_text
    assert "--long-window" in proc.stderr_text and says in proc.stderr_text
    assert model.read_bytes() == b"keep me"


def test_a_long_window_not_longer_than_the_window_is_refused_in_python(small_frame):
    with pytest.raises(OptionError, match="long_window"):
        Detector(window=16, long_window=8).fit(small_frame)
    with pytest.raises(OptionError, match="long_window"):
        Detector(window=16, long_window="triple").fit(small_frame)


def _load_edited(saved, tmp_path, edit) -> Detector:
    """Load a copy of the model file `saved` after edit(tensors, meta), re-checksummed."""
    from lstmae.artifact import load_model_file, save_model_file

    tensors, meta = load_model_file(saved)
    edit(tensors, meta)
    for key in ("format", "format_version"):
        meta.pop(key)
    save_model_file(tmp_path / "bad.lstmae", tensors, meta)
    return Detector.load(tmp_path / "bad.lstmae")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("threshold", 0.0, "long_window.threshold"),
    ("threshold", float("nan"), "long_window.threshold"),
    ("window", 16, "long_window.window"),  # not longer than the window
    ("window", 10**9, "long_window.window"),
    ("step", 0, "long_window.step"),
    ("step", 3, "long_window.step"),  # 32 rows are not whole steps of 3
    ("step", 32, "long_window.step"),  # one step: no sequence
    ("step", 2.5, "long_window.step"),
])
def test_a_model_file_whose_second_model_makes_no_sense_is_refused(
        saved_long, tmp_path, field, value, says):
    with pytest.raises(ModelFileError, match=says.replace(".", r"\.")):
        _load_edited(saved_long, tmp_path,
                     lambda tensors, meta: meta["long_window"].update({field: value}))


def test_a_model_file_from_before_steps_reads_every_row(saved_long, tmp_path):
    loaded = _load_edited(saved_long, tmp_path,
                          lambda tensors, meta: meta["long_window"].pop("step"))
    assert loaded.long_.window == 32 and loaded.long_.step == 1


def test_second_model_weights_without_its_metadata_are_refused(saved_long, tmp_path):
    with pytest.raises(ModelFileError, match="belongs to no second model"):
        _load_edited(saved_long, tmp_path,
                     lambda tensors, meta: meta.update(long_window=None))


def test_a_long_model_tensor_of_another_shape_is_refused(saved_long, tmp_path):
    def reshape(tensors, meta):
        tensors[name] = np.zeros((3, 3), dtype=np.float32)

    name = "long.model.encoder.weight_ih_l0"
    with pytest.raises(ModelFileError, match=rf"tensor '{name}' has shape \[3, 3\]"):
        _load_edited(saved_long, tmp_path, reshape)
