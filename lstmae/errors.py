"""Errors a user can act on.

Every mistake a user can make (a missing file, a wrong column, a bad option, a
broken model file, an output that cannot be written) raises an LstmaeError whose
message names the thing at fault and what to do. The CLI prints it as one
`error: ...` line and exits with 2.

A message names a parameter with `arg("threshold_quantile")`: str(error) shows the
Python argument ('threshold_quantile'), `error.for_cli()` the command-line flag
(--threshold-quantile), so each audience reads the name it types.
"""

import re

# Marks a parameter's name inside a message until it is shown (\x1f, the unit
# separator, is a character no message holds otherwise).
_ARG = re.compile("\x1f([a-z_]+)\x1f")


def arg(name: str) -> str:
    """A parameter's name in a message, shown as 'name' in Python and --name on the CLI."""
    return f"\x1f{name}\x1f"


def flag(name: str) -> str:
    """The command-line flag of a parameter: threshold_quantile -> --threshold-quantile."""
    return "--" + name.replace("_", "-")


class _NamesParameters(Exception):
    """A message that names parameters with arg(): the exception (str, args, repr, what
    warning filters match) holds it with Python names; for_cli() gives the flags."""

    def __init__(self, message: str = "", *rest: object):
        self.marked = str(message)
        super().__init__(_ARG.sub(lambda m: repr(m[1]), self.marked), *rest)

    def for_cli(self) -> str:
        """The message with parameters named by their command-line flags."""
        return _ARG.sub(lambda m: flag(m[1]), self.marked)


class LstmaeError(_NamesParameters, Exception):
    """A problem with the user's input, options or files: shown as one line, exit 2."""


class DataError(LstmaeError):
    """The data file or frame cannot be used as it is."""


class ModelFileError(LstmaeError):
    """The model file is missing, not an lstmae model, damaged or incompatible."""


class OptionError(LstmaeError):
    """An option or parameter has a value that cannot work."""


class OutputError(LstmaeError):
    """A result or model file could not be written (disk full, I/O error, read-only)."""


class TrainingError(LstmaeError):
    """Training could not produce a usable model (e.g. the loss became NaN)."""


def shorten(text: object, limit: int = 60) -> str:
    """A value echoed in a message, cut to a readable length (a hostile cell may be huge)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def printable(text: object) -> str:
    """Text for a terminal: control characters (escape sequences, newlines) from data or
    a model file written as \\x1b, never sent to the terminal as they are."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def name_list(names, limit: int = 20) -> str:
    """Column names for a message: the first `limit` of them, and how many more."""
    names = [shorten(n, 40) for n in names]
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f", … ({more} more)" if more > 0 else "")


class LstmaeWarning(_NamesParameters, UserWarning):
    """Something was done to the data that the user should know about (e.g. rows sorted)."""
