"""The window error: how far a window's reconstruction is from the window.

Per column, one of "mse" (mean squared difference over the window's rows), "mae"
(mean absolute difference) or "mae+peak" (the larger of mae and a fitted scale
times the largest single difference); a window's error is its worst column's.
`WindowError` holds the kind and, for "mae+peak", the peak scale fitted on normal
windows: fit it on held-out windows, apply it to a batch, store it in the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from lstmae.model import check_same_shape
from lstmae.params import ALIASES, ERRORS, LOSSES

# The quantile of held-out window errors that puts peak errors on the scale of mean ones.
PEAK_SCALE_QUANTILE = 0.99


class WindowError:
    """A window error of one kind (lstmae.params.ERRORS), ready to apply."""

    def __init__(self, kind: str, peak_scale: float | None = None):
        if kind not in ERRORS:
            raise ValueError(f"unknown window error {kind!r}; one of {', '.join(ERRORS)}")
        if (kind == "mae+peak") != (peak_scale is not None):
            raise ValueError("peak_scale does not match the error kind")
        self.kind = kind
        self.peak_scale = None if peak_scale is None else float(peak_scale)

    @classmethod
    def fit(
        cls, kind: str, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[WindowError, np.ndarray]:
        """The error fitted on normal windows, and those windows' errors [N_w].

        batches: (reconstruction, window) pairs of the normal windows, as
        lstmae.inference.forward gives them.
        """
        if kind != "mae+peak":
            by_column = [column_errors(recon, inputs, kind) for recon, inputs in batches]
            return cls(kind), window_error(_numpy(by_column))
        means, peaks = [], []
        for recon, inputs in batches:
            check_same_shape(recon, inputs)
            size = (recon.float() - inputs.float()).abs()
            means.append(size.mean(dim=1))
            peaks.append(size.amax(dim=1))
        mean, peak = _numpy(means), _numpy(peaks)
        # One factor for every column, so that a window's error stays its worst column's.
        scale = fit_peak_scale(window_error(mean), window_error(peak))
        combined = mae_or_peak(torch.from_numpy(mean).float(), torch.from_numpy(peak).float(),
                               scale)
        return cls(kind, scale), window_error(combined.double().numpy())

    def columns(self, reconstruction: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """One error per window and column [B, D], in fp32."""
        return column_errors(reconstruction, windows, self.kind, self.peak_scale)

    def to_meta(self) -> dict:
        return {"error": self.kind, "peak_scale": self.peak_scale}


def _numpy(parts: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(parts).double().cpu().numpy()


def window_error(column_errors: np.ndarray) -> np.ndarray:
    """A window's error [N, D] -> [N]: the error of its worst-reconstructed column.

    The maximum, not the mean: an anomaly in one channel of 25 must not be
    diluted 25 times by the channels that behave (on SMAP telemetry this took
    mean VUS-PR from 0.244 to 0.259; on one column both are the same).
    """
    return column_errors.max(axis=1)


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss over every value of the batch, in fp32 whatever precision the forward ran in."""
    return column_errors(prediction, target, loss).mean()


def column_errors(
    prediction: torch.Tensor, target: torch.Tensor, kind: str, peak_scale: float | None = None
) -> torch.Tensor:
    """One error per window and feature [B, D], from the window's T steps.

    kind "mse": the mean squared difference; "mae": the mean absolute difference
    (as a loss or as an error); "peak": the largest absolute difference;
    "mae+peak": the larger of the mean absolute difference and peak_scale times
    the largest one.
    """
    kind = ALIASES["loss"].get(kind, kind)
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
    if kind == "mae+peak" and peak_scale is not None:
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
