"""A picture of a scored series: each channel with its reconstruction, the error
curve with the threshold, anomalous stretches shaded. Needs matplotlib
(`pip install lstmae[plot]`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmae.errors import LstmaeError
from lstmae.metrics import runs

MAX_CHANNELS = 25


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise LstmaeError(
            "lstmae plot needs matplotlib; install it with: pip install 'lstmae[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only: no display needed, works from cron
    import matplotlib.pyplot as plt

    return plt


def plot_report(
    reconstruction: pd.DataFrame,
    points: pd.DataFrame,
    columns: list[str],
    time_col: str | None,
    threshold: float,
    path: str,
    image_format: str,
    title: str,
) -> list[str]:
    """Write the report image (png, svg or pdf) to `path`; return the channels shown."""
    plt = _pyplot()
    shown = columns[:MAX_CHANNELS]
    x = reconstruction[time_col] if time_col else np.arange(len(reconstruction))
    if x.dtype == object:  # times whose UTC offset changes (daylight-saving): one axis in UTC
        x = pd.to_datetime(x, utc=True)
    # Fewer pixels per channel as channels grow, but never unreadably thin.
    channel_height = 1.6 if len(shown) <= 6 else max(0.7, 9.0 / len(shown))
    fig, axes = plt.subplots(
        len(shown) + 1, 1, sharex=True, squeeze=False,
        figsize=(12, 1.2 + channel_height * len(shown) + 2.2),
        gridspec_kw={"height_ratios": [channel_height] * len(shown) + [2.2]},
    )
    axes = axes[:, 0]
    small = len(shown) > 8
    for ax, col in zip(axes, shown, strict=False):
        ax.plot(x, reconstruction[col], lw=0.8, color="#1f77b4", label="data")
        ax.plot(x, reconstruction[f"{col}_recon"], lw=0.8, color="#ff7f0e", label="reconstruction")
        ax.set_ylabel(col, rotation=0, ha="right", va="center", fontsize=7 if small else 9)
        ax.tick_params(labelsize=6 if small else 8)
    axes[0].legend(loc="upper right", fontsize=7, ncol=2, frameon=False)
    err_ax = axes[-1]
    err_ax.plot(x, points["score"], lw=0.8, color="black", label="window error (causal)")
    err_ax.axhline(threshold, color="red", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    scores = points["score"].to_numpy()
    if np.nanmax(scores) > 20 * max(threshold, 1e-12):
        err_ax.set_yscale("log")  # one huge spike would flatten everything else
    err_ax.set_ylabel("error", rotation=0, ha="right", va="center")
    err_ax.legend(loc="upper right", fontsize=7, frameon=False)
    # Shade the rows whose causal score is anomalous: from the first row at which
    # an anomaly is in view to the last, not the whole windows around it.
    x_values = np.asarray(x)
    for first, last in zip(*runs(points["anomaly"].to_numpy()), strict=True):
        for ax in axes:
            ax.axvspan(x_values[first], x_values[last], color="red", alpha=0.15, lw=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format=image_format)
    plt.close(fig)
    return shown
