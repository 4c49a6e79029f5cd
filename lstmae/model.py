"""The LSTM autoencoder and its reconstruction loss.

encoder LSTM over the window -> last hidden state -> Linear -> latent z
z repeated over T -> decoder LSTM -> Linear(H, D) at every step

The final Linear layer matters: an LSTM's own output is squashed by tanh, so a
decoder that ends in an LSTM cannot reach values outside (-1, 1) and learns
slowly near its edges. Inputs are standardised, outputs are unbounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from lstmae.params import ERRORS, LOSSES  # noqa: F401 - re-exported

# The quantile of held-out window errors that puts peak errors on the scale of mean ones.
PEAK_SCALE_QUANTILE = 0.99


@dataclass
class ModelConfig:
    n_features: int
    hidden: int = 64
    latent: int = 16
    layers: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


class LSTMAutoencoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.LSTM(config.n_features, config.hidden, config.layers, batch_first=True)
        self.to_latent = nn.Linear(config.hidden, config.latent)
        self.decoder = nn.LSTM(config.latent, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, config.n_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, latent]"""
        _, (h, _) = self.encoder(x)
        return self.to_latent(h[-1])

    def decode(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        """[B, latent] -> [B, T, D]"""
        out, _ = self.decoder(z.unsqueeze(1).expand(-1, steps, -1))
        return self.head(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[1])


def check_same_shape(prediction: torch.Tensor, target: torch.Tensor) -> None:
    """Refuse to compare tensors of different shapes.

    torch's losses broadcast silently: a [5, 1, 1] prediction against a [5, 1]
    target becomes a [5, 5, 1] comparison whose minimum is the mean of the
    target, and the model learns to output the average. Never let that happen.
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction shape {list(prediction.shape)} does not match target shape "
            f"{list(target.shape)}; both must be [batch, time, features]"
        )


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss over every value of the batch, in fp32 whatever precision the forward ran in."""
    return column_errors(prediction, target, loss).mean()


def window_error(column_errors: np.ndarray) -> np.ndarray:
    """A window's error [N, D] -> [N]: the error of its worst-reconstructed column.

    The maximum, not the mean: an anomaly in one channel of 25 must not be
    diluted 25 times by the channels that behave (on SMAP telemetry this took
    mean VUS-PR from 0.244 to 0.259; on one column both are the same).
    """
    return column_errors.max(axis=1)


def column_errors(
    prediction: torch.Tensor, target: torch.Tensor, kind: str, peak_scale: float | None = None
) -> torch.Tensor:
    """One error per window and feature [B, D], from the window's T steps.

    kind "mse": the mean squared difference; "l1" (a loss) and "mae" (an error): the
    mean absolute difference; "peak": the largest absolute difference; "mae+peak":
    the larger of the mean absolute difference and peak_scale times the largest one.
    """
    if kind not in LOSSES + ERRORS + ("peak",):
        raise ValueError(f"unknown error kind {kind!r}")
    if (kind == "mae+peak") != (peak_scale is not None):
        raise ValueError("peak_scale goes with kind 'mae+peak' and only with it")
    check_same_shape(prediction, target)
    diff = prediction.float() - target.float()
    if kind == "mse":
        return diff.square().mean(dim=1)
    if kind == "peak":
        return diff.abs().amax(dim=1)
    if kind == "mae+peak":
        size = diff.abs()
        return mae_or_peak(size.mean(dim=1), size.amax(dim=1), peak_scale)
    return diff.abs().mean(dim=1)


def mae_or_peak(mean: torch.Tensor, peak: torch.Tensor, peak_scale: float) -> torch.Tensor:
    """The "mae+peak" error from the mean and the largest absolute differences (fp32).

    Scoring and calibration both call this, so a held-out window scored again gets
    exactly its stored error and a threshold at their maximum does not flag it.
    """
    return torch.maximum(mean, peak_scale * peak)


def fit_peak_scale(mean_errors: np.ndarray, peak_errors: np.ndarray) -> float:
    """The factor that puts peak errors on the scale of mean absolute ones, for "mae+peak".

    Both are window errors of the same normal (held-out) windows. A mean over a
    window dilutes a one-row spike T times, so a latency spike that an operator
    would call an incident hardly raises it; the window's largest error does not
    dilute it but is noisy on its own. Scaled so that the two agree at the
    PEAK_SCALE_QUANTILE of normal windows, the larger of them rises when either a
    stretch or a single row is reconstructed worse than normal data ever was.
    On NAB realKnownCause this took mean VUS-PR from 0.456 to 0.510 (spiky EC2
    latency 0.27 -> 0.63; bench/README.md), the rest within noise.
    """
    mean_ref = float(np.quantile(mean_errors, PEAK_SCALE_QUANTILE))
    peak_ref = float(np.quantile(peak_errors, PEAK_SCALE_QUANTILE))
    # Normal windows reconstructed exactly: any error is news, and the peak says most.
    return mean_ref / peak_ref if peak_ref > 0 else 1.0
