"""Reading tables into validated numeric series, and writing result tables.

read_table: a path (CSV, CSV.gz, Parquet) or "-" (CSV on stdin) -> DataFrame.
to_series:  DataFrame -> Series (float64 values [N, D], time index, column names),
            with the time column found, rows ordered by time and every value
            checked to be a finite number.
write_table: DataFrame -> CSV / JSON lines / Parquet, to a file (atomically) or stdout.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstmae.errors import DataError, LstmaeWarning, OptionError

TIME_COLUMN_NAMES = ("timestamp", "time", "date", "datetime")
FILL_METHODS = ("ffill", "interpolate", "drop")
BATCH_ROWS = 100_000  # rows read and scored at a time: bounded memory, big model batches
OUTPUT_FORMATS = ("csv", "json", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".gz": "csv",
    ".jsonl": "json",
    ".json": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class Series:
    """A validated multivariate series, rows in time order."""

    values: np.ndarray  # float64 [N, D]
    index: np.ndarray  # timestamps (datetime64) or numbers, one per row
    columns: list[str]
    time_col: str | None


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq") or path.is_dir()


def read_table(source: str | os.PathLike) -> pd.DataFrame:
    """Read CSV, CSV.gz or Parquet (a file or a folder of files) from a path, or CSV
    from stdin when source is "-", into one frame."""
    return pd.concat(iter_frames(source), ignore_index=True)


@contextlib.contextmanager
def _csv_errors(name: str):
    """Turn what pandas raises on a bad CSV into one DataError naming the file."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: is empty; give a CSV file with a header row") from None
    except UnicodeDecodeError:
        raise DataError(f"{name}: is not UTF-8 text; save it as UTF-8 CSV") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: is not valid CSV ({_first_line(exc)})") from None
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        raise DataError(f"{name}: cannot be read ({_first_line(exc)})") from None


def iter_frames(
    source: str | os.PathLike, batch_rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """Read a table in batches of rows (default BATCH_ROWS), in file order: memory stays bounded.

    Like read_table, for a path (CSV, CSV.gz, Parquet file or a folder of
    Parquet files) or "-" (CSV on stdin).
    """
    batch_rows = batch_rows or BATCH_ROWS
    name = "<stdin>" if str(source) == "-" else str(source)
    if name == "<stdin>":
        yield from _iter_csv(sys.stdin.buffer, name, batch_rows)
        return
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir() and not _parquet_files(path):
        raise DataError(f"{path}: is a folder, not a data file; give a CSV or Parquet file")
    if _is_parquet(path):
        yield from _iter_parquet(path, batch_rows)
    else:
        yield from _iter_csv(path, name, batch_rows)


def _iter_csv(source, name: str, batch_rows: int) -> Iterator[pd.DataFrame]:
    compression = "infer" if name != "<stdin>" else None
    with _csv_errors(name):
        reader = pd.read_csv(source, compression=compression, chunksize=batch_rows)
    with reader:
        empty = True
        while True:
            with _csv_errors(name):
                chunk = next(reader, None)
            if chunk is None:
                break
            empty = empty and chunk.empty
            yield chunk
    if empty:
        raise DataError(f"{name}: holds no data rows; give a file with a header and rows")


def _parquet_files(path: Path) -> list[Path]:
    """The file itself, or a folder's Parquet files in path order (a partitioned dataset).

    Like pyarrow's datasets, names starting with "." or "_" (_SUCCESS, .crc) are skipped.
    """
    if not path.is_dir():
        return [path]
    return sorted(
        file for file in path.rglob("*")
        if file.suffix.lower() in (".parquet", ".pq") and file.is_file()
        and not any(part.startswith((".", "_")) for part in file.relative_to(path).parts)
    )


def _iter_parquet(path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    for file in _parquet_files(path):
        try:
            # One file at a time, column chunks read as needed (pre_buffer=False): pyarrow's
            # dataset scanner and pre-buffering read ahead, and peak memory then grew with
            # the file (1.0 GiB at 2.5M rows against 0.7 GiB at 0.5M).
            with pq.ParquetFile(file, pre_buffer=False) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    rows += batch.num_rows
                    yield batch.to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"{file}: not a readable Parquet file ({_first_line(exc)}); "
                "check that the file is complete"
            ) from None
    if rows == 0:
        raise DataError(f"{path}: holds no data rows")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def find_time_column(frame: pd.DataFrame, time_col: str | None) -> str | None:
    """The named time column, else one named like a time or of datetime type, else None."""
    if time_col is not None:
        if time_col not in frame.columns:
            raise DataError(
                f"time column '{time_col}' is not in the data; "
                f"columns are: {', '.join(map(str, frame.columns))}"
            )
        return time_col
    for col in frame.columns:
        if str(col).strip().lower() in TIME_COLUMN_NAMES:
            return col
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            return col
    return None


def _parse_time(column: pd.Series, name: str, source: str, first_row: int) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    elif pd.api.types.is_numeric_dtype(column):
        parsed = column  # e.g. epoch seconds: ordered numbers are a fine time axis
    else:
        try:
            parsed = pd.to_datetime(column, format="mixed")
        except (ValueError, TypeError, OverflowError):
            bad = _first_unparsable_time(column)
            raise DataError(
                f"{source}: time column '{name}': cannot parse {bad!r} as a timestamp; "
                "fix the value or name another column with --time-col"
            ) from None
    if parsed.isna().any():
        row = first_row + int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(
            f"{source}: time column '{name}': row {row + 1} is empty; every row needs a time"
        )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy()


def _first_unparsable_time(column: pd.Series) -> str:
    for value in column:
        try:
            pd.to_datetime(value)
        except (ValueError, TypeError, OverflowError):
            return str(value)
    return str(column.iloc[0])


def _numeric_columns(frame: pd.DataFrame, exclude: str | None) -> list[str]:
    return [
        col
        for col in frame.columns
        if col != exclude
        and (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]))
    ]


def to_series(
    frame: pd.DataFrame,
    columns: list[str] | None = None,
    time_col: str | None = None,
    fill: str | None = None,
    source: str = "data",
    sort: bool = True,
    first_row: int = 0,
) -> Series:
    """Validate a frame and turn it into a Series.

    columns: the value columns, in this order (default: every numeric column but
    the time column). Rows are put in time order (with a warning when they were
    not; an error with sort=False). Missing or non-finite values are an error
    unless `fill` says otherwise. first_row: the frame's first row number in its
    file (for batches), so that errors name the file's row.
    """
    if fill is not None and fill not in FILL_METHODS:
        raise OptionError(f"--fill must be one of {', '.join(FILL_METHODS)} (got {fill!r})")
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    tcol = find_time_column(frame, time_col)
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source}: missing column(s) {', '.join(missing)}; "
                f"columns are: {', '.join(frame.columns)}"
            )
        if tcol in columns:
            if time_col is not None:
                raise OptionError(f"column '{tcol}' cannot be both the time column and a value")
            tcol = None  # the user wants this column as a value, not as time
        value_cols = list(columns)
    else:
        value_cols = _numeric_columns(frame, tcol)
        if not value_cols:
            raise DataError(
                f"{source}: no numeric columns to model; columns are: {', '.join(frame.columns)}"
            )
    values = frame[value_cols]
    for col in value_cols:
        if not (
            pd.api.types.is_numeric_dtype(values[col]) or pd.api.types.is_bool_dtype(values[col])
        ):
            text = values[col]
            unparsable = np.flatnonzero((text.notna() & pd.to_numeric(text, errors="coerce")
                                         .isna()).to_numpy())
            hint = ""
            if unparsable.size:
                row = int(unparsable[0])
                hint = f" (row {first_row + row + 1}: {str(text.iloc[row])!r})"
            raise DataError(
                f"{source}: column '{col}' is not numeric{hint}; "
                "write plain numbers without thousands separators or units"
            )
    values = values.astype("float64")

    if tcol is not None:
        index = _parse_time(frame[tcol], tcol, source, first_row)
        order = np.argsort(index, kind="stable")
        if not np.all(order == np.arange(len(order))):
            if not sort:
                raise DataError(
                    f"{source}: rows are not in time order; "
                    f"batches are read in order, so sort the file by '{tcol}' first"
                )
            warnings.warn(
                f"{source}: rows were not in time order; sorted them by '{tcol}'",
                LstmaeWarning,
                stacklevel=2,
            )
            index = index[order]
            values = values.iloc[order].reset_index(drop=True)
        duplicated = np.flatnonzero(index[1:] == index[:-1])
        if duplicated.size:
            # Real logs repeat timestamps (clock changes, merged sources): keep every
            # row, in file order, rather than refuse the file.
            warnings.warn(
                f"{source}: time column '{tcol}' repeats {_describe_time(index[duplicated[0]])}"
                f" ({duplicated.size} duplicate timestamp(s)); kept the rows in file order",
                LstmaeWarning,
                stacklevel=2,
            )
    else:
        index = np.arange(len(values), dtype=np.int64)

    values, index = _handle_missing(values, index, fill, source, first_row)
    return Series(values=values, index=index, columns=value_cols, time_col=tcol)


def _describe_time(value) -> str:
    return str(pd.Timestamp(value)) if isinstance(value, np.datetime64) else str(value)


def _handle_missing(
    values: pd.DataFrame, index: np.ndarray, fill: str | None, source: str, first_row: int
):
    array = values.to_numpy(dtype=np.float64)
    with np.errstate(over="ignore"):
        # float32 is what the model computes in: larger values would overflow there
        bad = ~np.isfinite(array) | (np.abs(array) > np.finfo(np.float32).max / 16)
    if not bad.any():
        return array, index
    if fill is None:
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{source}: row {first_row + row + 1}, column '{values.columns[col]}' is "
            f"{_describe(array[row, col])} ({int(bad.sum())} bad value(s) found); "
            "fix the data or choose --fill ffill|interpolate|drop"
        )
    frame = values.mask(bad)
    if fill == "drop":
        keep = ~bad.any(axis=1)
        frame, index = frame[keep], index[keep]
    elif fill == "ffill":
        frame = frame.ffill().bfill()
    else:
        frame = frame.interpolate(limit_direction="both")
    if frame.empty or frame.isna().any().any():
        raise DataError(f"{source}: no usable values left after --fill {fill}")
    warnings.warn(
        f"{source}: {int(bad.sum())} missing or non-finite value(s) handled with --fill {fill}",
        LstmaeWarning,
        stacklevel=3,
    )
    return frame.to_numpy(dtype=np.float64), index


def _describe(value: float) -> str:
    if np.isnan(value):
        return "missing (empty or NaN)"
    if np.isinf(value):
        return "infinite"
    return f"too large ({value:g})"


def format_for(path: str | None, fmt: str | None) -> str | None:
    """The output format: the one asked for, else the one the file extension names."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise OptionError(f"--format must be one of table, {', '.join(OUTPUT_FORMATS)}")
        return fmt
    if path is None or path == "-":
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise OptionError(
            f"--output {path}: cannot tell the format from '{suffix or 'no extension'}'; "
            "use .csv, .jsonl or .parquet, or give --format"
        )
    return _SUFFIX_FORMATS[suffix]


def check_writable(path: str | os.PathLike) -> None:
    """Fail before any work is done when an output file could not be written."""
    target = Path(path)
    if target.is_dir():
        raise OptionError(f"{target}: is a folder; give a file name to write")
    folder = target.parent
    if not folder.is_dir():
        raise OptionError(f"{target}: folder '{folder}' does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OptionError(f"{target}: cannot write in folder '{folder}'")


def write_table(frame: pd.DataFrame, path: str | None, fmt: str) -> None:
    """Write CSV / JSON lines / Parquet to stdout (path None or "-") or atomically to a file."""
    with TableWriter(path, fmt) as writer:
        writer.write(frame)


def _json_lines(frame: pd.DataFrame) -> str:
    """One JSON object per row, floats to the last digit (repr round-trips), NaN as null,
    timestamps in ISO 8601 at full precision. pandas' to_json keeps ~10 digits."""
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            columns[name] = [None if pd.isna(v) else v.isoformat() for v in column]
        elif pd.api.types.is_float_dtype(column):
            columns[name] = [None if v != v else v for v in column.tolist()]
        else:
            columns[name] = column.tolist()
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    return "".join(json.dumps(dict(zip(names, row, strict=True))) + "\n" for row in rows)


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
        self._parquet = None
        self._atomic = None

    def __enter__(self) -> TableWriter:
        if self.path is None:
            self._handle = sys.stdout.buffer
        else:
            self._atomic = atomic_output(self.path)
            tmp = self._atomic.__enter__()
            self._handle = gzip.open(tmp, "wb") if self.gzip else open(tmp, "wb")  # noqa: SIM115
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            self._empty = frame
            return
        self._write(frame)

    def _write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._handle, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        elif self.fmt == "json":
            self._handle.write(_json_lines(frame).encode("utf-8"))
        else:
            header = not self._started
            self._handle.write(frame.to_csv(index=False, header=header).encode("utf-8"))
        self._started = True
        self.rows += len(frame)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and not self._started and self._empty is not None:
                self._write(self._empty)  # no rows at all: still a header / a schema
            if self._parquet is not None:
                self._parquet.close()
            if self.path is None:
                self._handle.flush()
            else:
                self._handle.close()
        finally:
            if self._atomic is not None:
                self._atomic.__exit__(exc_type, exc, tb)
        return False


class atomic_output:
    """Context manager giving a temporary path beside `path`, renamed onto it on success.

    A job killed midway leaves the old file untouched and at most a stray
    `.name.*.tmp` file, which the next run does not trip over.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> str:
        check_writable(self.path)
        fd, self.tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            with open(self.tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp, self.path)
        else:
            Path(self.tmp).unlink(missing_ok=True)
        return False
