"""Incidents: anomalous windows grouped into events, one alarm at each event's onset.

An operator is paged once per incident, not once per anomalous window. Anomalous
windows whose ends are at most `cooldown` rows apart belong to one event (the
default, one window, joins every pair of windows that overlap or touch, so events
never overlap in time); an event closes once `cooldown` rows pass without another
anomalous window. Its onset is the end of its first anomalous window: the moment
it could be known, and the row that gets the alarm.

`Events` is fed the window rows of each piece in turn and keeps the open event
between pieces and, with `score --state`, between runs (`to_state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lstmae.stream import Piece

COLUMNS = ["event", "onset", "start", "end", "windows", "peak_error", "top_column", "status"]


@dataclass
class Fed:
    """What one piece's windows did to the events."""

    opened: list[dict] = field(default_factory=list)  # events that opened (as they stand)
    closed: list[dict] = field(default_factory=list)  # events that closed
    onsets: list[int] = field(default_factory=list)  # global row numbers of the alarms


class Events:
    """The events of one stream of windows, in order; `open` is the one still going.

    An event is a dict: id, onset/start/end (one-element slices of the series' time
    labels, so that they print as the data wrote them), onset_row and last_end (global
    row numbers), windows, peak_error and totals (summed per-column errors).
    """

    def __init__(self, columns: list[str], cooldown: int):
        self.columns, self.cooldown = columns, cooldown
        self.count = 0  # events opened so far: the next event's id
        self.open: dict | None = None

    def feed(self, piece: Piece, windows: pd.DataFrame) -> Fed:
        """windows: the piece's window rows (error, anomaly, error_<col>), in order."""
        fed = Fed()
        labels = piece.series.labels
        ends = piece.offset + piece.starts + piece.window - 1  # global end rows
        flagged = np.flatnonzero(windows["anomaly"].to_numpy())
        if len(flagged):
            errors = windows["error"].to_numpy()[flagged]
            by_column = windows[[f"error_{c}" for c in self.columns]].to_numpy()[flagged]
            starts_at = piece.starts[flagged]
            ends_at = starts_at + piece.window - 1
            at = ends[flagged]
            # Runs of flagged windows at most `cooldown` rows apart: one event each.
            firsts = np.flatnonzero(np.r_[True, np.diff(at) > self.cooldown])
            lasts = np.r_[firsts[1:] - 1, len(at) - 1]
            for first, last in zip(firsts, lasts, strict=True):
                if self.open is not None and at[first] - self.open["last_end"] > self.cooldown:
                    fed.closed.append(self._close())
                if self.open is None:
                    self.open = self._new(labels, starts_at[first], ends_at[first], at[first])
                    fed.onsets.append(int(at[first]))
                    fed.opened.append(self.open)
                event = self.open
                event["end"] = labels[ends_at[last]:ends_at[last] + 1]
                event["last_end"] = int(at[last])
                event["windows"] += int(last - first + 1)
                event["peak_error"] = max(event["peak_error"], float(errors[first:last + 1].max()))
                event["totals"] = event["totals"] + by_column[first:last + 1].sum(axis=0)
        if self.open is not None and len(ends) and ends[-1] - self.open["last_end"] > self.cooldown:
            fed.closed.append(self._close())  # cooldown rows have passed with no anomaly
        fed.opened = [self.row(event, "open") for event in fed.opened]
        return fed

    def _new(self, labels, start_at: int, end_at: int, end_row: int) -> dict:
        event = {"id": self.count, "onset": labels[end_at:end_at + 1],
                 "start": labels[start_at:start_at + 1], "onset_row": int(end_row),
                 "windows": 0, "peak_error": -np.inf, "totals": np.zeros(len(self.columns))}
        self.count += 1
        return event

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


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)
