"""lstmae as a process: its exit statuses, signals, the stderr channel for people,
and how any failure becomes one `error:` line. lstmae.cli's commands run inside.

Exit statuses (README, "Exit status"), which scripts and cron act on: 0 done,
1 anomalies (--fail-on-anomaly), 2 bad input or options, 70 an internal error
(a bug), 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import IO, cast

import typer
from rich.console import Console

from lstmae.errors import LstmaeError, LstmaeWarning, OptionError, printable, shorten

EXIT_OK, EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130


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


stderr = Console(file=cast(IO[str], _HumanChannel()), highlight=False)


def guarded(function: Callable) -> Callable:
    """A command body whose Ctrl-C (or SIGTERM, SIGHUP) ends with one line and exit
    status 130, and whose reader closing stdout early (`| head -1`) ends it quietly,
    status 0."""

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

    return interruptible


def run(app: typer.Typer, argv: list[str] | None = None) -> int:
    """Run the command line `app` and return the exit status (see the module's text).

    Warnings about the data are held back and printed once the command has
    succeeded: a failing command prints exactly one line, its error.
    """
    previous = _catch_termination()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", LstmaeWarning)
            status = _run(app, argv)
        if status in (EXIT_OK, EXIT_ANOMALY):
            for warning in caught:
                message = warning.message
                text = message.for_cli() if isinstance(message, LstmaeWarning) else message
                stderr.print(f"warning: {printable(text)}", markup=False,
                         soft_wrap=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _catch_termination() -> dict:
    """SIGTERM and SIGHUP stop a command as Ctrl-C does, so temporary files are removed
    and old outputs stay whole. A signal ignored on entry (nohup) stays ignored."""
    import threading

    previous: dict = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum in (signal.SIGTERM, signal.SIGHUP):
        handler = signal.getsignal(signum)
        if handler != signal.SIG_IGN:
            previous[signum] = handler
            signal.signal(signum, _terminate)
    return previous


def _run(app: typer.Typer, argv: list[str] | None) -> int:
    try:
        status = app(args=argv, prog_name="lstmae", standalone_mode=False)
    except LstmaeError as exc:
        _error(exc.for_cli())
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


def main(app: typer.Typer) -> None:
    status = run(app)
    try:  # what is still buffered for stdout: a failure here is an output failure
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as exc:
        _quiet_stdout()
        _error(f"cannot write standard output: {exc.strerror or exc}")
        status = EXIT_BAD_INPUT
    # Everything is written and closed by now. The interpreter's last garbage collection
    # walks every object torch and pandas made: 0.5 s of each command on a quiet machine,
    # over 1 s with another job on a core. Frozen objects are skipped there, and the
    # operating system frees them; atexit handlers still run.
    gc.freeze()
    sys.exit(status)
