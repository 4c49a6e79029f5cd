"""A DataFrame -> Series: the validated arrays lstmae models and scores.

to_series finds the time column and reads it as the user wrote it (offsets kept,
day/month dates never guessed), puts rows in the order time says (a clock that
steps back and runs on is kept), picks the value columns, and makes every value
a finite number (or says which is not, and how --fill helps).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lstmae.errors import DataError, LstmaeWarning, OptionError, arg, name_list, shorten
from lstmae.params import FILL_METHODS, MAX_VALUE
from lstmae.read import check_unique

TIME_COLUMN_NAMES = ("timestamp", "time", "date", "datetime")
# Integer columns with these names that only ever grow are a time axis or a row
# index, not a measurement: modelled as a value, they would make all new data look
# anomalous. A time-like one becomes the time column when there is none; the rest
# are left out, with a warning (README, "Data rules").
TIME_LIKE_NAME = re.compile(
    r"^(ts|epoch|unix|unix_?time|epoch_?time|(epoch|unix|ts|time|timestamp)_?(s|ms|us|ns|sec|"
    r"secs|seconds|millis))$"
)
INDEX_LIKE_NAME = re.compile(r"^(unnamed: ?\d+(\.\d+)?|index|idx|row|rownum|row_?number|id)$")
# Day and month in either order before the year (01/02/2026, 1.2.26): never guessed.
AMBIGUOUS_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?!\d)")
UTC_OFFSET = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)$")


@dataclass
class OrderNotes:
    """What to_series found about the order of time (reported once, as warnings)."""

    sorted: bool = False  # rows were out of order and were sorted
    repeats: int = 0  # rows whose time equals the previous row's
    first_repeat: str | None = None
    steps_back: int = 0  # a clock stepping back (reset, daylight-saving fall-back): kept
    first_step: tuple[str, str] | None = None

    def add(self, other: OrderNotes) -> None:
        self.sorted |= other.sorted
        self.first_repeat = self.first_repeat or other.first_repeat
        self.first_step = self.first_step or other.first_step
        self.repeats += other.repeats
        self.steps_back += other.steps_back


@dataclass
class Series:
    """A validated multivariate series, rows in the order time says."""

    values: np.ndarray  # float64 [N, D]
    index: np.ndarray  # what orders the rows: datetime64[us] (UTC when written with an
    #                    offset), numbers, or row numbers
    columns: list[str]
    time_col: str | None
    # The times as the user wrote them, for output (default: index): numbers, a
    # DatetimeArray (its zone kept) or Timestamps.
    labels: Any = None
    rows: Any = None  # np.ndarray: each row's 0-based row number in its file (default 0..N-1)
    time_kind: str = "rows"  # "rows", "number", "naive" (no offset) or "aware"
    order: OrderNotes = field(default_factory=OrderNotes)

    def __post_init__(self):
        if self.labels is None:
            self.labels = self.index
        if self.rows is None:
            self.rows = np.arange(len(self.values), dtype=np.int64)

    def part(self, rows: slice | np.ndarray) -> Series:
        """Some of the rows (a slice or a boolean mask), as a Series of their own."""
        return Series(self.values[rows], self.index[rows], self.columns, self.time_col,
                      self.labels[rows], self.rows[rows], self.time_kind)


def join_series(first: Series, second: Series) -> Series:
    """Two runs of rows of the same columns as one, `first` before `second`."""
    return Series(
        values=np.concatenate([first.values, second.values]),
        index=np.concatenate([first.index, second.index]),
        columns=second.columns,
        time_col=second.time_col,
        labels=concat_labels(first.labels, second.labels),
        rows=np.concatenate([first.rows, second.rows]),
        time_kind=second.time_kind,
    )


def concat_labels(first, second):
    """Two runs of time labels as one; times in different zones become Timestamps."""
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray) and (
        first.dtype == second.dtype
    ):
        return np.concatenate([first, second])
    return pd.concat([pd.Series(first), pd.Series(second)], ignore_index=True).array


# ---------------------------------------------------------------- time
def find_time_column(frame: pd.DataFrame, time_col: str | None) -> str | None:
    """The named time column, else one named like a time or of datetime type, else None."""
    if time_col is not None:
        if time_col not in frame.columns:
            raise DataError(
                f"time column '{shorten(time_col)}' is not in the data; "
                f"columns are: {name_list(frame.columns)}"
            )
        return time_col
    for col in frame.columns:
        if str(col).strip().lower() in TIME_COLUMN_NAMES:
            return col
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            return col
    return None


@dataclass
class TimeAxis:
    index: np.ndarray  # orders the rows: datetime64[us] (UTC if aware) or numbers
    labels: Any  # as written: a DatetimeArray (its zone kept), numbers, or Timestamps
    kind: str  # "number", "naive" or "aware"


def parse_time(
    column: pd.Series, name: str, source: str, first_row: int = 0,
    time_format: str | None = None,
) -> TimeAxis:
    """Read a time column as the user wrote it.

    Numbers stay numbers (epoch seconds, say). Times with a UTC offset keep it for
    output and are ordered by the instant they name, so daylight-saving changes of
    offset within a file are fine. Day/month dates that could be read either way
    (01/02/2026) are refused unless `time_format` (strftime) says how to read them.
    """
    where = f"{source}: time column '{shorten(name)}'"
    missing = column.isna().to_numpy()
    if missing.any():
        row = first_row + int(np.flatnonzero(missing)[0])
        raise DataError(f"{where}: row {row + 1} is empty; every row needs a time")
    if pd.api.types.is_bool_dtype(column):
        raise DataError(f"{where}: holds true/false values, not times; name the time column "
                        f"with {arg('time_col')}")
    if pd.api.types.is_numeric_dtype(column):
        if time_format is not None:
            column = column.astype(str)
        else:
            numbers = column.to_numpy()
            if not np.isfinite(numbers.astype(np.float64)).all():
                row = first_row + int(np.flatnonzero(~np.isfinite(numbers.astype(float)))[0])
                raise DataError(f"{where}: row {row + 1} is not a finite number")
            return TimeAxis(numbers, numbers, "number")  # e.g. epoch seconds
    if pd.api.types.is_datetime64_any_dtype(column):
        return _time_axis(column)
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind in ("datetime", "datetime64", "date"):
        try:
            return _time_axis(pd.to_datetime(column))
        except (ValueError, TypeError):
            raise DataError(f"{where}: mixes times with and without a UTC offset; "
                            "give every time an offset, or none") from None
    if kind not in ("string", "empty"):
        raise DataError(f"{where}: mixes numbers and text ({kind}); write every time the "
                        "same way")
    return _parse_text_times(column.astype(str).str.strip(), where, first_row, time_format)


def _parse_text_times(text: pd.Series, where: str, first_row: int,
                      time_format: str | None) -> TimeAxis:
    if time_format is None:
        _refuse_ambiguous_dates(text, where)
    fmt = time_format or "mixed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _time_axis(pd.to_datetime(text, format=fmt))
        except (ValueError, TypeError, OverflowError) as exc:
            if "mix" not in str(exc).lower() or "zone" not in str(exc).lower():
                bad = _first_unparsable_time(text, fmt)
                how = f" with {arg('time_format')} {time_format!r}" if time_format else ""
                raise DataError(
                    f"{where}: cannot parse {shorten(bad)!r} as a timestamp{how}; fix the "
                    f"value, give {arg('time_format')}, or name another column with "
                    f"{arg('time_col')}"
                ) from None
        return _mixed_offsets(text, fmt, where, first_row)


def _time_axis(parsed: pd.Series) -> TimeAxis:
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        instants = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return TimeAxis(instants.to_numpy().astype("datetime64[us]"), parsed.array, "aware")
    return TimeAxis(parsed.to_numpy().astype("datetime64[us]"), parsed.array, "naive")


def _mixed_offsets(text: pd.Series, fmt: str, where: str, first_row: int) -> TimeAxis:
    """Times whose UTC offset changes within the column (daylight-saving time): ordered by
    instant, each labelled with the offset it was written with."""
    from datetime import timedelta, timezone

    offsets = text.str.extract(UTC_OFFSET, expand=False)
    if offsets.isna().any():
        row = int(np.flatnonzero(offsets.isna().to_numpy())[0])
        raise DataError(
            f"{where}: row {first_row + row + 1} ({shorten(text.iloc[row])!r}) has no UTC "
            "offset while other rows have one; give every time an offset, or none"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instants = pd.to_datetime(text, format=fmt, utc=True)
    labels = np.empty(len(text), dtype=object)
    for offset in offsets.unique():
        rows = (offsets == offset).to_numpy()
        if offset == "Z":
            zone = timezone.utc
        else:
            digits = offset.replace(":", "")
            sign = -1 if digits[0] == "-" else 1
            minutes = int(digits[1:3]) * 60 + (int(digits[3:5]) if len(digits) > 3 else 0)
            zone = timezone(sign * timedelta(minutes=minutes))
        labels[rows] = list(instants[rows].dt.tz_convert(zone))
    index = instants.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return TimeAxis(index, labels, "aware")


def _refuse_ambiguous_dates(text: pd.Series, where: str) -> None:
    found = text.str.extract(AMBIGUOUS_DATE)
    if found[0].isna().all():
        return
    row = int(np.flatnonzero(found[0].notna().to_numpy())[0])
    value = text.iloc[row]
    first, second = (found[i].dropna().astype(int) for i in (0, 1))
    day_first, month_first = _format_guesses(value)
    if (first > 12).any() and not (second > 12).any():
        hint = f"{arg('time_format')} '{day_first}' (the file's dates look day first)"
    elif (second > 12).any() and not (first > 12).any():
        hint = f"{arg('time_format')} '{month_first}' (the file's dates look month first)"
    else:
        hint = (f"{arg('time_format')} '{day_first}' (day first) or '{month_first}' "
                "(month first)")
    raise DataError(
        f"{where}: dates like {shorten(value)!r} can be read day first or month first, and "
        f"lstmae does not guess; give {hint}"
    )


def _format_guesses(value: str) -> tuple[str, str]:
    """strftime formats, day first and month first, for a value like '01/02/2026 10:15'."""
    match = AMBIGUOUS_DATE.match(value)
    assert match is not None  # only called for values that look like it
    sep = value[match.end(1)]
    year = "%Y" if len(match.group(3)) == 4 else "%y"
    rest = value[match.end():]
    clock = re.fullmatch(r"([ T])\d{1,2}:\d{2}(:\d{2})?(\.\d+)?", rest)
    tail = ""
    if clock:
        tail = clock.group(1) + "%H:%M" + (":%S" if clock.group(2) else "")
        tail += ".%f" if clock.group(3) else ""
    return f"%d{sep}%m{sep}{year}{tail}", f"%m{sep}%d{sep}{year}{tail}"


def _first_unparsable_time(column: pd.Series, fmt: str) -> str:
    for value in column:
        try:
            pd.to_datetime(value, format=None if fmt == "mixed" else fmt)
        except (ValueError, TypeError, OverflowError):
            return str(value)
    return str(column.iloc[0])


def _order(
    axis: TimeAxis, tcol: str, source: str, sort: bool, first_row: int, earliest=None
) -> tuple[np.ndarray | None, OrderNotes]:
    """How to order the rows (None: as they are) and what to tell the user about it.

    A clock that steps back and runs on (reset, or a daylight-saving fall-back in
    local time) keeps file order: sorting would interleave two stretches of time.
    A file whose rows are out of order (few, single rows out of place, or many
    steps back) is sorted when `sort`, else refused (batches cannot be sorted).
    """
    index, notes = axis.index, OrderNotes()
    back = np.flatnonzero(index[1:] < index[:-1])
    order = None
    if back.size and _clock_steps(index, back, earliest, at_batch_end=not sort):
        notes.steps_back = int(back.size)
        notes.first_step = (str(axis.labels[back[0]]), str(axis.labels[back[0] + 1]))
    elif back.size:
        if not sort:
            row = first_row + int(back[0]) + 2
            raise DataError(
                f"{source}: rows are not in time order (row {row}: "
                f"{shorten(axis.labels[back[0] + 1])} after {shorten(axis.labels[back[0]])}); "
                f"batches are read in order, so sort the file by '{shorten(tcol)}' first"
            )
        order = np.argsort(index, kind="stable")
        notes.sorted = True
        index = index[order]
    repeated = np.flatnonzero(index[1:] == index[:-1])
    if repeated.size:
        notes.repeats = int(repeated.size)
        at = repeated[0] if order is None else order[repeated[0]]
        notes.first_repeat = str(axis.labels[at])
    return order, notes


def _clock_steps(index: np.ndarray, back: np.ndarray, earliest=None,
                 at_batch_end: bool = False) -> bool:
    """Whether every step back is a clock that stepped back and ran on, and they are rare.

    A clock steps back into time it has already shown (after the first row, or
    `earliest`, the first time of earlier batches) and runs on: the two rows
    after the step are in order and no later than the time it stepped back from
    (at_batch_end: one row is enough at the end, where the next batch may go on).
    A single row out of place has one row there, not two; a file whose parts were
    exported in the wrong order steps back to before everything seen so far.
    """
    if back.size > max(1, (len(index) - 1) // 1000):
        return False
    seen_from = index[0] if earliest is None else min(index[0], earliest)
    for step in back:
        after = index[step + 1 : step + 3]
        enough = len(after) == 2 or (at_batch_end and step + 2 == len(index))
        runs_on = (after <= index[step]).all() and (len(after) < 2 or after[0] <= after[1])
        into_seen_time = after[0] >= min(seen_from, index[: step + 1].min())
        if not (enough and runs_on and into_seen_time):
            return False
    return True


def warn_order(notes: OrderNotes, source: str, tcol: str | None) -> None:
    """The warnings for what was found about the order of time (once per file)."""
    name = shorten(tcol)
    if notes.sorted:
        warnings.warn(f"{source}: rows were not in time order; sorted them by '{name}'",
                      LstmaeWarning, stacklevel=3)
    if notes.steps_back and notes.first_step is not None:
        before, after = notes.first_step
        warnings.warn(
            f"{source}: time column '{name}' steps back {notes.steps_back} time(s) (first "
            f"from {before} to {after}, as a clock does when it is reset or falls back from "
            "daylight-saving time); kept the rows in file order. If the file is merely "
            "unsorted, sort it first",
            LstmaeWarning, stacklevel=3,
        )
    if notes.repeats:
        # Real logs repeat timestamps (clock changes, merged sources): keep every
        # row, in file order, rather than refuse the file.
        warnings.warn(
            f"{source}: time column '{name}' repeats {notes.first_repeat}"
            f" ({notes.repeats} duplicate timestamp(s)); kept the rows in file order",
            LstmaeWarning, stacklevel=3,
        )


# ---------------------------------------------------------------- values
def _counts_up(column: pd.Series) -> bool:
    """Whole numbers that only ever grow: a row index or a time, not a measurement."""
    if pd.api.types.is_bool_dtype(column) or len(column) < 2:
        return False
    numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return bool(np.isfinite(numbers).all() and (numbers == np.round(numbers)).all()
                and (np.diff(numbers) > 0).all())


def _is_number_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _default_columns(frame: pd.DataFrame, tcol: str | None, time_col: str | None, source: str):
    """Every numeric column but the time column and columns that are an index or a time.

    Returns (value columns, time column). A time-like integer column (ts, epoch, ...)
    becomes the time column when none was found; index-like ones are left out."""
    numeric = [c for c in frame.columns if c != tcol and _is_number_column(frame[c])]
    left_out = []
    for col in numeric:
        name = col.strip().lower()
        time_like, index_like = TIME_LIKE_NAME.match(name), INDEX_LIKE_NAME.match(name)
        if (time_like or index_like) and _counts_up(frame[col]):
            if time_like and tcol is None and time_col is None:
                tcol = col
            else:
                left_out.append(col)
    values = [c for c in numeric if c != tcol and c not in left_out]
    if left_out:
        warnings.warn(LstmaeWarning(  # an instance: filters match the Python names
            f"{source}: column(s) {name_list(left_out)} only count up in whole numbers, like "
            f"a row index or a time: not modelled; name them in {arg('columns')} to model "
            "them"), stacklevel=4,
        )
    if not values:
        raise DataError(
            f"{source}: no numeric columns to model; columns are: {name_list(frame.columns)}"
        )
    return values, tcol


def to_series(
    frame: pd.DataFrame,
    columns: list[str] | None = None,
    time_col: str | None = None,
    fill: str | None = None,
    source: str = "data",
    sort: bool = True,
    first_row: int = 0,
    time_format: str | None = None,
    report: bool = True,
    earliest=None,
) -> Series:
    """Validate a frame and turn it into a Series.

    columns: the value columns, in this order (default: every numeric column but
    the time column and index-like ones). Rows are put in time order (with a
    warning when they were not; an error with sort=False), except where a clock
    stepped back (kept in file order, with a warning). Missing or non-finite
    values are an error unless `fill` says otherwise. first_row: the frame's
    first row number in its file (for batches), so that errors name the file's
    row. report: warn about the order of time here (False: the caller reports
    series.order once for many batches). earliest: the first time of earlier
    batches, where a clock stepping back may land.
    """
    if fill is not None and fill not in FILL_METHODS:
        raise OptionError(f"{arg('fill')} must be one of {', '.join(FILL_METHODS)} (got "
                          f"{shorten(fill)!r})")
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    check_unique(frame.columns, source)
    value_cols, tcol = _value_columns(frame, columns, time_col, source)
    values = frame[value_cols]
    for col in value_cols:
        _check_numeric(values[col], col, source, first_row)
    values = values.astype("float64")
    rows = first_row + np.arange(len(values), dtype=np.int64)

    notes = OrderNotes()
    if tcol is not None:
        axis = parse_time(frame[tcol], tcol, source, first_row, time_format)
        order, notes = _order(axis, tcol, source, sort, first_row, earliest)
        index, labels, kind = axis.index, axis.labels, axis.kind
        if order is not None:
            index, labels, rows = index[order], labels[order], rows[order]
            values = values.iloc[order].reset_index(drop=True)
        if report:
            warn_order(notes, source, tcol)
    else:
        index = np.arange(len(values), dtype=np.int64)
        labels, kind = index, "rows"

    array, keep = _handle_missing(values, fill, source, first_row)
    if keep is not None:
        index, labels, rows = index[keep], labels[keep], rows[keep]
    return Series(values=array, index=index, columns=value_cols, time_col=tcol, labels=labels,
                  rows=rows, time_kind=kind, order=notes)


def _value_columns(frame: pd.DataFrame, columns: list[str] | None, time_col: str | None,
                   source: str) -> tuple[list[str], str | None]:
    """The value columns and the time column (None: row numbers)."""
    tcol = find_time_column(frame, time_col)
    if not columns:
        return _default_columns(frame, tcol, time_col, source)
    check_unique(columns, arg("columns"), "the same")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {name_list(missing)}; "
            f"columns are: {name_list(frame.columns)}"
        )
    if tcol in columns:
        if time_col is not None:
            raise OptionError(f"column '{shorten(tcol)}' cannot be both the time column "
                              "and a value")
        tcol = None  # the user wants this column as a value, not as time
    return list(columns), tcol


def _check_numeric(column: pd.Series, name: str, source: str, first_row: int) -> None:
    if _is_number_column(column):
        return
    unparsable = np.flatnonzero((column.notna() & pd.to_numeric(column, errors="coerce")
                                 .isna()).to_numpy())
    hint = ""
    if unparsable.size:
        row = int(unparsable[0])
        hint = f" (row {first_row + row + 1}: {shorten(column.iloc[row])!r})"
    raise DataError(
        f"{source}: column '{shorten(name)}' is not numeric{hint}; "
        "write plain numbers without thousands separators or units"
    )


def _handle_missing(values: pd.DataFrame, fill: str | None, source: str, first_row: int):
    """The values as float64, and which rows to keep (None: all)."""
    array = values.to_numpy(dtype=np.float64)
    with np.errstate(over="ignore"):
        # float32 is what the model computes in: larger values would overflow there
        bad = ~np.isfinite(array) | (np.abs(array) > MAX_VALUE)
    if not bad.any():
        return array, None
    if fill is None:
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{source}: row {first_row + row + 1}, column '{shorten(values.columns[col])}' is "
            f"{_describe_value(array[row, col])} ({int(bad.sum())} bad value(s) found); "
            f"fix the data or choose {arg('fill')} ffill|interpolate|drop"
        )
    frame = values.mask(bad)
    keep = None
    if fill == "drop":
        keep = ~bad.any(axis=1)
        frame = frame[keep]
    elif fill == "ffill":
        frame = frame.ffill().bfill()
    else:
        frame = frame.interpolate(limit_direction="both")
    if frame.empty or frame.isna().any().any():
        raise DataError(f"{source}: no usable values left after {arg('fill')} {fill}")
    warnings.warn(LstmaeWarning(  # an instance: filters match the Python names
        f"{source}: {int(bad.sum())} missing or non-finite value(s) handled with "
        f"{arg('fill')} {fill}"), stacklevel=3)
    return frame.to_numpy(dtype=np.float64), keep


def _describe_value(value: float) -> str:
    if np.isnan(value):
        return "missing (empty or NaN)"
    if np.isinf(value):
        return "infinite"
    return f"too large ({value:g})"
