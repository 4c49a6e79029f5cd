"""The `lstmae` command line: parse options, call Detector, render.

stdout carries data (a table on a terminal, CSV / JSON lines / Parquet when
piped or written with -o); stderr carries what people read (progress,
summaries, warnings, errors). No ML here, and no import of torch or pandas at
module level: `lstmae --help` and `--version` stay fast.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lstmae import __version__
from lstmae import params as limits
from lstmae.errors import LstmaeError, LstmaeWarning, OptionError, printable, shorten

app = typer.Typer(
    name="lstmae",
    help="Time-series anomaly detection with an LSTM autoencoder.\n\n"
    "Train on normal data, then score new data:\n\n"
    "  lstmae fit data.csv\n\n"
    "  lstmae score new.csv --threshold 0.3",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
class _HumanChannel:
    """stderr for rich, looked up at each write (tests replace sys.stderr). A message
    that cannot be written (stderr closed or full) is dropped: the exit status still
    says how the command ended, and 1 keeps meaning "anomalies"."""

    def write(self, text: str) -> int:
        try:
            if sys.stderr is not None:
                sys.stderr.write(text)
        except (OSError, ValueError):
            pass
        return len(text)

    def flush(self) -> None:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        try:
            return sys.stderr is not None and sys.stderr.isatty()
        except (OSError, ValueError):
            return False


stderr = Console(file=_HumanChannel(), highlight=False)
DEFAULT_MODEL = "model.lstmae"
# Exit statuses (README, "Exit status"): scripts and cron act on them.
EXIT_OK, EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class Loss(str, enum.Enum):
    mse = "mse"
    l1 = "l1"


class Error(str, enum.Enum):
    mae_peak = "mae+peak"
    mae = "mae"
    mse = "mse"


class Precision(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class ThresholdMethod(str, enum.Enum):
    max = "max"
    quantile = "quantile"
    pot = "pot"
    sigma = "sigma"


class Fill(str, enum.Enum):
    ffill = "ffill"
    interpolate = "interpolate"
    drop = "drop"


DataArg = Annotated[
    str, typer.Argument(help="CSV, CSV.gz or Parquet file, or - for CSV on stdin.", metavar="DATA")
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model file.")]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format", "-f",
        help="Output format. Default: a table on a terminal, CSV when piped, "
        "or what the --output extension says.",
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write here (.csv, .csv.gz, .jsonl, .parquet) "
                 "instead of stdout."),
]
TopOpt = Annotated[int, typer.Option("--top", help="Rows shown in the terminal table.", min=1,
                                     max=limits.MAX_TOP)]
FillOpt = Annotated[
    Fill | None,
    typer.Option("--fill", help="Missing or non-finite values: an error unless you pick a fix."),
]
BatchRowsOpt = Annotated[
    int | None, typer.Option(help="Rows read and scored at a time (default 100000); memory "
                             "stays bounded by it, whatever the file size.", min=1,
                             max=limits.MAX_BATCH_ROWS)
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(help="CPU threads for torch (default: torch's choice, one per core). Try 1 "
                 "when other jobs share the machine or the model is tiny.", min=1,
                 max=limits.MAX_THREADS),
]
TimeFormatOpt = Annotated[
    str | None,
    typer.Option(help="How to read the time column (strftime), e.g. '%d/%m/%Y %H:%M'. "
                 "Needed for day/month dates, which lstmae never guesses. Default: the "
                 "model's (what fit was given), else ISO 8601 and other unambiguous forms.",
                 show_default=False),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")]


def _version(value: bool) -> None:
    if value:
        print(f"lstmae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Time-series anomaly detection with an LSTM autoencoder."""


# ---------------------------------------------------------------- helpers
def _columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise OptionError("--columns: give column names separated by commas, e.g. cpu,memory")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise OptionError(f"--columns names {', '.join(map(repr, map(shorten, repeated)))} "
                          "more than once; give each column once")
    return names


def _window(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise OptionError(
            f"--window must be a whole number of rows or auto (got {shorten(text)!r})"
        ) from None


def _source(data: str) -> str:
    return "<stdin>" if data == "-" else data


def _read(data: str):
    from lstmae.io import read_table

    return read_table(data)


def _use_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def _load(model: str, time_format: str | None = None):
    from lstmae.detector import Detector

    detector = Detector.load(model)
    if time_format is not None:
        if "%" not in time_format or len(time_format) > 200:
            raise OptionError(f"--time-format must be a strftime format such as "
                              f"'%d/%m/%Y %H:%M' (got {shorten(time_format)!r})")
        detector.time_format = time_format
    return detector


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def _need_stdout() -> None:
    """Commands that print their result: refuse a closed stdout rather than lose it."""
    if sys.stdout is None:
        raise OptionError("standard output is closed; this command prints its result there")


def _output_format(fmt: Format | None, output: str | None, inputs=()) -> str:
    """Pick the output format and check the target before any work is done.

    inputs: (what, path) of the command's inputs, which the output must not be.
    """
    from lstmae.output import check_output, format_for

    if fmt is Format.table:
        if output not in (None, "-"):
            raise OptionError(
                "--format table is for the terminal; use csv, json or parquet with -o"
            )
        return "table"
    chosen = format_for(output, fmt.value if fmt else None)
    if output not in (None, "-"):
        check_output(output, inputs)
    elif sys.stdout is None:
        raise OptionError("standard output is closed; give -o FILE to write the result")
    if chosen is None:
        chosen = "table" if _stdout_is_terminal() else "csv"
    if chosen == "parquet" and output in (None, "-") and _stdout_is_terminal():
        raise OptionError("--format parquet: will not write binary to a terminal; use -o FILE")
    return chosen


def _write_rows(parts, fmt: str, output: str | None, top: int):
    """Write frames as they come; for a table, keep the first `top` rows to show.

    Returns the rows kept (with attrs["rows"] = how many rows there were in all).
    """
    import pandas as pd

    from lstmae.output import TableWriter

    kept, total = [], 0
    with contextlib.nullcontext() if fmt == "table" else TableWriter(output, fmt) as writer:
        for frame in parts:
            if writer is not None:
                writer.write(frame)
            elif total < top:
                kept.append(frame.head(top - total))
            total += len(frame)
    shown = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    shown.attrs["rows"] = total
    return shown


def _stream_rows(method: str, title: str, data, model, fmt, output, top, batch_rows, threads,
                 time_format):
    """encode and reconstruct: read DATA in batches, write rows as they come."""
    out_format = _output_format(fmt, output, [("data", data), ("model", model)])
    _use_threads(threads)
    from lstmae.io import iter_frames

    detector = _load(model, time_format)
    parts = getattr(detector, method)(iter_frames(data, batch_rows), source=_source(data))
    shown = _write_rows(parts, out_format, output, top)
    if out_format == "table":
        _print_table(shown, title, shown.attrs["rows"])


def _concat(frames):
    """Concatenate frames, skipping None; an empty frame when there are none."""
    import pandas as pd

    frames = [f for f in frames if f is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _print_table(frame, title: str, total: int, highlight: str | None = None) -> None:
    """Print the rows of `frame` (some of `total` rows) as a rich table."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), justify="left" if col in ("start", "end") else "right")
    for _, row in frame.iterrows():
        style = "bold red" if highlight and bool(row[highlight]) else None
        table.add_row(*(_cell(v) for v in row), style=style)
    Console().print(table)
    if total > len(frame):
        Console().print(f"… {total - len(frame)} more rows; use --top N or -o FILE for all")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return printable(value)


# ---------------------------------------------------------------- commands
class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C does (temporary files removed, exit 130)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def _interrupted_message(exc: KeyboardInterrupt) -> str:
    by = f" by {exc.args[0]}" if isinstance(exc, Terminated) else ""
    return f"interrupted{by}: nothing was written"


def _quiet_stdout() -> None:
    """The reader of stdout went away (`| head`): send what is left nowhere, quietly,
    so that the flush at exit raises nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        sys.stdout = None


def command(function):
    """Register a command; Ctrl-C (or SIGTERM, SIGHUP) in it ends with one line and exit
    status 130; a reader that closes stdout early (`| head -1`) ends it quietly, status 0."""

    @functools.wraps(function)
    def interruptible(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt as exc:
            stderr.print(_interrupted_message(exc), markup=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(EXIT_OK) from None
        except OSError as exc:
            if exc.filename is not None:
                raise
            # Not a named file (those errors are lstmae's own): the result could not be
            # written to stdout (a full disk behind `> file`, an I/O error).
            _quiet_stdout()
            raise OptionError(f"cannot write standard output: {exc.strerror or exc}") from None

    return app.command()(interruptible)


@command
def fit(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    columns: Annotated[
        str | None, typer.Option(help="Value columns, comma-separated. Default: every numeric "
                                 "column except the time column.")
    ] = None,
    time_col: Annotated[
        str | None, typer.Option(help="Time column. Default: one named timestamp/time/date/"
                                 "datetime or of datetime type; else row numbers.")
    ] = None,
    window: Annotated[
        str, typer.Option("--window", "-w", help="Window length in rows, or auto: the training "
                          "data's dominant period (autocorrelation), between 8 and 256.")
    ] = "64",
    stride: Annotated[int, typer.Option(help="Rows between window starts.")] = 1,
    hidden: Annotated[int, typer.Option(help="LSTM hidden units.")] = 64,
    latent: Annotated[int, typer.Option(help="Size of the latent vector.")] = 16,
    layers: Annotated[int, typer.Option(help="LSTM layers in encoder and decoder.")] = 1,
    epochs: Annotated[int, typer.Option(help="Most epochs to train.")] = 100,
    batch_size: Annotated[int, typer.Option(help="Windows per mini-batch.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    loss: Annotated[Loss, typer.Option(help="Reconstruction loss that training minimises.")] = (
        Loss.mse
    ),
    error: Annotated[
        Error, typer.Option(help="How window errors are measured, for the threshold and for "
                            "scoring: mae = mean absolute difference per column over the "
                            "window's rows, mse = mean squared, mae+peak = the larger of mae "
                            "and the largest single difference, scaled to mae's size on "
                            "held-out (else training) windows, so one-row spikes count too; "
                            "a window's error is its worst column's.")
    ] = Error.mae_peak,
    val_fraction: Annotated[
        float, typer.Option(help="Last part of the series, in time order, held out for early "
                            "stopping and the threshold.")
    ] = 0.1,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs in which the validation loss "
                                "did not fall 1 % below its last clear low (the best "
                                "epoch is kept).")
    ] = 10,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same model on CPU).")] = 0,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")] = Device.auto,
    precision: Annotated[
        Precision, typer.Option(help="Training arithmetic. auto: bf16 autocast on CUDA and on "
                                "CPUs with Intel AMX (faster, same quality), else fp32. "
                                "Scoring always runs in fp32.")
    ] = Precision.auto,
    threshold_method: Annotated[
        ThresholdMethod, typer.Option(help="max: --margin times the largest held-out error; "
                                      "quantile: --threshold-quantile of held-out errors; "
                                      "pot: generalised Pareto tail at --risk; sigma: mean + "
                                      "--sigma standard deviations.")
    ] = ThresholdMethod.max,
    threshold_quantile: Annotated[
        float, typer.Option(help="Threshold = this quantile of held-out windows' errors.")
    ] = 0.99,
    risk: Annotated[
        float, typer.Option(help="pot: probability that a normal window exceeds the threshold.")
    ] = 1e-3,
    sigma: Annotated[float, typer.Option(help="sigma: standard deviations above the mean.")] = 3.0,
    margin: Annotated[
        float | None, typer.Option(
            help="max: threshold = this times the largest held-out error. Default 1.0, or 1.5 "
            "when too few rows are held out and training windows' errors (which understate "
            "new data's) are used.", show_default=False)
    ] = None,
    fill: FillOpt = None,
    time_format: TimeFormatOpt = None,
    threads: ThreadsOpt = None,
    save_on_interrupt: Annotated[
        bool, typer.Option(help="On Ctrl-C, stop and write the best model so far.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on normal data and write it to one model file.

    Example: lstmae fit server_train.csv -m server.lstmae --window 32

    On several processes: torchrun --nproc-per-node 4 -m lstmae fit server_train.csv
    """
    from lstmae.output import check_output

    # Under torchrun every process runs this command; rank 0 alone writes the model
    # and speaks, the others train their share and exit 0 silently.
    rank = int(os.environ.get("RANK", "0"))
    if rank:
        quiet = True
        warnings.simplefilter("ignore")  # run() restores the filters when the command ends
    else:
        check_output(model, [("data", data)], option="--model")
    from lstmae.detector import Detector

    detector = Detector(
        window=_window(window), stride=stride, hidden=hidden, latent=latent, layers=layers,
        epochs=epochs, batch_size=batch_size, lr=lr, loss=loss.value, error=error.value,
        val_fraction=val_fraction, patience=patience, seed=seed, device=device.value,
        precision=precision.value,
        threshold_method=threshold_method.value, threshold_quantile=threshold_quantile,
        risk=risk, sigma=sigma, margin=margin, columns=_columns(columns), time_col=time_col,
        fill=fill.value if fill else None, time_format=time_format,
    )
    detector.check_params()  # before reading a large file
    frame = _read(data)
    _use_threads(threads)
    from lstmae.train import process_group

    fit_args = {"source": _source(data), "keep_best_on_interrupt": save_on_interrupt}
    with process_group(device.value):  # only under torchrun with WORLD_SIZE > 1
        if not quiet and stderr.is_terminal:
            from rich.progress import Progress

            with Progress(console=stderr, transient=True) as bar:
                task = bar.add_task("training", total=epochs)

                def report(r):
                    val = f", val {r.val_loss:.4g}" if r.val_loss is not None else ""
                    bar.update(task, completed=r.epoch, description=f"epoch {r.epoch}/"
                               f"{r.epochs}: train {r.train_loss:.4g}{val}")

                detector.fit(frame, progress=report, **fit_args)
        else:
            detector.fit(frame, **fit_args)
    if rank:
        return  # the weights are rank 0's too; it calibrates and writes the model
    detector.save(model)
    if detector.training_["interrupted"]:
        stderr.print(f"interrupted: wrote {model} with the best epoch so far "
                     f"({detector.training_['best_epoch']})", markup=False)
        raise typer.Exit(130)
    if not quiet:
        from lstmae.threshold import describe

        t = detector.training_
        processes = f" x {t['processes']} processes" if t["processes"] > 1 else ""
        stderr.print(
            f"fitted {model}: {t['rows']} rows, {t['train_windows']} training + "
            f"{t['val_windows']} held-out windows of {detector.window_} rows"
            f"{' (auto: dominant period)' if detector.window == 'auto' else ''}, columns "
            f"{', '.join(detector.columns_)}; {t['epochs_run']} epochs "
            f"(best {t['monitored']} loss {t['best_loss']:.4g} at epoch {t['best_epoch']}); "
            f"threshold {detector.threshold_:.4g} ({describe(detector.threshold_info_)}); "
            f"{t['seconds']:.1f} s on {t['device']} ({t['precision']}){processes}"
        )


class Level(str, enum.Enum):
    window = "window"
    point = "point"
    event = "event"


@command
def score(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    threshold: Annotated[
        float | None, typer.Option(help="Anomaly when error > this. Default: the model's.")
    ] = None,
    threshold_quantile: Annotated[
        float | None, typer.Option(help="Re-derive the threshold as this quantile of the "
                                   "held-out errors stored in the model.")
    ] = None,
    risk: Annotated[
        float | None, typer.Option(help="Re-derive the threshold by peaks-over-threshold at "
                                   "this risk (e.g. 1e-3) from the stored held-out errors.")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="Re-derive the threshold as this times the largest "
                                   "stored held-out error (e.g. 1.2 for fewer false alarms).")
    ] = None,
    level: Annotated[
        Level, typer.Option(help="window: one row per window; point: one row per input row "
                            "(causal score); event: runs of anomalous windows merged.")
    ] = Level.window,
    per_column: Annotated[
        bool, typer.Option(help="Add error_<col> for each model column.")
    ] = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
    fail_on_anomaly: Annotated[
        bool, typer.Option(help="Exit with status 1 when any window is anomalous.")
    ] = False,
    batch_rows: BatchRowsOpt = None,
    time_format: TimeFormatOpt = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score new data: reconstruction error, threshold and anomalies per window, row or event.

    Example: lstmae score server_test.csv -m server.lstmae --threshold 0.3 -o scores.csv
    """
    out_format = _output_format(fmt, output, [("data", data), ("model", model)])
    _use_threads(threads)
    detector = _load(model, time_format)
    limit, limit_source = detector.threshold_for(threshold, threshold_quantile, risk, margin)
    from lstmae.io import iter_frames

    parts = detector.iter_score(iter_frames(data, batch_rows), threshold=limit,
                                source=_source(data), levels={"window", "event", level.value})
    windows = anomalies = 0
    events, n_events, top_windows = [], 0, None

    def results():
        nonlocal windows, anomalies, n_events, top_windows
        for part in parts:
            windows += len(part["window"])
            anomalies += int(part["window"]["anomaly"].sum())
            if n_events < top:
                events.append(part["event"].head(top - n_events))
            n_events += len(part["event"])
            result = part[level.value]
            if not per_column:
                result = result.drop(columns=[c for c in result.columns
                                              if c.startswith("error_")])
            if out_format == "table" and level is Level.window:
                top_windows = _concat([top_windows, result]).nlargest(top, "error")
            yield result

    if out_format == "table" and level is Level.window:
        for _ in results():
            pass
    else:
        shown = _write_rows(results(), out_format, output, top)
    events = _concat(events)
    summary = (
        f"{windows} windows, {anomalies} anomalous ({anomalies / max(windows, 1):.1%}) "
        f"in {n_events} event(s), at threshold {limit:.4g} ({limit_source})"
    )
    if level is Level.point and detector.window_ > 1:
        summary += f"; the first {detector.window_ - 1} rows have no score (no full window yet)"
    if out_format == "table":
        Console().print(summary)
        if level is Level.window:
            if n_events:
                _print_table(events, "events (consecutive anomalous windows)", n_events)
            _print_table(top_windows, f"top {len(top_windows)} windows by error", windows,
                         "anomaly")
        else:
            _print_table(shown, f"{level.value} scores", shown.attrs["rows"],
                         "anomaly" if "anomaly" in shown.columns else None)
    elif not quiet:
        stderr.print(summary, soft_wrap=True)
        for event in events.head(10).itertuples():
            stderr.print(f"  event {event.event}: {event.start} .. {event.end}, "
                         f"{event.windows} windows, peak {event.peak_error:.4g}, "
                         f"mostly {event.top_column}", soft_wrap=True)
        if n_events > 10:
            stderr.print(f"  … {n_events - 10} more events (--level event lists all)")
    if fail_on_anomaly and anomalies:
        raise typer.Exit(1)


@command
def encode(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
    batch_rows: BatchRowsOpt = None,
    time_format: TimeFormatOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Write each window's latent vector: window, start, end, z0 ... z{k-1}.

    Example: lstmae encode server_test.csv -m server.lstmae -o latent.parquet
    """
    _stream_rows("iter_encode", "latent vectors", data, model, fmt, output, top, batch_rows,
                 threads, time_format)


@command
def reconstruct(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
    batch_rows: BatchRowsOpt = None,
    time_format: TimeFormatOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Write the reconstructed series beside the original: <col> and <col>_recon per column.

    Example: lstmae reconstruct server_test.csv -m server.lstmae -o recon.csv
    """
    _stream_rows("iter_reconstruct", "reconstruction", data, model, fmt, output, top,
                 batch_rows, threads, time_format)


@command
def evaluate(
    data: DataArg,
    labels: Annotated[
        str, typer.Option("--labels", "-l", help="CSV of start,end anomalous intervals "
                          "(timestamps or row numbers, inclusive), or with a 0/1 label column "
                          "aligned with DATA's rows.")
    ],
    model: ModelOpt = DEFAULT_MODEL,
    threshold: Annotated[
        float | None, typer.Option(help="Evaluate this threshold instead of the model's.")
    ] = None,
    sliding_window: Annotated[
        int | None, typer.Option(help="VUS-PR buffer in rows. Default: the model's window.",
                                 min=0, max=limits.MAX_WINDOW)
    ] = None,
    time_format: TimeFormatOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Check the model on known incidents: AUC-ROC, AUC-PR, VUS-PR, precision, recall, F1.

    Point-wise on the causal point scores, no point adjustment; event recall is
    the share of labelled stretches with at least one flagged row.

    Example: lstmae evaluate server_test.csv -m server.lstmae --labels incidents.csv
    """
    _need_stdout()
    detector = _load(model, time_format)
    limit, _ = detector.threshold_for(threshold)
    frame = _read(data)
    points = detector.score(frame, threshold=limit, level="point", source=_source(data))
    from lstmae.evaluate import evaluate as evaluate_scores
    from lstmae.evaluate import read_labels

    series = detector.series(frame, source=_source(data))  # the rows points are in
    truth = read_labels(labels, series.index, series.rows, len(frame), series.time_kind,
                        detector.time_format)
    report = evaluate_scores(points["score"].to_numpy(), truth, limit,
                             sliding_window if sliding_window is not None else detector.window_)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from rich.table import Table

    Console().print(f"{_source(data)} against {labels}:")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


@command
def plot(
    data: DataArg,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Image file to write (.png, .svg or .pdf).")
    ],
    model: ModelOpt = DEFAULT_MODEL,
    threshold: Annotated[
        float | None, typer.Option(help="Draw and shade at this threshold instead of the "
                                   "model's.")
    ] = None,
    time_format: TimeFormatOpt = None,
) -> None:
    """Draw each channel with its reconstruction, the error with the threshold, and
    the anomalous stretches shaded. Needs matplotlib: pip install 'lstmae[plot]'.

    Example: lstmae plot server_test.csv -m server.lstmae -o report.png
    """
    image_format = Path(output).suffix.lower().lstrip(".")
    if image_format not in ("png", "svg", "pdf") and os.path.exists(output) and not (
        os.path.isfile(output) or os.path.isdir(output)
    ):
        image_format = "png"  # /dev/stdout, a FIFO: a PNG stream
    if image_format not in ("png", "svg", "pdf"):
        raise OptionError(f"--output {output}: use a .png, .svg or .pdf file name")
    from lstmae.output import atomic_output, check_output
    from lstmae.plot import _pyplot, plot_report

    check_output(output, [("data", data), ("model", model)])
    _pyplot()  # a missing matplotlib is reported before any work
    detector = _load(model, time_format)
    limit, _ = detector.threshold_for(threshold)
    frame = _read(data)
    levels = detector.score_all(frame, threshold=limit, source=_source(data))
    recon = detector.reconstruct(frame, source=_source(data))
    with atomic_output(output) as tmp:
        shown = plot_report(recon, levels["point"], detector.columns_,
                            detector.time_col_ if detector.time_col_ in recon.columns else None,
                            limit, tmp, image_format,
                            f"{_source(data)} — {len(levels['event'])} anomalous stretch(es)")
    if len(shown) < len(detector.columns_):
        stderr.print(f"note: drew the first {len(shown)} of {len(detector.columns_)} columns")
    stderr.print(f"wrote {output}")


@command
def info(
    model: Annotated[str, typer.Argument(help="Model file.")] = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")] = False,
) -> None:
    """Show what a model file holds: columns, window, architecture, threshold, training.

    Example: lstmae info server.lstmae --json
    """
    from lstmae.artifact import load_model_file

    _need_stdout()
    _, meta = load_model_file(model)
    detector = _load(model)  # the full check: tensors agree with the metadata
    from lstmae.threshold import describe

    if as_json:
        print(json.dumps(meta, indent=2))
        return
    from rich.table import Table

    th, tr, arch = meta["threshold"], meta["training"], meta["model"]
    table = Table(show_header=False, title=str(Path(model)), title_justify="left")
    from lstmae.stream import describe_interval

    time = meta["time_col"] or "(row numbers)"
    if meta.get("interval"):
        time += f", a row every {describe_interval(meta['interval'], detector.time_kind_)}"
    if meta.get("time_format"):
        time += f", read as {meta['time_format']}"
    rows = [
        ("columns", ", ".join(meta["columns"])),
        ("time column", time),
        ("window / stride", f"{meta['window']} / {meta['stride']}"),
        ("architecture", f"LSTM autoencoder: {arch['n_features']} features, hidden "
                         f"{arch['hidden']}, latent {arch['latent']}, {arch['layers']} layer(s)"),
        ("loss / error", f"{meta['loss']} (training) / {detector.error} (window error"
                         + (f", peaks x {detector.peak_scale_:.4g})" if detector.peak_scale_
                            is not None else ")")),
        ("threshold", f"{th['value']:.6g} ({describe(th)})"),
        ("training", f"{tr['rows']} rows ({tr['first_time']} .. {tr['last_time']}), "
                     f"{tr['epochs_run']} epochs, best loss {tr['best_loss']:.4g}, "
                     f"{tr['seconds']} s on {tr['device']}"),
        ("created", f"{meta['created']} by lstmae {meta['lstmae_version']}, "
                    f"torch {meta['torch_version']}"),
    ]
    for key, value in rows:
        table.add_row(key, printable(value))
    Console().print(table)


# ---------------------------------------------------------------- entry point
def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit status: 0 done, 1 anomalies (--fail-on-anomaly),
    2 bad input or options, 70 an internal error (a bug: please report it), 130
    interrupted (Ctrl-C, SIGTERM, SIGHUP).

    Warnings about the data are held back and printed once the command has
    succeeded: a failing command prints exactly one line, its error.
    """
    previous = _catch_termination()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", LstmaeWarning)
            status = _run(argv)
        if status in (EXIT_OK, EXIT_ANOMALY):
            for warning in caught:
                stderr.print(f"warning: {printable(warning.message)}", markup=False,
                         soft_wrap=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _catch_termination() -> dict:
    """SIGTERM and SIGHUP stop a command as Ctrl-C does, so temporary files are removed
    and old outputs stay whole. A signal ignored on entry (nohup) stays ignored."""
    import threading

    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum in (signal.SIGTERM, signal.SIGHUP):
        handler = signal.getsignal(signum)
        if handler != signal.SIG_IGN:
            previous[signum] = handler
            signal.signal(signum, _terminate)
    return previous


def _run(argv: list[str] | None) -> int:
    try:
        status = app(args=argv, prog_name="lstmae", standalone_mode=False)
    except LstmaeError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:  # outside a command, e.g. while starting up
        stderr.print(_interrupted_message(exc), markup=False)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: not an error worth a word.
        _quiet_stdout()
        return EXIT_OK
    except OSError as exc:
        if exc.filename is not None or isinstance(exc, BrokenPipeError):
            return _internal_error(exc)
        _quiet_stdout()  # e.g. --help > /dev/full
        _error(f"cannot write standard output: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    except SystemExit as exc:  # typer's own exits; 1 is for anomalies alone
        code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        return EXIT_OK if code == 1 else code
    except Exception as exc:
        # typer's usage errors (bad option, missing argument) carry their own
        # exit code and message; typer ships its own copy of click's exception
        # classes, so recognise them by what they offer, not by class.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            _error(f"{exc.format_message()} (see lstmae --help)")
            return EXIT_BAD_INPUT
        if type(exc).__name__ == "Abort":  # typer's answer to EOF or Ctrl-C at a prompt
            stderr.print("interrupted: nothing was written", markup=False)
            return EXIT_INTERRUPTED
        return _internal_error(exc)
    if not isinstance(status, int):
        return EXIT_OK
    return status


def _internal_error(exc: BaseException) -> int:
    """A bug: one line and its own status (never 1, never a traceback unless asked for)."""
    if os.environ.get("LSTMAE_DEBUG"):
        raise exc
    _error(f"internal error: {type(exc).__name__}: {shorten(exc, 300)} (a bug in lstmae; "
           "please report it with the command line; LSTMAE_DEBUG=1 shows the traceback)")
    return EXIT_INTERNAL


def _error(message: str) -> None:
    first_line = " ".join(printable(message).split())
    stderr.print(f"error: {first_line}", markup=False, soft_wrap=True)


def main() -> None:
    status = run()
    try:  # what is still buffered for stdout: a failure here is an output failure
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as exc:
        _quiet_stdout()
        _error(f"cannot write standard output: {exc.strerror or exc}")
        status = EXIT_BAD_INPUT
    sys.exit(status)
