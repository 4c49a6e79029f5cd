"""lstmae's parameters: their choices, defaults, limits and checks, in one place.

Torch-free, so that `lstmae --help` builds its options from here without importing
torch. The parameters of `fit` come in small groups (data, window, network,
training, threshold); `FitParams` holds one of each. Each field's help text is
the CLI's help for its option (lstmae.cli builds the options from these fields),
the model file stores `FitParams.flat()` and `Detector.load` rebuilds it with
`FitParams.from_flat`. The limits are also read by the model-file checks
(lstmae.artifact): a model file is untrusted input, so it may not claim a shape
that fit would have refused.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from lstmae.errors import OptionError, arg, shorten

LOSSES = ("mse", "mae")  # what training minimises
# Other names accepted for a choice. "l1" is torch's name for the mean absolute
# difference, which lstmae calls "mae" as a loss and as an error; older model
# files say "l1".
ALIASES = {"loss": {"l1": "mae"}}
ERRORS = ("mae+peak", "mae", "mse")  # how a window's error is measured when scoring
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
THRESHOLD_METHODS = ("max", "quantile", "pot", "sigma")
FILL_METHODS = ("ffill", "interpolate", "drop")
LEVELS = ("window", "point", "event")  # what `score` reports: a row per window, row or event
OUTPUT_FORMATS = ("csv", "json", "parquet", "prom")  # what -o writes; a terminal also gets "table"
PROM = "prom"  # Prometheus text (score only): the latest scores, not rows

MAX_WINDOW = 4096  # rows per window; `--window auto` stays within 8..256
# --long-window: "double" is twice the window up to this many rows (no longer window
# beyond: an LSTM's time grows with it); "off" fits one model.
LONG_WINDOW_CHOICES = ("double", "off")
LONG_WINDOW_MAX = 256
MAX_HIDDEN = 4096
MAX_LATENT = 4096
MAX_LAYERS = 16
MAX_COLUMNS = 10_000
# Weights of encoder + decoder + heads: 50M parameters are 200 MB of float32, far
# beyond any model that trains in reasonable time on the machines lstmae runs on.
MAX_PARAMETERS = 50_000_000
MAX_BATCH_SIZE = 1 << 16
MAX_EPOCHS = 1_000_000
# Standardised values are capped here (lstmae.windows), so no window error, held-out
# error or useful threshold is larger; raw values beyond MAX_VALUE are refused on input.
MAX_ERROR = 1e35
MAX_VALUE = 3.4028234663852886e38 / 16  # float32's largest / 16
MAX_SEED = 2**64 - 1  # what torch.manual_seed accepts
MAX_THREADS = 1024
MAX_BATCH_ROWS = 100_000_000
MAX_TOP = 1_000_000_000
MAX_COOLDOWN = 1_000_000_000  # rows between anomalous windows of one event (score --cooldown)


def lstm_parameters(n_features: int, hidden: int, latent: int, layers: int) -> int:
    """Parameters of the LSTM autoencoder (lstmae.model), without building it."""

    def lstm(inputs: int) -> int:
        first = 4 * hidden * (inputs + hidden + 2)
        return first + (layers - 1) * 4 * hidden * (2 * hidden + 2)

    return (lstm(n_features) + hidden * latent + latent + lstm(latent)
            + hidden * n_features + n_features)


def option(help: str, *, choices: tuple[str, ...] | None = None,
           short: str | None = None) -> dict:
    """A field's metadata for the CLI: its --help text, its choices, a short flag."""
    return {"help": help, "choices": choices, "short": short}


def _is_int(value: Any) -> bool:
    """An integer, numpy's included (they register as Integral), but not True or False."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _need(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise OptionError(f"{arg(name)} must be {rule} (got {shorten(repr(value), 80)})")


def _whole(group: Any, names: tuple[str, ...], caps: dict[str, int]) -> None:
    """Each named field of `group` an integer from 1 to its cap."""
    for name in names:
        value, cap = getattr(group, name), caps[name]
        _need(_is_int(value) and 1 <= value <= cap, name, f"an integer from 1 to {cap}", value)


def _choice(group: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(group, name)
    _need(value in choices, name, f"one of {', '.join(choices)}", value)


@dataclass
class DataParams:
    """Which columns of the data are modelled and how they are read."""

    columns: list[str] | None = field(default=None, metadata=option(
        "Value columns, comma-separated. Default: every numeric column except the time "
        "column."))
    context: str | list[str] = field(default="auto", metadata=option(
        "Context columns, comma-separated: read by the encoder, never reconstructed or "
        "scored (command flags, switches, modes). auto: every value column that holds only "
        "0 and 1 in the training data, when another column is left to score; none: score "
        "every column."))
    time_col: str | None = field(default=None, metadata=option(
        "Time column. Default: one named timestamp/time/date/datetime or of datetime type; "
        "else row numbers."))
    fill: str | None = field(default=None, metadata=option(
        "Missing or non-finite values: an error unless you pick a fix.",
        choices=FILL_METHODS))
    time_format: str | None = field(default=None, metadata=option(
        "How to read the time column (strftime), e.g. '%d/%m/%Y %H:%M'. Needed for "
        "day/month dates, which lstmae never guesses. Default: the model's (what fit was "
        "given), else ISO 8601 and other unambiguous forms."))
    clock: str = field(default="auto", metadata=option(
        "Feed the time of day to the encoder as context, so that a window is judged "
        "against what is normal at that hour. auto: when the time column holds date-times "
        "and the training data spans 2 days or more; none: never.",
        choices=("auto", "none")))
    resample: str | None = field(default=None, metadata=option(
        "Average rows into steps of this much time (e.g. 15min, 1h) before windowing, at "
        "fit and score alike (the model keeps it): a window of 96 steps of 15min sees a "
        "day. Needs a date-time column."))

    def check(self) -> None:
        if self.columns is not None:
            listed = isinstance(self.columns, (list, tuple))
            _need(listed and len(self.columns) <= MAX_COLUMNS, "columns",
                  f"at most {MAX_COLUMNS} columns", len(self.columns) if listed else self.columns)
        named = isinstance(self.context, (list, tuple)) and all(
            isinstance(c, str) for c in self.context)
        _need(self.context == "auto" or (named and len(self.context) <= MAX_COLUMNS),
              "context", "auto, or a list of column names (none: [])", self.context)
        _choice(self, "clock", ("auto", "none"))
        if self.fill is not None:
            _choice(self, "fill", FILL_METHODS)
        check_time_format(self.time_format)
        if self.resample is not None:
            step_us(self.resample)


STEP_UNITS_US = {"s": 10**6, "min": 60 * 10**6, "h": 3600 * 10**6, "d": 86400 * 10**6}
MAX_STEP_US = 366 * STEP_UNITS_US["d"]


def step_us(text: str) -> int:
    """--resample's step in microseconds: a whole number and s, min, h or d ("15min")."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*(s|min|h|d)\s*", str(text).lower())
    value = int(match.group(1)) * STEP_UNITS_US[match.group(2)] if match else 0
    _need(0 < value <= MAX_STEP_US, "resample",
          "a length of time such as 30s, 15min, 1h or 1d (at most 366d)", text)
    return value


def check_time_format(value: str | None) -> None:
    _need(value is None or (isinstance(value, str) and "%" in value and len(value) <= 200),
          "time_format", "a strftime format such as '%d/%m/%Y %H:%M'", value)


DEFAULT_WINDOW = 64  # rows; also where --window auto finds no period
ROWS_PER_WINDOW = 5  # the default window is at most a fifth of the rows fit on ...
MIN_DEFAULT_WINDOW = 16  # ... but not shorter than this


def default_window(n_rows: int) -> int:
    """The window when none is given: DEFAULT_WINDOW, shorter where the rows fit on (all
    of them, held-out rows included; steps after --resample) hold fewer than
    ROWS_PER_WINDOW of it. On NAB's series read as means of 4 rows (fits of 70 to 750
    rows), window 64 left a fit of 151 rows 88 overlapping windows and it found little:
    mean VUS-PR artificialWithAnomaly 0.462 against 0.599, realKnownCause 0.413 against
    0.474 (bench/README.md)."""
    return max(MIN_DEFAULT_WINDOW, min(DEFAULT_WINDOW, n_rows // ROWS_PER_WINDOW))


@dataclass
class WindowParams:
    """How the series is cut into windows."""

    window: int | str | None = field(default=None, metadata=option(
        "Window length in rows, or auto: the training data's dominant period "
        "(autocorrelation), between 8 and 256. Default: 64, or a fifth of the rows fit on "
        "where that is shorter (at least 16; fewer than 64 rows need a window given).",
        short="-w"))
    stride: int = field(default=1, metadata=option("Rows between window starts."))
    long_window: int | str = field(default="off", metadata=option(
        "A second model on longer windows, scored with the first: a window's error is the "
        "mean of the two models' errors for the windows ending at its last row (each over "
        "its own threshold), never below the first model's own, and the window spans the "
        "long one's rows. The second model reads its window in as many steps as the "
        "window has rows, each the mean of the rows it spans. double: twice the window "
        f"(when that is at most {LONG_WINDOW_MAX} rows and the training data hold it); a "
        "multiple of the window in rows; or off (one model)."))

    def check(self) -> None:
        if self.window not in (None, "auto"):
            _need(_is_int(self.window) and 2 <= int(self.window) <= MAX_WINDOW, "window",
                  f"an integer from 2 to {MAX_WINDOW}, or auto", self.window)
        _whole(self, ("stride",), {"stride": MAX_WINDOW})
        if self.long_window not in LONG_WINDOW_CHOICES:
            _need(_is_int(self.long_window) and 3 <= int(self.long_window) <= MAX_WINDOW,
                  "long_window", f"double, off, or an integer from 3 to {MAX_WINDOW}",
                  self.long_window)


@dataclass
class NetworkParams:
    """The size of the LSTM autoencoder (lstmae.model)."""

    hidden: int = field(default=64, metadata=option("LSTM hidden units."))
    latent: int = field(default=16, metadata=option("Size of the latent vector."))
    layers: int = field(default=1, metadata=option("LSTM layers in encoder and decoder."))

    def check(self) -> None:
        _whole(self, ("hidden", "latent", "layers"),
               {"hidden": MAX_HIDDEN, "latent": MAX_LATENT, "layers": MAX_LAYERS})

    def check_size(self, n_features: int) -> None:
        """Refuse, before training, a model too large to hold in memory."""
        count = lstm_parameters(n_features, self.hidden, self.latent, self.layers)
        if count > MAX_PARAMETERS:
            raise OptionError(
                f"{arg('hidden')} {self.hidden}, {arg('latent')} {self.latent} and "
                f"{arg('layers')} {self.layers} with {n_features} column(s) make {count:,} "
                f"weights ({count * 4 / 2**30:.1f} GiB), above lstmae's limit of "
                f"{MAX_PARAMETERS:,}; use a smaller {arg('hidden')} or fewer {arg('layers')}"
            )


@dataclass
class TrainingParams:
    """How the network is trained."""

    epochs: int = field(default=100, metadata=option("Most epochs to train."))
    batch_size: int = field(default=64, metadata=option("Windows per mini-batch."))
    lr: float = field(default=3e-3, metadata=option("Adam learning rate."))
    loss: str = field(default="mse", metadata=option(
        "Reconstruction loss that training minimises (l1 is another name for mae).",
        choices=LOSSES + tuple(ALIASES["loss"])))
    val_fraction: float = field(default=0.1, metadata=option(
        "Last part of the series, in time order, held out for early stopping and the "
        "threshold."))
    patience: int = field(default=10, metadata=option(
        "Stop after this many epochs in which the validation loss did not fall 1 % below "
        "its last clear low (the best epoch is kept)."))
    seed: int = field(default=0, metadata=option(
        "Random seed (same seed, same model on CPU)."))
    device: str = field(default="auto", metadata=option(
        "auto: CUDA when present.", choices=DEVICES))
    precision: str = field(default="auto", metadata=option(
        "Training arithmetic. auto: bf16 autocast on CUDA and on CPUs with Intel AMX "
        "(faster, same quality), else fp32. Scoring always runs in fp32.", choices=PRECISIONS))

    def check(self) -> None:
        _whole(self, ("epochs", "batch_size", "patience"),
               {"epochs": MAX_EPOCHS, "batch_size": MAX_BATCH_SIZE, "patience": MAX_EPOCHS})
        _need(_is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0, "lr",
              "a positive number", self.lr)
        _choice(self, "loss", LOSSES)
        _choice(self, "precision", PRECISIONS)
        _need(_is_number(self.val_fraction) and 0 <= self.val_fraction < 1, "val_fraction",
              "at least 0 and below 1", self.val_fraction)
        _need(_is_int(self.seed) and 0 <= self.seed <= MAX_SEED, "seed",
              f"an integer from 0 to 2**64 - 1 ({MAX_SEED})", self.seed)
        _choice(self, "device", DEVICES)


@dataclass
class ThresholdParams:
    """How a window's error is measured, and the threshold above which it is anomalous."""

    error: str = field(default="mae+peak", metadata=option(
        "How window errors are measured, for the threshold and for scoring: mae = mean "
        "absolute difference per column over the window's rows, mse = mean squared, "
        "mae+peak = the larger of mae and the largest single difference, scaled to mae's "
        "size on held-out (else training) windows, so one-row spikes count too; a window's "
        "error is its worst column's.", choices=ERRORS))
    threshold_method: str = field(default="max", metadata=option(
        "max: --margin times the largest held-out error; quantile: --threshold-quantile of "
        "held-out errors; pot: generalised Pareto tail at --risk; sigma: mean + --sigma "
        "standard deviations.", choices=THRESHOLD_METHODS))
    threshold_quantile: float = field(default=0.99, metadata=option(
        "Threshold = this quantile of held-out windows' errors."))
    risk: float = field(default=1e-3, metadata=option(
        "pot: probability that a normal window exceeds the threshold."))
    sigma: float = field(default=3.0, metadata=option(
        "sigma: standard deviations above the mean."))
    margin: float | None = field(default=None, metadata=option(
        "max: threshold = this times the largest held-out error. Default 1.0, or 1.5 when "
        "too few rows are held out and training windows' errors (which understate new "
        "data's) are used."))

    def check(self) -> None:
        _choice(self, "error", ERRORS)
        check_threshold_settings(self.threshold_method, self.threshold_quantile, self.risk,
                                 self.sigma, self.margin)


def check_threshold_settings(method: str, quantile: float, risk: float, sigma: float,
                             margin: float | None = None) -> None:
    """Refuse settings that cannot give a threshold, naming the parameter."""
    if method not in THRESHOLD_METHODS:
        raise OptionError(f"{arg('threshold_method')} must be one of "
                          f"{', '.join(THRESHOLD_METHODS)} (got {method!r})")
    if not (_is_number(quantile) and 0.0 < quantile < 1.0):
        raise OptionError(f"{arg('threshold_quantile')} must be between 0 and 1 "
                          f"(got {quantile!r})")
    if not (_is_number(risk) and 0.0 < risk < 1.0):
        raise OptionError(f"{arg('risk')} must be between 0 and 1, e.g. 1e-3 (got {risk!r})")
    if not (_is_number(sigma) and math.isfinite(sigma) and sigma > 0):
        raise OptionError(f"{arg('sigma')} must be a positive number (got {sigma!r})")
    if margin is not None and not (_is_number(margin) and math.isfinite(margin) and margin > 0):
        raise OptionError(f"{arg('margin')} must be a positive number, e.g. 1.5 "
                          f"(got {margin!r})")


GROUPS = {"data": DataParams, "window": WindowParams, "network": NetworkParams,
          "training": TrainingParams, "threshold": ThresholdParams}


@dataclass
class FitParams:
    """Every parameter of `fit`, by group. Flat names are unique across groups, so
    `Detector(window=32, lr=1e-3)` and the CLI's flags map onto them one to one."""

    data: DataParams = field(default_factory=DataParams)
    window: WindowParams = field(default_factory=WindowParams)
    network: NetworkParams = field(default_factory=NetworkParams)
    training: TrainingParams = field(default_factory=TrainingParams)
    threshold: ThresholdParams = field(default_factory=ThresholdParams)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> FitParams:
        """Parameters from flat names (`window=32`); unknown names are refused, aliases
        (loss "l1") read as the name lstmae uses."""
        unknown = sorted(set(values) - set(FLAT_NAMES))
        if unknown:
            raise TypeError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                            f"the parameters are: {', '.join(FLAT_NAMES)}")
        values = {name: ALIASES.get(name, {}).get(value, value) if isinstance(value, str)
                  else value for name, value in values.items()}
        return cls(**{group: kind(**{f.name: values[f.name] for f in fields(kind)
                                     if f.name in values})
                      for group, kind in GROUPS.items()})

    def flat(self) -> dict[str, Any]:
        """{name: value} over every group: what the model file stores."""
        return {name: value for group in GROUPS for name, value in
                asdict(getattr(self, group)).items()}

    def check(self) -> None:
        """Refuse a parameter that cannot work, naming it."""
        for group in GROUPS:
            getattr(self, group).check()
        if self.data.columns is not None:
            self.network.check_size(len(self.data.columns))


# Every field of every group by its flat name, in group order (the CLI's option order).
FIELDS = {f.name: f for kind in GROUPS.values() for f in fields(kind)}
FLAT_NAMES = tuple(FIELDS)
DEFAULTS = {name: f.default for name, f in FIELDS.items() if f.default is not MISSING}
