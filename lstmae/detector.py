"""Detector: the Python API. fit / score / encode / reconstruct / save / load.

    det = Detector(window=32).fit(frame)
    det.score(new_frame)            # window, start, end, error, threshold, anomaly
    det.save("model.lstmae"); Detector.load("model.lstmae")

Fitted state ends in `_` (scikit-learn style). Everything scoring needs lives in
the model file, so a loaded Detector scores exactly as the one that was saved.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch

from lstmae import __version__
from lstmae import params as limits
from lstmae import threshold as thresholds
from lstmae.artifact import load_model_file, save_model_file
from lstmae.errors import (
    DataError,
    LstmaeWarning,
    ModelFileError,
    OptionError,
    TrainingError,
    shorten,
)
from lstmae.io import Series, to_series
from lstmae.model import (
    ERRORS,
    LOSSES,
    LSTMAutoencoder,
    ModelConfig,
    column_errors,
    fit_peak_scale,
    mae_or_peak,
    window_error,
)
from lstmae.stream import EventTracker, IntervalCheck, Piece, pieces, typical_interval
from lstmae.train import (
    PRECISIONS,
    EpochReport,
    TrainResult,
    WindowSet,
    evaluate_errors,
    local_rank,
    rank_and_world,
    resolve_device,
    train,
    training_precision,
)
from lstmae.windows import (
    Scaler,
    accumulate_windows,
    dominant_period,
    iter_batches,
    window_starts,
)

# Fewer held-out windows than this cannot calibrate a 0.99 quantile or stop early
# meaningfully; then training windows are used for both.
MIN_HELDOUT_WINDOWS = 20
# Windows per forward pass when scoring. Not "as large as fits": oneDNN's LSTM keeps a
# 128-256 window batch in cache and ran 1.1-1.4x faster than at 1024 (bench/README.md).
SCORE_BATCH = 256
LEVELS = ("window", "point", "event")
DEFAULT_WINDOW = 64
AUTO_WINDOW_MIN, AUTO_WINDOW_MAX = 8, 256


class Detector:
    """LSTM autoencoder anomaly detector for multivariate time series.

    Parameters are checked at fit time; an invalid one raises OptionError
    naming it. See `lstmae fit --help` for what each one means.
    """

    def __init__(
        self,
        window: int | str = DEFAULT_WINDOW,
        stride: int = 1,
        hidden: int = 64,
        latent: int = 16,
        layers: int = 1,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 3e-3,
        loss: str = "mse",
        error: str = "mae+peak",
        val_fraction: float = 0.1,
        patience: int = 10,
        seed: int = 0,
        device: str = "auto",
        precision: str = "auto",
        threshold_method: str = "max",
        threshold_quantile: float = 0.99,
        risk: float = 1e-3,
        sigma: float = 3.0,
        margin: float | None = None,
        columns: list[str] | None = None,
        time_col: str | None = None,
        fill: str | None = None,
        time_format: str | None = None,
    ):
        self.window = window
        self.stride = stride
        self.hidden = hidden
        self.latent = latent
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.loss = loss
        self.error = error
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.device = device
        self.precision = precision
        self.threshold_method = threshold_method
        self.threshold_quantile = threshold_quantile
        self.risk = risk
        self.sigma = sigma
        self.margin = margin
        self.columns = columns
        self.time_col = time_col
        self.fill = fill
        self.time_format = time_format

    # ------------------------------------------------------------------ fit
    def check_params(self) -> None:
        """Refuse a parameter that cannot work, naming it (fit calls this first)."""
        def need(ok: bool, name: str, rule: str, value) -> None:
            if not ok:
                raise OptionError(f"--{name.replace('_', '-')} must be {rule} "
                                  f"(got {shorten(repr(value), 80)})")

        def is_int(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if self.window != "auto":
            need(is_int(self.window) and 2 <= self.window <= limits.MAX_WINDOW, "window",
                 f"an integer from 2 to {limits.MAX_WINDOW}, or auto", self.window)
        caps = {"hidden": limits.MAX_HIDDEN, "latent": limits.MAX_LATENT,
                "layers": limits.MAX_LAYERS, "batch_size": limits.MAX_BATCH_SIZE,
                "stride": limits.MAX_WINDOW, "epochs": limits.MAX_EPOCHS,
                "patience": limits.MAX_EPOCHS}
        for name in ("stride", "hidden", "latent", "layers", "epochs", "batch_size", "patience"):
            value, cap = getattr(self, name), caps.get(name)
            rule = f"an integer from 1 to {cap}" if cap else "an integer of at least 1"
            need(is_int(value) and value >= 1 and (cap is None or value <= cap), name, rule,
                 value)
        if self.columns is not None:
            n_features = len(self.columns)
            need(n_features <= limits.MAX_COLUMNS, "columns",
                 f"at most {limits.MAX_COLUMNS} columns", n_features)
            self._check_size(n_features)
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
             "lr", "a positive number", self.lr)
        need(self.loss in LOSSES, "loss", f"one of {', '.join(LOSSES)}", self.loss)
        need(self.error in ERRORS, "error", f"one of {', '.join(ERRORS)}", self.error)
        need(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}",
             self.precision)
        need(isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1,
             "val_fraction", "at least 0 and below 1", self.val_fraction)
        thresholds.check_settings(
            self.threshold_method, self.threshold_quantile, self.risk, self.sigma, self.margin
        )
        need(is_int(self.seed) and 0 <= self.seed <= limits.MAX_SEED, "seed",
             f"an integer from 0 to 2**64 - 1 ({limits.MAX_SEED})", self.seed)
        need(self.time_format is None or (isinstance(self.time_format, str)
                                          and "%" in self.time_format
                                          and len(self.time_format) <= 200),
             "time_format", "a strftime format such as '%d/%m/%Y %H:%M'", self.time_format)

    def _check_size(self, n_features: int) -> None:
        """Refuse, before training, a model too large to hold in memory."""
        count = limits.lstm_parameters(n_features, self.hidden, self.latent, self.layers)
        if count > limits.MAX_PARAMETERS:
            raise OptionError(
                f"--hidden {self.hidden}, --latent {self.latent} and --layers {self.layers} "
                f"with {n_features} column(s) make {count:,} weights ({count * 4 / 2**30:.1f} "
                f"GiB), above lstmae's limit of {limits.MAX_PARAMETERS:,}; use a smaller "
                "--hidden or fewer --layers"
            )

    def fit(
        self,
        frame: pd.DataFrame,
        progress: Callable[[EpochReport], None] | None = None,
        source: str = "data",
        keep_best_on_interrupt: bool = False,
    ) -> Detector:
        """Train on a frame of normal behaviour and calibrate the threshold.

        keep_best_on_interrupt: on Ctrl-C after at least one epoch, stop training
        and finish with the best epoch so far (training_["interrupted"] says so).

        In a torch.distributed process group (torchrun; see `lstmae.train.process_group`)
        every rank calls fit with the same data and parameters and trains on its share
        of the windows. Only rank 0 then calibrates the threshold: on the other ranks
        fit returns once training ends, with the detector not calibrated (do not save it).
        """
        self.check_params()
        device = resolve_device(self.device)
        # refuses bf16 where unsupported, before any work
        precision = training_precision(self.precision, device)
        rank, world = rank_and_world()
        if world > 1 and device.type == "cuda":
            device = torch.device("cuda", local_rank())  # one GPU per process
        series = to_series(frame, self.columns, self.time_col, self.fill, source,
                           time_format=self.time_format)
        if len(series.columns) > limits.MAX_COLUMNS:
            raise DataError(f"{source}: has {len(series.columns)} value columns, more than "
                            f"lstmae's limit of {limits.MAX_COLUMNS}; choose some with --columns")
        self._check_size(len(series.columns))
        started = time.perf_counter()
        torch.manual_seed(self.seed)

        self.columns_ = series.columns
        self.time_col_ = series.time_col
        self.time_kind_ = series.time_kind
        self.interval_ = typical_interval(series.index) if series.time_col else None
        self.scaler_ = Scaler.fit(series.values, series.columns)
        scaled = torch.from_numpy(self.scaler_.transform(series.values))
        n_rows = len(scaled)
        self.window_ = self._choose_window(scaled.numpy())
        window_starts(n_rows, self.window_, self.stride)  # fails early when too short
        if self.stride > self.window_:
            raise OptionError(
                f"--stride {self.stride} is larger than the window of {self.window_}: rows "
                "between windows would never be scored; use a stride of at most the window"
            )
        if self.stride > n_rows - self.window_ + 1:
            raise OptionError(
                f"--stride {self.stride} is larger than the {n_rows - self.window_ + 1} "
                f"window positions of {source} ({n_rows} rows, window {self.window_}); "
                "use a smaller --stride"
            )

        train_rows, val_rows = self._split(n_rows)
        train_set = self._window_set(scaled[:train_rows], device)
        val_set = self._window_set(scaled[train_rows:], device) if val_rows else None

        self.config_ = ModelConfig(len(self.columns_), self.hidden, self.latent, self.layers)
        self.model_ = LSTMAutoencoder(self.config_).to(device)
        result = train(
            self.model_, train_set, val_set,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, loss=self.loss,
            patience=self.patience, seed=self.seed, precision=self.precision, progress=progress,
            keep_best_on_interrupt=keep_best_on_interrupt,
        )
        if rank != 0:
            return self  # every rank holds the same weights; rank 0 calibrates and writes
        calibration = val_set if val_set is not None else train_set
        self.heldout_errors_ = self._calibrate_error(calibration)
        if not np.isfinite(self.heldout_errors_).all():
            raise TrainingError(
                f"{source}: the trained model's errors on normal windows are not finite; try "
                "a smaller --lr, or check the data for extreme values"
            )
        self.threshold_, how = thresholds.calibrate(
            self.heldout_errors_, self.threshold_method, self.threshold_quantile,
            self.risk, self.sigma, self.margin, heldout=val_set is not None,
        )
        if not self.threshold_ <= limits.MAX_ERROR:
            raise OptionError(
                f"--threshold-method {self.threshold_method} with these settings gives the "
                f"threshold {self.threshold_:g}, above any error lstmae can measure "
                f"({limits.MAX_ERROR:g}); use a smaller --margin or --sigma"
            )
        self.threshold_info_ = {
            **how, "source": result.monitored, "windows": len(self.heldout_errors_)
        }
        self.model_ = self.model_.cpu().eval()
        self.training_ = self._summary(series, train_set, val_set, result, device, started)
        self.training_["processes"] = world  # each trained on 1/world of the windows
        self.training_["precision"] = precision
        return self

    def _calibrate_error(self, calibration: WindowSet) -> np.ndarray:
        """Set what the window error needs from normal windows; return their errors."""
        if self.error != "mae+peak":
            self.peak_scale_ = None
            return window_error(evaluate_errors(self.model_, calibration, self.error, SCORE_BATCH))
        mean = evaluate_errors(self.model_, calibration, "mae", SCORE_BATCH)
        peak = evaluate_errors(self.model_, calibration, "peak", SCORE_BATCH)
        # One factor for every column, so that a window's error stays its worst column's.
        self.peak_scale_ = fit_peak_scale(window_error(mean), window_error(peak))
        combined = mae_or_peak(torch.from_numpy(mean).float(), torch.from_numpy(peak).float(),
                               self.peak_scale_)
        return window_error(combined.double().numpy())

    def _choose_window(self, scaled: np.ndarray) -> int:
        if self.window != "auto":
            return int(self.window)
        period = dominant_period(scaled)
        if period is None:
            warnings.warn(
                f"--window auto: no clear period in the training data; using {DEFAULT_WINDOW}",
                LstmaeWarning,
                stacklevel=3,
            )
            return DEFAULT_WINDOW
        # One period per window, within what an LSTM handles well and fast.
        return int(np.clip(period, AUTO_WINDOW_MIN, AUTO_WINDOW_MAX))

    def _split(self, n_rows: int) -> tuple[int, int]:
        """Rows for training and, at the end in time order, for validation.

        The two parts share no row, so validation windows are truly unseen.
        """
        val_rows = int(round(n_rows * self.val_fraction))
        train_rows = n_rows - val_rows
        enough = (
            val_rows - self.window_ + 1 >= MIN_HELDOUT_WINDOWS * self.stride
            and train_rows >= self.window_
        )
        return (train_rows, val_rows) if enough else (n_rows, 0)

    def _window_set(self, scaled: torch.Tensor, device: torch.device) -> WindowSet:
        starts = window_starts(len(scaled), self.window_, self.stride)
        return WindowSet(scaled.to(device), torch.from_numpy(starts).to(device), self.window_)

    def _summary(self, series, train_set, val_set, result: TrainResult, device, started) -> dict:
        return {
            "rows": len(series.values),
            "train_windows": len(train_set),
            "val_windows": len(val_set) if val_set is not None else 0,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_loss": result.best_loss,
            "monitored": result.monitored,
            "stopped_early": result.stopped_early,
            "interrupted": result.interrupted,
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
        return to_series(frame, self.columns_, self.time_col_ if self.time_col_ in
                         map(str, frame.columns) else None, self.fill, source,
                         time_format=self.time_format, report=False)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise OptionError("this Detector is not fitted; call fit() or Detector.load() first")

    def _pieces(self, frames: Iterable[pd.DataFrame], source: str, sort: bool) -> Iterator[Piece]:
        self._check_fitted()
        return pieces(frames, self.columns_, self.time_col_, self.window_, self.stride,
                      self.fill, source, sort, self.time_format)

    @torch.inference_mode()
    def _run(self, series: Series, starts: np.ndarray, want: str) -> np.ndarray:
        """Per-column errors [N_w, D], latents [N_w, k] or reconstructions [N_w, T, D].

        All in standardised units; a window's error is its worst column's (window_error).
        """
        width = {"column_errors": len(self.columns_), "latent": self.config_.latent}
        if len(starts) == 0:
            shape = (0, width[want]) if want in width else (0, self.window_, len(self.columns_))
            return np.zeros(shape, dtype=np.float32)
        # Score where the model is: CPU as loaded, or a GPU after det.model_.to("cuda").
        device = next(self.model_.parameters()).device
        values = torch.from_numpy(self.scaler_.transform(series.values)).to(device)
        view = values.unfold(0, self.window_, 1).transpose(1, 2)
        outputs = []
        for batch in iter_batches(view, torch.from_numpy(starts).to(device), SCORE_BATCH):
            if want == "latent":
                outputs.append(self.model_.encode(batch))
                continue
            recon = self.model_(batch)
            if want == "column_errors":
                outputs.append(column_errors(recon, batch, self.error, self.peak_scale_))
            else:
                outputs.append(recon)
        return torch.cat(outputs).cpu().numpy()

    def _window_frame(self, piece: Piece, columns: dict) -> pd.DataFrame:
        """window, start, end and then `columns`, built at once (not column by column)."""
        labels, starts = piece.series.labels, piece.starts
        return pd.DataFrame(
            {
                "window": piece.first_window + np.arange(len(starts)),
                "start": labels[starts],
                "end": labels[starts + self.window_ - 1],
                **columns,
            }
        )

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
        otherwise the model's own.
        """
        self._check_fitted()
        if threshold is not None:
            if not (math.isfinite(threshold) and threshold >= 0):
                raise OptionError(f"--threshold must be a non-negative number (got {threshold})")
            return float(threshold), "--threshold"
        if sum(x is not None for x in (quantile, risk, margin)) > 1:
            raise OptionError("give only one of --threshold-quantile, --risk and --margin")
        model = getattr(self, "path_", None) or "the model"
        if quantile is not None:
            value, _ = thresholds.calibrate(self.heldout_errors_, "quantile", quantile=quantile)
            option = f"--threshold-quantile {quantile}"
            how = f"quantile {quantile} of held-out errors"
        elif risk is not None:
            value, _ = thresholds.calibrate(self.heldout_errors_, "pot", risk=risk)
            option, how = f"--risk {risk}", f"pot at risk {risk} of held-out errors"
        elif margin is not None:
            value, _ = thresholds.calibrate(self.heldout_errors_, "max", margin=margin)
            option, how = f"--margin {margin:g}", f"{margin:g} x the largest held-out error"
        else:
            value, option = self.threshold_, None
            how = f"the model's {self.threshold_info_['method']} threshold"
        if not (math.isfinite(value) and 0 <= value <= limits.MAX_ERROR):
            source = f"{option} on {model}'s held-out errors" if option else f"{model}'s threshold"
            raise OptionError(f"{source} gives the threshold {value}, which cannot be used; "
                              "give --threshold X")
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
            raise OptionError(f"--level must be one of {', '.join(LEVELS)} (got {level!r})")
        parts = self.iter_score([frame], threshold, source, sort=True, levels=[level])
        result = pd.concat([p[level] for p in parts], ignore_index=True)
        if not per_column:
            result = result.drop(columns=[c for c in result.columns if c.startswith("error_")])
        return result

    def score_all(
        self, frame: pd.DataFrame, threshold: float | None = None, source: str = "data"
    ) -> dict[str, pd.DataFrame]:
        """All three levels of `score` from one pass of the model, with per-column errors."""
        parts = list(self.iter_score([frame], threshold, source, sort=True))
        return {level: pd.concat([p[level] for p in parts], ignore_index=True)
                for level in LEVELS}

    def iter_score(
        self,
        frames: Iterable[pd.DataFrame],
        threshold: float | None = None,
        source: str = "data",
        sort: bool = False,
        levels: Iterable[str] = LEVELS,
    ) -> Iterator[dict[str, pd.DataFrame]]:
        """`score_all` for data arriving in batches of rows (in time order), batch by batch.

        Yields, per batch, the windows that end in it, its rows' point scores
        and the events that closed in it (the `levels` asked for); memory does
        not grow with the data. Point rows cost as much as the model on wide
        data, so they are built only when asked for.
        """
        levels = set(levels)
        if not levels <= set(LEVELS):
            raise OptionError(f"levels must be among {', '.join(LEVELS)} (got {sorted(levels)})")
        limit = self.threshold_for(threshold)[0]
        if "point" in levels:
            time = self.time_col_ or "row"
            self._check_output_names(
                [time, "score", "threshold", "anomaly", *(f"error_{c}" for c in self.columns_)],
                f"the time column '{time}'")
        events = EventTracker(self.columns_)
        interval = IntervalCheck(self.interval_, source)
        latest = None  # the last window of earlier batches, for point scores with a stride
        for piece in self._pieces(frames, source, sort):
            interval.feed(piece)
            by_column = self._run(piece.series, piece.starts, "column_errors").astype(np.float64)
            # An error that cannot be computed (overflow, NaN from extreme values) is the
            # largest there is: such a window is anomalous, never "normal".
            by_column[np.isnan(by_column)] = np.inf
            errors = window_error(by_column)
            windows = self._window_frame(piece, {
                "error": errors, "threshold": limit, "anomaly": errors > limit,
                **{f"error_{col}": by_column[:, i] for i, col in enumerate(self.columns_)},
            })
            result = {"window": windows}
            if "point" in levels:
                result["point"], latest = self._points(piece, windows, latest, limit)
            if "event" in levels:
                closed = events.feed(windows)
                if piece.last:
                    closed = pd.concat([closed, events.finish()], ignore_index=True)
                result["event"] = closed
            if piece.last:
                interval.finish(self.time_kind_)
            yield {level: result[level] for level in LEVELS if level in levels}

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

    def _points(self, piece: Piece, windows: pd.DataFrame, latest, limit: float):
        """Point scores of the piece's new rows: the latest window ending at or before each."""
        values = windows.drop(columns=["window", "start", "end"])
        values = values.rename(columns={"error": "score"})
        ends = piece.offset + piece.starts + self.window_ - 1
        if latest is not None:
            ends = np.concatenate([[latest[0]], ends])
            values = pd.concat([latest[1], values], ignore_index=True)
        rows = piece.offset + np.arange(piece.n_carried, len(piece.series.values))
        which = np.searchsorted(ends, rows, side="right") - 1
        if len(values):
            picked = values.iloc[np.maximum(which, 0)].reset_index(drop=True)
            latest = (ends[-1], values.iloc[[-1]])
        else:  # no window has ended yet
            picked = pd.DataFrame(np.nan, index=np.arange(len(rows)), columns=values.columns)
        scored = which >= 0
        numeric = [c for c in picked.columns if c == "score" or c.startswith("error_")]
        picked.loc[~scored, numeric] = np.nan
        picked["threshold"] = limit
        picked["anomaly"] = picked["anomaly"].where(scored, False).astype(bool)
        picked.insert(0, piece.series.time_col or "row", piece.series.labels[piece.n_carried :])
        return picked, latest

    def encode(self, frame: pd.DataFrame, source: str = "data") -> pd.DataFrame:
        """One row per window: window, start, end, z0 ... z{k-1}."""
        return pd.concat(self.iter_encode([frame], source, sort=True), ignore_index=True)

    def iter_encode(
        self, frames: Iterable[pd.DataFrame], source: str = "data", sort: bool = False
    ) -> Iterator[pd.DataFrame]:
        """`encode` for data arriving in batches of rows, batch by batch."""
        for piece in self._pieces(frames, source, sort):
            latent = self._run(piece.series, piece.starts, "latent")
            yield self._window_frame(
                piece, {f"z{i}": latent[:, i].astype(np.float64) for i in range(latent.shape[1])}
            )

    def reconstruct(self, frame: pd.DataFrame, source: str = "data") -> pd.DataFrame:
        """One row per input row: time (if any), and <col>, <col>_recon for each column.

        A row's reconstruction is the mean over every window that covers it,
        mapped back to the data's own units.
        """
        return pd.concat(self.iter_reconstruct([frame], source, sort=True), ignore_index=True)

    def iter_reconstruct(
        self, frames: Iterable[pd.DataFrame], source: str = "data", sort: bool = False
    ) -> Iterator[pd.DataFrame]:
        """`reconstruct` for data arriving in batches of rows, batch by batch.

        A row is written once no later window can cover it; the sums for the
        last window-1 rows are carried to the next batch.
        """
        width = len(self.columns_)
        self._check_output_names(
            ([self.time_col_] if self.time_col_ else [])
            + [name for col in self.columns_ for name in (col, f"{col}_recon")],
            "a column named like another's reconstruction (<col>_recon)")
        carried_sums, carried_counts = np.zeros((0, width)), np.zeros(0, dtype=np.int64)
        for piece in self._pieces(frames, source, sort):
            n_rows = len(piece.series.values)
            sums = np.zeros((n_rows, width))
            counts = np.zeros(n_rows, dtype=np.int64)
            sums[: piece.n_carried] = carried_sums
            counts[: piece.n_carried] = carried_counts
            per_window = self._run(piece.series, piece.starts, "reconstruction")
            accumulate_windows(per_window, piece.starts, sums, counts)
            done = piece.n_final
            recon = self.scaler_.inverse(sums[:done] / counts[:done, None])
            series = piece.series
            columns = {series.time_col: series.labels[:done]} if series.time_col else {}
            for i, col in enumerate(self.columns_):
                columns[col] = series.values[:done, i]
                columns[f"{col}_recon"] = recon[:, i]
            result = pd.DataFrame(columns)
            carried_sums, carried_counts = sums[done:], counts[done:]
            yield result

    # -------------------------------------------------------- save and load
    def save(self, path: str | os.PathLike) -> None:
        """Write the one model file that holds everything scoring needs."""
        self._check_fitted()
        state = self.model_.state_dict()
        tensors = {f"model.{name}": value.cpu().numpy() for name, value in state.items()}
        tensors["scaler.mean"] = self.scaler_.mean
        tensors["scaler.std"] = self.scaler_.std
        tensors["heldout_errors"] = self.heldout_errors_
        save_model_file(path, tensors, self.metadata())

    def metadata(self) -> dict:
        """What the model file says about itself (also what `lstmae info` shows)."""
        self._check_fitted()
        return {
            "lstmae_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "columns": self.columns_,
            "time_col": self.time_col_,
            "time_kind": self.time_kind_,
            "time_format": self.time_format,
            "interval": self.interval_,
            "window": self.window_,
            "stride": self.stride,
            "loss": self.loss,
            "error": self.error,
            "peak_scale": self.peak_scale_,
            "model": self.config_.to_dict(),
            "threshold": {"value": self.threshold_, **self.threshold_info_},
            "training": self.training_,
            "params": {
                "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "val_fraction": self.val_fraction, "patience": self.patience,
                "seed": self.seed, "device": self.device, "precision": self.precision,
                "window": self.window,
                "threshold_method": self.threshold_method,
                "threshold_quantile": self.threshold_quantile, "risk": self.risk,
                "sigma": self.sigma, "margin": self.margin, "fill": self.fill,
            },
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> Detector:
        """Read a model file written by `save`: never unpickled, checksummed, and every
        field checked for meaning (lstmae.artifact.check_meaning) before it is used."""
        tensors, meta = load_model_file(path)
        try:
            params = meta["params"]
            # Files written before `error` existed scored windows with their training loss.
            error = meta.get("error", "mae" if meta["loss"] == "l1" else meta["loss"])
            det = cls(
                window=params["window"], stride=meta["stride"], loss=meta["loss"],
                error=error,
                hidden=meta["model"]["hidden"], latent=meta["model"]["latent"],
                layers=meta["model"]["layers"], columns=list(meta["columns"]),
                time_col=meta["time_col"], precision=params.get("precision", "auto"),
                time_format=meta.get("time_format"),
                **{k: params[k] for k in ("epochs", "batch_size", "lr", "val_fraction",
                                          "patience", "seed", "device", "threshold_method",
                                          "threshold_quantile", "risk", "sigma", "margin",
                                          "fill")},
            )
            det.path_ = str(path)
            det.window_ = meta["window"]
            det.columns_ = list(meta["columns"])
            det.time_col_ = meta["time_col"]
            # Files written before these fields existed: no interval to compare with.
            det.time_kind_ = meta.get("time_kind") or ("naive" if det.time_col_ else "rows")
            det.interval_ = meta.get("interval")
            det.config_ = ModelConfig(**meta["model"])
            det.threshold_ = float(meta["threshold"]["value"])
            det.threshold_info_ = {k: v for k, v in meta["threshold"].items() if k != "value"}
            det.training_ = dict(meta["training"])
            scale = meta.get("peak_scale")
            if (det.error == "mae+peak") != (scale is not None):
                raise ValueError("peak_scale does not match the error kind")
            det.peak_scale_ = None if scale is None else float(scale)
            det.check_params()
            det.scaler_ = Scaler(tensors.pop("scaler.mean"), tensors.pop("scaler.std"))
            det.heldout_errors_ = tensors.pop("heldout_errors")
            model = LSTMAutoencoder(det.config_)
            state = {k.removeprefix("model."): torch.from_numpy(v) for k, v in tensors.items()}
            _check_state(model, state)
            model.load_state_dict(state, strict=True)
        except KeyError as exc:
            raise ModelFileError(
                f"{path}: field {shorten(exc.args[0] if exc.args else exc)!r} is missing; "
                "the file is damaged or was not written by lstmae"
            ) from None
        except (TypeError, ValueError, RuntimeError, OptionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(
                f"{path}: model metadata does not match its contents ({shorten(reason, 200)}); "
                "the file is damaged or was not written by lstmae"
            ) from None
        det.model_ = model.eval()
        return det


def _check_state(model: LSTMAutoencoder, state: dict[str, torch.Tensor]) -> None:
    """Every tensor the architecture needs, of its shape, and no other: the first one
    that differs is named (torch's own message names none on its first line)."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"tensor 'model.{name}' is missing")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"tensor 'model.{name}' has shape {list(state[name].shape)} but "
                             f"the architecture in its metadata needs {list(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ValueError(f"tensor 'model.{shorten(extra[0])}' is not part of the architecture")


def _jsonable(value):
    if isinstance(value, (np.datetime64, pd.Timestamp)):
        return str(pd.Timestamp(value))
    if isinstance(value, np.generic):
        return value.item()
    return value
