"""Reading data: a path (CSV, CSV.gz, Parquet file or folder of Parquet files) or
"-" (CSV on stdin) -> DataFrame batches, in file order, memory bounded by the batch.

Repeated column names are refused here, before pandas renames them; a time column
whose type changes between the files of a folder too. Turning a frame into a
validated series is lstmae.series; writing results is lstmae.output.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from lstmae.errors import DataError, name_list, shorten

BATCH_ROWS = 100_000  # rows read and scored at a time: bounded memory, big model batches


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
        raise DataError(f"{name}: is not valid CSV ({shorten(_first_line(exc), 120)})") from None
    except (gzip.BadGzipFile, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read ({shorten(_first_line(exc), 120)}); check that "
                        "the file is complete and compressed as its name says") from None


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
        if sys.stdin is None:
            raise DataError("<stdin>: standard input is closed; give a file path instead of -")
        yield from _iter_csv(None, name, batch_rows)
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


class _Prefixed(io.RawIOBase):
    """A binary stream that gives `prefix` first, then the rest of `stream`."""

    def __init__(self, prefix: bytes, stream):
        self._prefix, self._stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n], self._prefix = self._prefix[:n], self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


_COMPRESSED = {".gz": gzip.open}


def _open_csv(path: Path | None, stack: contextlib.ExitStack):
    if path is None:
        return sys.stdin.buffer
    opener = _COMPRESSED.get(path.suffix.lower(), open)
    return stack.enter_context(opener(path, "rb"))


def _header(stream, name: str) -> bytes:
    """The header line(s) of a CSV, checked for repeated column names.

    pandas renames a repeated name to `name.1` without a word, so a model could
    silently be trained on a column other than the one meant.
    """
    raw = stream.readline(1 << 20)
    while raw.count(b'"') % 2 and len(raw) < 1 << 20:  # a quoted name holding a newline
        more = stream.readline(1 << 20)
        if not more:
            break
        raw += more
    text = raw.decode("utf-8-sig")  # UnicodeDecodeError: reported as "not UTF-8"
    names = next(csv.reader([text.rstrip("\r\n")]), [])
    check_unique([n for n in names if n.strip()], name)
    return raw


def check_unique(names, source: str, what: str = "column") -> None:
    seen, repeated = set(), []
    for n in names:
        if n in seen and n not in repeated:
            repeated.append(n)
        seen.add(n)
    if repeated:
        raise DataError(
            f"{source}: {what} name(s) {name_list([repr(n) for n in repeated])} appear more "
            "than once; give every column its own name"
        )


def _iter_csv(path: Path | None, name: str, batch_rows: int) -> Iterator[pd.DataFrame]:
    with contextlib.ExitStack() as stack:
        with _csv_errors(name):
            stream = _open_csv(path, stack)
            head = _header(stream, name)
            if not head.strip():
                raise pd.errors.EmptyDataError
            both = io.BufferedReader(_Prefixed(head, stream), 1 << 16)
            reader = stack.enter_context(pd.read_csv(both, chunksize=batch_rows))
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


def _time_type(arrow_type) -> str | None:
    """'timestamp (zone Z)' / 'timestamp without zone' for timestamp columns, else None."""
    import pyarrow as pa

    if not pa.types.is_timestamp(arrow_type):
        return None
    return f"timestamp (zone {arrow_type.tz})" if arrow_type.tz else "timestamp without zone"


def _iter_parquet(path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    first: tuple[Path, dict] | None = None  # the first file and its columns' types
    for file in _parquet_files(path):
        try:
            # One file at a time, column chunks read as needed (pre_buffer=False): pyarrow's
            # dataset scanner and pre-buffering read ahead, and peak memory then grew with
            # the file (1.0 GiB at 2.5M rows against 0.7 GiB at 0.5M).
            with pq.ParquetFile(file, pre_buffer=False) as parquet:
                schema = parquet.schema_arrow
                check_unique(schema.names, str(file))
                types = {f.name: f.type for f in schema}
                if first is None:
                    first = (file, types)
                _check_same_time_types(first, file, types)
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    rows += batch.num_rows
                    yield batch.to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"{file}: not a readable Parquet file ({shorten(_first_line(exc), 120)}); "
                "check that the file is complete"
            ) from None
    if rows == 0:
        raise DataError(f"{path}: holds no data rows")


def _check_same_time_types(first: tuple[Path, dict], file: Path, types: dict) -> None:
    """A column that is a timestamp in one file of a folder must be the same kind in all."""
    first_file, first_types = first
    for col, arrow_type in types.items():
        if col not in first_types:
            continue
        was, now = _time_type(first_types[col]), _time_type(arrow_type)
        if (was or now) and was != now:
            raise DataError(
                f"{file}: column '{shorten(col)}' is {now or str(arrow_type)} here but "
                f"{was or str(first_types[col])} in {first_file}; write every file of the "
                "folder with the same column types"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------- --follow
FOLLOW_POLL_S = 0.25  # how often a file that has stopped growing is looked at again
FOLLOW_READ_BYTES = 1 << 20  # at most this much text becomes one batch
FOLLOW_MAX_PENDING = 16 << 20  # text waiting for the end of its row


def follow_frames(source: str | os.PathLike, poll_s: float = FOLLOW_POLL_S,
                  stop: Callable[[], bool] | None = None) -> Iterator[pd.DataFrame]:
    """CSV rows as they arrive, a batch as soon as complete lines are there: from stdin
    until it ends, or from a file as it grows (as `tail -F`: a file truncated or
    replaced, as log rotation does, is read again from its first row) until Ctrl-C.

    The stream ends, as its end would, when `stop()` says so (looked at every poll_s
    while waiting) or on Ctrl-C while waiting: the rows read so far are scored and
    written. Memory stays bounded by one read.
    """
    name = "<stdin>" if str(source) == "-" else str(source)
    if name != "<stdin>" and (Path(source).suffix.lower() in (".gz", ".parquet", ".pq")
                              or Path(source).is_dir()):
        raise DataError(f"{name}: --follow reads CSV text as it grows; give a .csv file or - "
                        "for stdin")
    tail = _Tail(source, name, poll_s, stop or (lambda: False))
    try:
        with tail:
            header = None
            pending = b""
            for chunk in tail.chunks():
                if chunk is None:  # the file was replaced: it starts with its header again
                    pending, header = b"", None
                    continue
                pending += chunk
                if header is None:
                    header, pending = _follow_header(pending, name)
                    if header is None:
                        continue
                lines, pending = _complete_lines(pending, tail.ended)
                if len(pending) > FOLLOW_MAX_PENDING:
                    raise DataError(f"{name}: a row of over {FOLLOW_MAX_PENDING >> 20} MiB, or a "
                                    "quoted field that does not end; check the quoting")
                if lines.strip():
                    with _csv_errors(name):
                        yield pd.read_csv(io.BytesIO(header + lines))
            if header is None:
                raise DataError(f"{name}: is empty; give CSV with a header row")
    except KeyboardInterrupt:
        return


def _follow_header(text: bytes, name: str) -> tuple[bytes | None, bytes]:
    """(the header line, the rest) once a whole header line is there, else (None, text)."""
    end = text.find(b"\n")
    while end >= 0 and text[:end].count(b'"') % 2:  # a quoted name holding a newline
        end = text.find(b"\n", end + 1)
    if end < 0:
        return None, text
    stream = io.BytesIO(text[:end + 1])
    with _csv_errors(name):
        head = _header(stream, name)
    if not head.strip():
        raise DataError(f"{name}: is empty; give CSV with a header row")
    return head, text[end + 1:]


def _complete_lines(text: bytes, ended: bool) -> tuple[bytes, bytes]:
    """(whole rows, the rest): a row ends at a newline outside a quoted field, or at the end."""
    if ended:
        return text, b""
    cut = _last_row_end(text)
    return text[:cut], text[cut:]


def _last_row_end(text: bytes) -> int:
    """The index after the last newline that ends a CSV row.

    As the CSV parser reads it: a quote opens a quoted field only at a field's start
    (a stray `5" disk` inside a field is text), and `""` inside one is a quote.
    """
    if b'"' not in text:
        return text.rfind(b"\n") + 1
    quote, comma, newline, cr = 0x22, 0x2C, 0x0A, 0x0D
    quoted = closed = False
    field_start, end = True, 0
    for i, byte in enumerate(text):
        if quoted:
            if byte == quote:
                quoted, closed = False, True
            continue
        if closed and byte == quote:  # "" inside a quoted field
            quoted, closed = True, False
            continue
        closed = False
        if byte == quote and field_start:
            quoted, field_start = True, False
        elif byte == comma:
            field_start = True
        elif byte == newline:
            end, field_start = i + 1, True
        elif byte != cr:
            field_start = False
    return end


class _Tail:
    """The bytes of stdin or of a growing file, as they arrive."""

    def __init__(self, source, name: str, poll_s: float, stop: Callable[[], bool]):
        self.source, self.name, self.poll_s, self.stop = source, name, poll_s, stop
        self.ended = False
        self._file: io.BufferedReader | None = None

    def __enter__(self) -> _Tail:
        if self.name == "<stdin>":
            if sys.stdin is None:
                raise DataError("<stdin>: standard input is closed; give a file path instead")
            self._fd = sys.stdin.fileno()
        else:
            self._open()
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()

    def _open(self) -> None:
        path = Path(self.source)
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in __exit__ or on reopen
        except FileNotFoundError:
            raise DataError(f"{path}: no such file; check the path") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        self._inode = os.fstat(self._file.fileno()).st_ino  # to see it replaced

    def chunks(self) -> Iterator[bytes | None]:
        """Bytes as they come; None when the file was replaced or truncated (read again)."""
        if self._file is None:
            while True:
                if not select.select([self._fd], [], [], self.poll_s)[0]:
                    if self.stop():
                        return
                    continue
                data = os.read(self._fd, FOLLOW_READ_BYTES)
                if not data:
                    self.ended = True
                    yield b""
                    return
                yield data
        while True:
            data = self._file.read(FOLLOW_READ_BYTES)
            if data:
                yield data
                continue
            if self._replaced():
                self._file.close()
                self._open()
                yield None
                continue
            if self.stop():
                return
            time.sleep(self.poll_s)

    def _replaced(self) -> bool:
        assert self._file is not None
        try:
            now = os.stat(self.source)
        except OSError:
            return False  # moved away and not yet there again: keep reading the old one
        return now.st_ino != self._inode or now.st_size < self._file.tell()
