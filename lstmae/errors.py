"""Errors a user can act on.

Every mistake a user can make (a missing file, a wrong column, a bad option, a
broken model file) raises an LstmaeError whose message names the thing at fault
and what to do. The CLI prints it as one `error: ...` line and exits with 2.
"""


class LstmaeError(Exception):
    """A problem with the user's input, options or files: shown as one line, exit 2."""


class DataError(LstmaeError):
    """The data file or frame cannot be used as it is."""


class ModelFileError(LstmaeError):
    """The model file is missing, not an lstmae model, damaged or incompatible."""


class OptionError(LstmaeError):
    """An option or parameter has a value that cannot work."""


class TrainingError(LstmaeError):
    """Training could not produce a usable model (e.g. the loss became NaN)."""


class LstmaeWarning(UserWarning):
    """Something was done to the data that the user should know about (e.g. rows sorted)."""
