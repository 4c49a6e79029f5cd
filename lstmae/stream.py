"""Walking a long series piece by piece, as if it were one frame.

Scoring, encoding and reconstructing read the data in batches of rows and
write their output as they go, so memory stays bounded whatever the file size.
Each piece is the previous piece's last `history - 1` rows (history: the longest
window of the model, lstmae.detector.LongModel) followed by the new rows; the
windows of a piece are the ones that END in its new rows, numbered and placed
exactly as window_starts() would place them on the whole series (every `stride`
rows, plus one ending on the last row). An in-memory frame is simply a stream of
one piece, so both paths give identical output.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lstmae import events
from lstmae.errors import DataError, LstmaeWarning, name_list, shorten
from lstmae.events import Fed
from lstmae.series import OrderNotes, Series, join_series, to_series, warn_order
from lstmae.steps import StepAverager, check_kind


@dataclass
class Piece:
    series: Series  # carried rows + new rows; index holds timestamps or global row numbers
    n_carried: int  # leading rows carried over from the previous piece
    offset: int  # global row number of series row 0
    starts: np.ndarray  # local first rows of the windows that end in the new rows
    first_window: int  # global number of the first of those windows
    window: int
    last: bool  # no more rows follow
    history: int  # the longest window: the next piece carries its last history - 1 rows

    @property
    def n_final(self) -> int:
        """Rows at the front that the next piece does not carry, so that no later window
        covers them (all of them in the last piece)."""
        if self.last:
            return len(self.series.values)
        return max(0, len(self.series.values) - (self.history - 1))


@dataclass
class Position:
    """Where a stream stands, so that a later run goes on from there (score --state).

    Given to pieces(), it is read at the start and kept up to date piece by piece;
    the stream is then endless: no piece is the last, no window is added to cover
    the last row, and rows at or before `last_index` are skipped as already scored.
    """

    carried: Series | None = None  # the last history - 1 rows: the next windows' context
    offset: int = 0  # global row number of carried row 0
    next_window: int = 0  # global number of the next window
    held: Series | None = None  # --resample: the rows of a step not known to be complete
    last_index: Any = None  # the index of the last row read (None: no row yet)
    last_values: Any = None  # and its values: to find it again in the next run's rows
    kind: str | None = None  # how the time was written ("naive", "aware", "number", "rows")
    # This run only: rows skipped as scored before, and the latest time among them.
    skipped: int = 0
    newest_skipped: Any = None
    new_rows: int = 0
    skipping: bool = True  # no new row seen yet


def pieces(
    frames: Iterable[pd.DataFrame],
    columns: list[str],
    time_col: str | None,
    window: int,
    stride: int,
    fill: str | None,
    source: str,
    sort: bool,
    time_format: str | None = None,
    resample_us: int | None = None,
    position: Position | None = None,
    history: int | None = None,
) -> Iterator[Piece]:
    """Validate each frame and yield the pieces to score, in order.

    history: rows of context a window may need, the longest window (default `window`).

    resample_us: average rows into steps of this many microseconds (lstmae.steps);
    the pieces then hold steps, and windows are windows of steps.
    position: go on from there and keep it up to date (an endless stream, see Position).

    sort=True allows one frame to be out of time order (it is sorted, with a
    warning); across frames rows must already be in order (a clock stepping back
    is kept, as within a frame): batches cannot be sorted without reading the
    whole file. What was found about the order of time is warned about once, at
    the end.
    """
    endless = position is not None
    history = max(window, history or window)
    at = position if position is not None else Position()
    frames = (frame for frame in frames if len(frame))
    carried, offset, next_window = at.carried, at.offset, at.next_window
    notes = OrderNotes()
    kind = at.kind  # how the first batch wrote its times: all batches must agree
    earliest = None  # the first time seen: where a clock stepping back may land
    averager = StepAverager(resample_us, at.held) if resample_us else None
    first_row = 0  # the file's row number of the current frame's first row
    current = next(frames, None)
    while current is not None:
        # One frame ahead, to know which piece is last (an endless stream has none).
        following = None if endless else next(frames, None)
        last = not endless and following is None
        _check_columns(current, columns, source)
        new = to_series(current, columns, time_col if time_col in current.columns else None,
                        fill, source, sort=sort, first_row=first_row, time_format=time_format,
                        report=False, earliest=earliest)
        if kind is not None and new.time_kind != kind and first_row == 0 and at.kind:
            raise DataError(
                f"{source}: time column '{new.time_col}' holds {_KINDS[new.time_kind]}, but "
                f"the --state was scored on data with {_KINDS[kind]}; give data written as "
                "before, or --reset-state to start over"
            )
        kind = kind or new.time_kind
        if new.time_kind != kind:
            raise DataError(
                f"{source}: time column '{new.time_col}' holds {_KINDS[new.time_kind]} from row "
                f"{first_row + 1} on but {_KINDS[kind]} before; write every row's time the "
                "same way"
            )
        notes.add(new.order)
        first_row += len(current)
        if endless:
            new = _skip_scored(new, at)
        if carried is not None and len(carried.values) and len(new.values):
            _check_boundary(carried, new, source, first_row - len(current), notes, earliest)
        if new.time_col is not None and len(new.index):
            first = new.index.min()
            earliest = first if earliest is None else min(earliest, first)
        if averager is not None:
            check_kind(new, source)
            new = averager.feed(new, last)
        series = _join(carried, new, offset)
        n_carried = 0 if carried is None else len(carried.values)
        starts = _starts_ending_in(len(series.values), n_carried, offset, window, stride, last,
                                   source)
        piece = Piece(series, n_carried, offset, starts, next_window, window, last, history)
        next_window += len(starts)
        keep = min(len(series.values), history - 1)
        offset += len(series.values) - keep
        carried = series.part(slice(len(series.values) - keep, None))
        if endless:
            at.carried, at.offset, at.next_window, at.kind = carried, offset, next_window, kind
            at.held = None if averager is None else averager.held
        yield piece
        current = following if not endless else next(frames, None)
    if carried is None and not endless:
        raise DataError(f"{source}: holds no data rows")
    if carried is not None:
        warn_order(notes, source, carried.time_col)


def _skip_scored(new: Series, at: Position) -> Series:
    """The rows not scored before; notes the last row read.

    Skipped: the rows up to the last row read before, found by its time and values
    (the first such row), so that rows after it are kept even where a clock stepped
    back or a time repeats; when it is not there, the leading rows at or before its
    time. Once a row is kept, all the rest are. Without a time column all are new.
    """
    if len(new.index) and at.skipping and new.time_col is not None and (
            at.last_index is not None):
        same = np.flatnonzero((new.index == at.last_index)
                              & (new.values == at.last_values).all(axis=1))
        later = np.flatnonzero(new.index > at.last_index)
        cut = int(same[0]) + 1 if len(same) else int(later[0]) if len(later) else len(new.index)
        if cut:
            at.skipped += cut
            newest = new.index[:cut].max()
            at.newest_skipped = (newest if at.newest_skipped is None
                                 else max(newest, at.newest_skipped))
            new = new.part(slice(cut, None))
        at.skipping = not len(new.index)
    if len(new.index):
        at.skipping = False
        at.new_rows += len(new.index)
        at.last_index = new.index[-1] if new.time_col is not None else None
        at.last_values = new.values[-1].copy()
    return new


_KINDS = {"number": "numbers", "naive": "times without a UTC offset",
          "aware": "times with a UTC offset", "rows": "no time"}


def _check_boundary(carried: Series, new: Series, source: str, first_row: int,
                    notes: OrderNotes, earliest) -> None:
    """Order across two batches: as within one, a clock may step back and run on."""
    if new.time_col is None or not new.index[0] < carried.index[-1]:
        if new.time_col is not None and new.index[0] == carried.index[-1]:
            notes.repeats += 1
            notes.first_repeat = notes.first_repeat or str(new.labels[0])
        return
    ran_on = (new.index[0] >= earliest and len(new.index) >= 2
              and new.index[0] <= new.index[1] <= carried.index[-1])
    if not ran_on:
        raise DataError(
            f"{source}: rows are not in time order (row {first_row + 1}: "
            f"{shorten(new.labels[0])} after {shorten(carried.labels[-1])}); batches are read "
            f"in order, so sort the file by '{shorten(new.time_col)}' first"
        )
    notes.steps_back += 1
    notes.first_step = notes.first_step or (str(carried.labels[-1]), str(new.labels[0]))


def _check_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    found = list(map(str, frame.columns))
    missing = [c for c in columns if c not in found]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {name_list(missing)} that the model was trained on; "
            f"the model needs: {name_list(columns)}; the data has: {name_list(found)}"
        )


def _join(carried: Series | None, new: Series, offset: int) -> Series:
    if new.time_col is None:  # row numbers count from the start of the whole stream
        start = offset + (0 if carried is None else len(carried.values))
        new.index = np.arange(start, start + len(new.values), dtype=np.int64)
        new.labels = new.index
    return new if carried is None else join_series(carried, new)


def _starts_ending_in(
    n_rows: int, n_carried: int, offset: int, window: int, stride: int, last: bool,
    source: str = "data",
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
                f"{source}: has {total} usable row(s), but the model's window is {window} "
                f"rows: give at least {window} rows"
            )
        if (total - window) % stride:  # one more window so the last row is covered
            starts = np.append(starts, n_rows - window)
    return starts


class IntervalCheck:
    """Warns when scored data is sampled at another interval than the model's training
    data, or has gaps far longer than it (windows across a gap are not what it learnt)."""

    GAP_FACTOR = 10  # a step this many times the model's interval is a gap
    RATIO = 1.5  # a median step this far from the model's is another interval

    def __init__(self, interval: float | None, source: str):
        self.interval, self.source = interval, source
        self.steps: list[np.ndarray] = []
        self.gaps, self.longest = 0, 0.0
        self.gap_at: str | None = None

    def feed(self, piece: Piece) -> None:
        if self.interval is None or piece.series.time_col is None:
            return
        index = piece.series.index[max(0, piece.n_carried - 1):]
        if len(index) < 2:
            return
        steps = interval_steps(index)
        if sum(map(len, self.steps)) < 10_000:
            self.steps.append(steps[steps > 0])
        gaps = np.flatnonzero(steps > self.GAP_FACTOR * self.interval)
        if gaps.size:
            self.gaps += int(gaps.size)
            longest = int(gaps[np.argmax(steps[gaps])])
            if steps[longest] > self.longest:
                self.longest = float(steps[longest])
                labels = piece.series.labels[max(0, piece.n_carried - 1):]
                self.gap_at = str(labels[longest])

    def finish(self, kind: str) -> None:
        if self.interval is None or not self.steps:
            return
        steps = np.concatenate(self.steps)
        if steps.size:
            median = float(np.median(steps))
            if not (self.interval / self.RATIO <= median <= self.interval * self.RATIO):
                warnings.warn(
                    f"{self.source}: rows are {describe_interval(median, kind)} apart, but the "
                    f"model was trained on rows {describe_interval(self.interval, kind)} apart; "
                    "its errors mean little on data sampled differently",
                    LstmaeWarning, stacklevel=2,
                )
        if self.gaps:
            warnings.warn(
                f"{self.source}: {self.gaps} gap(s) longer than {self.GAP_FACTOR} x the model's "
                f"interval of {describe_interval(self.interval, kind)} (the longest "
                f"{describe_interval(self.longest, kind)}, after {self.gap_at}); windows across "
                "a gap join data that was not together",
                LstmaeWarning, stacklevel=2,
            )


def interval_steps(index: np.ndarray) -> np.ndarray:
    """Steps between consecutive rows: seconds for times, the numbers' own unit otherwise."""
    if np.issubdtype(index.dtype, np.datetime64):
        return np.diff(index).astype("timedelta64[us]").astype(np.float64) / 1e6
    return np.diff(index.astype(np.float64))


def typical_interval(index: np.ndarray) -> float | None:
    """The median positive step between rows (None without two distinct times)."""
    if len(index) < 2:
        return None
    steps = interval_steps(index)
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else None


def describe_interval(value: float, kind: str) -> str:
    if kind in ("number", "rows"):
        return f"{value:g} (in the time column's units)"
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= seconds:
            return f"{value / seconds:g} {unit}"
    return f"{value:g} s"


# ---------------------------------------------------------------- outputs
@dataclass
class PieceOutput:
    """What one forward pass over a piece's windows gave (lstmae.detector)."""

    windows: pd.DataFrame | None = None  # window rows: window, start, end, error, ...
    latent: np.ndarray | None = None  # [N_w, latent]
    sums: np.ndarray | None = None  # [n_rows, D] the piece rows' summed reconstructions
    counts: np.ndarray | None = None  # [n_rows] how many windows covered each row
    events: Fed | None = None  # what the windows did to the events (lstmae.events)
    firsts: np.ndarray | None = None  # [N_w] local first rows the errors saw (LongModel)


def window_frame(piece: Piece, columns: dict, firsts: np.ndarray | None = None) -> pd.DataFrame:
    """window, start, end and then `columns`, built at once (not column by column).
    firsts: the windows' first rows where the errors saw more rows than the window."""
    labels, starts = piece.series.labels, piece.starts
    return pd.DataFrame({
        "window": piece.first_window + np.arange(len(starts)),
        "start": labels[starts if firsts is None else firsts],
        "end": labels[starts + piece.window - 1],
        **columns,
    })


class Rows:
    """One output of a stream: feed it each piece, get that piece's rows; finish() gives
    what is left when the data ends (an open event). State between pieces lives here."""

    def feed(self, piece: Piece, out: PieceOutput) -> pd.DataFrame:
        raise NotImplementedError

    def finish(self) -> pd.DataFrame | None:
        return None


class WindowRows(Rows):
    """One row per window (score --level window)."""

    def feed(self, piece: Piece, out: PieceOutput) -> pd.DataFrame:
        assert out.windows is not None
        return out.windows


class PointRows(Rows):
    """One row per input row: the latest window ending at or before it (causal), and
    `alarm`: true on the row where an event opens (lstmae.events).

    latest: the latest window so far, (its global end row, point_values of it): carried
    between pieces and, with score --state, between runs."""

    def __init__(self, threshold: float, latest: tuple[int, pd.DataFrame] | None = None):
        self.threshold = threshold
        self.latest = latest

    def feed(self, piece: Piece, out: PieceOutput) -> pd.DataFrame:
        assert out.windows is not None
        values = point_values(out.windows)
        ends = piece.offset + piece.starts + piece.window - 1
        if self.latest is not None:
            ends = np.concatenate([[self.latest[0]], ends])
            values = pd.concat([self.latest[1], values], ignore_index=True)
        rows = piece.offset + np.arange(piece.n_carried, len(piece.series.values))
        which = np.searchsorted(ends, rows, side="right") - 1
        if len(values):
            picked = values.iloc[np.maximum(which, 0)].reset_index(drop=True)
        else:  # no window has ended yet
            picked = pd.DataFrame(np.nan, index=np.arange(len(rows)), columns=values.columns)
        self.latest = latest_window(piece, out.windows) or self.latest
        scored = which >= 0
        numeric = [c for c in picked.columns if c == "score" or c.startswith("error_")]
        picked.loc[~scored, numeric] = np.nan
        picked["threshold"] = self.threshold
        picked["anomaly"] = picked["anomaly"].where(scored, False).astype(bool)
        onsets = out.events.onsets if out.events is not None else []
        picked.insert(picked.columns.get_loc("anomaly") + 1, "alarm", np.isin(rows, onsets))
        picked.insert(0, piece.series.time_col or "row", piece.series.labels[piece.n_carried:])
        return picked


def point_values(windows: pd.DataFrame) -> pd.DataFrame:
    """Window rows as point rows take them: score (the error), threshold, anomaly, errors."""
    return windows.drop(columns=["window", "start", "end"]).rename(columns={"error": "score"})


def latest_window(piece: Piece, windows: pd.DataFrame) -> tuple[int, pd.DataFrame] | None:
    """The piece's last window (global end row, point values), if it has one."""
    if not len(windows):
        return None
    end = int(piece.offset + piece.starts[-1] + piece.window - 1)
    return end, point_values(windows.iloc[[-1]]).reset_index(drop=True)


class LatentRows(Rows):
    """One row per window: its latent vector (encode)."""

    def feed(self, piece: Piece, out: PieceOutput) -> pd.DataFrame:
        assert out.latent is not None
        latent = out.latent
        return window_frame(piece, {f"z{i}": latent[:, i].astype(np.float64)
                                    for i in range(latent.shape[1])})


class ReconstructionRows(Rows):
    """One row per input row: <col> and <col>_recon, the mean over every window that
    covers the row, in the data's units. A row is written once no later window can
    cover it; the sums of the last window - 1 rows are carried to the next piece."""

    def __init__(self, columns: list[str], indices: list[int] | None, inverse):
        """columns: the reconstructed columns, at `indices` of the model's (None: all)."""
        self.columns, self.inverse = columns, inverse
        self.indices = list(range(len(columns))) if indices is None else indices
        self.sums = np.zeros((0, len(columns)))
        self.counts = np.zeros(0, dtype=np.int64)

    def feed(self, piece: Piece, out: PieceOutput) -> pd.DataFrame:
        assert out.sums is not None and out.counts is not None
        sums, counts = out.sums, out.counts
        sums[: piece.n_carried] += self.sums
        counts[: piece.n_carried] += self.counts
        done = piece.n_final
        recon = self.inverse(sums[:done] / counts[:done, None])
        series = piece.series
        columns = {series.time_col: series.labels[:done]} if series.time_col else {}
        for i, (col, at) in enumerate(zip(self.columns, self.indices, strict=True)):
            columns[col] = series.values[:done, at]
            columns[f"{col}_recon"] = recon[:, i]
        self.sums, self.counts = sums[done:], counts[done:]
        return pd.DataFrame(columns)


class EventRows(Rows):
    """One row per event (lstmae.events), written when it closes; one still open when the
    data ends is written then, with status "open". As a log (`log=True`: --follow), an
    event is also written as it opens; an endless stream (--state) holds the open one."""

    def __init__(self, tracker: events.Events, log: bool = False):
        self.tracker, self.log = tracker, log

    def feed(self, piece: Piece, out: PieceOutput) -> pd.DataFrame:
        assert out.events is not None
        # Both rows of an event that opens and closes in one piece: the log must not
        # depend on how the rows arrived in batches.
        rows = [*(out.events.opened if self.log else []), *out.events.closed]
        return events.frame(sorted(rows, key=lambda row: (row["event"], row["status"] != "open")))

    def finish(self) -> pd.DataFrame | None:
        """The event still open when the data ends, as a row with status "open"."""
        event = self.tracker.open
        return None if event is None else events.frame([self.tracker.row(event, "open")])
