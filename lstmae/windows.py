"""Standardising and windowing a series.

Windows are never materialised as a whole: `window_view` is a strided view of
the [N, D] series, and only the rows of one mini-batch are gathered into a
contiguous [B, T, D] tensor at a time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from lstmae.errors import DataError, LstmaeWarning


@dataclass
class Scaler:
    """Per-column standardisation learnt from the training data and stored in the model."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str]) -> Scaler:
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        if constant.any():
            names = ", ".join(c for c, flag in zip(columns, constant, strict=True) if flag)
            warnings.warn(
                f"column(s) {names} are constant in the training data; any change in them "
                "will be scored relative to a unit scale",
                LstmaeWarning,
                stacklevel=2,
            )
            std = np.where(constant, 1.0, std)
        return cls(mean=mean, std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values.astype(np.float64) * self.std + self.mean


def window_starts(n_rows: int, window: int, stride: int) -> np.ndarray:
    """First row of each window: every `stride` rows, plus one ending on the last row.

    The extra final window means every row is covered by at least one window,
    whatever the stride, so every row can get a score and a reconstruction.
    """
    if n_rows < window:
        raise DataError(
            f"the data has {n_rows} row(s), fewer than the window of {window}; "
            "give more rows or a smaller --window"
        )
    starts = np.arange(0, n_rows - window + 1, stride, dtype=np.int64)
    if starts[-1] != n_rows - window:
        starts = np.append(starts, n_rows - window)
    return starts


def window_view(values: torch.Tensor, window: int) -> torch.Tensor:
    """All stride-1 windows of a [N, D] tensor as a [N-T+1, T, D] view (no copy)."""
    return values.unfold(0, window, 1).transpose(1, 2)


def iter_batches(view: torch.Tensor, starts: torch.Tensor, batch_size: int):
    """Contiguous [B, T, D] batches of the windows beginning at `starts`, in order."""
    for i in range(0, len(starts), batch_size):
        yield view[starts[i : i + batch_size]]


def average_over_windows(per_window: np.ndarray, starts: np.ndarray, n_rows: int) -> np.ndarray:
    """Per-row mean of per-window, per-step values [N_w, T, D] -> [N, D].

    Each row gets the average over every window that covers it.
    """
    n_windows, window, width = per_window.shape
    sums = np.zeros((n_rows, width), dtype=np.float64)
    counts = np.zeros(n_rows, dtype=np.int64)
    for step in range(window):  # starts are unique, so each add touches distinct rows
        sums[starts + step] += per_window[:, step, :]
        counts[starts + step] += 1
    return sums / counts[:, None]
