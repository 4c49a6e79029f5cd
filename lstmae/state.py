"""`score --state FILE`: where scoring stopped, so the next run goes on from there.

A cron job scores "the last hour" every five minutes: runs overlap, and each new
run is short. The state holds what the next run needs to give exactly the rows
one run over all the data would give: the last row's time (rows at or before it
are skipped), the last `window - 1` rows (the next windows' context), the window
and row numbering, the latest window (for point rows between strides), the open
event and the number of events so far (ids go on), and the checksum of the model
file it belongs to. It is JSON, checksummed, written atomically after the output.

Every number is kept exactly: floats as JSON's shortest round-trip text, times as
integers with their zone, so a resumed run prints times as the data wrote them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmae.errors import DataError, OptionError, shorten
from lstmae.events import Events, Surprise
from lstmae.output import atomic_output
from lstmae.series import Series
from lstmae.stream import Position

FORMAT = "lstmae-score-state"
VERSION = 1
MAX_STATE_BYTES = 256 << 20  # window - 1 rows of the widest model fit easily


@dataclass
class ScoreState:
    """What a run of `score --state` starts from and leaves for the next."""

    model_checksum: str
    position: Position
    events: Events
    surprise: Surprise  # the recent errors, that say whether a new one is news
    latest: tuple[int, pd.DataFrame] | None = None  # the latest window row and its end row
    events_before: int = 0  # events opened before this run (the first new id)

    @classmethod
    def fresh(cls, detector, cooldown: int) -> ScoreState:
        return cls(model_checksum(detector.path_), Position(), detector.events(cooldown),
                   detector.surprise())

    @property
    def opened(self) -> int:
        """Events that opened in this run."""
        return self.events.count - self.events_before


def model_checksum(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path: str, detector, cooldown: int, reset: bool = False) -> ScoreState:
    """The state at `path` for this model (a fresh one when there is none, or `reset`).

    A state of another model, or one that is damaged, is one DataError: scoring from
    it would silently continue the wrong series or drop rows.
    """
    if reset or not os.path.exists(path):
        return ScoreState.fresh(detector, cooldown)
    where = f"--state {shorten(path, 80)}"
    try:
        if os.path.getsize(path) > MAX_STATE_BYTES:
            raise ValueError("larger than any state lstmae writes")
        doc = json.loads(Path(path).read_bytes())
        body = doc["state"]
        if doc.get("format") != FORMAT:
            raise ValueError("not an lstmae score state")
        if doc.get("version") != VERSION:
            raise ValueError(f"state version {shorten(doc.get('version'))} is not version "
                             f"{VERSION}")
        if doc.get("sha256") != _digest(body):
            raise ValueError("checksum mismatch")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise ValueError("no model checksum")
    except OSError as exc:
        raise OptionError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError,
            OverflowError) as exc:
        raise DataError(f"{where}: is damaged or not an lstmae state ({shorten(str(exc), 80)}); "
                        "delete it or give --reset-state to start over") from None
    checksum = model_checksum(detector.path_)
    if body["model"] != checksum:
        raise DataError(f"{where}: belongs to another model file (or an earlier fit of "
                        f"{shorten(detector.path_, 80)}); give each model its own state, "
                        "or --reset-state to start over with this one")
    try:
        return _decode(body, detector, cooldown, checksum)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise DataError(f"{where}: is damaged ({shorten(str(exc), 80)}); delete it or give "
                        "--reset-state to start over") from None


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """One run at a time per state file (an flock on FILE.lock, released when the run
    ends, however it ends): a cron run started while the last one still scores would
    read the same state, score the same rows and page again for the same incident."""
    lock = f"{path}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OptionError(f"--state {shorten(path, 80)}: cannot create its lock file "
                          f"{shorten(lock, 80)} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataError(f"--state {shorten(path, 80)}: another lstmae score is using it "
                            "now; let it finish (or give this run a state of its own)") from None
        yield
    finally:
        os.close(fd)


def save(state: ScoreState, path: str) -> None:
    """Write the state atomically (a killed run leaves the previous state whole)."""
    body = _encode(state)
    doc = {"format": FORMAT, "version": VERSION, "sha256": _digest(body), "state": body}
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, allow_nan=False) + "\n")


def check_ahead(state: ScoreState, path: str, source: str) -> None:
    """Data whose every row is older than the state's last row: the state belongs to other
    data, or the data went back in time. Scoring it would silently score nothing."""
    at = state.position
    if at.new_rows or at.skipped == 0 or at.newest_skipped is None:
        return
    if at.newest_skipped < at.last_index:
        raise DataError(
            f"--state {shorten(path, 80)}: was last scored at {_label(at)}, after every row "
            f"of {source} (the latest {_time_text(at.newest_skipped)}); the state belongs to "
            "other data, or the data's clock went back: delete it or give --reset-state"
        )


def _label(at: Position) -> str:
    return _time_text(at.last_index)


def _time_text(value) -> str:
    if isinstance(value, np.datetime64):
        return str(pd.Timestamp(value))
    return str(value)


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


# ---------------------------------------------------------------- encoding
def _encode(state: ScoreState) -> dict:
    at, events = state.position, state.events
    latest = None
    if state.latest is not None:
        end, row = state.latest
        latest = {"end": end, "columns": list(map(str, row.columns)),
                  "row": [_cell(row[c].array) for c in row.columns]}
    return {
        "model": state.model_checksum,
        "kind": at.kind,
        "last_index": _scalar(at.last_index),
        "last_values": None if at.last_values is None else [_float(x) for x in at.last_values],
        "offset": at.offset,
        "next_window": at.next_window,
        "carried": _series(at.carried),
        "held": _series(at.held),
        "latest": latest,
        "events": {"count": events.count, "open": _stretch(events.open),
                   "pending": _stretch(events.pending)},
        "recent_errors": [_float(x) for x in state.surprise.history],
    }


def _decode(body: dict, detector, cooldown: int, checksum: str) -> ScoreState:
    history = detector.history_
    carried = _unseries(body["carried"], detector)
    if carried is not None and len(carried.values) > history - 1:
        raise ValueError(f"carries {len(carried.values)} rows for a window of {history}")
    _count(body["events"]["count"], "events")
    if body["kind"] not in (None, "rows", "number", "naive", "aware"):
        raise ValueError(f"unknown kind of time {shorten(body['kind'])!r}")
    last_values = body["last_values"]
    if last_values is not None:
        last_values = np.array([float(x) for x in last_values], dtype=np.float64)
        if last_values.shape != (len(detector.columns_),):
            raise ValueError("the last row's values do not match the model's columns")
    position = Position(carried=carried, offset=_count(body["offset"], "offset"),
                        next_window=_count(body["next_window"], "next_window"),
                        held=_unseries(body["held"], detector),
                        last_index=_unscalar(body["last_index"]), last_values=last_values,
                        kind=body["kind"])
    _check_kinds(position)
    events = detector.events(cooldown)
    events.count = int(body["events"]["count"])
    events.open = _unstretch(body["events"]["open"], detector, opened=True)
    events.pending = _unstretch(body["events"]["pending"], detector, opened=False)
    latest = None
    if body["latest"] is not None:
        raw = body["latest"]
        latest = (int(raw["end"]), pd.DataFrame(
            {c: _uncell(cell) for c, cell in zip(raw["columns"], raw["row"], strict=True)}))
    recent = np.array([float(x) for x in body["recent_errors"]], dtype=np.float64)
    if np.isnan(recent).any() or (recent < 0).any():
        raise ValueError("a recent error is not a number of at least 0")
    return ScoreState(checksum, position, events, Surprise(recent), latest, events.count)


def _stretch(event: dict | None) -> dict | None:
    """An event (or a stretch not yet news) of lstmae.events, as JSON."""
    if event is None:
        return None
    return {"id": event["id"], "onset_row": event["onset_row"], "last_end": event["last_end"],
            "windows": event["windows"], "peak_error": _float(event["peak_error"]),
            "totals": [_float(x) for x in event["totals"]],
            **{key: None if event[key] is None else _array(event[key])
               for key in ("onset", "start", "end")}}


def _unstretch(raw: dict | None, detector, opened: bool) -> dict | None:
    if raw is None:
        return None
    if (raw["id"] is not None) != opened or (raw["onset"] is not None) != opened:
        raise ValueError("an event without an id or onset, or a stretch with one")
    totals = np.array([float(x) for x in raw["totals"]], dtype=np.float64)
    if totals.shape != (len(detector.scored_),):  # one per scored column (lstmae.events)
        raise ValueError("an event's totals do not match the model's scored columns")
    event: dict[str, Any] = {key: None if raw[key] is None else _unarray(raw[key])
                             for key in ("onset", "start", "end")}
    event.update(id=None if raw["id"] is None else _count(raw["id"], "event id"),
                 onset_row=None if raw["onset_row"] is None else int(raw["onset_row"]),
                 last_end=int(raw["last_end"]), windows=_count(raw["windows"], "windows"),
                 peak_error=float(raw["peak_error"]), totals=totals)
    return event


def _series(series: Series | None) -> dict | None:
    if series is None:
        return None
    return {"values": [[_float(x) for x in row] for row in series.values],
            "index": _array(series.index), "labels": _array(series.labels),
            "rows": series.rows.tolist(), "time_col": series.time_col,
            "time_kind": series.time_kind}


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise ValueError(f"{what} is not a count")
    return value


_INDEX_KINDS = {"naive": "M", "aware": "M", "number": "iuf", "rows": "iu"}


def _check_kinds(at: Position) -> None:
    """The times a state holds are of the kind it says (a forged one could mix them)."""
    kind = at.kind
    if kind is None:
        if at.carried is not None or at.last_index is not None:
            raise ValueError("rows without a kind of time")
        return
    wanted = _INDEX_KINDS[kind]
    for series in (at.carried, at.held):
        if series is not None and (np.asarray(series.index).dtype.kind not in wanted
                                   or series.time_kind != kind):
            raise ValueError("carried rows of another kind of time")
    if at.last_index is not None and np.asarray(at.last_index).dtype.kind not in wanted:
        raise ValueError("a last time of another kind")
    if (at.last_index is None) != (at.last_values is None) and kind != "rows":
        raise ValueError("a last time without its values")


def _unseries(raw: dict | None, detector) -> Series | None:
    if raw is None:
        return None
    values = np.array(raw["values"], dtype=np.float64).reshape(-1, len(detector.columns_))
    if not np.isfinite(values).all():
        raise ValueError("a carried value is not a finite number")
    index, labels = _unarray(raw["index"]), _unarray(raw["labels"])
    if not len(index) == len(labels) == len(values) == len(raw["rows"]):
        raise ValueError("rows of different lengths")
    return Series(values=values, index=index, columns=list(detector.columns_),
                  time_col=raw["time_col"], labels=labels,
                  rows=np.array(raw["rows"], dtype=np.int64), time_kind=raw["time_kind"])


def _float(value) -> float | str:
    """JSON has no infinity or NaN: kept as text."""
    value = float(value)
    return value if np.isfinite(value) else repr(value)


def _zone(tz) -> dict | None:
    if tz is None:
        return None
    if isinstance(tz, dt.timezone):  # a fixed offset, as "+01:00" in the data
        offset = tz.utcoffset(None)
        return {"offset_s": offset.total_seconds() if offset is not None else 0}
    return {"name": str(tz)}


def _unzone(raw: dict | None):
    if raw is None:
        return None
    if "offset_s" in raw:
        offset = dt.timedelta(seconds=float(raw["offset_s"]))
        return dt.timezone.utc if not offset else dt.timezone(offset)
    return str(raw["name"])


def _array(labels) -> dict:
    """Time labels or an index, kept with their type: numbers, datetime64, a zoned
    DatetimeArray, or Timestamps of several zones."""
    if isinstance(labels, pd.arrays.DatetimeArray):  # asi8: UTC when zoned
        return {"kind": "datetimes", "unit": labels.unit, "zone": _zone(labels.tz),
                "values": labels.asi8.tolist()}
    labels = np.asarray(labels)
    if labels.dtype == object:
        return {"kind": "timestamps", "values": [
            [pd.Timestamp(t).value, _zone(pd.Timestamp(t).tz)] for t in labels]}  # ns
    if np.issubdtype(labels.dtype, np.datetime64):
        return {"kind": "datetime64", "dtype": str(labels.dtype),
                "values": labels.view(np.int64).tolist()}
    return {"kind": "numbers", "dtype": str(labels.dtype),
            "values": [_float(x) if labels.dtype.kind == "f" else int(x) for x in labels]}


def _unarray(raw: dict):
    kind, values = raw["kind"], raw["values"]
    if kind == "datetimes":
        unit, zone = raw["unit"], _unzone(raw["zone"])
        stamps = pd.to_datetime(np.array(values, dtype=np.int64), unit=unit,
                                utc=zone is not None).as_unit(unit)
        if zone is not None:
            stamps = stamps.tz_convert(zone)
        return stamps.array
    if kind == "timestamps":
        return np.array([pd.Timestamp(int(v), unit="ns", tz="UTC").tz_convert(_unzone(z))
                         for v, z in values], dtype=object)
    dtype = np.dtype(raw["dtype"])
    if kind == "datetime64":
        return np.array(values, dtype=np.int64).view(dtype)
    if kind == "numbers" and dtype.kind in "iuf":
        return np.array([float(v) if isinstance(v, str) else v for v in values], dtype=dtype)
    raise ValueError(f"unknown kind of times {shorten(kind)!r}")


def _scalar(value) -> dict | None:
    return None if value is None else _array(np.array([value]))


def _unscalar(raw: dict | None) -> Any:
    return None if raw is None else _unarray(raw)[0]


def _cell(column) -> dict:
    values = np.asarray(column)
    if values.dtype == bool:
        return {"kind": "flags", "values": values.tolist()}
    return _array(values)


def _uncell(raw: dict):
    if raw["kind"] == "flags":
        return np.array(raw["values"], dtype=bool)
    return _unarray(raw)
