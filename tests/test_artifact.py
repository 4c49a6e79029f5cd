"""The model file: save -> load gives the same answers; damaged or foreign files are refused."""

import json
import pickle
import struct

import numpy as np
import pytest

from lstmae import Detector
from lstmae.errors import DataError, ModelFileError
from lstmae.scoring import WindowError


@pytest.fixture
def saved(tmp_path, small_detector):
    path = tmp_path / "model.lstmae"
    small_detector.save(path)
    return path


def test_save_load_score_identical(saved, small_detector, small_frame):
    loaded = Detector.load(saved)
    before = small_detector.score(small_frame)
    after = loaded.score(small_frame)
    np.testing.assert_array_equal(before["error"].to_numpy(), after["error"].to_numpy())
    assert loaded.threshold_ == small_detector.threshold_
    assert loaded.columns_ == ["a", "b", "c"]
    np.testing.assert_array_equal(
        small_detector.encode(small_frame).filter(like="z").to_numpy(),
        loaded.encode(small_frame).filter(like="z").to_numpy(),
    )


def test_model_file_holds_everything_scoring_needs(saved):
    loaded = Detector.load(saved)
    meta = loaded.metadata()
    assert meta["window"] == 16 and meta["stride"] == 1
    assert meta["time_col"] == "timestamp"
    assert meta["threshold"]["method"] == "max"
    # held-out windows exist here, so the default margin is 1.2
    assert meta["threshold"]["source"] == "validation" and meta["threshold"]["margin"] == 1.2
    assert len(loaded.heldout_errors_) == meta["threshold"]["windows"] > 0
    assert np.isclose(1.2 * loaded.heldout_errors_.max(), loaded.threshold_)


def test_scoring_with_missing_columns_names_them(small_detector, small_frame):
    with pytest.raises(DataError, match=r"missing column\(s\) b, c .*needs: a, b, c"):
        small_detector.score(small_frame[["timestamp", "a"]])


def test_extra_columns_are_ignored_and_order_does_not_matter(small_detector, small_frame):
    shuffled = small_frame[["c", "timestamp", "b", "a"]].assign(extra=1.0)
    np.testing.assert_array_equal(
        small_detector.score(small_frame)["error"], small_detector.score(shuffled)["error"]
    )


def test_non_model_file_is_refused(tmp_path):
    path = tmp_path / "data.lstmae"
    path.write_text("timestamp,value\n2026-01-01,1\n")
    with pytest.raises(ModelFileError, match="is not an lstmae model file"):
        Detector.load(path)


@pytest.mark.parametrize("keep", [0, 7, 100, -10])
def test_truncated_model_file_is_refused(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(ModelFileError):
        Detector.load(saved)


def test_flipped_byte_is_caught_by_checksum(saved):
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        Detector.load(saved)


def test_metadata_that_lies_about_shapes_is_refused(saved, tmp_path):
    from lstmae.artifact import load_model_file, save_model_file

    tensors, meta = load_model_file(saved)
    meta["model"]["hidden"] = 32  # tensors were trained with 16
    for key in ("format", "format_version"):
        meta.pop(key)
    liar = tmp_path / "liar.lstmae"
    save_model_file(liar, tensors, meta)  # a valid checksum over a lie
    with pytest.raises(ModelFileError, match="does not match its contents"):
        Detector.load(liar)


@pytest.mark.parametrize("scale", [None, -1.0, float("nan"), "0.3", True])
def test_mae_peak_error_without_a_valid_scale_is_refused(saved, tmp_path, scale):
    from lstmae.artifact import load_model_file, save_model_file

    tensors, meta = load_model_file(saved)
    meta["peak_scale"] = scale
    for key in ("format", "format_version"):
        meta.pop(key)
    save_model_file(tmp_path / "no_scale.lstmae", tensors, meta)
    with pytest.raises(ModelFileError, match="peak_scale"):
        Detector.load(tmp_path / "no_scale.lstmae")


def test_other_format_version_is_refused(saved, tmp_path):
    data = saved.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["lstmae"])
    meta["format_version"] = 99
    header["__metadata__"]["lstmae"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    other = tmp_path / "v99.lstmae"
    other.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n :])
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        Detector.load(other)


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.lstmae"
    evil.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ModelFileError):
        Detector.load(evil)
    assert not marker.exists()


def test_unfitted_detector_says_so(small_frame):
    from lstmae.errors import OptionError

    with pytest.raises(OptionError, match="not fitted"):
        Detector().score(small_frame)


def test_model_files_written_before_error_and_precision_still_score(saved, small_frame, tmp_path):
    # Such files have no "error" (windows were scored with the training loss), no
    # "precision" parameter and no second model.
    from lstmae.artifact import load_model_file, save_model_file

    tensors, meta = load_model_file(saved)
    assert meta["error"] == "mae+peak" and meta["params"]["precision"] == "auto"
    assert 0 < meta["peak_scale"] <= 1
    del meta["error"], meta["peak_scale"], meta["params"]["precision"], meta["long_window"]
    tensors = {k: v for k, v in tensors.items() if not k.startswith("long.")}
    save_model_file(tmp_path / "old.lstmae", tensors, meta)
    old = Detector.load(tmp_path / "old.lstmae")
    assert old.error_.kind == meta["loss"] == "mse"
    assert old.params.training.precision == "auto"
    now = Detector.load(saved)
    now.error_, now.long_ = WindowError("mse"), None
    np.testing.assert_array_equal(old.score(small_frame)["error"], now.score(small_frame)["error"])
    assert not np.allclose(old.score(small_frame)["error"],
                           Detector.load(saved).score(small_frame)["error"])


def test_model_files_with_the_mae_error_score_with_the_mean_alone(saved, small_frame, tmp_path):
    from lstmae.artifact import load_model_file, save_model_file

    tensors, meta = load_model_file(saved)
    meta["error"] = "mae"
    del meta["peak_scale"]
    save_model_file(tmp_path / "mae.lstmae", tensors, meta)
    mae = Detector.load(tmp_path / "mae.lstmae")
    assert mae.error_.kind == "mae" and mae.error_.peak_scale is None
    both = Detector.load(saved).score(small_frame)["error"].to_numpy()
    alone = mae.score(small_frame)["error"].to_numpy()
    assert (alone <= both).all() and (alone < both).any()  # the peak term adds, never takes
