"""Rows averaged into steps of a fixed length of time (`--resample 15min`).

A window of 64 one-minute rows sees an hour; a daily cycle is 1,440 rows, too
long for an LSTM to run over quickly or learn well. Averaging rows into steps
(15-minute steps: 96 a day) lets a window hold a whole cycle. The model file
stores the step, so scoring averages new data the same way.

A step is a run of consecutive rows whose times fall in the same interval
[k * step, (k + 1) * step), counted from 1970-01-01 00:00 UTC, so every read of
the same rows, whole or in batches, gives the same steps. Steps hold the mean of
their rows and are labelled with the time their interval begins, in the zone the
rows were written in; a step with no rows is no row (as a gap in the data is).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmae.errors import OptionError, arg
from lstmae.series import Series, join_series

KINDS_WITH_STEPS = ("naive", "aware")  # date-times; numbers and row numbers have no clock


def check_kind(series: Series, source: str) -> None:
    if series.time_kind not in KINDS_WITH_STEPS:
        what = ("no time column" if series.time_col is None
                else f"time column '{series.time_col}' holds numbers, not dates and times")
        raise OptionError(f"{arg('resample')} averages rows into steps of time, but {source} "
                          f"has {what}; give data with a date-time column, or leave out "
                          f"{arg('resample')}")


class StepAverager:
    """Feeds batches of rows, in order; returns the steps they complete.

    The last step of a batch is held back until a row of a later step arrives or
    the data ends (`last=True`): batches give exactly the steps one read gives.
    """

    def __init__(self, step_us: int, held: Series | None = None):
        self.step_us = step_us
        self.held = held  # the rows of a step not known to be complete

    def feed(self, new: Series, last: bool) -> Series:
        series = new if self.held is None else join_series(self.held, new)
        ids = series.index.astype("datetime64[us]").view(np.int64) // self.step_us
        n = len(ids)
        firsts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if n else np.empty(0, int)
        complete = len(firsts) if last else max(0, len(firsts) - 1)
        cut = firsts[complete] if complete < len(firsts) else n
        self.held = None if cut == n else series.part(slice(cut, n))
        firsts = firsts[:complete]
        counts = np.diff(np.r_[firsts, cut])
        values = (np.add.reduceat(series.values[:cut], firsts, axis=0) / counts[:, None]
                  if complete else series.values[:0])
        begins = ids[firsts] * self.step_us
        late = series.index[firsts].astype("datetime64[us]").view(np.int64) - begins
        return Series(values=values, index=begins.astype("datetime64[us]"),
                      columns=series.columns, time_col=series.time_col,
                      labels=_shift_back(series.labels[firsts], late), rows=series.rows[firsts],
                      time_kind=series.time_kind, order=new.order)


def average(series: Series, step_us: int, source: str) -> Series:
    """All of a series in steps (at fit, and for a frame scored whole)."""
    check_kind(series, source)
    return StepAverager(step_us).feed(series, last=True)


def _shift_back(labels, micros: np.ndarray):
    """Labels moved earlier by `micros` each, keeping how they were written (zone)."""
    if isinstance(labels, np.ndarray) and labels.dtype == object:  # Timestamps, mixed zones
        return labels - pd.to_timedelta(micros, unit="us").to_pytimedelta()
    return labels - micros.astype("timedelta64[us]")
