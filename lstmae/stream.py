"""Walking a long series piece by piece, as if it were one frame.

Scoring, encoding and reconstructing read the data in batches of rows and
write their output as they go, so memory stays bounded whatever the file size.
Each piece is the previous piece's last `window - 1` rows followed by the new
rows; the windows of a piece are the ones that END in its new rows, numbered
and placed exactly as window_starts() would place them on the whole series
(every `stride` rows, plus one ending on the last row). An in-memory frame is
simply a stream of one piece, so both paths give identical output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstmae.errors import DataError
from lstmae.io import Series, to_series
from lstmae.windows import anomalous_runs


@dataclass
class Piece:
    series: Series  # carried rows + new rows; index holds timestamps or global row numbers
    n_carried: int  # leading rows carried over from the previous piece
    offset: int  # global row number of series row 0
    starts: np.ndarray  # local first rows of the windows that end in the new rows
    first_window: int  # global number of the first of those windows
    window: int
    last: bool  # no more rows follow

    @property
    def n_final(self) -> int:
        """Rows at the front that no later window can cover (all of them in the last piece)."""
        if self.last:
            return len(self.series.values)
        return max(0, len(self.series.values) - (self.window - 1))


def pieces(
    frames: Iterable[pd.DataFrame],
    columns: list[str],
    time_col: str | None,
    window: int,
    stride: int,
    fill: str | None,
    source: str,
    sort: bool,
) -> Iterator[Piece]:
    """Validate each frame and yield the pieces to score, in order.

    sort=True allows one frame to be out of time order (it is sorted, with a
    warning); across frames rows must already be in order: batches cannot be
    sorted without reading the whole file.
    """
    frames = (frame for frame in frames if len(frame))
    carried: Series | None = None
    offset = 0  # global row number of carried.values[0]
    next_window = 0
    current = next(frames, None)
    while current is not None:
        following = next(frames, None)  # one frame ahead, to know which piece is last
        last = following is None
        _check_columns(current, columns, source)
        first_row = offset + (0 if carried is None else len(carried.values))
        new = to_series(current, columns, time_col if time_col in current.columns else None,
                        fill, source, sort=sort, first_row=first_row)
        if carried is not None and len(carried.values) and len(new.values):
            if new.time_col is not None and new.index[0] < carried.index[-1]:
                raise DataError(
                    f"{source}: rows are not in time order around {pd.Timestamp(new.index[0])}; "
                    f"batches are read in order, so sort the file by '{new.time_col}' first"
                )
        series = _join(carried, new, offset)
        n_carried = 0 if carried is None else len(carried.values)
        starts = _starts_ending_in(len(series.values), n_carried, offset, window, stride, last)
        yield Piece(series, n_carried, offset, starts, next_window, window, last)
        next_window += len(starts)
        keep = len(series.values) - max(0, len(series.values) - (window - 1))
        offset += len(series.values) - keep
        carried = _tail(series, keep)
        current = following
    if carried is None:
        raise DataError(f"{source}: holds no data rows")


def _check_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in map(str, frame.columns)]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} that the model was trained on; "
            f"the model needs: {', '.join(columns)}"
        )


def _join(carried: Series | None, new: Series, offset: int) -> Series:
    if new.time_col is None:  # row numbers count from the start of the whole stream
        start = offset + (0 if carried is None else len(carried.values))
        new.index = np.arange(start, start + len(new.values), dtype=np.int64)
    if carried is None:
        return new
    return Series(
        values=np.concatenate([carried.values, new.values]),
        index=np.concatenate([carried.index, new.index]),
        columns=new.columns,
        time_col=new.time_col,
    )


def _tail(series: Series, rows: int) -> Series:
    cut = len(series.values) - rows
    return Series(series.values[cut:], series.index[cut:], series.columns, series.time_col)


def _starts_ending_in(
    n_rows: int, n_carried: int, offset: int, window: int, stride: int, last: bool
) -> np.ndarray:
    """Local starts of windows ending in rows [n_carried, n_rows) on the global stride grid."""
    first_end = max(n_carried, window - 1)
    if first_end >= n_rows:
        starts = np.empty(0, dtype=np.int64)
    else:
        first_start = first_end - window + 1
        aligned = first_start + (-(offset + first_start)) % stride
        starts = np.arange(aligned, n_rows - window + 1, stride, dtype=np.int64)
    if last:
        total = offset + n_rows
        if total < window:
            raise DataError(
                f"the data has {total} row(s), fewer than the window of {window}; "
                "give more rows or a smaller --window"
            )
        if (total - window) % stride:  # one more window so the last row is covered
            starts = np.append(starts, n_rows - window)
    return starts


class EventTracker:
    """Merges runs of consecutive anomalous windows into events, across pieces."""

    COLUMNS = ["event", "start", "end", "windows", "peak_error", "top_column"]

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.count = 0
        self.open: dict | None = None

    def feed(self, windows: pd.DataFrame) -> pd.DataFrame:
        """Events closed by these windows (window-level rows with error_<col> columns)."""
        flags = windows["anomaly"].to_numpy()
        by_column = windows[[f"error_{c}" for c in self.columns]].to_numpy()
        closed = []
        for first, last in anomalous_runs(flags):
            if self.open is not None and first > 0:
                closed.append(self._close())  # a normal window came between
            self._extend(windows, by_column, first, last)
            if last < len(flags) - 1:
                closed.append(self._close())
        if self.open is not None and len(flags) and not flags.any():
            closed.append(self._close())  # carried over, and this piece starts normal
        return pd.DataFrame(closed, columns=self.COLUMNS)

    def finish(self) -> pd.DataFrame:
        rows = [self._close()] if self.open is not None else []
        return pd.DataFrame(rows, columns=self.COLUMNS)

    def _extend(self, windows: pd.DataFrame, by_column: np.ndarray, first: int, last: int):
        error = float(windows["error"].iloc[first : last + 1].max())
        if self.open is None:
            self.open = {"start": windows["start"].iat[first], "windows": 0, "peak_error": error,
                         "totals": np.zeros(len(self.columns))}
        self.open["end"] = windows["end"].iat[last]
        self.open["windows"] += last - first + 1
        self.open["peak_error"] = max(self.open["peak_error"], error)
        self.open["totals"] += by_column[first : last + 1].sum(axis=0)

    def _close(self) -> dict:
        event, self.open = self.open, None
        row = {
            "event": self.count,
            "start": event["start"],
            "end": event["end"],
            "windows": event["windows"],
            "peak_error": event["peak_error"],
            "top_column": self.columns[int(np.argmax(event["totals"]))],
        }
        self.count += 1
        return row
