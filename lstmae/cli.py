"""The `lstmae` command line: parse options, call Detector, render.

stdout carries data (a table on a terminal, CSV / JSON lines / Parquet when
piped or written with -o); stderr carries what people read (progress,
summaries, warnings, errors). No ML here, and no import of torch or pandas at
module level: `lstmae --help` and `--version` stay fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from lstmae import __version__, params, process
from lstmae.errors import OptionError, flag, shorten
from lstmae.process import EXIT_ANOMALY, EXIT_INTERRUPTED, guarded, stderr

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
DEFAULT_MODEL = "model.lstmae"


def _choices(name: str, choices: tuple[str, ...]) -> type[enum.Enum]:
    """A str Enum of lstmae.params' choices, as typer wants them for --help and checking."""
    return enum.Enum(name, {choice: choice for choice in choices}, type=str)  # type: ignore


if TYPE_CHECKING:  # some Enum, for the type checker; typer needs the classes below
    from enum import Enum as Format
    from enum import Enum as Level
else:
    Format = _choices("Format", ("table", *params.OUTPUT_FORMATS))
    Level = _choices("Level", params.LEVELS)

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
                                     max=params.MAX_TOP)]
BatchRowsOpt = Annotated[
    int | None, typer.Option(help="Rows read and scored at a time (default 100000); memory "
                             "stays bounded by it, whatever the file size.", min=1,
                             max=params.MAX_BATCH_ROWS)
]
ThreadsOpt = Annotated[
    str,
    typer.Option(help="CPU threads for torch: a number, or auto: up to one per core, fewer "
                 "while fewer run faster (another job holding a core), measured as it runs."),
]
TimeFormatOpt = Annotated[
    str | None,
    typer.Option(help=params.FIELDS["time_format"].metadata["help"], show_default=False),
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


# ---------------------------------------------------------------- fit's options
def _option(spec: dataclasses.Field) -> inspect.Parameter:
    """The command-line option of one fit parameter, from its field in lstmae.params."""
    meta = spec.metadata
    decls = [flag(spec.name), *([meta["short"]] if meta["short"] else [])]
    kind: object = {"int": int, "float": float, "str": str, "float | None": float | None,
                    "str | None": str | None, "int | str": str, "int | str | None": str | None,
                    "list[str] | None": str | None,
                    "str | list[str]": str,
                    }[str(spec.type)]
    default = spec.default
    if meta["choices"]:
        choices = _choices(spec.name, meta["choices"])
        kind = choices if default is not None else choices | None
        default = None if default is None else choices(default)
    info = typer.Option(*decls, help=meta["help"], show_default=default is not None)
    return inspect.Parameter(spec.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             default=default, annotation=Annotated[kind, info])


def _from_cli(name: str, value):
    """A fit parameter's value as typed on the command line -> its Python value."""
    if isinstance(value, enum.Enum):
        return value.value
    if name == "window":
        return _window(value)
    if name == "long_window":
        return _long_window(value)
    if name == "columns":
        return _columns(value)
    if name == "context":
        return value if value.strip().lower() == "auto" else (
            [] if value.strip().lower() == "none" else _columns(value, "--context"))
    return value


def with_fit_params(function):
    """Give a command one option per fit parameter (lstmae.params, in group order), after
    its first two; it receives them as one FitParams, `params`."""
    signature = inspect.signature(function, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "params"]
    options = [_option(spec) for spec in params.FIELDS.values()]

    @functools.wraps(function)
    def command_with_params(**values):
        flat = {name: _from_cli(name, values.pop(name)) for name in params.FLAT_NAMES}
        return function(**values, params=params.FitParams.from_flat(flat))

    command_with_params.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*own[:2], *options, *own[2:]])
    command_with_params.__annotations__ = {}  # typer reads the signature above
    return command_with_params


def _columns(text: str | None, option: str = "--columns") -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise OptionError(f"{option}: give column names separated by commas, e.g. cpu,memory")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise OptionError(f"{option} names {', '.join(map(repr, map(shorten, repeated)))} "
                          "more than once; give each column once")
    return names


def _window(text: str | None) -> int | str | None:
    if text is None:
        return None  # the default: lstmae.params.default_window
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise OptionError(
            f"--window must be a whole number of rows or auto (got {shorten(text)!r})"
        ) from None


def _long_window(text: str) -> int | str:
    if text.strip().lower() in params.LONG_WINDOW_CHOICES:
        return text.strip().lower()
    try:
        return int(text)
    except ValueError:
        raise OptionError(f"--long-window must be a whole number of rows, double or off "
                          f"(got {shorten(text)!r})") from None


# ---------------------------------------------------------------- helpers
def _source(data: str) -> str:
    return "<stdin>" if data == "-" else data


def _read(data: str):
    from lstmae.read import read_table

    return read_table(data)


def _threads(text: str):
    """--threads auto or N -> the thread policy for the block (lstmae.threads)."""
    from lstmae import threads

    if text.strip().lower() == threads.AUTO:
        return threads.using(threads.AUTO)
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= params.MAX_THREADS:
        raise OptionError(f"--threads must be auto or a whole number from 1 to "
                          f"{params.MAX_THREADS} (got {shorten(text)!r})")
    return threads.using(count)


def _load(model: str, time_format: str | None = None):
    from lstmae.detector import Detector

    detector = Detector.load(model)
    if time_format is not None:
        params.check_time_format(time_format)
        detector.params.data.time_format = time_format
    return detector


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def _need_stdout() -> None:
    """Commands that print their result: refuse a closed stdout rather than lose it."""
    if sys.stdout is None:
        raise OptionError("standard output is closed; this command prints its result there")


def _output_format(fmt, output: str | None, inputs=(), prom: bool = False) -> str:
    """Pick the output format and check the target before any work is done.

    inputs: (what, path) of the command's inputs, which the output must not be.
    prom: the command can write Prometheus text (score).
    """
    from lstmae.output import check_output, format_for

    if fmt is not None and fmt.value == "table":
        if output not in (None, "-"):
            raise OptionError(
                "--format table is for the terminal; use csv, json or parquet with -o"
            )
        return "table"
    chosen = format_for(output, fmt.value if fmt else None)
    if chosen == params.PROM and not prom:
        raise OptionError("--format prom (Prometheus text) is for score; use csv, json or "
                          "parquet here")
    if output not in (None, "-"):
        check_output(output, inputs)
    elif sys.stdout is None:
        raise OptionError("standard output is closed; give -o FILE to write the result")
    if chosen is None:
        chosen = "table" if _stdout_is_terminal() else "csv"
    if chosen == "parquet" and output in (None, "-") and _stdout_is_terminal():
        raise OptionError("--format parquet: will not write binary to a terminal; use -o FILE")
    return chosen


def _write_rows(parts, fmt: str, output: str | None, top: int, flush: bool = False):
    """Write frames as they come; for a table, keep the first `top` rows to show.
    flush: pass each frame on at once (--follow).

    Returns the rows kept (with attrs["rows"] = how many rows there were in all).
    """
    import pandas as pd

    from lstmae.output import TableWriter

    kept, total = [], 0
    with contextlib.nullcontext() if fmt == "table" else TableWriter(output, fmt) as writer:
        for frame in parts:
            if writer is not None:
                writer.write(frame)
                if flush:
                    writer.flush()
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
    from lstmae.read import iter_frames
    from lstmae.render import print_table

    with _threads(threads):
        detector = _load(model, time_format)
        parts = getattr(detector, method)(iter_frames(data, batch_rows), source=_source(data))
        shown = _write_rows(parts, out_format, output, top)
    if out_format == "table":
        print_table(shown, title, shown.attrs["rows"])


# ---------------------------------------------------------------- commands
def command(function):
    """Register a command, run guarded (lstmae.process: Ctrl-C, signals, closed pipes)."""
    return app.command()(guarded(function))


@command
@with_fit_params
def fit(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    threads: ThreadsOpt = "auto",
    save_on_interrupt: Annotated[
        bool, typer.Option(help="On Ctrl-C, stop and write the best model so far.")
    ] = False,
    quiet: QuietOpt = False,
    *,
    params: params.FitParams,
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

    detector = Detector(**params.flat())
    detector.check_params()  # before reading a large file
    policy = _threads(threads)
    from lstmae.train import process_group

    with policy, _fit_progress(not quiet and stderr.is_terminal, data, params) as progress:
        frame = _read(data)
        with process_group(params.training.device):  # only under torchrun, WORLD_SIZE > 1
            detector.fit(frame, source=_source(data), keep_best_on_interrupt=save_on_interrupt,
                         **progress.callbacks())
    if rank:
        # The weights are rank 0's too; it calibrates and writes the model. Leave without
        # the interpreter's teardown: there torch's gloo threads sometimes aborted this
        # rank on a loaded machine (exit -6, "terminate called without an active
        # exception"), after its work was done, and torchrun then failed the whole job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    detector.save(model)
    if detector.training_["interrupted"]:
        alone = detector.training_.get("long_window") == "interrupted"
        stderr.print(f"interrupted: wrote {model} with the best epoch so far "
                     f"({detector.training_['best_epoch']})"
                     + ("; without the second model (--long-window), which had not finished "
                        "an epoch" if alone else ""), markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if not quiet:
        from lstmae.render import fit_summary

        stderr.print(fit_summary(detector, model))


class _NoProgress(contextlib.AbstractContextManager):
    def __exit__(self, *exc) -> None:
        return None

    def callbacks(self) -> dict:
        return {}


def _fit_progress(show: bool, data: str, fit_params: params.FitParams):
    """fit's progress line on stderr (lstmae.render.FitProgress) when `show`."""
    if not show:
        return _NoProgress()
    from lstmae.render import FitProgress

    return FitProgress(stderr, _source(data), fit_params.training.epochs,
                       fit_params.training.patience)


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
                            "(causal score, alarm on the row where an event opens); event: "
                            "one row per incident.")
    ] = Level["window"],
    per_column: Annotated[
        bool, typer.Option(help="Add error_<col> for each model column.")
    ] = False,
    cooldown: Annotated[
        int | None, typer.Option(help="Anomalous windows whose ends are at most this many rows "
                                 "apart are one event (one alarm). Default: the window.",
                                 min=1, max=params.MAX_COOLDOWN, show_default=False)
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="Remember where scoring stopped in this file: the next "
                                 "run skips rows already scored, goes on with their context "
                                 "and event ids, and pages only for new events.",
                                 metavar="FILE")
    ] = None,
    reset_state: Annotated[
        bool, typer.Option(help="Start the --state file over (as if it did not exist).")
    ] = False,
    follow: Annotated[
        bool, typer.Option(help="Score rows as they arrive, on stdin (-) or as the file grows "
                           "(like tail -F), writing each row at once; Ctrl-C or the end of "
                           "stdin stops.")
    ] = False,
    fmt: FormatOpt = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Write here (.csv, .csv.gz, .jsonl, .parquet, or "
                     ".prom: Prometheus text of the latest scores) instead of stdout."),
    ] = None,
    top: TopOpt = 20,
    fail_on_anomaly: Annotated[
        bool, typer.Option(help="Exit with status 1 when any window is anomalous; with "
                           "--state, only when an event opened in this run.")
    ] = False,
    batch_rows: BatchRowsOpt = None,
    time_format: TimeFormatOpt = None,
    threads: ThreadsOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Score new data: reconstruction error, threshold and anomalies per window, row or event.

    Example: lstmae score server_test.csv -m server.lstmae --threshold 0.3 -o scores.csv

    From cron: lstmae score last-hour.csv -m server.lstmae --state server.state
    --fail-on-anomaly (exit 1 only when an incident opened since the last run)
    """
    inputs = [("data", data), ("model", model)]
    out_format = _output_format(fmt, output, inputs, prom=True)
    if follow and out_format == "table":
        out_format = "csv"  # rows as they come: a table needs them all
    _check_state_and_follow(state, reset_state, follow, out_format, output, inputs)
    policy = _threads(threads)
    detector = _load(model, time_format)
    limit, how = detector.threshold_for(threshold, threshold_quantile, risk, margin)
    cooldown = detector.check_cooldown(cooldown)
    from lstmae.render import ScoreReport
    from lstmae.scoring_run import ScoringRun

    report = ScoreReport(level.value, top, per_column, table=out_format == "table")
    if follow and not quiet and level.value != "event":
        report.on_event = functools.partial(stderr.print, soft_wrap=True)
    prom_path = (output or "-") if out_format == params.PROM else None
    with ScoringRun(detector, data, limit, cooldown, state, reset_state, follow) as run, policy:
        rows = run.saving(run.parts(batch_rows, level.value, report), prom_path)
        shown = None
        if out_format == params.PROM or (out_format == "table" and level.value == "window"):
            for _ in rows:  # the table shows the largest errors, gathered by the report
                pass
        else:
            shown = _write_rows(rows, out_format, output, top, flush=follow)
        run.finish(prom_path)
    summary = report.summary(limit, how, detector.window_, run.state_note())
    if out_format == "table":
        report.print_tables(summary, shown)
    elif not quiet:
        stderr.print(summary, soft_wrap=True)
        for line in report.event_lines():
            stderr.print(line, soft_wrap=True)
    if fail_on_anomaly and run.alarming(report):
        raise typer.Exit(EXIT_ANOMALY)


def _check_state_and_follow(state, reset_state: bool, follow: bool, out_format: str,
                            output: str | None, inputs) -> None:
    from lstmae.output import check_output, is_stream

    if follow and out_format != params.PROM and (
            out_format == "parquet" or output not in (None, "-") and not is_stream(output)):
        # A file is renamed into place when complete, which a stream never is.
        raise OptionError("--follow writes rows as they come: to stdout (csv or json; "
                          "append with >> FILE), or -o FILE.prom")
    if reset_state and state is None:
        raise OptionError("--reset-state goes with --state FILE")
    if state is not None:
        if is_stream(state):
            raise OptionError(f"--state {shorten(state)}: is not a regular file; give a file "
                              "that the next run can read back")
        if output is not None and os.path.abspath(output) == os.path.abspath(state):
            raise OptionError(f"--state {shorten(state)} is also the --output; give each its "
                              "own file")
        check_output(state, [*inputs, ("output", output)], option="--state")


@command
def encode(
    data: DataArg,
    model: ModelOpt = DEFAULT_MODEL,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 20,
    batch_rows: BatchRowsOpt = None,
    time_format: TimeFormatOpt = None,
    threads: ThreadsOpt = "auto",
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
    threads: ThreadsOpt = "auto",
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
                                 min=0, max=params.MAX_WINDOW)
    ] = None,
    time_format: TimeFormatOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Check the model on known incidents: AUC-ROC, AUC-PR, VUS-PR, precision, recall, F1.

    Point-wise on the causal point scores, no point adjustment; event recall is
    the share of labelled stretches with at least one flagged row. best_f1_threshold,
    given back as --threshold, flags the rows that give best_f1.

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
                        detector.params.data.time_format)
    report = evaluate_scores(points["score"].to_numpy(), truth, limit,
                             sliding_window if sliding_window is not None else detector.window_)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from lstmae.render import metrics_table

    Console().print(f"{_source(data)} against {labels}:")
    Console().print(metrics_table(report))


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
    # One pass of the model gives the point scores, the events and the reconstruction.
    outputs = detector.outputs(frame, ["point", "event", "reconstruction"], limit,
                               _source(data))
    recon = outputs["reconstruction"]
    with atomic_output(output) as tmp:
        shown = plot_report(recon, outputs["point"], detector.scored_,
                            detector.time_col_ if detector.time_col_ in recon.columns else None,
                            limit, tmp, image_format,
                            f"{_source(data)} — {len(outputs['event'])} anomalous stretch(es)")
    if len(shown) < len(detector.scored_):
        stderr.print(f"note: drew the first {len(shown)} of {len(detector.scored_)} columns")
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
    if as_json:
        print(json.dumps(meta, indent=2))
        return
    from lstmae.render import info_table

    Console().print(info_table(model, meta, detector))



def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status (lstmae.process)."""
    return process.run(app, argv)


def main() -> None:
    process.main(app)
