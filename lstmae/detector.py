"""Detector: the Python API. fit / score / encode / reconstruct / save / load.

    det = Detector(window=32).fit(frame)
    det.score(new_frame)            # window, start, end, error, threshold, anomaly
    det.save("model.lstmae"); Detector.load("model.lstmae")

The parameters are those of `lstmae fit`, by the same names (lstmae.params), held
in `det.params`. Fitted state ends in `_` (scikit-learn style). Everything scoring
needs lives in the model file, so a loaded Detector scores exactly as the one that
was saved.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from lstmae import __version__, steps, threads
from lstmae import params as limits
from lstmae import threshold as thresholds
from lstmae.artifact import load_model_file, params_of, save_model_file
from lstmae.errors import (
    DataError,
    LstmaeWarning,
    ModelFileError,
    OptionError,
    TrainingError,
    arg,
    name_list,
    shorten,
)
from lstmae.events import PERSIST, Events, Surprise
from lstmae.inference import SCORE_BATCH, forward
from lstmae.model import LSTMAutoencoder, ModelConfig
from lstmae.params import LEVELS, FitParams
from lstmae.scoring import WindowError, window_error
from lstmae.series import Series, to_series
from lstmae.stream import (
    EventRows,
    IntervalCheck,
    LatentRows,
    Piece,
    PieceOutput,
    PointRows,
    ReconstructionRows,
    Rows,
    WindowRows,
    describe_interval,
    latest_window,
    pieces,
    typical_interval,
    window_frame,
)
from lstmae.train import (
    BatchReport,
    EpochReport,
    TrainResult,
    WindowSet,
    local_rank,
    rank_and_world,
    resolve_device,
    train,
    training_precision,
)
from lstmae.windows import (
    Scaler,
    accumulate_windows,
    clock,
    dominant_period,
    spans_clock,
    window_starts,
    window_view,
)

if TYPE_CHECKING:
    from lstmae.state import ScoreState

# Fewer held-out windows than this cannot calibrate a 0.99 quantile or stop early
# meaningfully; then training windows are used for both.
MIN_HELDOUT_WINDOWS = 20
# Every output of a pass over the data: the score levels, encode's and reconstruct's.
OUTPUTS = (*LEVELS, "latent", "reconstruction")
DEFAULT_WINDOW = limits.DEFAULT_WINDOW  # also where --window auto finds no period
AUTO_WINDOW_MIN, AUTO_WINDOW_MAX = 8, 256
# The --resample step --window auto suggests for a period too long for a window: the
# shortest of these that gives at most AUTO_STEPS_PER_PERIOD steps a cycle.
NICE_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
AUTO_STEPS_PER_PERIOD = 128


@dataclasses.dataclass
class LongModel:
    """The second model of a Detector (--long-window): an autoencoder of the same shape on
    longer windows, read as steps of `step` rows averaged (as many steps as the first
    model's window has rows, so it costs what the first model costs). A window's error
    is the mean of the first model's and this one's for the windows ending at its last
    row, this one's times `scale` (the first model's threshold over this one's), so each
    counts as its own threshold says, and never below the first model's
    (Detector._add_long); where the data hold no long window yet (a file's first rows),
    the first model's alone.

    On windows of 128 rows, read in steps of 2 rows against every row: mean VUS-PR on
    nab-dev's two folders, smap-dev and smap-dev-more 0.618 / 0.480 / 0.586 / 0.472
    against 0.598 / 0.482 / 0.596 / 0.465, in half the fit time (bench/README.md; one
    model: 0.550 / 0.475 / 0.570 / 0.457). Model files written before steps have
    step 1."""

    window: int  # rows
    step: int  # rows averaged into each step the model reads; window // step steps
    model: LSTMAutoencoder
    error: WindowError
    threshold: float  # calibrated as the first model's, on its own windows
    training: dict

    def scale(self, threshold: float) -> float:
        return threshold / self.threshold


# Which group of FitParams holds each parameter (e.g. "lr" -> "training").
_GROUP_OF = {f.name: group for group, kind in limits.GROUPS.items()
             for f in dataclasses.fields(kind)}


class Detector:
    """LSTM autoencoder anomaly detector for multivariate time series.

    Detector(**params): the parameters of `lstmae fit`, by their Python names
    (window=32, hidden=64, threshold_method="quantile", ...; lstmae.params has
    them all with their defaults). They are checked at fit time; an invalid one
    raises OptionError naming it.
    """

    path_: str | None = None  # the model file it was loaded from
    long_: LongModel | None = None  # the second model (--long-window), when fitted with one

    def __init__(self, **params: Any):
        self.params = FitParams.from_flat(params)

    # det.window, det.lr = 1e-3: each parameter read and set by its name, scikit-learn
    # style, in its one home, det.params.
    def __getattr__(self, name: str) -> Any:
        group = _GROUP_OF.get(name)
        if group is None or "params" not in self.__dict__:
            raise AttributeError(f"'Detector' object has no attribute {name!r}")
        return getattr(getattr(self.params, group), name)

    def __setattr__(self, name: str, value: Any) -> None:
        group = _GROUP_OF.get(name)
        if group is None:
            super().__setattr__(name, value)
        else:
            setattr(getattr(self.params, group), name, value)

    # ------------------------------------------------------------------ fit
    def check_params(self) -> None:
        """Refuse a parameter that cannot work, naming it (fit calls this first)."""
        self.params.check()

    def fit(
        self,
        frame: pd.DataFrame,
        progress: Callable[[EpochReport], None] | None = None,
        source: str = "data",
        keep_best_on_interrupt: bool = False,
        on_batch: Callable[[BatchReport], None] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> Detector:
        """Train on a frame of normal behaviour and calibrate the threshold.

        progress: called after each epoch; on_batch: a few times a second within one;
        on_stage: with a few words as each stage begins ("training", ...).

        keep_best_on_interrupt: on Ctrl-C after at least one epoch, stop training
        and finish with the best epoch so far (training_["interrupted"] says so).

        In a torch.distributed process group (torchrun; see `lstmae.train.process_group`)
        every rank calls fit with the same data and parameters and trains on its share
        of the windows. Only rank 0 then calibrates the threshold: on the other ranks
        fit returns once training ends, with the detector not calibrated (do not save it).

        Threads: the active lstmae.threads policy, or `auto` (training_["threads"] says
        what was used).
        """
        stage = on_stage or (lambda text: None)
        with threads.using(None) as policy:
            self._fit(frame, source, policy, stage, progress=progress, on_batch=on_batch,
                      keep_best_on_interrupt=keep_best_on_interrupt)
        return self

    def _fit(self, frame: pd.DataFrame, source: str, policy: threads.ThreadPolicy,
             stage: Callable[[str], None], **train_args: Any) -> None:
        self.check_params()
        p = self.params
        device = resolve_device(p.training.device)
        # refuses bf16 where unsupported, before any work
        precision = training_precision(p.training.precision, device)
        rank, world = rank_and_world()
        if world > 1 and device.type == "cuda":
            device = torch.device("cuda", local_rank())  # one GPU per process
        stage(f"checking {len(frame):,} rows")
        series = to_series(frame, p.data.columns, p.data.time_col, p.data.fill, source,
                           time_format=p.data.time_format)
        if p.data.resample is not None:
            stage(f"averaging {len(series.values):,} rows into steps of {p.data.resample}")
            series = steps.average(series, limits.step_us(p.data.resample), source)
        if len(series.columns) > limits.MAX_COLUMNS:
            raise DataError(f"{source}: has {len(series.columns)} value columns, more than "
                            f"lstmae's limit of {limits.MAX_COLUMNS}; choose some with "
                            f"{arg('columns')}")
        p.network.check_size(len(series.columns))
        started = time.perf_counter()
        torch.manual_seed(p.training.seed)

        self.columns_ = series.columns
        self.time_col_ = series.time_col
        self.time_kind_ = series.time_kind
        self.interval_ = typical_interval(series.index) if series.time_col else None
        self.context_ = self._context(series.values, source)
        flags = np.array([c in self.context_ for c in self.columns_]) & _is_flag(series.values)
        self.scaler_ = Scaler.fit(series.values, series.columns, as_is=flags)
        n_rows = len(series.values)
        if p.window.window == "auto":
            stage("finding the period (window auto)")
        self.window_ = self._choose_window(series.values, source)
        self._check_stride(n_rows, source)
        long_window = self._choose_long_window(n_rows, source)
        train_rows, val_rows = self._split(n_rows, self.window_)
        series = self._without_still_context(series, train_rows, source)
        self.clock_ = p.data.clock == "auto" and series.time_kind in steps.KINDS_WITH_STEPS \
            and spans_clock(series.index)
        scaled = torch.from_numpy(self._inputs(series))

        train_set = self._window_set(scaled[:train_rows], self.window_, device)
        val_set = self._window_set(scaled[train_rows:], self.window_, device) if val_rows else None

        outputs = [i for i, c in enumerate(self.columns_) if c not in self.context_]
        self.config_ = ModelConfig(scaled.shape[1], p.network.hidden, p.network.latent,
                                   p.network.layers,
                                   outputs if self.context_ or self.clock_ else None)
        self.model_ = LSTMAutoencoder(self.config_).to(device)
        stage("training" if long_window is None else f"training on windows of {self.window_}")
        result = self._train(self.model_, train_set, val_set, train_args)
        long = None
        if long_window is not None and not result.interrupted:
            stage(f"training the second model, on windows of {long_window}")
            long = self._fit_long(long_window, scaled, device, train_args)
        if rank != 0:
            return  # every rank holds the same weights; rank 0 calibrates and writes
        stage("calibrating the threshold")
        self.error_, self.heldout_errors_, self.threshold_, self.threshold_info_ = \
            self._calibrate(self.model_, val_set if val_set is not None else train_set,
                            heldout=val_set is not None, monitored=result.monitored,
                            source=source)
        self.long_ = None
        if long is not None:
            model, long_result, long_train, long_val = long
            error, _, threshold, _ = self._calibrate(
                model, long_val if long_val is not None else long_train,
                heldout=long_val is not None, monitored=long_result.monitored, source=source)
            self.long_ = LongModel(long_train.window, long_train.step, model.cpu().eval(),
                                   error, threshold, {
                **_result_summary(long_result), "train_windows": len(long_train),
                "val_windows": len(long_val) if long_val is not None else 0})
        self.model_ = self.model_.cpu().eval()
        self.training_ = self._summary(series, train_set, val_set, result, device, started)
        if long_window is not None and (self.long_ is None or self.long_.training["interrupted"]):
            # Ctrl-C stopped the second model, or came before its first epoch ended and
            # left the first model alone: either way not the fit that was asked for.
            self.training_["interrupted"] = True
            if self.long_ is None:
                self.training_["long_window"] = "interrupted"
        self.training_["processes"] = world  # each trained on 1/world of the windows
        self.training_["precision"] = precision
        self.training_["threads"] = policy.report("train")

    def _train(self, model: LSTMAutoencoder, train_set: WindowSet, val_set: WindowSet | None,
               train_args: dict) -> TrainResult:
        t = self.params.training
        return train(model, train_set, val_set, epochs=t.epochs, batch_size=t.batch_size,
                     lr=t.lr, loss=t.loss, patience=t.patience, seed=t.seed,
                     precision=t.precision, **train_args)

    def _fit_long(self, window: int, scaled: torch.Tensor, device: torch.device,
                  train_args: dict):
        """Train the second model on windows of `window` rows in steps of window // the
        first model's window rows, split as the first model's rows would be for that
        window. None when Ctrl-C stops it before an epoch ends."""
        step = window // self.window_
        train_rows, val_rows = self._split(len(scaled), window)
        train_set = self._window_set(scaled[:train_rows], window, device, step)
        val_set = self._window_set(scaled[train_rows:], window, device, step) \
            if val_rows else None
        model = LSTMAutoencoder(self.config_).to(device)
        try:
            result = self._train(model, train_set, val_set, train_args)
        except KeyboardInterrupt:
            if not train_args.get("keep_best_on_interrupt"):
                raise
            return None  # the first model is trained: go on with it alone
        return model, result, train_set, val_set

    def _choose_long_window(self, n_rows: int, source: str) -> int | None:
        """The second model's window, or None: off, or (double) longer than LONG_WINDOW_MAX
        or too long for the training data to hold MIN_HELDOUT_WINDOWS of it."""
        wanted = self.params.window.long_window
        if wanted == "off":
            return None
        if wanted == "double":  # only where it can be trained on enough windows
            window = 2 * self.window_
            windows = (n_rows - window) // self.params.window.stride + 1
            fits = window <= limits.LONG_WINDOW_MAX and windows >= MIN_HELDOUT_WINDOWS
            return window if fits else None
        window = int(wanted)
        if window <= self.window_:
            raise OptionError(f"{arg('long_window')} {window} is not longer than "
                              f"{self._the_window(n_rows)}; give more rows, double or off")
        if n_rows < window:
            raise OptionError(f"{arg('long_window')} {window} is longer than the {n_rows} "
                              f"rows of {source}; give fewer rows, double or off")
        if window % self.window_:  # the second model reads it in steps of whole rows
            raise OptionError(f"{arg('long_window')} {window} is not a multiple of "
                              f"{self._the_window(n_rows)}; give {2 * self.window_}, "
                              f"{3 * self.window_}, ..., double or off")
        return window

    def _context(self, values: np.ndarray, source: str) -> list[str]:
        """The context columns: named, or (auto) the 0/1 flag columns when some other
        column is left to reconstruct. On SMAP telemetry, whose 24 command flags are
        mostly 0, scoring the flags buried the telemetry's anomalies: mean VUS-PR 0.40
        with them scored, 0.5 as context (bench/README.md)."""
        wanted = self.params.data.context
        if wanted == "auto":
            flags = _is_flag(values)
            named = [c for c, flag in zip(self.columns_, flags, strict=True) if flag]
            return [] if flags.all() else named
        unknown = [c for c in wanted if c not in self.columns_]
        if unknown:
            raise OptionError(
                f"{arg('context')} names {', '.join(repr(shorten(c)) for c in unknown)}, "
                f"not a value column of {source} ({', '.join(map(shorten, self.columns_))})")
        if set(wanted) >= set(self.columns_):
            raise OptionError(f"{arg('context')} names every value column of {source}; "
                              "leave at least one to reconstruct and score")
        return [c for c in self.columns_ if c in wanted]

    def _without_still_context(self, series: Series, train_rows: int, source: str) -> Series:
        """The series less its context columns that never change in the training rows
        (the first `train_rows`; a change only in the held-out rows is never trained on).

        The model cannot learn what such a column means: a 0 that stays 0 gives its input
        weights no gradient, so they keep their random start, and the column's first change
        in new data would move the encoder at random (SMAP channels send commands in test
        that training never saw: E-3's F1 at the threshold 0.16 / 0.38 -> 0.47 / 0.42 at
        seeds 0 / 1 with them left out; bench/README.md). Left out, the model judges the
        columns it learnt, and new data need not hold them."""
        trained = series.values[:train_rows]
        still = [c for i, c in enumerate(series.columns)
                 if c in self.context_ and (trained[:, i] == trained[0, i]).all()]
        self.left_out_ = still
        if not still:
            return series
        warnings.warn(LstmaeWarning(
            f"{source}: context column(s) {name_list(still)} never change in the training "
            "data, so the model cannot learn what they mean; left out of the model"),
            stacklevel=4)
        keep = [i for i, c in enumerate(series.columns) if c not in still]
        self.columns_ = [series.columns[i] for i in keep]
        self.context_ = [c for c in self.context_ if c not in still]
        self.scaler_ = Scaler(self.scaler_.mean[keep], self.scaler_.std[keep])
        return dataclasses.replace(series, values=series.values[:, keep], columns=self.columns_)

    def _inputs(self, series: Series) -> np.ndarray:
        """What the encoder reads [N, D (+ 2)]: the standardised columns, then the clock."""
        scaled = self.scaler_.transform(series.values)
        return np.concatenate([scaled, clock(series.index)], axis=1) if self.clock_ else scaled

    @property
    def window_shortened_(self) -> bool:
        """Whether the default window is shorter than DEFAULT_WINDOW: a short fit."""
        return self.params.window.window is None and self.window_ < DEFAULT_WINDOW

    @property
    def history_(self) -> int:
        """The longest window: rows of context scoring a row needs."""
        return self.long_.window if self.long_ is not None else self.window_

    @property
    def scored_(self) -> list[str]:
        """The columns the model reconstructs and scores: all but the context."""
        outputs = self.config_.outputs
        return list(self.columns_) if outputs is None else [self.columns_[i] for i in outputs]

    def _scored_inverse(self, values: np.ndarray) -> np.ndarray:
        """Standardised reconstructions of the scored columns -> the data's units."""
        idx = self.config_.outputs if self.config_.outputs is not None else slice(None)
        return values.astype(np.float64) * self.scaler_.std[idx] + self.scaler_.mean[idx]

    def _the_window(self, n_rows: int) -> str:
        """The window, for a message: the default's rule too, where it shortened it."""
        if self.window_shortened_:
            return (f"the default window of {self.window_} (a fifth of the {n_rows} rows; "
                    f"{arg('window')} sets it)")
        return f"the window of {self.window_}"

    def _check_stride(self, n_rows: int, source: str) -> None:
        stride = self.params.window.stride
        window_starts(n_rows, self.window_, stride)  # fails early when too short
        if stride > self.window_:
            raise OptionError(
                f"{arg('stride')} {stride} is larger than {self._the_window(n_rows)}: rows "
                "between windows would never be scored; use a stride of at most the window"
            )
        if stride > n_rows - self.window_ + 1:
            raise OptionError(
                f"{arg('stride')} {stride} is larger than the {n_rows - self.window_ + 1} "
                f"window positions of {source} ({n_rows} rows, window {self.window_}); "
                f"use a smaller {arg('stride')}"
            )

    @torch.inference_mode()
    def _calibrate(self, model: LSTMAutoencoder, calibration: WindowSet, heldout: bool,
                   monitored: str, source: str) -> tuple[WindowError, np.ndarray, float, dict]:
        """Fit the window error and the threshold on normal windows' errors (held out, or
        the training windows when too few rows could be held out): the error, those
        errors, the threshold and how it was found."""
        model.eval()  # as scoring runs it
        batches = ((b.reconstruction, b.target) for b in
                   forward(model, calibration.view, calibration.starts))
        error, errors = WindowError.fit(self.params.threshold.error, batches)
        if not np.isfinite(errors).all():
            raise TrainingError(
                f"{source}: the trained model's errors on normal windows are not finite; try "
                f"a smaller {arg('lr')}, or check the data for extreme values"
            )
        th = self.params.threshold
        threshold, how = thresholds.calibrate(
            errors, th.threshold_method, th.threshold_quantile,
            th.risk, th.sigma, th.margin, heldout=heldout,
        )
        if not threshold <= limits.MAX_ERROR:
            raise OptionError(
                f"{arg('threshold_method')} {th.threshold_method} with these settings gives "
                f"the threshold {threshold:g}, above any error lstmae can measure "
                f"({limits.MAX_ERROR:g}); use a smaller {arg('margin')} or {arg('sigma')}"
            )
        return error, errors, threshold, {**how, "source": monitored, "windows": len(errors)}

    def _choose_window(self, values: np.ndarray, source: str) -> int:
        window = self.params.window.window
        n_rows = len(values)
        if window is None:
            if n_rows < DEFAULT_WINDOW:  # refused before the default followed the rows: a
                # truncated export must not quietly replace a model fitted on a whole one
                raise DataError(
                    f"{source}: {n_rows} row(s), fewer than the {DEFAULT_WINDOW} that the "
                    f"default window needs; give more rows, or {arg('window')} N for a "
                    "window of N rows")
            return limits.default_window(n_rows)
        if window != "auto":
            return int(window)
        period = dominant_period(self.scaler_.transform(values))  # only when auto
        if period is None:
            warnings.warn(LstmaeWarning(  # an instance: filters match the Python names
                f"{arg('window')} auto: no clear period in the training data; using "
                f"{limits.default_window(n_rows)}"), stacklevel=4)
            return limits.default_window(n_rows)
        if period > AUTO_WINDOW_MAX:
            warnings.warn(LstmaeWarning(self._long_period(period)), stacklevel=4)
        # One period per window, within what an LSTM handles well and fast.
        return int(np.clip(period, AUTO_WINDOW_MIN, AUTO_WINDOW_MAX))

    def _long_period(self, period: int) -> str:
        """What to say when the period is longer than the longest automatic window."""
        text = (f"{arg('window')} auto: the data repeats every {period} rows, more than the "
                f"{AUTO_WINDOW_MAX} rows of the longest window it picks; using "
                f"{AUTO_WINDOW_MAX}, which sees part of a cycle")
        if self.interval_ is None or self.time_kind_ not in steps.KINDS_WITH_STEPS:
            return text
        seconds = period * self.interval_
        step = next((s for s in NICE_STEPS_S if s >= seconds / AUTO_STEPS_PER_PERIOD
                     and s > self.interval_), None)
        if step is None:
            return text
        name = next(f"{step // unit}{suffix}" for suffix, unit in
                    (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)) if step % unit == 0)
        return (f"{text}. To see whole cycles ({describe_interval(seconds, 'naive')}), "
                f"average rows into steps: {arg('resample')} {name} gives "
                f"{round(seconds / step)} steps a cycle")

    def _split(self, n_rows: int, window: int) -> tuple[int, int]:
        """Rows for training and, at the end in time order, for validation.

        The two parts share no row, so validation windows are truly unseen.
        """
        val_rows = int(round(n_rows * self.params.training.val_fraction))
        train_rows = n_rows - val_rows
        enough = (
            val_rows - window + 1 >= MIN_HELDOUT_WINDOWS * self.params.window.stride
            and train_rows >= window
        )
        return (train_rows, val_rows) if enough else (n_rows, 0)

    def _window_set(self, scaled: torch.Tensor, window: int, device: torch.device,
                    step: int = 1) -> WindowSet:
        starts = window_starts(len(scaled), window, self.params.window.stride)
        return WindowSet(scaled.to(device), torch.from_numpy(starts).to(device), window, step)

    def _summary(self, series, train_set, val_set, result: TrainResult, device, started) -> dict:
        return {
            "rows": len(series.values),
            "train_windows": len(train_set),
            "val_windows": len(val_set) if val_set is not None else 0,
            **_result_summary(result),
            "seconds": round(time.perf_counter() - started, 3),
            "device": str(device),
            "first_time": _jsonable(series.labels[0]),
            "last_time": _jsonable(series.labels[-1]),
        }

    # ---------------------------------------------------------------- score
    def series(self, frame: pd.DataFrame, source: str = "data") -> Series:
        """The frame as scoring reads it (the model's columns, time column and fill), with
        each row's file row number in `.rows`: to line up labels with the scores."""
        self._check_fitted()
        data = self.params.data
        found = [str(c) for c in frame.columns]
        series = to_series(frame, self.columns_, self.time_col_ if self.time_col_ in found
                           else None, data.fill, source,
                           time_format=data.time_format, report=False)
        if data.resample is None:
            return series
        return steps.average(series, limits.step_us(data.resample), source)

    def _step_us(self) -> int | None:
        resample = self.params.data.resample
        return None if resample is None else limits.step_us(resample)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise OptionError("this Detector is not fitted; call fit() or Detector.load() first")

    def threshold_for(
        self,
        threshold: float | None = None,
        quantile: float | None = None,
        risk: float | None = None,
        margin: float | None = None,
    ) -> tuple[float, str]:
        """The threshold to score with, and where it came from.

        An explicit `threshold` wins; `quantile`, `risk` or `margin` (times the
        largest) re-derive one from the held-out errors stored in the model;
        otherwise the model's own. Errors name the parameters of the CLI's
        score (threshold_quantile for `quantile`).
        """
        self._check_fitted()
        if threshold is not None:
            if not (math.isfinite(threshold) and threshold >= 0):
                raise OptionError(f"{arg('threshold')} must be a non-negative number "
                                  f"(got {threshold})")
            return float(threshold), "--threshold"
        if sum(x is not None for x in (quantile, risk, margin)) > 1:
            raise OptionError(f"give only one of {arg('threshold_quantile')}, {arg('risk')} "
                              f"and {arg('margin')}")
        model = self.path_ or "the model"
        if quantile is not None:
            value, rule = thresholds.calibrate(self.heldout_errors_, "quantile",
                                               quantile=quantile)
            option = f"{arg('threshold_quantile')} {quantile}"
            how = f"quantile {quantile} of held-out errors"
        elif risk is not None:
            value, rule = thresholds.calibrate(self.heldout_errors_, "pot", risk=risk)
            option, how = f"{arg('risk')} {risk}", f"pot at risk {risk} of held-out errors"
        elif margin is not None:
            value, rule = thresholds.calibrate(self.heldout_errors_, "max", margin=margin)
            option = f"{arg('margin')} {margin:g}"
            how = f"{margin:g} x the largest held-out error"
        else:
            value, option, rule = self.threshold_, None, {}
            how = f"the model's {self.threshold_info_['method']} threshold"
        how += thresholds.floor_note(rule)
        if not (math.isfinite(value) and 0 <= value <= limits.MAX_ERROR):
            source = f"{option} on {model}'s held-out errors" if option else f"{model}'s threshold"
            raise OptionError(f"{source} gives the threshold {value}, which cannot be used; "
                              f"give {arg('threshold')} X")
        return value, how

    def score(
        self,
        frame: pd.DataFrame,
        threshold: float | None = None,
        level: str = "window",
        per_column: bool = False,
        source: str = "data",
    ) -> pd.DataFrame:
        """Score new data at one of three levels.

        window: one row per window: window, start, end, error, threshold, anomaly.
        point:  one row per input row: <time column or row>, score, threshold,
                anomaly. Causal: a row's score is the error of the latest window
                that ends at it (stride 1: the window ending there); rows before
                the first full window have no score (NaN) and are not anomalous.
        event:  consecutive anomalous windows merged: event, start, end, windows,
                peak_error, top_column (the column with the largest error).
        per_column adds error_<col> to window and point rows.
        """
        if level not in LEVELS:
            raise OptionError(f"{arg('level')} must be one of {', '.join(LEVELS)} "
                              f"(got {level!r})")
        result = self.outputs(frame, [level], threshold, source)[level]
        if not per_column:
            result = result.drop(columns=[c for c in result.columns if c.startswith("error_")])
        return result

    def score_all(
        self, frame: pd.DataFrame, threshold: float | None = None, source: str = "data"
    ) -> dict[str, pd.DataFrame]:
        """All three levels of `score` from one pass of the model, with per-column errors."""
        return self.outputs(frame, LEVELS, threshold, source)

    def outputs(
        self, frame: pd.DataFrame, outputs: Iterable[str], threshold: float | None = None,
        source: str = "data",
    ) -> dict[str, pd.DataFrame]:
        """Any of OUTPUTS for a whole frame, from one pass of the model: e.g. point scores
        and the reconstruction for a plot."""
        wanted = [outputs] if isinstance(outputs, str) else list(outputs)
        parts = list(self.iter_outputs([frame], wanted, threshold, source, sort=True))
        return {name: pd.concat([p[name] for p in parts], ignore_index=True)
                for name in OUTPUTS if name in wanted}

    def iter_score(
        self,
        frames: Iterable[pd.DataFrame],
        threshold: float | None = None,
        source: str = "data",
        sort: bool = False,
        levels: Iterable[str] = LEVELS,
        cooldown: int | None = None,
        state: ScoreState | None = None,
        log_events: bool = False,
    ) -> Iterator[dict[str, pd.DataFrame]]:
        """`score_all` for data arriving in batches of rows (in time order), batch by batch.

        Yields, per batch, the windows that end in it, its rows' point scores
        and the events that closed in it (the `levels` asked for); memory does
        not grow with the data. Point rows cost as much as the model on wide
        data, so they are built only when asked for.

        cooldown: anomalous windows whose ends are at most this many rows apart are one
        event (default: the window). state: go on from an earlier run and keep it up to
        date (lstmae.state; the stream is then endless: an event still open at the end
        is held in the state). log_events: write an event row also as the event opens.
        """
        levels = set(levels)
        if not levels <= set(LEVELS):
            raise OptionError(f"levels must be among {', '.join(LEVELS)} (got {sorted(levels)})")
        return self.iter_outputs(frames, levels, threshold, source, sort, cooldown, state,
                                 log_events)

    def iter_outputs(
        self,
        frames: Iterable[pd.DataFrame],
        outputs: Iterable[str],
        threshold: float | None = None,
        source: str = "data",
        sort: bool = False,
        cooldown: int | None = None,
        state: ScoreState | None = None,
        log_events: bool = False,
    ) -> Iterator[dict[str, pd.DataFrame]]:
        """The outputs asked for (OUTPUTS), batch by batch, from one forward pass per batch:
        each output is a `Rows` of lstmae.stream, fed every piece of the data in turn."""
        self._check_fitted()
        wanted = {outputs} if isinstance(outputs, str) else set(outputs)
        if not wanted <= set(OUTPUTS):
            raise OptionError(f"outputs must be among {', '.join(OUTPUTS)} "
                              f"(got {sorted(wanted)})")
        scoring = bool(wanted & set(LEVELS))
        limit = self.threshold_for(threshold)[0] if scoring else math.nan
        cooldown = self.check_cooldown(cooldown)
        tracker = state.events if state is not None else self.events(cooldown)
        tracker.cooldown = cooldown
        surprise = state.surprise if state is not None else self.surprise()
        rows = {name: self._rows(name, limit, tracker, state, log_events)
                for name in OUTPUTS if name in wanted}
        interval = IntervalCheck(self.interval_, source) if scoring else None
        data = self.params.data
        # The active thread policy, or `auto` while this generator runs (lstmae.threads).
        with threads.using(None):
            for piece in pieces(frames, self.columns_, self.time_col_, self.window_,
                                self.params.window.stride, data.fill, source, sort,
                                data.time_format, self._step_us(),
                                None if state is None else state.position, self.history_):
                if interval is not None:
                    interval.feed(piece)
                out = self._forward(piece, scoring, "latent" in wanted,
                                    "reconstruction" in wanted, limit)
                if out.windows is not None:
                    news = surprise.news(out.windows["error"].to_numpy())
                    out.events = tracker.feed(piece, out.windows, opens=news,
                                              firsts=out.firsts)
                    if state is not None:
                        state.latest = latest_window(piece, out.windows) or state.latest
                result = {}
                for name, output in rows.items():
                    result[name] = output.feed(piece, out)
                    # What is left when the data ends (with a state it never does: it goes on).
                    finished = output.finish() if piece.last else None
                    if finished is not None:
                        result[name] = pd.concat([result[name], finished], ignore_index=True)
                yield result
        if interval is not None:  # once the data has ended, or a run with a state has
            interval.finish(self.time_kind_)

    def events(self, cooldown: int) -> Events:
        """A fresh tracker of incidents: a stretch that stays anomalous for PERSIST window
        lengths is one even if no window was news (on nab-dev, 1 and 4 window lengths
        cost 9 and 5 points of NAB score in false alarms; 16 cost none)."""
        return Events(self.scored_, cooldown, persist=PERSIST * self.window_)

    def surprise(self) -> Surprise:
        """How unusual errors are, judged first against the held-out (normal) errors."""
        return Surprise(self.heldout_errors_)

    def check_cooldown(self, cooldown: int | None) -> int:
        """The cooldown in rows (steps with resample): the window when not given."""
        if cooldown is None:
            return self.window_
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, np.integer)) or not (
            1 <= cooldown <= limits.MAX_COOLDOWN
        ):
            raise OptionError(f"{arg('cooldown')} must be a whole number of rows from 1 to "
                              f"{limits.MAX_COOLDOWN} (got {cooldown!r})")
        return int(cooldown)

    def _rows(self, name: str, limit: float, tracker: Events, state: ScoreState | None = None,
              log_events: bool = False) -> Rows:
        """The output `name` (one of OUTPUTS), refused if its columns would repeat a name."""
        if name == "point":
            time = self.time_col_ or "row"
            self._check_output_names(
                [time, "score", "threshold", "anomaly", "alarm",
                 *(f"error_{c}" for c in self.scored_)],
                f"the time column '{time}'")
            return PointRows(limit, None if state is None else state.latest)
        if name == "reconstruction":
            self._check_output_names(
                ([self.time_col_] if self.time_col_ else [])
                + [out for col in self.scored_ for out in (col, f"{col}_recon")],
                "a column named like another's reconstruction (<col>_recon)")
            return ReconstructionRows(self.scored_, self.config_.outputs, self._scored_inverse)
        if name == "event":
            return EventRows(tracker, log_events)
        return WindowRows() if name == "window" else LatentRows()

    @torch.inference_mode()
    def _forward(self, piece: Piece, errors: bool, latent: bool, reconstruction: bool,
                 limit: float) -> PieceOutput:
        """One pass of the model over the piece's windows, keeping what is asked for:
        window rows with errors, latent vectors, per-row reconstruction sums. All in
        standardised units; a window's error is its worst column's."""
        n_rows, width = len(piece.series.values), self.config_.n_outputs
        # Score where the model is: CPU as loaded, or a GPU after det.model_.to("cuda").
        device = next(self.model_.parameters()).device
        values = torch.from_numpy(self._inputs(piece.series)).to(device)
        by_column, latents = [], []
        out = PieceOutput()
        if reconstruction:
            out.sums, out.counts = np.zeros((n_rows, width)), np.zeros(n_rows, dtype=np.int64)
        starts = torch.from_numpy(piece.starts).to(device)
        # A piece shorter than a window (a small batch of rows) has no window to run.
        batches = forward(self.model_, window_view(values, self.window_), starts, SCORE_BATCH,
                          decode=errors or reconstruction) if len(starts) else ()
        for batch in batches:
            if errors:
                by_column.append(self.error_.columns(batch.reconstruction, batch.target))
            if latent:
                latents.append(batch.latent)
            if out.sums is not None and out.counts is not None:  # reconstructing
                accumulate_windows(batch.reconstruction.cpu().numpy(),
                                   piece.starts[batch.first:batch.first + len(batch.inputs)],
                                   out.sums, out.counts)
        if latent:
            out.latent = _stacked(latents, self.config_.latent)
        if errors:
            columns = _stacked(by_column, width).astype(np.float64)
            if self.long_ is not None:
                out.firsts = self._add_long(columns, values, piece.starts)
            # An error that cannot be computed (overflow, NaN from extreme values) is the
            # largest there is: such a window is anomalous, never "normal".
            columns[np.isnan(columns)] = np.inf
            window_errors = window_error(columns)
            out.windows = window_frame(piece, firsts=out.firsts, columns={
                "error": window_errors, "threshold": limit, "anomaly": window_errors > limit,
                **{f"error_{col}": columns[:, i] for i, col in enumerate(self.scored_)},
            })
        return out

    def _add_long(self, columns: np.ndarray, values: torch.Tensor,
                  starts: np.ndarray) -> np.ndarray:
        """Join the second model's per-column errors to `columns` ([N_w, D], the first
        model's for the windows at `starts`) where a long window ends at a window's last
        row; return each window's first row as scored (the long window's, if any).

        The mean of the two, each over its own threshold, but never below the first
        model's own: a mean alone halves what one model alone sees (a one-row spike is
        a smaller part of a longer window: tests/test_detection.py's spike, in windows of
        32 and 64, was flagged in 27 of the 32 windows that held it, against 31 of 32 by
        the first model alone)."""
        long = self.long_
        assert long is not None
        long_starts = starts - (long.window - self.window_)
        has = long_starts >= 0  # a file's first rows have no long window before them
        if not has.any():
            return starts
        device = next(long.model.parameters()).device  # as the first model's, usually
        at = torch.from_numpy(long_starts[has]).to(device)
        view = window_view(values.to(device), long.window, long.step)
        errors = [long.error.columns(batch.reconstruction, batch.target)
                  for batch in forward(long.model, view, at, SCORE_BATCH)]
        scale = long.scale(self.threshold_)
        short = columns[has]
        mean = (short + scale * _stacked(errors, columns.shape[1])) / 2
        columns[has] = np.maximum(short, mean)  # a NaN in either stays NaN: anomalous
        return np.where(has, long_starts, starts)

    def _check_output_names(self, names: list[str], what: str) -> None:
        """Refuse output whose columns would repeat a name (a data column named
        `load_recon` beside `load`, a time column named `score`)."""
        seen, repeated = set(), []
        for name in names:
            if name in seen:
                repeated.append(name)
            seen.add(name)
        if repeated:
            raise DataError(
                f"output column(s) {', '.join(repr(shorten(n)) for n in repeated)} would "
                f"appear twice: {what} or a model column has a name that lstmae's output "
                "columns use; rename the column in the data and refit"
            )

    def encode(self, frame: pd.DataFrame, source: str = "data") -> pd.DataFrame:
        """One row per window: window, start, end, z0 ... z{k-1}."""
        return self.outputs(frame, ["latent"], source=source)["latent"]

    def iter_encode(
        self, frames: Iterable[pd.DataFrame], source: str = "data", sort: bool = False
    ) -> Iterator[pd.DataFrame]:
        """`encode` for data arriving in batches of rows, batch by batch."""
        return self._iter_one("latent", frames, source, sort)

    def reconstruct(self, frame: pd.DataFrame, source: str = "data") -> pd.DataFrame:
        """One row per input row: time (if any), and <col>, <col>_recon for each column.

        A row's reconstruction is the mean over every window that covers it,
        mapped back to the data's own units.
        """
        return self.outputs(frame, ["reconstruction"], source=source)["reconstruction"]

    def iter_reconstruct(
        self, frames: Iterable[pd.DataFrame], source: str = "data", sort: bool = False
    ) -> Iterator[pd.DataFrame]:
        """`reconstruct` for data arriving in batches of rows, batch by batch."""
        return self._iter_one("reconstruction", frames, source, sort)

    def _iter_one(self, output: str, frames: Iterable[pd.DataFrame], source: str,
                  sort: bool) -> Iterator[pd.DataFrame]:
        return (part[output] for part in
                self.iter_outputs(frames, [output], source=source, sort=sort))

    # -------------------------------------------------------- save and load
    def save(self, path: str | os.PathLike) -> None:
        """Write the one model file that holds everything scoring needs."""
        self._check_fitted()
        state = self.model_.state_dict()
        tensors = {f"model.{name}": value.cpu().numpy() for name, value in state.items()}
        tensors["scaler.mean"] = self.scaler_.mean
        tensors["scaler.std"] = self.scaler_.std
        tensors["heldout_errors"] = self.heldout_errors_
        if self.long_ is not None:
            tensors.update({f"long.model.{name}": value.cpu().numpy()
                            for name, value in self.long_.model.state_dict().items()})
        save_model_file(path, tensors, self.metadata())

    def metadata(self) -> dict:
        """What the model file says about itself (also what `lstmae info` shows)."""
        self._check_fitted()
        p = self.params
        return {
            "lstmae_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "columns": self.columns_,
            "context": self.context_,
            "left_out": self.left_out_,
            "clock": self.clock_,
            "time_col": self.time_col_,
            "time_kind": self.time_kind_,
            "time_format": p.data.time_format,
            "interval": self.interval_,
            "window": self.window_,
            "stride": p.window.stride,
            "loss": p.training.loss,
            **self.error_.to_meta(),
            "model": self.config_.to_dict(),
            "threshold": {"value": self.threshold_, **self.threshold_info_},
            "long_window": None if self.long_ is None else {
                "window": self.long_.window, "step": self.long_.step,
                "threshold": self.long_.threshold,
                "peak_scale": self.long_.error.peak_scale, "training": self.long_.training},
            "training": self.training_,
            # the window used, not None (the default): earlier readers need a number
            "params": {**p.flat(), "window": p.window.window or self.window_},
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> Detector:
        """Read a model file written by `save`: never unpickled, checksummed, and every
        field checked for meaning (lstmae.artifact.check_meaning) before it is used."""
        tensors, meta = load_model_file(path)
        try:
            det = cls(**params_of(meta))
            det.path_ = str(path)
            det.window_ = meta["window"]
            det.columns_ = list(meta["columns"])
            det.context_ = list(meta.get("context", []))  # none before 0.2
            det.left_out_ = list(meta.get("left_out", []))  # none before 0.2
            det.clock_ = bool(meta.get("clock", False))
            det.time_col_ = meta["time_col"]
            # Files written before these fields existed: no interval to compare with.
            det.time_kind_ = meta.get("time_kind") or ("naive" if det.time_col_ else "rows")
            det.interval_ = meta.get("interval")
            det.config_ = ModelConfig(**meta["model"])
            det.error_ = WindowError(det.params.threshold.error, meta.get("peak_scale"))
            det.threshold_ = float(meta["threshold"]["value"])
            det.threshold_info_ = {k: v for k, v in meta["threshold"].items() if k != "value"}
            det.training_ = dict(meta["training"])
            det.check_params()
            det.scaler_ = Scaler(tensors.pop("scaler.mean"), tensors.pop("scaler.std"))
            det.heldout_errors_ = tensors.pop("heldout_errors")
            long = meta.get("long_window")  # none in older files
            long_state = {k.removeprefix("long."): tensors.pop(k) for k in list(tensors)
                          if k.startswith("long.")}
            model = _model_from(det.config_, tensors)
            if long is not None:
                det.long_ = LongModel(
                    int(long["window"]), int(long.get("step", 1)),  # 1: written before steps
                    _model_from(det.config_, long_state, "long.").eval(),
                    WindowError(det.params.threshold.error, long.get("peak_scale")),
                    float(long["threshold"]), dict(long["training"]))
            elif long_state:
                raise ValueError(f"tensor 'long.{shorten(next(iter(long_state)))}' belongs "
                                 "to no second model")
        except KeyError as exc:
            raise ModelFileError(
                f"{path}: field {shorten(exc.args[0] if exc.args else exc)!r} is missing; "
                "the file is damaged or was not written by lstmae"
            ) from None
        except (TypeError, ValueError, RuntimeError, OptionError) as exc:
            # An OptionError's own text, so that the CLI still shows its flags.
            text = exc.marked if isinstance(exc, OptionError) else str(exc)
            reason = text.splitlines()[0] if text else type(exc).__name__
            raise ModelFileError(
                f"{path}: model metadata does not match its contents ({shorten(reason, 200)}); "
                "the file is damaged or was not written by lstmae"
            ) from None
        det.model_ = model.eval()
        return det


def _result_summary(result: TrainResult) -> dict:
    return {
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_loss": result.best_loss,
        "monitored": result.monitored,
        "stopped_early": result.stopped_early,
        "interrupted": result.interrupted,
    }


def _is_flag(values: np.ndarray) -> np.ndarray:
    """[N, D] -> [D]: whether each column holds only 0 and 1."""
    return ((values == 0) | (values == 1)).all(axis=0)


def _stacked(parts: list[torch.Tensor], width: int) -> np.ndarray:
    """Batches' outputs as one [N, width] float32 array (no windows: [0, width])."""
    if not parts:
        return np.zeros((0, width), dtype=np.float32)
    return torch.cat(parts).cpu().numpy()


def _model_from(config: ModelConfig, tensors: dict[str, np.ndarray],
                prefix: str = "") -> LSTMAutoencoder:
    """The model of `config` with the weights `tensors` ("model.<name>"), checked."""
    model = LSTMAutoencoder(config)
    state = {k.removeprefix("model."): torch.from_numpy(v) for k, v in tensors.items()}
    _check_state(model, state, prefix)
    model.load_state_dict(state, strict=True)
    return model


def _check_state(model: LSTMAutoencoder, state: dict[str, torch.Tensor],
                 prefix: str = "") -> None:
    """Every tensor the architecture needs, of its shape, and no other: the first one
    that differs is named (torch's own message names none on its first line)."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"tensor '{prefix}model.{name}' is missing")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"tensor '{prefix}model.{name}' has shape "
                             f"{list(state[name].shape)} but the architecture in its "
                             f"metadata needs {list(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ValueError(f"tensor '{prefix}model.{shorten(extra[0])}' is not part of the "
                         "architecture")


def _jsonable(value):
    if isinstance(value, (np.datetime64, pd.Timestamp)):
        return str(pd.Timestamp(value))
    if isinstance(value, np.generic):
        return value.item()
    return value
