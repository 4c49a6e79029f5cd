"""The LSTM autoencoder, and the shape check before any loss or error.

encoder LSTM over the window -> last hidden state -> Linear -> latent z
z repeated over T -> decoder LSTM -> Linear(H, D_out) at every step

The encoder reads every column; the decoder rebuilds the `outputs` among them (all
by default). The others are context (command flags, switches): they tell the
encoder what the system was told to do, and nothing is scored on them.

The final Linear layer matters: an LSTM's own output is squashed by tanh, so a
decoder that ends in an LSTM cannot reach values outside (-1, 1) and learns
slowly near its edges. Inputs are standardised, outputs are unbounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    n_features: int
    hidden: int = 64
    latent: int = 16
    layers: int = 1
    outputs: list[int] | None = None  # the input columns reconstructed; None: all

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_outputs(self) -> int:
        return self.n_features if self.outputs is None else len(self.outputs)


class LSTMAutoencoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.LSTM(config.n_features, config.hidden, config.layers, batch_first=True)
        self.to_latent = nn.Linear(config.hidden, config.latent)
        self.decoder = nn.LSTM(config.latent, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, config.n_outputs)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, latent]"""
        _, (h, _) = self.encoder(x)
        return self.to_latent(h[-1])

    def decode(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        """[B, latent] -> [B, T, D_out]"""
        out, _ = self.decoder(z.unsqueeze(1).expand(-1, steps, -1))
        return self.head(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[1])

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, T, D_out]: what the reconstruction is compared with."""
        return x if self.config.outputs is None else x[..., self.config.outputs]


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
