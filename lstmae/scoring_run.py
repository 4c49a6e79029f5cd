"""One run of `lstmae score` as operators run it: rows from a file or as they arrive
(--follow), going on from the state an earlier run left (--state) and leaving its own,
and the Prometheus file it keeps up to date (-o FILE.prom).

The order of writes is what makes a killed run safe: the rows are written first,
then the state, so a run that dies before its state is written is scored again in
full by the next run, never skipped.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator

import pandas as pd

from lstmae import prom
from lstmae import state as states
from lstmae.output import atomic_output
from lstmae.stream import point_values

SAVE_EVERY_S = 1.0  # --follow: the state and a .prom file are written at most this often


class ScoringRun:
    def __init__(self, detector, data: str, limit: float, cooldown: int, state_path: str | None,
                 reset_state: bool, follow: bool):
        self.detector, self.data, self.limit, self.follow = detector, data, limit, follow
        self.cooldown = cooldown
        self.source = "<stdin>" if data == "-" else data
        self.state_path, self.reset_state = state_path, reset_state
        self.state: states.ScoreState | None = None
        self._saved_at = time.monotonic()
        self.report = None
        self._lock = contextlib.ExitStack()
        self.stopping = False

    def __enter__(self) -> ScoringRun:
        """Take the state (its lock first: one run at a time) or, for --follow, a fresh one:
        a stream without an end goes on like a state, kept or not."""
        if self.state_path is not None:
            self._lock.enter_context(states.locked(self.state_path))
            self.state = states.load(self.state_path, self.detector, self.cooldown,
                                     self.reset_state)
        elif self.follow:
            self.state = states.ScoreState.fresh(self.detector, self.cooldown)
        if self.follow:
            self._lock.enter_context(_stop_on_signals(self))
        return self

    def __exit__(self, *exc) -> None:
        self._lock.close()

    def stop(self) -> None:
        """End a followed stream once the rows in hand are scored and written."""
        self.stopping = True

    def parts(self, batch_rows: int | None, level: str, report) -> Iterator[pd.DataFrame]:
        """The level's rows, batch by batch, each counted by `report` (render.ScoreReport)."""
        from lstmae.read import follow_frames, iter_frames

        self.report = report
        frames = (follow_frames(self.data, stop=lambda: self.stopping) if self.follow
                  else iter_frames(self.data, batch_rows))
        parts = self.detector.iter_score(
            frames, threshold=self.limit, source=self.source, levels={"window", "event", level},
            cooldown=self.cooldown, state=self.state, log_events=self.follow and level == "event")
        return (report.take(part) for part in parts)

    def saving(self, rows: Iterable[pd.DataFrame], prom_path: str | None = None
               ) -> Iterator[pd.DataFrame]:
        """The rows, passed on; while following, the state (and the .prom file) is written
        after rows are, at most every SAVE_EVERY_S."""
        for part in rows:
            yield part
            if self.follow and time.monotonic() - self._saved_at >= SAVE_EVERY_S:
                self._save(prom_path)
        if self.state is not None and self.state_path is not None:
            # Before the output file is renamed into place: a refused run changes nothing.
            states.check_ahead(self.state, self.state_path, self.source)

    def finish(self, prom_path: str | None = None) -> None:
        """After the rows are written: write the state (and the .prom file)."""
        self._save(prom_path)

    def _save(self, prom_path: str | None) -> None:
        if prom_path is not None:
            self.write_prom(prom_path)
        if self.state is not None and self.state_path is not None:
            states.save(self.state, self.state_path)
        self._saved_at = time.monotonic()

    def write_prom(self, path: str) -> None:
        text = prom.exposition(self.snapshot())
        if path in (None, "-"):
            sys.stdout.buffer.write(text)
            sys.stdout.flush()
            return
        with atomic_output(path) as tmp, open(tmp, "wb") as handle:
            handle.write(text)

    def snapshot(self) -> prom.Snapshot:
        det, report, state = self.detector, self.report, self.state
        assert report is not None
        snap = prom.Snapshot(model=prom.label(det.path_), threshold=self.limit,
                             columns=det.scored_,
                             windows=report.windows, anomalies=report.anomalies)
        if state is not None:
            snap.latest = state.latest[1] if state.latest is not None else None
            snap.new_events = state.opened
            snap.open_events = int(state.events.open is not None)
            if self.state_path is not None:
                snap.events_total = state.events.count
            snap.last_time = prom.unix_seconds(state.position.last_index, det.time_kind_)
        else:
            last = report.last_window
            snap.latest = None if last is None else point_values(last)
            snap.new_events = report.n_events
            snap.open_events = report.open_at_end
            snap.last_time = prom.unix_seconds(None if last is None else last["end"].iloc[0],
                                               det.time_kind_)
        return snap

    def alarming(self, report) -> bool:
        """--fail-on-anomaly: with a state, an event opened in this run (one page per
        incident); otherwise any anomalous window."""
        if self.state is not None:
            return self.state.opened > 0
        return report.anomalies > 0

    def state_note(self) -> str | None:
        """What the summary says of the state: rows skipped, events new, going on, closed."""
        state, report = self.state, self.report
        if state is None or report is None:
            return None
        at = state.position
        parts = []
        if self.state_path is not None:
            parts.append(f"{at.new_rows} new row(s)" + (
                f", {at.skipped} scored before and skipped" if at.skipped else ""))
            if at.kind == "rows":
                parts.append("no time column: every row given is taken as new")
        new = list(range(state.events_before, state.events.count))
        if new:
            parts.append("new event(s) " + ", ".join(map(str, new)))
        event = state.events.open
        if event is not None:  # not in the rows yet: an event is written when it closes
            row = state.events.row(event, "open")
            parts.append(f"event {row['event']} "
                         + ("opened" if row["event"] >= state.events_before else "goes on")
                         + f" (onset {row['onset']}, mostly {row['top_column']}, peak "
                         f"{row['peak_error']:.4g}, still open)")
        if report.closed:
            parts.append("closed " + ", ".join(map(str, report.closed)))
        return "; ".join(parts) if parts else None


@contextlib.contextmanager
def _stop_on_signals(run: ScoringRun):
    """--follow: Ctrl-C, SIGTERM or SIGHUP ends the stream cleanly, after the batch in hand
    is written and the state saved (a second one stops at once, as Ctrl-C does)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        if run.stopping:
            raise KeyboardInterrupt
        run.stop()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) != signal.SIG_IGN:  # nohup's stays ignored
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
