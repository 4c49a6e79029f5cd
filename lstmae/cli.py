"""The `lstmae` command line: parse options, call Detector, render.

stdout carries data (a table on a terminal, CSV / JSON lines / Parquet when
piped or written with -o); stderr carries what people read (progress,
summaries, warnings, errors). No ML here, and no import of torch or pandas at
module level: `lstmae --help` and `--version` stay fast.
"""

from __future__ import annotations

import enum
import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lstmae import __version__
from lstmae.errors import LstmaeError, LstmaeWarning, OptionError

app = typer.Typer(
    name="lstmae",
    help="Time-series anomaly detection with an LSTM autoencoder.\n\n"
    "Train on normal data, then score new data:\n\n"
    "  lstmae fit data.csv\n\n"
    "  lstmae score new.csv --threshold 0.05",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stderr = Console(stderr=True, highlight=False)
DEFAULT_MODEL = "model.lstmae"


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class Loss(str, enum.Enum):
    mse = "mse"
    l1 = "l1"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


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
TopOpt = Annotated[int, typer.Option("--top", help="Rows shown in the terminal table.", min=1)]
FillOpt = Annotated[
    Fill | None,
    typer.Option("--fill", help="Missing or non-finite values: an error unless you pick a fix."),
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
    return names


def _source(data: str) -> str:
    return "<stdin>" if data == "-" else data


def _read(data: str):
    from lstmae.io import read_table

    return read_table(data)


def _load(model: str):
    from lstmae.detector import Detector

    return Detector.load(model)


def _output_format(fmt: Format | None, output: str | None) -> str:
    """Pick the output format and check the target before any work is done."""
    from lstmae.io import check_writable, format_for

    if fmt is Format.table:
        if output not in (None, "-"):
            raise OptionError(
                "--format table is for the terminal; use csv, json or parquet with -o"
            )
        return "table"
    chosen = format_for(output, fmt.value if fmt else None)
    if output not in (None, "-"):
        check_writable(output)
    if chosen is None:
        chosen = "table" if sys.stdout.isatty() else "csv"
    if chosen == "parquet" and output in (None, "-") and sys.stdout.isatty():
        raise OptionError("--format parquet: will not write binary to a terminal; use -o FILE")
    return chosen


def _emit(frame, fmt: str, output: str | None, title: str, top: int) -> None:
    if fmt == "table":
        _print_table(frame, title, top)
        return
    from lstmae.io import write_table

    write_table(frame, output, fmt)


def _print_table(frame, title: str, top: int, highlight: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), justify="left" if col in ("start", "end") else "right")
    for _, row in frame.head(top).iterrows():
        style = "bold red" if highlight and bool(row[highlight]) else None
        table.add_row(*(_cell(v) for v in row), style=style)
    Console().print(table)
    if len(frame) > top:
        Console().print(f"… {len(frame) - top} more rows; use --top N or -o FILE for all")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ---------------------------------------------------------------- commands
@app.command()
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
    window: Annotated[int, typer.Option("--window", "-w", help="Window length (rows).")] = 32,
    stride: Annotated[int, typer.Option(help="Rows between window starts.")] = 1,
    hidden: Annotated[int, typer.Option(help="LSTM hidden units.")] = 64,
    latent: Annotated[int, typer.Option(help="Size of the latent vector.")] = 16,
    layers: Annotated[int, typer.Option(help="LSTM layers in encoder and decoder.")] = 1,
    epochs: Annotated[int, typer.Option(help="Most epochs to train.")] = 100,
    batch_size: Annotated[int, typer.Option(help="Windows per mini-batch.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    loss: Annotated[Loss, typer.Option(help="Reconstruction loss and window error.")] = Loss.mse,
    val_fraction: Annotated[
        float, typer.Option(help="Last part of the series, in time order, held out for early "
                            "stopping and the threshold.")
    ] = 0.2,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better validation loss.")
    ] = 10,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same model on CPU).")] = 0,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")] = Device.auto,
    threshold_quantile: Annotated[
        float, typer.Option(help="Threshold = this quantile of held-out windows' errors.")
    ] = 0.99,
    fill: FillOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on normal data and write it to one model file.

    Example: lstmae fit server_train.csv -m server.lstmae --window 32
    """
    from lstmae.io import check_writable

    check_writable(model)
    frame = _read(data)
    from lstmae.detector import Detector

    detector = Detector(
        window=window, stride=stride, hidden=hidden, latent=latent, layers=layers,
        epochs=epochs, batch_size=batch_size, lr=lr, loss=loss.value,
        val_fraction=val_fraction, patience=patience, seed=seed, device=device.value,
        threshold_quantile=threshold_quantile, columns=_columns(columns), time_col=time_col,
        fill=fill.value if fill else None,
    )
    show_progress = not quiet and stderr.is_terminal
    if show_progress:
        from rich.progress import Progress

        with Progress(console=stderr, transient=True) as bar:
            task = bar.add_task("training", total=epochs)

            def report(r):
                val = f", val {r.val_loss:.4g}" if r.val_loss is not None else ""
                bar.update(task, completed=r.epoch,
                           description=f"epoch {r.epoch}/{r.epochs}: train {r.train_loss:.4g}{val}")

            detector.fit(frame, progress=report, source=_source(data))
    else:
        detector.fit(frame, source=_source(data))
    detector.save(model)
    if not quiet:
        t = detector.training_
        stderr.print(
            f"fitted {model}: {t['rows']} rows, {t['train_windows']} training + "
            f"{t['val_windows']} held-out windows of {window}, columns "
            f"{', '.join(detector.columns_)}; {t['epochs_run']} epochs "
            f"(best {t['monitored']} loss {t['best_loss']:.4g} at epoch {t['best_epoch']}); "
            f"threshold {detector.threshold_:.4g} (q{threshold_quantile} of "
            f"{detector.threshold_info_['windows']} {t['monitored']} windows); "
            f"{t['seconds']:.1f} s on {t['device']}"
        )


@app.command()
def score(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    threshold: Annotated[
        float | None, typer.Option(help="Anomaly when error > this. Default: the model's.")
    ] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
    fail_on_anomaly: Annotated[
        bool, typer.Option(help="Exit with status 1 when any window is anomalous.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Score each window of new data: reconstruction error, threshold, anomaly.

    Example: lstmae score server_test.csv -m server.lstmae --threshold 0.05 -o scores.csv
    """
    if threshold is not None and not (threshold >= 0 and threshold != float("inf")):
        raise OptionError(f"--threshold must be a non-negative number (got {threshold})")
    out_format = _output_format(fmt, output)
    detector = _load(model)
    result = detector.score(_read(data), threshold=threshold, source=_source(data))
    anomalies = int(result["anomaly"].sum())
    limit = float(result["threshold"].iloc[0])
    summary = (
        f"{len(result)} windows, {anomalies} anomalous ({anomalies / len(result):.1%}) "
        f"at threshold {limit:.4g} ({'--threshold' if threshold is not None else 'model'})"
    )
    if out_format == "table":
        Console().print(summary)
        shown = result.sort_values("error", ascending=False, kind="stable")
        _print_table(shown, f"top {min(top, len(shown))} windows by error", top, "anomaly")
    else:
        from lstmae.io import write_table

        write_table(result, output, out_format)
        if not quiet:
            stderr.print(summary)
    if fail_on_anomaly and anomalies:
        raise typer.Exit(1)


@app.command()
def encode(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
) -> None:
    """Write each window's latent vector: window, start, end, z0 ... z{k-1}.

    Example: lstmae encode server_test.csv -m server.lstmae -o latent.parquet
    """
    out_format = _output_format(fmt, output)
    result = _load(model).encode(_read(data), source=_source(data))
    _emit(result, out_format, output, "latent vectors", top)


@app.command()
def reconstruct(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
) -> None:
    """Write the reconstructed series beside the original: <col> and <col>_recon per column.

    Example: lstmae reconstruct server_test.csv -m server.lstmae -o recon.csv
    """
    out_format = _output_format(fmt, output)
    result = _load(model).reconstruct(_read(data), source=_source(data))
    _emit(result, out_format, output, "reconstruction", top)


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="Model file.")] = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")] = False,
) -> None:
    """Show what a model file holds: columns, window, architecture, threshold, training.

    Example: lstmae info server.lstmae --json
    """
    from lstmae.artifact import load_model_file

    _, meta = load_model_file(model)
    _load(model)  # the full check: tensors agree with the metadata
    if as_json:
        print(json.dumps(meta, indent=2))
        return
    from rich.table import Table

    th, tr, arch = meta["threshold"], meta["training"], meta["model"]
    table = Table(show_header=False, title=str(Path(model)), title_justify="left")
    rows = [
        ("columns", ", ".join(meta["columns"])),
        ("time column", meta["time_col"] or "(row numbers)"),
        ("window / stride", f"{meta['window']} / {meta['stride']}"),
        ("architecture", f"LSTM autoencoder: {arch['n_features']} features, hidden "
                         f"{arch['hidden']}, latent {arch['latent']}, {arch['layers']} layer(s)"),
        ("loss", meta["loss"]),
        ("threshold", f"{th['value']:.6g} ({th['method']} {th.get('quantile')} of "
                      f"{th['windows']} {th['source']} windows)"),
        ("training", f"{tr['rows']} rows ({tr['first_time']} .. {tr['last_time']}), "
                     f"{tr['epochs_run']} epochs, best loss {tr['best_loss']:.4g}, "
                     f"{tr['seconds']} s on {tr['device']}"),
        ("created", f"{meta['created']} by lstmae {meta['lstmae_version']}, "
                    f"torch {meta['torch_version']}"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


# ---------------------------------------------------------------- entry point
def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, LstmaeWarning):
        stderr.print(f"warning: {message}", markup=False)
    else:
        stderr.print(f"warning: {category.__name__}: {message}", markup=False)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit status: 0 ok, 1 anomalies (--fail-on-anomaly), 2 error."""
    warnings.showwarning = _show_warning
    try:
        status = app(args=argv, prog_name="lstmae", standalone_mode=False)
    except LstmaeError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted; nothing was written")
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: not an error worth a traceback.
        sys.stdout = None
        return 0
    except Exception as exc:
        # typer's usage errors (bad option, missing argument) carry their own
        # exit code and message; typer ships its own copy of click's exception
        # classes, so recognise them by what they offer, not by class.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            _error(f"{exc.format_message()} (see lstmae --help)")
            return 2
        raise
    return status if isinstance(status, int) else 0


def _error(message: str) -> None:
    first_line = " ".join(message.split())
    stderr.print(f"error: {first_line}", markup=False, soft_wrap=True)


def main() -> None:
    sys.exit(run())
