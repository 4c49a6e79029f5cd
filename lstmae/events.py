"""Incidents: anomalous windows grouped into events, one alarm at each event's onset.

An operator is paged once per incident, not once per anomalous window. Anomalous
windows whose ends are at most `cooldown` rows apart belong to one event (the
default, one window, joins every pair of windows that overlap or touch, so events
never overlap in time); an event closes once `cooldown` rows pass without another
anomalous window. A stretch of anomalous windows becomes an incident only when one
of them is news (`Surprise`: its error is unusual against the errors just before
it), so a stretch of noise whose errors stay high does not page again and again.
The incident's onset is the end of that window: the moment it could be known, and
the row that gets the alarm; its start is the stretch's first anomalous window.

`Events` is fed the window rows of each piece in turn and keeps the open event (and
a stretch not yet news) between pieces and, with `score --state`, between runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lstmae.stream import Piece

# A stretch anomalous for this many window lengths is an incident, news or not.
PERSIST = 16
COLUMNS = ["event", "onset", "start", "end", "windows", "peak_error", "top_column", "status"]


@dataclass
class Fed:
    """What one piece's windows did to the events."""

    opened: list[dict] = field(default_factory=list)  # rows of events that opened, at onset
    closed: list[dict] = field(default_factory=list)  # events that closed
    onsets: list[int] = field(default_factory=list)  # global row numbers of the alarms


class Events:
    """The events of one stream of windows, in order; `open` is the one still going.

    An event is a dict: id, onset/start/end (one-element slices of the series' time
    labels, so that they print as the data wrote them), onset_row and last_end (global
    row numbers), windows, peak_error and totals (summed per-column errors).
    """

    def __init__(self, columns: list[str], cooldown: int, persist: int | None = None):
        self.columns, self.cooldown, self.persist = columns, cooldown, persist
        self.count = 0  # events opened so far: the next event's id
        self.open: dict | None = None  # the incident going on
        # Anomalous windows that were no news (yet): they become the incident, start and
        # all, if news comes before the cooldown passes.
        self.pending: dict | None = None

    def feed(self, piece: Piece, windows: pd.DataFrame, opens: np.ndarray | None = None,
             firsts: np.ndarray | None = None) -> Fed:
        """windows: the piece's window rows (error, anomaly, error_<col>), in order.
        opens: which anomalous windows may open an event (default: all of them); the
        others only extend an event already open. firsts: each window's first row in the
        piece, where its error saw more rows than the window (lstmae.detector.LongModel)."""
        fed = Fed()
        labels = piece.series.labels
        ends = piece.offset + piece.starts + piece.window - 1  # global end rows
        flagged = np.flatnonzero(windows["anomaly"].to_numpy())
        if len(flagged):
            # The flagged windows only, in order: their errors, their first and last rows in
            # the piece's labels (local) and their last rows in the whole stream (global).
            errors = windows["error"].to_numpy()[flagged]
            by_column = windows[[f"error_{c}" for c in self.columns]].to_numpy()[flagged]
            first_local = (piece.starts if firsts is None else firsts)[flagged]
            last_local = piece.starts[flagged] + piece.window - 1
            last_global = ends[flagged]
            opening = np.ones(len(flagged), bool) if opens is None else opens[flagged]

            def extend(stretch: dict, lo: int, hi: int) -> None:  # flagged windows lo..hi
                stretch["end"] = labels[last_local[hi]:last_local[hi] + 1]
                stretch["last_end"] = int(last_global[hi])
                stretch["windows"] += hi - lo + 1
                stretch["peak_error"] = max(stretch["peak_error"], float(errors[lo:hi + 1].max()))
                stretch["totals"] = stretch["totals"] + by_column[lo:hi + 1].sum(axis=0)

            # Runs of flagged windows at most `cooldown` rows apart: one stretch each.
            firsts = np.flatnonzero(np.r_[True, np.diff(last_global) > self.cooldown])
            lasts = np.r_[firsts[1:] - 1, len(flagged) - 1]
            for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
                current = self.open or self.pending
                if current is not None and last_global[first] - current["last_end"] > (
                        self.cooldown):
                    if self.open is not None:
                        fed.closed.append(self._close())
                    self.pending = None
                if self.open is None and self.pending is None:
                    self.pending = self._stretch(
                        labels[first_local[first]:first_local[first] + 1])
                stretch = self.open or self.pending
                assert stretch is not None
                news = np.flatnonzero(opening[first:last + 1])
                # A stretch that stays anomalous `persist` windows is an incident, news or
                # not: a slow drift, or a threshold below all errors, still pages once.
                due = (len(opening) if self.persist is None
                       else max(0, self.persist - stretch["windows"] - 1))
                if self.open is not None or (not len(news) and first + due > last):
                    extend(stretch, first, last)
                    continue
                k = first + min(int(news[0]) if len(news) else due, due)
                self.pending = None
                extend(stretch, first, k)
                stretch.update(id=self.count, onset=labels[last_local[k]:last_local[k] + 1],
                               onset_row=int(last_global[k]))
                self.count += 1
                self.open = stretch
                fed.onsets.append(int(last_global[k]))
                fed.opened.append(self.row(stretch, "open"))  # as it stands at its onset
                if k < last:
                    extend(stretch, k + 1, last)
        if len(ends):  # cooldown rows have passed with no anomaly: the stretch is over
            if self.open is not None and ends[-1] - self.open["last_end"] > self.cooldown:
                fed.closed.append(self._close())
            if self.pending is not None and ends[-1] - self.pending["last_end"] > self.cooldown:
                self.pending = None
        return fed

    def _stretch(self, start) -> dict:
        """A stretch of anomalous windows, not (yet) an incident: no id, no onset."""
        return {"id": None, "onset": None, "onset_row": None, "start": start, "windows": 0,
                "peak_error": -np.inf, "totals": np.zeros(len(self.columns))}

    def _close(self) -> dict:
        event, self.open = self.open, None
        assert event is not None
        return self.row(event, "closed")

    def row(self, event: dict, status: str) -> dict:
        """An event as an output row."""
        return {
            "event": event["id"],
            "onset": event["onset"][0],
            "start": event["start"][0],
            "end": event["end"][0],
            "windows": event["windows"],
            "peak_error": event["peak_error"],
            "top_column": self.columns[int(np.argmax(event["totals"]))],
            "status": status,
        }


class Surprise:
    """How unusual each window's error is against the errors just before it: the normal
    probability of the mean of the last SHORT errors under the mean and spread of the
    LONG errors before them (Numenta's anomaly likelihood, on window errors).

    An incident opens only where the error is above the threshold and news, so a noisy
    stretch whose errors stay high pages once, not once per cooldown. The history starts
    as the held-out errors the model stores (normal data), so the first windows of a
    stream are judged as well as later ones; with score --state it goes on across runs.
    Each window's figure is computed from a slice of the same length of the same
    errors, so it does not depend on how the windows came in batches.
    """

    # Chosen on nab-dev (bench/README.md, alarms): of the alarms that keep to the
    # threshold, the best NAB score at the default cooldown.
    SHORT, LONG = 10, 1000  # windows
    LEVEL = 0.99  # above this, news
    BLOCK = 1024  # windows computed at a time

    def __init__(self, history: np.ndarray):
        self.history = np.asarray(history, dtype=np.float64)[-(self.LONG + self.SHORT):]

    def feed(self, errors: np.ndarray) -> np.ndarray:
        """The likelihood of each new window's error (0..1), in order."""
        n = len(errors)
        seen = np.concatenate([self.history, np.asarray(errors, dtype=np.float64)])
        self.history = seen[-(self.LONG + self.SHORT):]
        # Window i of `errors` is at p = len(seen) - n + i: its recent errors are
        # seen[p - SHORT + 1 : p + 1], its history the up to LONG errors before them.
        padded = np.concatenate([np.full(self.LONG + self.SHORT, np.nan), seen])
        ends = len(padded) - n + np.arange(n)
        likely = np.empty(n)
        for block in range(0, n, self.BLOCK):  # bounded memory: BLOCK x LONG at a time
            at = ends[block:block + self.BLOCK]
            likely[block:block + self.BLOCK] = self._likelihood(padded, at)
        return likely

    def _likelihood(self, padded: np.ndarray, at: np.ndarray) -> np.ndarray:
        """at: consecutive positions in `padded` (slices of its sliding views, no copies)."""
        from scipy.special import ndtr

        view = np.lib.stride_tricks.sliding_window_view
        first, n = int(at[0]), len(at)
        recent = view(padded, self.SHORT)[first - self.SHORT + 1:][:n].mean(axis=1)
        past = view(padded, self.LONG)[first - self.SHORT - self.LONG + 1:][:n]
        # NaN pads only the start: when a block's first row has a full history, all do.
        count = (np.sum(~np.isnan(past), axis=1) if np.isnan(past[0, 0])
                 else np.full(n, self.LONG))
        full = count == self.LONG  # a full history (all but a stream's first windows)
        mean, std = np.empty(n), np.empty(n)
        with warnings.catch_warnings():  # no history yet (all NaN), errors that overflowed
            warnings.simplefilter("ignore", RuntimeWarning)
            # Rows copied out contiguous, so that each row's sums run in one order
            # whatever the block it is in (the bits must not depend on the batches).
            rows = np.ascontiguousarray(past[full])
            mean[full], std[full] = rows.mean(axis=1), rows.std(axis=1, ddof=1)
            rows = np.ascontiguousarray(past[~full])
            mean[~full], std[~full] = np.nanmean(rows, axis=1), np.nanstd(rows, axis=1, ddof=1)
            z = (recent - mean) / np.maximum(std, 1e-12)
        z[np.isinf(recent)] = np.inf  # an error that overflowed is news
        z[(count < self.SHORT) | np.isnan(z)] = 0.0  # too little history to tell: no news
        return ndtr(z)

    def news(self, errors: np.ndarray) -> np.ndarray:
        return self.feed(errors) > self.LEVEL


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)
