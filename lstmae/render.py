"""What people read: terminal tables and the summaries of fit, score and info.

Data for programs goes through lstmae.output; these go to a terminal (stdout when
the user asked for a table) or to stderr beside the data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from lstmae.errors import printable


def print_table(frame: pd.DataFrame, title: str, total: int, highlight: str | None = None,
                console: Console | None = None) -> None:
    """Print the rows of `frame` (some of `total` rows) as a rich table."""
    console = console or Console()
    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), justify="left" if col in ("start", "end") else "right")
    for _, row in frame.iterrows():
        style = "bold red" if highlight and bool(row[highlight]) else None
        table.add_row(*(cell(v) for v in row), style=style)
    console.print(table)
    if total > len(frame):
        console.print(f"… {total - len(frame)} more rows; use --top N or -o FILE for all")


def cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return printable(value)


def concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    """Concatenate frames, skipping None; an empty frame when there are none."""
    frames = [f for f in frames if f is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fit_summary(detector, model: str) -> str:
    """One line on what fit did: rows, windows, epochs, threshold, time."""
    from lstmae.threshold import describe

    t = detector.training_
    processes = f" x {t['processes']} processes" if t["processes"] > 1 else ""
    auto = " (auto: dominant period)" if detector.params.window.window == "auto" else ""
    return (
        f"fitted {model}: {t['rows']} rows, {t['train_windows']} training + "
        f"{t['val_windows']} held-out windows of {detector.window_} rows{auto}, columns "
        f"{', '.join(detector.columns_)}; {t['epochs_run']} epochs "
        f"(best {t['monitored']} loss {t['best_loss']:.4g} at epoch {t['best_epoch']}); "
        f"threshold {detector.threshold_:.4g} ({describe(detector.threshold_info_)}); "
        f"{t['seconds']:.1f} s on {t['device']} ({t['precision']}){processes}"
    )


class ScoreReport:
    """What score's summary shows, gathered as the scored parts stream past: counts,
    the first `top` events and, for a window table, the `top` largest errors."""

    def __init__(self, level: str, top: int, per_column: bool, table: bool):
        self.level, self.top, self.per_column = level, top, per_column
        self.keep_windows = table and level == "window"
        self.windows = self.anomalies = self.n_events = 0
        self.events: list[pd.DataFrame] = []
        self.top_windows: pd.DataFrame | None = None

    def take(self, part: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Count a part (window, event and the level's rows); return the level's rows."""
        self.windows += len(part["window"])
        self.anomalies += int(part["window"]["anomaly"].sum())
        if self.n_events < self.top:
            self.events.append(part["event"].head(self.top - self.n_events))
        self.n_events += len(part["event"])
        result = part[self.level]
        if not self.per_column:
            result = result.drop(columns=[c for c in result.columns if c.startswith("error_")])
        if self.keep_windows:
            self.top_windows = concat([self.top_windows, result]).nlargest(self.top, "error")
        return result

    def summary(self, limit: float, how: str, window: int) -> str:
        share = self.anomalies / max(self.windows, 1)
        text = (f"{self.windows} windows, {self.anomalies} anomalous ({share:.1%}) in "
                f"{self.n_events} event(s), at threshold {limit:.4g} ({how})")
        if self.level == "point" and window > 1:
            text += f"; the first {window - 1} rows have no score (no full window yet)"
        return text

    def print_tables(self, summary: str, shown: pd.DataFrame | None) -> None:
        """The terminal's view: the summary, then events and the top windows, or the rows."""
        Console().print(summary)
        if self.level == "window":
            if self.n_events:
                print_table(concat(self.events), "events (consecutive anomalous windows)",
                            self.n_events)
            top = self.top_windows if self.top_windows is not None else pd.DataFrame()
            print_table(top, f"top {len(top)} windows by error", self.windows, "anomaly")
        elif shown is not None:
            print_table(shown, f"{self.level} scores", shown.attrs["rows"],
                        "anomaly" if "anomaly" in shown.columns else None)

    def event_lines(self, limit: int = 10) -> list[str]:
        """The first events, one line each, for stderr beside piped data."""
        lines = [f"  event {e.event}: {e.start} .. {e.end}, {e.windows} windows, peak "
                 f"{e.peak_error:.4g}, mostly {e.top_column}"
                 for e in concat(self.events).head(limit).itertuples()]
        if self.n_events > limit:
            lines.append(f"  … {self.n_events - limit} more events (--level event lists all)")
        return lines


def info_table(model: str, meta: dict, detector) -> Table:
    """What `lstmae info` shows of a model file."""
    from lstmae.stream import describe_interval
    from lstmae.threshold import describe

    th, tr, arch = meta["threshold"], meta["training"], meta["model"]
    table = Table(show_header=False, title=str(Path(model)), title_justify="left")
    time = meta["time_col"] or "(row numbers)"
    if meta.get("interval"):
        time += f", a row every {describe_interval(meta['interval'], detector.time_kind_)}"
    if meta.get("time_format"):
        time += f", read as {meta['time_format']}"
    error = detector.error_
    peaks = f", peaks x {error.peak_scale:.4g})" if error.peak_scale is not None else ")"
    rows = [
        ("columns", ", ".join(meta["columns"])),
        ("time column", time),
        ("window / stride", f"{meta['window']} / {meta['stride']}"),
        ("architecture", f"LSTM autoencoder: {arch['n_features']} features, hidden "
                         f"{arch['hidden']}, latent {arch['latent']}, {arch['layers']} layer(s)"),
        ("loss / error", f"{meta['loss']} (training) / {error.kind} (window error" + peaks),
        ("threshold", f"{th['value']:.6g} ({describe(th)})"),
        ("training", f"{tr['rows']} rows ({tr['first_time']} .. {tr['last_time']}), "
                     f"{tr['epochs_run']} epochs, best loss {tr['best_loss']:.4g}, "
                     f"{tr['seconds']} s on {tr['device']}"),
        ("created", f"{meta['created']} by lstmae {meta['lstmae_version']}, "
                    f"torch {meta['torch_version']}"),
    ]
    for key, value in rows:
        table.add_row(key, printable(value))
    return table


def metrics_table(report: dict) -> Table:
    """evaluate's metrics, one row each."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
