"""The model itself: shapes are checked, and the origin's ramp is reconstructed."""

import numpy as np
import pandas as pd
import pytest
import torch

from lstmae import Detector
from lstmae.errors import OptionError
from lstmae.model import LSTMAutoencoder, ModelConfig
from lstmae.scoring import column_errors, fit_peak_scale, reconstruction_loss, window_error
from lstmae.train import EarlyStopping, cpu_has_amx, cpu_runs_bf16, uses_bf16

RAMP = [0.0, 0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize("seed", range(5))
def test_ramp_is_reconstructed_not_averaged(seed):
    # The origin: a broadcast [5,1,1]-vs-[5,1] loss made an autoencoder output
    # the mean 0.2 for every step. Every value must come back within 0.01.
    frame = pd.DataFrame({"value": RAMP})
    det = Detector(window=5, seed=seed, device="cpu").fit(frame)  # default 100 epochs
    recon = det.reconstruct(frame)["value_recon"].to_numpy()
    assert np.abs(recon - np.array(RAMP)).max() < 0.01, recon
    assert det.score(frame)["error"].iloc[0] < 0.05  # standardised units; the mean scores 0.85


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_either_precision_reconstructs_the_ramp(precision):
    if precision == "bf16" and not cpu_runs_bf16():
        pytest.skip("this CPU cannot run an LSTM in bf16 (no AVX-512)")
    frame = pd.DataFrame({"value": RAMP})
    det = Detector(window=5, device="cpu", precision=precision).fit(frame)
    assert det.training_["precision"] == precision
    recon = det.reconstruct(frame)["value_recon"].to_numpy()
    assert np.abs(recon - np.array(RAMP)).max() < 0.01, recon


def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_bf16_natively():
    cpu = torch.device("cpu")
    assert uses_bf16("auto", cpu) == cpu_has_amx()
    assert not uses_bf16("fp32", cpu)
    if cpu_runs_bf16():
        assert uses_bf16("bf16", cpu)
    else:  # one line and exit 2, not oneDNN's internal error
        with pytest.raises(OptionError, match="'precision' bf16: this CPU cannot run"):
            uses_bf16("bf16", cpu)
    frame = pd.DataFrame({"value": RAMP})
    det = Detector(window=5, epochs=1, device="cpu").fit(frame)
    assert det.training_["precision"] == ("bf16" if cpu_has_amx() else "fp32")
    with pytest.raises(OptionError, match="'precision' bf16 runs on cpu or cuda"):
        uses_bf16("bf16", torch.device("mps"))


def test_shape_mismatch_raises_instead_of_broadcasting():
    prediction = torch.zeros(5, 1, 1)
    target = torch.zeros(5, 1)
    with pytest.raises(ValueError, match=r"\[5, 1, 1\] does not match target shape \[5, 1\]"):
        reconstruction_loss(prediction, target, "mse")
    with pytest.raises(ValueError, match="does not match"):
        column_errors(torch.zeros(2, 4, 3), torch.zeros(2, 4, 1), "l1")


def test_output_has_input_shape_and_is_not_bounded_by_tanh():
    torch.manual_seed(0)
    model = LSTMAutoencoder(ModelConfig(n_features=3, hidden=8, latent=2))
    x = torch.randn(4, 10, 3)
    assert model(x).shape == x.shape
    assert model.encode(x).shape == (4, 2)
    with torch.no_grad():
        model.head.bias.fill_(5.0)  # a tanh-bounded decoder could never output 5
    assert model(x).min() > 1.0


def test_column_errors_are_means_over_time_and_the_window_error_their_max():
    prediction = torch.zeros(2, 3, 2)
    target = torch.ones(2, 3, 2)
    target[1, :, 1] = 2.0  # window 1: column 1 is off by 2, column 0 by 1
    assert column_errors(prediction, target, "mse").tolist() == [[1.0, 1.0], [1.0, 4.0]]
    assert column_errors(prediction, target, "l1").tolist() == [[1.0, 1.0], [1.0, 2.0]]
    assert window_error(column_errors(prediction, target, "mse").numpy()).tolist() == [1.0, 4.0]
    assert reconstruction_loss(prediction, target, "mse").item() == (1 + 1 + 1 + 4) / 4


def test_peak_errors_count_a_one_row_spike_that_the_mean_dilutes():
    prediction = torch.zeros(2, 64, 2)
    target = torch.zeros(2, 64, 2)
    target[0, :, 0] = 0.1  # window 0: column 0 a little off all along
    target[1, 10, 1] = 3.0  # window 1: one row of column 1 far off
    mae = column_errors(prediction, target, "mae")
    assert mae[1, 1].item() == pytest.approx(3 / 64) and mae[1, 1] < mae[0, 0]
    assert column_errors(prediction, target, "peak")[1, 1].item() == pytest.approx(3.0)
    both = column_errors(prediction, target, "mae+peak", peak_scale=0.25)
    np.testing.assert_allclose(both.numpy(), [[0.1, 0.0], [0.0, 0.75]], rtol=1e-6)
    assert window_error(both.numpy()).tolist() == pytest.approx([0.1, 0.75])
    with pytest.raises(ValueError, match="peak_scale"):
        column_errors(prediction, target, "mae+peak")
    with pytest.raises(ValueError, match="peak_scale"):
        column_errors(prediction, target, "mae", peak_scale=0.25)


def test_peak_scale_makes_the_two_errors_agree_at_the_99th_percentile_of_normal_windows():
    mean = np.linspace(0.1, 0.2, 101)
    peak = 4 * mean[::-1]  # the order of the windows does not matter, only the quantiles
    assert fit_peak_scale(mean, peak) == pytest.approx(0.25)
    assert fit_peak_scale(np.zeros(5), np.zeros(5)) == 1.0  # normal windows reconstructed exactly


def test_adam_steps_exactly_like_torch_optim_adam():
    # lstmae.train.Adam keeps Adam's state itself (building torch.optim.Adam imports
    # torch._dynamo, ~0.7 s per fit) but must take torch's steps bit for bit.
    from lstmae.train import Adam

    torch.manual_seed(0)
    ours, theirs = LSTMAutoencoder(ModelConfig(3, 8, 2)), LSTMAutoencoder(ModelConfig(3, 8, 2))
    theirs.load_state_dict(ours.state_dict())
    for model in (ours, theirs):  # a parameter without a gradient is left alone by both
        model.head.bias.requires_grad_(False)
    start = [p.clone() for p in ours.parameters()]
    pairs = [(ours, Adam(ours.parameters(), lr=3e-3)),
             (theirs, torch.optim.Adam(theirs.parameters(), lr=3e-3))]
    x = torch.randn(16, 10, 3)
    for _ in range(30):
        for model, optimizer in pairs:
            optimizer.zero_grad()
            reconstruction_loss(model(x), x, "mse").backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    for a, b, before in zip(ours.parameters(), theirs.parameters(), start, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, before) == (a is ours.head.bias)  # the rest did train


def test_early_stopping_waits_for_clear_progress_but_keeps_every_new_low():
    # A plateau that wanders down by 0.1 % an epoch is not progress: stop after
    # `patience` epochs of it, yet keep its lowest epoch as the best.
    stopper = EarlyStopping(patience=3)
    losses = [1.0, 0.5, 0.499, 0.498, 0.497]
    decisions = [stopper.update(loss, epoch) for epoch, loss in enumerate(losses, 1)]
    assert [best for best, _ in decisions] == [True] * 5
    assert [stop for _, stop in decisions] == [False] * 4 + [True]
    assert (stopper.best_epoch, stopper.best_loss) == (5, 0.497)
    assert EarlyStopping(patience=3).update(1.0, 1) == (True, False)
    never = EarlyStopping(patience=None)
    assert not any(never.update(1.0, epoch)[1] for epoch in range(1, 50))


def test_held_out_windows_scored_again_get_exactly_their_stored_errors(small_detector, small_frame):
    # The default threshold is the largest stored held-out error: a held-out window
    # scored again must not cross it by a rounding difference.
    held_out = small_detector.training_["val_windows"]
    assert held_out >= 20 and small_detector.error_.kind == "mae+peak"
    scores = small_detector.score(small_frame).tail(held_out)
    np.testing.assert_array_equal(scores["error"].to_numpy(), small_detector.heldout_errors_)
    assert not scores["anomaly"].any()
