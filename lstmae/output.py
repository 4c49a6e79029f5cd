"""Writing results: CSV / JSON lines / Parquet to stdout or to a file, never destroying one.

Rules every output path keeps (README, "Files it writes"):
- an output is refused, before any work, when it is one of the command's own
  inputs (the data, the model, the labels) by any path: symlinks and hard links
  count (os.path.samefile), and so does a file inside a data folder;
- a regular file is written to a temporary file beside it and renamed into
  place, so a killed job, a full disk or an I/O error leaves the old file whole
  and no temporary file behind (Ctrl-C, SIGTERM and SIGHUP remove it);
- something that is not a regular file (/dev/null, /dev/stdout, a FIFO) is
  written into as a stream: never replaced by a regular file;
- any failure to write is one OutputError naming the file.
"""

from __future__ import annotations

import errno
import gzip
import json
import math
import os
import secrets
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmae.errors import OptionError, OutputError, shorten
from lstmae.params import OUTPUT_FORMATS

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".gz": "csv",
    ".jsonl": "json",
    ".json": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".prom": "prom",
}
# JSON has no infinity: an error that overflowed is written as the largest double,
# which every JSON reader parses as a number above any threshold.
JSON_INFINITY = sys.float_info.max


def format_for(path: str | None, fmt: str | None) -> str | None:
    """The output format: the one asked for, else the one the file extension names."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise OptionError(f"--format must be one of table, {', '.join(OUTPUT_FORMATS)}")
        return fmt
    if path is None or path == "-":
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS and is_stream(path):
        return "csv"  # /dev/stdout, a FIFO: CSV, as on a pipe
    if suffix not in _SUFFIX_FORMATS:
        raise OptionError(
            f"--output {path}: cannot tell the format from '{suffix or 'no extension'}'; "
            "use .csv, .jsonl, .parquet or .prom, or give --format"
        )
    return _SUFFIX_FORMATS[suffix]


def is_stream(path: str | os.PathLike) -> bool:
    """An existing target that is not a regular file or folder (a device, FIFO or socket),
    or a name for an open stream (/dev/stdout, /dev/fd/N, /proc/self/fd/N), whatever it
    points to: written into, never replaced."""
    if str(path).startswith(("/dev/std", "/dev/fd/", "/proc/self/fd/")):
        return os.path.exists(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[tuple[str, str | os.PathLike | None]] = (),
    option: str = "--output",
) -> None:
    """Fail before any work is done when `path` cannot or must not be written.

    inputs: (what, path) pairs of the command's inputs ("data", "model", "labels");
    an output that is one of them, by any path, or inside an input folder, is refused.
    """
    try:
        _check_output(Path(path), inputs, option)
    except OSError as exc:  # a name too long, a loop of symlinks ...
        raise OptionError(f"{option} {shorten(path, 80)}: cannot write here: "
                          f"{exc.strerror or exc}") from None


def _check_output(target: Path, inputs, option: str) -> None:
    for what, source in inputs:
        if source is None or str(source) == "-" or not os.path.exists(source):
            continue
        if os.path.exists(target) and os.path.samefile(target, source):
            raise OptionError(
                f"{option} {target}: is the {what} file {source} itself; give another "
                "file name, so that the input stays whole"
            )
        if os.path.isdir(source) and _inside(target, Path(source)):
            raise OptionError(
                f"{option} {target}: is inside the {what} folder {source}; "
                "write the output somewhere else"
            )
    if is_stream(target):
        return  # written into as it is, like a shell redirection
    if target.is_dir():
        raise OptionError(f"{option} {target}: is a folder; give a file name to write")
    folder = Path(os.path.realpath(target)).parent
    if not folder.is_dir():
        raise OptionError(f"{option} {target}: folder '{target.parent}' does not exist; "
                          "create it first")
    if not os.access(folder, os.W_OK):
        raise OptionError(f"{option} {target}: cannot write in folder '{target.parent}'")
    if target.exists() and not os.access(target, os.W_OK):
        raise OptionError(f"{option} {target}: is read-only; make it writable or write "
                          "to another file")


def _inside(target: Path, folder: Path) -> bool:
    real_folder = os.path.realpath(folder)
    real_target = os.path.realpath(target)
    return os.path.commonpath([real_folder, real_target]) == real_folder


def write_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """One line for a write that failed: the file and the system's reason."""
    path = shorten(path, 80)
    reason = exc.strerror or type(exc).__name__
    hint = {errno.ENOSPC: "; free some space", errno.EDQUOT: "; free some space",
            errno.EROFS: "; write to another file system"}.get(exc.errno or 0, "")
    return OutputError(f"cannot write {path}: {reason}{hint}; the old file, if any, is unchanged")


class AtomicFile:
    """A temporary file beside `path` that becomes `path` on commit(), or vanishes on discard().

    `target` is where to write: the temporary file, or for a device or FIFO
    the path itself (written into as a stream, never replaced). A job killed
    with SIGKILL may leave a stray `.name.*.tmp` that the next run ignores.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.stream = is_stream(self.path)
        self._done = False
        if self.stream:
            self.target = str(self.path)
            return
        real = Path(os.path.realpath(self.path))  # through symlinks, as a shell's > would
        self._final = real
        try:
            fd, self.target = _temporary(real)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        os.close(fd)
        try:
            mode = real.stat().st_mode & 0o7777  # keep the mode of the file it replaces
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp makes 0600; give the usual mode
        os.chmod(self.target, mode)

    def commit(self) -> None:
        if self._done:
            return
        self._done = True
        if self.stream:
            return
        try:
            with open(self.target, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(self.target, self._final)
        except OSError as exc:
            Path(self.target).unlink(missing_ok=True)
            raise write_error(self.path, exc) from None

    def discard(self) -> None:
        if self._done:
            return
        self._done = True
        if not self.stream:
            Path(self.target).unlink(missing_ok=True)


def _temporary(final: Path) -> tuple[int, str]:
    """mkstemp beside `final`, with a name no longer than the file system allows.

    `.name.XXXXXXXX.tmp` for a short name; for a long one the name is cut so that
    the temporary name is exactly as long as the name it replaces.
    """
    name = final.name
    try:
        limit = os.pathconf(final.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for _ in range(100):
        tag = secrets.token_hex(4)
        tmp = f".{name}.{tag}.tmp"
        if len(tmp.encode()) > limit:
            keep = max(1, len(name) - len(tag) - 6)
            tmp = f".{name[:keep]}.{tag}.tmp"
        path = final.parent / tmp
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        return fd, str(path)
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(final))


class atomic_output:
    """`with atomic_output(path) as tmp:` write to tmp; it replaces path when the block ends.

    Any OSError inside the block becomes one OutputError naming `path`; an
    exception or an interrupt discards the temporary file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = path

    def __enter__(self) -> str:
        self._file = AtomicFile(self.path)
        return self._file.target

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self._file.commit()
            return False
        self._file.discard()
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise write_error(self.path, exc) from None
        return False


def _json_value(value):
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return math.copysign(JSON_INFINITY, value)
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # datetime.datetime / date
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def _json_lines(frame: pd.DataFrame) -> str:
    """One JSON object per row, floats to the last digit (repr round-trips), NaN as null,
    timestamps in ISO 8601 at full precision with their offset. pandas' to_json keeps
    ~10 digits and writes offsets as UTC."""
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            columns[name] = [None if pd.isna(v) else v.isoformat() for v in column]
        else:
            columns[name] = [_json_value(v) for v in column.tolist()]
    names = [str(n) for n in columns]
    rows = zip(*columns.values(), strict=True)
    return "".join(
        json.dumps(dict(zip(names, row, strict=True)), allow_nan=False) + "\n" for row in rows
    )


def _for_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as text, each by itself: pandas writes a datetime column as dates alone when
    every time in it is midnight, and with fractions on all when one has them, so the
    same row would read differently in another batch (or another run with --state)."""
    times = [name for name in frame.columns
             if pd.api.types.is_datetime64_any_dtype(frame[name])
             or (frame[name].dtype == object and len(frame[name])
                 and isinstance(frame[name].iloc[0], pd.Timestamp))]
    if not times:
        return frame
    frame = frame.copy()
    for name in times:
        frame[name] = time_text(frame[name])
    return frame


def time_text(column: pd.Series) -> np.ndarray:
    """ISO 8601 with a space, as pandas prints one time: 2026-01-19 00:00:00, a fraction
    only when there is one, and the UTC offset of times that have a zone (+01:00)."""
    if column.dtype == object or not len(column):  # Timestamps of several offsets (DST)
        return np.array([str(value) for value in column], dtype=object)
    offsets = None
    if column.dt.tz is not None:
        utc = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        column = column.dt.tz_localize(None)  # the wall-clock times, as written
        offsets = (column.to_numpy() - utc).astype("timedelta64[s]").astype(np.int64)
    wall = column.to_numpy()
    unit = np.datetime_data(wall.dtype)[0]
    # Nanoseconds into the second, from the column's own unit (years past 2262 overflow
    # nanoseconds since the epoch).
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}.get(unit, 1)
    nanos = (wall.view(np.int64) % per_second) * (1_000_000_000 // per_second)
    text = np.datetime_as_string(wall, unit="s")
    micros = (nanos != 0) & (nanos % 1000 == 0)
    if micros.any():
        text = np.where(micros, np.datetime_as_string(wall, unit="us"), text)
    if (nanos % 1000 != 0).any():
        text = np.where(nanos % 1000 != 0, np.datetime_as_string(wall, unit="ns"), text)
    text = np.char.replace(text.astype(str), "T", " ")
    if offsets is not None:
        signs = np.where(offsets < 0, "-", "+")
        minutes = np.abs(offsets) // 60
        text = np.char.add(text, np.char.add(signs, np.char.add(
            np.char.zfill((minutes // 60).astype(str), 2),
            np.char.add(":", np.char.zfill((minutes % 60).astype(str), 2)))))
    return text.astype(object)


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps whose offsets change within the column (daylight-saving time) as UTC:
    Parquet holds one time zone per column. A single zone or offset is kept as it is."""
    mixed = [
        name for name in frame.columns
        if frame[name].dtype == object and len(frame[name])
        and isinstance(frame[name].iloc[0], pd.Timestamp)
    ]
    if not mixed:
        return frame
    frame = frame.copy()
    for name in mixed:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def write_table(frame: pd.DataFrame, path: str | None, fmt: str) -> None:
    """Write CSV / JSON lines / Parquet to stdout (path None or "-") or atomically to a file."""
    with TableWriter(path, fmt) as writer:
        writer.write(frame)


class TableWriter:
    """Writes a table batch by batch: to stdout, or to a temporary file renamed into
    place when every batch is written (nothing is left behind on failure).

        with TableWriter("out.parquet", "parquet") as out:
            for frame in frames:
                out.write(frame)
    """

    def __init__(self, path: str | None, fmt: str):
        self.path = None if path in (None, "-") else path
        self.fmt = fmt
        self.gzip = self.path is not None and str(self.path).lower().endswith(".gz")
        self.rows = 0
        self._started = False
        self._empty: pd.DataFrame | None = None  # the columns, should no row come
        self._parquet: Any = None  # a pyarrow ParquetWriter, once the first batch is seen
        self._file: AtomicFile | None = None

    def __enter__(self) -> TableWriter:
        if self.path is None:
            if sys.stdout is None:
                raise OutputError("standard output is closed; give -o FILE to write the result")
            self._handle = sys.stdout.buffer
            return self
        self._file = AtomicFile(self.path)
        try:
            raw = open(self._file.target, "wb")  # noqa: SIM115
            self._handle = gzip.GzipFile(fileobj=raw, mode="wb") if self.gzip else raw
            self._raw = raw
        except OSError as exc:
            self._file.discard()
            raise write_error(self.path, exc) from None
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            self._empty = frame
            return
        self._write(frame)

    def flush(self) -> None:
        """Pass what is written on at once (--follow: a row as soon as it is scored). A CSV
        stream's header goes out with the first batch read, rows or none, so that whoever
        reads the stream sees it start before the first event."""
        if self.fmt == "csv" and not self._started and self._empty is not None:
            self._write(self._empty)
        if self.path is None and self.fmt != "parquet":
            self._handle.flush()

    def _write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(_for_parquet(frame), preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._handle, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        elif self.fmt == "json":
            self._handle.write(_json_lines(frame).encode("utf-8"))
        else:
            header = not self._started
            self._handle.write(_for_csv(frame).to_csv(index=False, header=header)
                               .encode("utf-8"))
        self._started = True
        self.rows += len(frame)

    def _finish(self) -> None:
        if not self._started and self._empty is not None:
            self._write(self._empty)  # no rows at all: still a header / a schema
        if self._parquet is not None:
            self._parquet.close()
        if self.path is None:
            self._handle.flush()
        else:
            self._handle.close()
            if self._handle is not self._raw:
                self._raw.close()

    def _abandon(self) -> None:
        if self.path is None:
            return
        for handle in {id(self._handle): self._handle, id(self._raw): self._raw}.values():
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - already failing; the first error is the one shown
                pass

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._finish()
            except OSError as failure:
                if self._file is not None:
                    self._abandon()
                    self._file.discard()
                if isinstance(failure, BrokenPipeError) or self.path is None:
                    raise
                raise write_error(self.path, failure) from None
            except BaseException:
                if self._file is not None:
                    self._abandon()
                    self._file.discard()
                raise
            if self._file is not None:
                self._file.commit()
            return False
        if self._file is not None:
            self._abandon()
            self._file.discard()
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                raise write_error(self.path or self._file.path, exc) from None
        return False
