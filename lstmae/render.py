"""What people read: terminal tables and the summaries of fit, score and info.

Data for programs goes through lstmae.output; these go to a terminal (stdout when
the user asked for a table) or to stderr beside the data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.table import Table

from lstmae import threads
from lstmae.errors import name_list, printable
from lstmae.params import DEFAULT_WINDOW

if TYPE_CHECKING:
    from lstmae.train import BatchReport, EpochReport


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
    """Concatenate frames, skipping None and frames without columns; an empty frame when
    there are none."""
    frames = [f for f in frames if f is not None and len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def describe_threads(report: dict | None) -> str:
    """A model file's training["threads"] in words: 'threads auto (2 of 2; 1 on 4% of
    batches)', 'threads 1', with a note when other jobs kept the CPUs from it."""
    if not report:
        return ""  # lstmae before 0.2
    try:
        batches = {int(n): int(b) for n, b in report["batches"].items()}
        setting, most, share = report["setting"], int(report["most"]), report.get("cpu_share")
    except (KeyError, TypeError, ValueError, AttributeError):
        return "threads: (record unreadable)"  # a file edited by hand or damaged
    total = sum(batches.values())
    if total <= 0:
        return ""  # trained on a GPU
    main = max(batches, key=batches.__getitem__)
    others = "; ".join(f"{n} on {b / total:.0%} of batches" for n, b in batches.items()
                       if n != main)
    if setting == "auto":
        text = f"threads auto ({main} of {most}{'; ' + others if others else ''})"
    else:
        text = f"threads {printable(str(setting))}"
    if isinstance(share, (int, float)) and share < threads.STARVED_SHARE:
        text += f", busy machine: got {share:.0%} of the CPU time asked for"
    return text


def busy_note(policy: threads.ThreadPolicy, phase: str) -> str | None:
    """What to tell someone whose work runs slow because other jobs hold the CPUs."""
    share = policy.cpu_share()
    if share is None or share >= threads.STARVED_SHARE:
        return None
    count = policy.current(phase)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = (f"note: this machine is busy: lstmae got {share:.0%} of the CPU time its "
            f"{count} thread(s) asked for (load average {load:.1f} on "
            f"{threads.usable_cpus()} CPUs), so it runs about {1 / share:.1f}x slower than "
            "on a quiet machine. ")
    if policy.setting != threads.AUTO and policy.most > 1:
        return note + ("Threads wait for each other when cores are taken: --threads auto "
                       "(the default) measures and uses fewer when that is faster.")
    return note + ("lstmae already runs at the thread count it measured fastest; "
                   "fewer jobs at once, or nice on the others, would help.")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class FitProgress:
    """`lstmae fit`'s line on a terminal: what happens before the first epoch (reading,
    checking, calibrating), then the epoch of at most how many, the time left until
    early stopping would end it, windows/s and threads; and once, when other jobs slow
    the fit down, why and what helps."""

    def __init__(self, console: Console, source: str, epochs: int, patience: int):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        self.console = console
        self.epochs, self.patience = epochs, patience
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                            BarColumn(bar_width=12), TextColumn("{task.fields[after]}"),
                            console=console, transient=True,
                            # lstmae.process's stderr console writes to sys.stderr: a proxy
                            # there would write back into the console, for ever
                            redirect_stderr=False, redirect_stdout=False)
        self.task = self.bar.add_task(f"reading {source}", total=None, after="")
        self.last: EpochReport | None = None
        self.noted = False
        self.shown = ""  # the description last drawn

    def __enter__(self) -> FitProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def callbacks(self) -> dict:
        """Detector.fit's keyword arguments that feed this line."""
        return {"progress": self.epoch, "on_batch": self.batch, "on_stage": self.stage}

    def stage(self, text: str) -> None:
        self.bar.update(self.task, description=text, total=None, completed=0, after="")
        self._draw(text)

    def _draw(self, description: str) -> None:
        # The bar redraws itself 10 times a second; a stage or epoch that ends sooner
        # (small files) would never be seen, so each new one is drawn at once.
        if description != self.shown:
            self.shown = description
            self.bar.refresh()

    def batch(self, r: BatchReport) -> None:
        rate = r.done / r.seconds if r.seconds > 0 else 0.0
        left = None
        if self.last is not None and rate > 0:
            # the rest of this epoch, then the epochs early stopping would still run
            left = (r.windows - r.done) / rate + (self.last.last_epoch - r.epoch) * (
                self.last.seconds)
        self._show(r.epoch, r.windows, r.done, rate, left)

    def epoch(self, r: EpochReport) -> None:
        self.last = r
        rate = r.windows / r.seconds if r.seconds > 0 else 0.0
        self._show(r.epoch + 1, r.windows, 0, rate, (r.last_epoch - r.epoch) * r.seconds)
        policy = threads.active()
        if not self.noted and policy is not None:
            note = busy_note(policy, "train")
            if note is not None:
                self.noted = True
                self.console.print(note, markup=False, soft_wrap=True)

    def _show(self, epoch: int, windows: int, done: int, rate: float,
              left: float | None) -> None:
        # Most telling first: a narrow terminal cuts the end of the line.
        policy = threads.active()
        count = policy.current("train") if policy is not None else None
        after = []
        if left is not None and self.last is not None:
            stop = self.last.last_epoch
            after.append(f"~{_clock(left)} left" + (f", early stop at {stop}"
                                                    if stop < self.epochs else ""))
        if rate:
            after.append(f"{rate:,.0f} windows/s")
        if count:
            after.append(f"{count} thread{'s' if count != 1 else ''}")
        description = f"epoch {min(epoch, self.epochs)} of at most {self.epochs}"
        self.bar.update(self.task, description=description, total=windows, completed=done,
                        after=" · ".join(after))
        self._draw(description)


def fit_summary(detector, model: str) -> str:
    """One line on what fit did: rows, windows, epochs, threshold, time."""
    from lstmae.threshold import describe

    t = detector.training_
    processes = f" x {t['processes']} processes" if t["processes"] > 1 else ""
    auto = " (auto: dominant period)" if detector.params.window.window == "auto" else ""
    resample = detector.params.data.resample
    unit = f"steps of {resample}" if resample else "rows"
    if detector.window_shortened_:
        auto = f" ({DEFAULT_WINDOW} is more than a fifth of the {t['rows']} {unit})"
    return (
        f"fitted {model}: {t['rows']} {unit}, {t['train_windows']} training + "
        f"{t['val_windows']} held-out windows of {detector.window_} {unit}{auto}, columns "
        f"{', '.join(detector.scored_)}{_context_note(detector.context_)}; "
        f"{t['epochs_run']} epochs "
        f"(best {t['monitored']} loss {t['best_loss']:.4g} at epoch {t['best_epoch']})"
        + (f"; with a second model on windows of {detector.long_.window} {unit}"
           f"{_steps_note(detector.long_)} "
           f"({detector.long_.training['epochs_run']} epochs)" if detector.long_ else "")
        + "; "
        f"threshold {detector.threshold_:.4g} ({describe(detector.threshold_info_)}); "
        f"{t['seconds']:.1f} s on {t['device']} ({t['precision']}){processes}"
        + (f", {threads_text}" if (threads_text := describe_threads(t.get("threads"))) else "")
    )


class ScoreReport:
    """What score's summary shows, gathered as the scored parts stream past: counts,
    the first `top` events and, for a window table, the `top` largest errors."""

    def __init__(self, level: str, top: int, per_column: bool, table: bool):
        self.level, self.top, self.per_column = level, top, per_column
        self.keep_windows = table and level == "window"
        self.windows = self.anomalies = self.n_events = 0
        self.top_windows: pd.DataFrame | None = None
        self.last_window: pd.DataFrame | None = None  # the latest window row (for .prom)
        self.closed: list[int] = []  # ids of the events that closed
        self.open_at_end = 0  # events open at the end of the rows so far
        self._open: dict[int, pd.DataFrame] = {}  # their rows
        self._closed_rows = pd.DataFrame()  # the first `top` events that closed
        self.on_event: Callable[[str], None] | None = None  # told of each event as it closes

    def take(self, part: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Count a part (window, event and the level's rows); return the level's rows."""
        windows, events = part["window"], part["event"]
        self.windows += len(windows)
        self.anomalies += int(windows["anomaly"].sum())
        if len(windows):
            self.last_window = windows.iloc[[-1]].reset_index(drop=True)
        closed = events[events["status"] == "closed"]
        if self.on_event is not None:  # --follow: each event as it closes, at once
            for row in closed.itertuples():
                self.on_event(event_line(row))
        # An event may have a row as it opens (a --follow log, the data's end) and one as
        # it closes: it is one event, shown as it last stood.
        for event in closed["event"]:
            self._open.pop(int(event), None)
        opened = events[events["status"] == "open"]
        for i, event in enumerate(opened["event"]):
            self._open[int(event)] = opened.iloc[[i]]
        if len(self._closed_rows) < self.top:
            self._closed_rows = concat([self._closed_rows, closed]).head(self.top)
        self.closed += [int(e) for e in closed["event"]]
        self.open_at_end = len(self._open)
        self.n_events = len(self.closed) + self.open_at_end
        result = part[self.level]
        if not self.per_column:
            result = result.drop(columns=[c for c in result.columns if c.startswith("error_")])
        if self.keep_windows:
            self.top_windows = concat([self.top_windows, result]).nlargest(self.top, "error")
        return result

    def summary(self, limit: float, how: str, window: int, state: str | None = None) -> str:
        """One line; `state`: what score --state or --follow says of its events."""
        share = self.anomalies / max(self.windows, 1)
        text = (f"{self.windows} windows, {self.anomalies} anomalous ({share:.1%}) in "
                f"{self.n_events} event(s), at threshold {limit:.4g} ({how})")
        if state:
            text += f"; {state}"
        elif self.level == "point" and window > 1:
            text += f"; the first {window - 1} rows have no score (no full window yet)"
        return text

    def print_tables(self, summary: str, shown: pd.DataFrame | None) -> None:
        """The terminal's view: the summary, then events and the top windows, or the rows."""
        Console().print(summary)
        if self.level == "window":
            if self.n_events:
                print_table(self.event_rows(), "events (incidents)",
                            self.n_events)
            top = self.top_windows if self.top_windows is not None else pd.DataFrame()
            print_table(top, f"top {len(top)} windows by error", self.windows, "anomaly")
        elif shown is not None:
            print_table(shown, f"{self.level} scores", shown.attrs["rows"],
                        "anomaly" if "anomaly" in shown.columns else None)

    def event_rows(self) -> pd.DataFrame:
        """The first `top` events: those that closed, then those still open."""
        return concat([self._closed_rows, *self._open.values()]).head(self.top)

    def event_lines(self, limit: int = 10) -> list[str]:
        """The first events, one line each, for stderr beside piped data."""
        lines = [event_line(e) for e in self.event_rows().head(limit).itertuples()]
        if self.n_events > limit:
            lines.append(f"  … {self.n_events - limit} more events (--level event lists all)")
        return lines


def event_line(e) -> str:
    """One event (a row of score --level event) in words."""
    return (f"  event {e.event}: {e.start} .. {e.end}, onset {e.onset}, {e.windows} windows, "
            f"peak {e.peak_error:.4g}, mostly {e.top_column}"
            + (" (still open)" if e.status == "open" else ""))


def _context_note(context: list[str]) -> str:
    if not context:
        return ""
    shown = ", ".join(context[:5]) + (f" and {len(context) - 5} more" if len(context) > 5 else "")
    return f" (context, not scored: {shown})"


def _long_note(detector) -> str:
    """The second model (lstmae.detector.LongModel), for fit's line and info."""
    long = detector.long_
    if long is None:
        if detector.training_.get("long_window") == "interrupted":
            return "none: Ctrl-C stopped the fit before the second model finished an epoch"
        return "none (one model)"
    return (f"{long.window}{_steps_note(long)}, a second model scored with the "
            f"first (its threshold {long.threshold:.4g}; {long.training['epochs_run']} epochs)")


def _steps_note(long) -> str:
    """How the second model reads its window: as means of several rows (one each, in
    model files written before steps)."""
    return "" if long.step == 1 else f", read as {long.window // long.step} means of {long.step}"


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
        ("columns", ", ".join(detector.scored_)),
        *([("context", ", ".join(detector.context_) + " (read, not scored)")]
          if detector.context_ else []),
        *([("left out", name_list(detector.left_out_) + " (context that never changed in "
                        "training)")] if detector.left_out_ else []),
        *([("clock", "the time of day (read, not scored)")] if detector.clock_ else []),
        ("time column", time),
        ("window / stride", f"{meta['window']} / {meta['stride']}" + (
            f" steps of {detector.params.data.resample} (rows averaged)"
            if detector.params.data.resample else "")),
        ("long window", _long_note(detector)),
        ("architecture", f"LSTM autoencoder: {arch['n_features']} features, hidden "
                         f"{arch['hidden']}, latent {arch['latent']}, {arch['layers']} layer(s)"),
        ("loss / error", f"{meta['loss']} (training) / {error.kind} (window error" + peaks),
        ("threshold", f"{th['value']:.6g} ({describe(th)})"),
        ("training", f"{tr['rows']} rows ({tr['first_time']} .. {tr['last_time']}), "
                     f"{tr['epochs_run']} epochs, best loss {tr['best_loss']:.4g}, "
                     f"{tr['seconds']} s on {tr['device']}"
                     + (", stopped by Ctrl-C" if tr.get("interrupted") else "")
                     + (f", {threads_text}" if (threads_text := describe_threads(
                         tr.get("threads"))) else "")),
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
