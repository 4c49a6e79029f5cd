"""The one batched forward pass of a trained model over windows of a series.

Training's validation loss, the calibration of the window error and threshold,
and scoring, encoding and reconstructing all run windows through the model
here, so they see exactly the same numbers for the same window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lstmae import threads
from lstmae.model import LSTMAutoencoder
from lstmae.windows import iter_batches

# Windows per forward pass when scoring. Not "as large as fits": oneDNN's LSTM keeps a
# 128-256 window batch in cache and ran 1.1-1.4x faster than at 1024 (bench/README.md).
SCORE_BATCH = 256
# Fewer windows than this go through the model padded to it (with copies of the last):
# LSTM kernels take another path for a batch of 1-3 windows, whose results differ in
# the last bits, so a window's error would depend on how many windows came with it, and
# `score --state` in short runs or --follow would not give one run's numbers.
MIN_BATCH = 16


@dataclass
class Batch:
    """One batch of windows and what the model made of them."""

    first: int  # position of the batch's first window in `starts`
    inputs: torch.Tensor  # [B, T, D] the windows, standardised
    target: torch.Tensor  # [B, T, D_out] their reconstructed columns (no context columns)
    latent: torch.Tensor  # [B, latent]
    decoded: torch.Tensor | None  # [B, T, D_out]; None with forward(decode=False)

    @property
    def reconstruction(self) -> torch.Tensor:
        """The windows as the model reconstructs them [B, T, D_out]."""
        if self.decoded is None:
            raise ValueError("this batch was not decoded: forward(..., decode=True)")
        return self.decoded


@torch.inference_mode()
def forward(
    model: LSTMAutoencoder,
    view: torch.Tensor,
    starts: torch.Tensor,
    batch_size: int = SCORE_BATCH,
    decode: bool = True,
) -> Iterator[Batch]:
    """The windows of `view` ([N - T + 1, T, D], lstmae.windows.window_view) that begin at
    `starts`, through the model in order, `batch_size` at a time. decode=False stops at
    the latent vector (encoding needs no more)."""
    for first, inputs in zip(range(0, len(starts), batch_size),
                             iter_batches(view, starts, batch_size), strict=True):
        n = len(inputs)
        padded = inputs if n >= MIN_BATCH else torch.cat(
            [inputs, inputs[-1:].expand(MIN_BATCH - n, -1, -1)])
        with threads.batch("forward", batch_size, n, inputs.device):
            latent = model.encode(padded)
            recon = model.decode(latent, inputs.shape[1])[:n] if decode else None
        yield Batch(first, inputs, model.target(inputs), latent[:n], recon)
