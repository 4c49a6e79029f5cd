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

from lstmae.errors import DataError, LstmaeWarning, arg
from lstmae.params import MAX_ERROR

# Standardised values beyond this are capped: still an enormous error, but a finite one.
SCALED_LIMIT = MAX_ERROR


@dataclass
class Scaler:
    """Per-column standardisation learnt from the training data and stored in the model."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str],
            as_is: np.ndarray | None = None) -> Scaler:
        """as_is: [D] bools, columns kept as they are (0/1 context flags: standardised, a
        flag set in 1 training row of 2,000 would read 45 when set, and saturate the
        encoder)."""
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        if as_is is not None:
            mean, std = np.where(as_is, 0.0, mean), np.where(as_is, 1.0, std)
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
            # The float64 mean of a constant 1e30 is off by its rounding error (~1e14),
            # which a unit scale would turn into a huge error on every window and a
            # threshold that hides real anomalies: centre such a column on its value.
            mean = np.where(constant, values[0], mean)
        return cls(mean=mean, std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Standardised values in float32 for the model, computed in float64 and capped at
        +-SCALED_LIMIT: a value far outside the training range (or a tiny training std)
        would otherwise overflow float32 to inf and the model's error to NaN."""
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
        return np.clip(scaled, -SCALED_LIMIT, SCALED_LIMIT).astype(np.float32)

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
            f"give more rows or a smaller {arg('window')}"
        )
    starts = np.arange(0, n_rows - window + 1, stride, dtype=np.int64)
    if starts[-1] != n_rows - window:
        starts = np.append(starts, n_rows - window)
    return starts


def window_view(values: torch.Tensor, window: int, step: int = 1) -> torch.Tensor:
    """All stride-1 windows of `window` rows of a [N, D] tensor, as a [N-T+1, T, D] view
    (no copy). step > 1 (a divisor of `window`): each window as its window // step steps,
    a step the mean of `step` consecutive rows, [N-T+1, T // step, D] (a view of the
    [N - step + 1, D] means, computed once)."""
    if step == 1:
        return values.unfold(0, window, 1).transpose(1, 2)
    # Each mean from its own rows, not a difference of running sums: one huge value
    # would ruin every later difference, and a NaN (anomalous) would spread past its window.
    means = values.unfold(0, step, 1).mean(dim=2)  # [N - step + 1, D]: rows j .. j+step-1
    return means.unfold(0, window - step + 1, 1)[:, :, ::step].transpose(1, 2)


def iter_batches(view: torch.Tensor, starts: torch.Tensor, batch_size: int):
    """Contiguous [B, T, D] batches of the windows beginning at `starts`, in order."""
    for i in range(0, len(starts), batch_size):
        yield view[starts[i : i + batch_size]]


def accumulate_windows(
    per_window: np.ndarray, starts: np.ndarray, sums: np.ndarray, counts: np.ndarray
) -> None:
    """Add per-window, per-step values [N_w, T, D] to per-row sums [N, D] and counts [N]."""
    for step in range(per_window.shape[1]):  # starts are unique: each add hits distinct rows
        sums[starts + step] += per_window[:, step, :]
        counts[starts + step] += 1


MIN_PEAK_RISE = 0.1  # of the autocorrelation, from the lowest point before a peak


def dominant_period(values: np.ndarray, low: int = 4, high: int = 4096) -> int | None:
    """The period of the series: a lag in [low, high] where the autocorrelation peaks.

    Only lags up to a third of the series count, so that a period is seen at
    least three times. None when no lag is a local maximum with clearly
    positive autocorrelation (noise, trends): there is no period to match.
    """
    n_rows = len(values)
    high = min(high, n_rows // 3)
    if high <= low:
        return None
    centred = values - values.mean(axis=0)
    size = 1 << int(np.ceil(np.log2(2 * n_rows)))  # zero padding: no circular wrap-around
    spectrum = np.fft.rfft(centred, n=size, axis=0)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[: high + 2]
    variance = acf[0]
    usable = variance > 0
    if not usable.any():
        return None
    acf = (acf[:, usable] / variance[usable]).mean(axis=1)
    lags = np.arange(low, high + 1)
    # A period's peak rises out of a dip before it: on a smooth series (a daily cycle
    # sampled every minute) noise makes tiny bumps where the correlation is still near 1.
    risen = acf[lags] - np.minimum.accumulate(acf[lags])
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] > 0.1)
                 & (risen >= MIN_PEAK_RISE)]
    if peaks.size == 0:
        return None
    # The shortest strong period: a daily cycle rather than the week it repeats in.
    strong = peaks[acf[peaks] >= 0.8 * acf[peaks].max()]
    return int(strong[0])


DAY_US = 86_400 * 10**6
# Training data shorter than this gets no clock: every hour must have been seen.
CLOCK_MIN_SPAN_US = 2 * DAY_US


def _micros(index: np.ndarray) -> np.ndarray:
    return np.asarray(index).astype("datetime64[us]").astype(np.int64)


def spans_clock(index: np.ndarray) -> bool:
    """Whether [N] datetime64 times cover CLOCK_MIN_SPAN_US, enough to learn the clock."""
    micros = _micros(index)
    return len(micros) > 0 and int(micros.max() - micros.min()) >= CLOCK_MIN_SPAN_US


def clock(index: np.ndarray) -> np.ndarray:
    """[N] datetime64 -> [N, 2] float32: the time of day as a point on a circle (sin, cos),
    so 23:55 sits next to 00:00. Read from the index: the clock as written for naive
    times, UTC for times written with an offset (a zone's DST shift moves it an hour)."""
    micros = _micros(index)
    angle = 2 * np.pi * (micros % DAY_US) / DAY_US
    return np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)
