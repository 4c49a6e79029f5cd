"""The model itself: shapes are checked, and the origin's ramp is reconstructed."""

import numpy as np
import pandas as pd
import pytest
import torch

from lstmae import Detector
from lstmae.model import (
    LSTMAutoencoder,
    ModelConfig,
    column_errors,
    reconstruction_loss,
    window_error,
)

RAMP = [0.0, 0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize("seed", range(5))
def test_ramp_is_reconstructed_not_averaged(seed):
    # The origin: a broadcast [5,1,1]-vs-[5,1] loss made an autoencoder output
    # the mean 0.2 for every step. Every value must come back within 0.01.
    frame = pd.DataFrame({"value": RAMP})
    det = Detector(window=5, seed=seed, device="cpu").fit(frame)  # default 100 epochs
    recon = det.reconstruct(frame)["value_recon"].to_numpy()
    assert np.abs(recon - np.array(RAMP)).max() < 0.01, recon
    assert det.score(frame)["error"].iloc[0] < 0.01


def test_bf16_training_on_cpu_still_reconstructs_the_ramp():
    frame = pd.DataFrame({"value": RAMP})
    det = Detector(window=5, device="cpu", precision="bf16").fit(frame)
    assert det.training_["precision"] == "bf16"
    recon = det.reconstruct(frame)["value_recon"].to_numpy()
    assert np.abs(recon - np.array(RAMP)).max() < 0.01, recon


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
