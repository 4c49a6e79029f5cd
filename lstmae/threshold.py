"""Choosing the anomaly threshold from errors of windows known to be normal."""

from __future__ import annotations

import numpy as np

from lstmae.errors import OptionError


def quantile_threshold(errors: np.ndarray, quantile: float) -> float:
    """The `quantile` of held-out normal errors: about (1 - q) of normal windows exceed it."""
    if not 0.0 < quantile < 1.0:
        raise OptionError(f"--threshold-quantile must be between 0 and 1 (got {quantile})")
    if len(errors) == 0:
        raise ValueError("no errors to calibrate a threshold from")
    return float(np.quantile(errors, quantile))
