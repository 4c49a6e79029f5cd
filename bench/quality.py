#!/usr/bin/env python
"""Detection-quality benchmark: lstmae against simple reference detectors.

    python bench/quality.py DATA_DIR [DATA_DIR ...] [--json out.json]
        [--series SUBSTR] [--detectors lstmae,zscore,pca,iforest]
        [--set key=value ...] [--average-rows N]

Each DATA_DIR is a folder in one of the two layouts of ../shared/data/README.md
(detected from the files present):

* nab:  windows.json maps "folder/file.csv" -> [[start, end], ...] timestamp
        pairs; each CSV has timestamp,value. Fit on the first
        min(int(0.15 * rows), 750) rows, score the whole file, measure the rows
        after the fit rows.
* smap: <chan>_train.csv, <chan>_test.csv and windows.json mapping
        chan -> [[first_row, last_row], ...] (0-based, inclusive test rows).
        Fit on _train, score _test, measure every test row.

Every detector gives causal point scores (the score of row t uses rows <= t
only) and its own threshold calibrated on its own fit rows. See
bench/README.md for what is measured and how.

`--set` passes Detector constructor parameters (values parsed with
ast.literal_eval, else kept as strings): --set window=auto --set epochs=50.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import lstmae
from lstmae import Detector, threads
from lstmae.metrics import (
    auc_pr,
    auc_roc,
    best_f1,
    event_recall,
    labels_from_intervals,
    precision_recall_f1,
    vus_pr,
    vus_roc,
)
from lstmae.params import DEFAULTS, FLAT_NAMES, default_window

ALL_DETECTORS = ("lstmae", "zscore", "pca", "iforest")
SKLEARN_DETECTORS = ("pca", "iforest")
SEED = 0

# nab protocol: the probationary period.
NAB_FIT_FRACTION, NAB_FIT_MAX = 0.15, 750

# Reference detectors: threshold = this quantile of their scores on held-out
# fit rows (the last `val_fraction` of them, as lstmae does by default).
REF_QUANTILE = 0.99
MIN_HELDOUT = 20  # fewer held-out scores than this: calibrate on all fit rows (as lstmae)
ZSCORE_STD_FLOOR = 1e-3  # in units of the training sd: only guards against 0 / 0
ZSCORE_MAX_COLUMNS = 8  # up to this many columns: max |z| over columns; more: mean |z|
PCA_VARIANCE = 0.90

# TSB-AD's find_length_rank(rank=1) constants.
TSB_MAX_POINTS, TSB_NLAGS, TSB_BASE, TSB_DEFAULT = 20000, 400, 3, 125


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #


@dataclass
class SeriesData:
    fit: pd.DataFrame  # rows to fit on
    data: pd.DataFrame  # rows to score (nab: the whole file, fit rows included)
    labels: np.ndarray  # 0/1 per row of `data`
    eval_from: int  # first row of `data` that is measured
    first_column: np.ndarray  # the full series' first value column, for the VUS window
    time_col: str | None


@dataclass
class SeriesSpec:
    name: str  # e.g. "nab-dev/realKnownCause/nyc_taxi.csv", "smap-dev/A-1"
    dataset: str  # the DATA_DIR's name
    group: str  # dataset, or dataset/subfolder for nab
    layout: str
    load: Callable[[], SeriesData] = field(repr=False)


def detect_layout(folder: Path) -> str:
    windows = folder / "windows.json"
    if not windows.is_file():
        raise SystemExit(f"error: {folder}: no windows.json; not a nab- or smap-style folder")
    if any(folder.glob("*_train.csv")) and any(folder.glob("*_test.csv")):
        return "smap"
    keys = list(json.loads(windows.read_text()))
    if keys and all(k.endswith(".csv") for k in keys):
        return "nab"
    raise SystemExit(
        f"error: {folder}: cannot tell the layout (expected <chan>_train.csv/<chan>_test.csv "
        "files, or windows.json keys naming CSV files)"
    )


def value_columns(frame: pd.DataFrame, time_col: str | None) -> list[str]:
    return [
        c for c in frame.columns
        if c != time_col and pd.api.types.is_numeric_dtype(frame[c])
    ]


def nab_specs(folder: Path, average_rows: int = 1) -> list[SeriesSpec]:
    """average_rows > 1: each series as the means of that many rows (each at its first
    row's time), so the same series and labels are fitted on fewer rows."""
    windows = json.loads((folder / "windows.json").read_text())
    specs = []
    for key in sorted(windows):
        sub = str(Path(key).parent)
        group = folder.name if sub in ("", ".") else f"{folder.name}/{sub}"

        def load(key=key) -> SeriesData:
            frame = pd.read_csv(folder / key)
            if "timestamp" not in frame.columns:
                raise ValueError(f"{key}: no timestamp column")
            frame["timestamp"] = pd.to_datetime(frame["timestamp"])
            if average_rows > 1:
                groups = frame.groupby(np.arange(len(frame)) // average_rows)
                frame = groups.mean(numeric_only=True).assign(
                    timestamp=groups["timestamp"].first())[frame.columns]
            rows = len(frame)
            n_fit = min(int(NAB_FIT_FRACTION * rows), NAB_FIT_MAX)
            labels = labels_from_intervals(
                frame["timestamp"].to_numpy(), [tuple(p) for p in windows[key]]
            )
            first = frame[value_columns(frame, "timestamp")[0]].to_numpy(np.float64)
            return SeriesData(
                fit=frame.iloc[:n_fit].reset_index(drop=True), data=frame, labels=labels,
                eval_from=n_fit, first_column=first, time_col="timestamp",
            )

        specs.append(SeriesSpec(f"{folder.name}/{key}", folder.name, group, "nab", load))
    return specs


def smap_specs(folder: Path, average_rows: int = 1) -> list[SeriesSpec]:
    if average_rows > 1:
        raise SystemExit(f"error: {folder}: --average-rows applies to nab folders only")
    windows = json.loads((folder / "windows.json").read_text())
    channels = sorted(p.name.removesuffix("_train.csv") for p in folder.glob("*_train.csv"))
    specs = []
    for chan in channels:

        def load(chan=chan) -> SeriesData:
            train = pd.read_csv(folder / f"{chan}_train.csv")
            test = pd.read_csv(folder / f"{chan}_test.csv")
            if chan not in windows:
                raise ValueError(f"{chan}: not in windows.json")
            labels = labels_from_intervals(
                np.arange(len(test)), [tuple(p) for p in windows[chan]]
            )
            col = value_columns(test, None)[0]
            # TSB-AD's files hold the training part followed by the test part.
            first = np.concatenate([train[col].to_numpy(np.float64),
                                    test[col].to_numpy(np.float64)])
            return SeriesData(
                fit=train, data=test, labels=labels, eval_from=0, first_column=first,
                time_col=None,
            )

        specs.append(SeriesSpec(f"{folder.name}/{chan}", folder.name, folder.name, "smap", load))
    return specs


# --------------------------------------------------------------------------- #
# the VUS sliding window: TSB-AD's find_length_rank(data, rank=1)
# --------------------------------------------------------------------------- #


def autocorrelation(x: np.ndarray, nlags: int) -> np.ndarray:
    """Sample autocorrelation at lags 0..nlags (statsmodels' acf: demeaned, / n)."""
    n = len(x)
    centred = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero-padded: no circular wrap-around
    spectrum = np.fft.rfft(centred, n=size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size)[: min(nlags, n - 1) + 1] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return acov / acov[0]


def tsb_sliding_window(first_column: np.ndarray) -> int:
    """The VUS buffer that TSB-AD uses for a series: its find_length_rank(rank=1).

    On the first 20000 points of the first column: the autocorrelation at lags
    3..400; among its strict local maxima, the highest; its lag is the window
    unless that maximum lies below index 3 or above index 300 of the
    lag-3-onwards sequence (lag < 6 or > 303), or there is no local maximum:
    then 125.
    """
    x = np.asarray(first_column, dtype=np.float64)[:TSB_MAX_POINTS]
    if len(x) < 2:
        return TSB_DEFAULT
    ac = autocorrelation(x, TSB_NLAGS)[TSB_BASE:]
    if len(ac) < 3:
        return TSB_DEFAULT
    inner = np.arange(1, len(ac) - 1)
    peaks = inner[(ac[inner] > ac[inner - 1]) & (ac[inner] > ac[inner + 1])]  # NaN: none
    if peaks.size == 0:
        return TSB_DEFAULT
    # Highest peak; among equal heights the later one (as argsort(...)[::-1] picks).
    order = np.argsort(ac[peaks], kind="stable")[::-1]
    best = int(peaks[order[0]])
    if best < 3 or best > 300:
        return TSB_DEFAULT
    return best + TSB_BASE


# --------------------------------------------------------------------------- #
# detectors: each returns causal point scores for `data`, a threshold, extras
# --------------------------------------------------------------------------- #


@dataclass
class Output:
    scores: np.ndarray  # one per row of data; NaN where there is no score
    threshold: float
    fit_seconds: float
    score_seconds: float
    predicted: np.ndarray | None = None  # default: scores > threshold
    info: dict = field(default_factory=dict)


def standardiser(fit_values: np.ndarray):
    mean = fit_values.mean(axis=0)
    std = fit_values.std(axis=0)
    std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)  # as lstmae
    return lambda v: (v - mean) / std


def heldout_split(n_fit: int, window: int, val_fraction: float) -> tuple[int, bool]:
    """Rows to fit a reference on and whether the rest can calibrate (lstmae's rule)."""
    val_rows = int(round(n_fit * val_fraction))
    train_rows = n_fit - val_rows
    ok = val_rows - window + 1 >= MIN_HELDOUT and train_rows >= window
    return (train_rows, True) if ok else (n_fit, False)


def flat_windows(values: np.ndarray, window: int) -> np.ndarray:
    """[N, D] -> [N - W + 1, W * D]: row i is the window of rows i .. i + W - 1."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # [n, D, W]
    return view.transpose(0, 2, 1).reshape(len(view), -1)


def duplicate_times(s: SeriesData) -> int:
    if s.time_col is None:
        return 0
    times = s.data[s.time_col].to_numpy()
    return int((times[1:] <= times[:-1]).sum())


def rows_from_steps(steps: pd.DataFrame, time_col: str, times: pd.Series, resample: str
                    ) -> pd.DataFrame:
    """Point rows of steps (--resample) as rows of the input: each row gets the score of
    the last step that had ended by its time (a step is known only once it is over), so
    the scores stay causal."""
    from lstmae.params import step_us

    ends = (pd.to_datetime(steps[time_col]) + pd.Timedelta(step_us(resample), "us")).to_numpy()
    at = pd.to_datetime(times).to_numpy()
    last = np.searchsorted(ends, at, side="right") - 1
    known = last >= 0
    score = np.where(known, steps["score"].to_numpy()[np.maximum(last, 0)], np.nan)
    return pd.DataFrame({time_col: times.to_numpy(), "score": score,
                         "anomaly": np.isfinite(score) & (score > steps["threshold"].iloc[0])})


def run_lstmae(s: SeriesData, params: dict) -> Output:
    fit_frame, data_frame = s.fit, s.data
    time_col = s.time_col
    if time_col is not None and "time_col" not in params and duplicate_times(s):
        # lstmae refuses repeated timestamps (NAB has some, at DST changes); the
        # protocol is by rows, so give it the rows in file order without time.
        fit_frame = fit_frame.drop(columns=[time_col])
        data_frame = data_frame.drop(columns=[time_col])
        time_col = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        det = Detector(**params).fit(fit_frame)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pts = det.score(data_frame, level="point")
        score_seconds = time.perf_counter() - started
    if params.get("resample") and time_col is not None:
        pts = rows_from_steps(pts, time_col, s.data[time_col], params["resample"])
    if len(pts) != len(s.data):
        raise RuntimeError(
            f"lstmae API: score(level='point') gave {len(pts)} rows for {len(s.data)} input rows"
        )
    if time_col is not None and not np.array_equal(
        pts[time_col].to_numpy(), s.data[time_col].to_numpy()
    ):
        raise RuntimeError("lstmae API: point rows are not in the input's row order")
    scores = pts["score"].to_numpy(np.float64)
    predicted = pts["anomaly"].to_numpy(bool)
    threshold = float(det.threshold_)
    issues = []
    expected = np.isfinite(scores) & (scores > threshold)
    if not np.array_equal(predicted, expected):
        issues.append(
            f"anomaly != (score > threshold_) on {int((predicted != expected).sum())} rows"
        )
    unscored = int(np.isnan(scores).sum())
    if unscored != min(det.window_ - 1, len(scores)) and not params.get("resample"):
        issues.append(f"{unscored} NaN scores, expected window-1 = {det.window_ - 1}")
    training = getattr(det, "training_", {})
    info = {
        "window": int(det.window_),
        "threshold_info": _jsonable(getattr(det, "threshold_info_", {})),
        "epochs_run": training.get("epochs_run"),
        "best_epoch": training.get("best_epoch"),
        "stopped_early": training.get("stopped_early"),
        "warnings": sorted({str(w.message) for w in caught}),
        "given_time": time_col is not None,
    }
    if issues:
        info["api_issues"] = issues
    return Output(scores, threshold, fit_seconds, score_seconds, predicted, info)


def run_zscore(s: SeriesData, columns: list[str], window: int, val_fraction: float) -> Output:
    """Trailing z-score: (x_t - mean) / sd over rows t-W .. t-1, per column."""
    started = time.perf_counter()
    fit_values = s.fit[columns].to_numpy(np.float64)
    if len(fit_values) <= window:
        raise ValueError(f"{len(fit_values)} fit rows: zscore needs more than W = {window}")
    scale = standardiser(fit_values)
    fit_seconds = time.perf_counter() - started

    def scores_of(values: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(scale(values))
        trailing = frame.rolling(window, min_periods=window)
        mean = trailing.mean().shift(1).to_numpy()
        std = trailing.std(ddof=0).shift(1).to_numpy()
        z = np.abs(frame.to_numpy() - mean) / np.maximum(std, ZSCORE_STD_FLOOR)
        agg = np.max if z.shape[1] <= ZSCORE_MAX_COLUMNS else np.mean
        out = np.full(len(z), np.nan)
        ok = ~np.isnan(z).any(axis=1)
        out[ok] = agg(z[ok], axis=1)
        return out

    started = time.perf_counter()
    fit_scores = scores_of(fit_values)
    n_fit = len(fit_values)
    val_rows = int(round(n_fit * val_fraction))
    train_rows = n_fit - val_rows
    # Held-out: scores whose W + 1 rows all lie in the last val_fraction of the fit rows.
    heldout = fit_scores[train_rows + window:]
    heldout = heldout[np.isfinite(heldout)]
    used_heldout = heldout.size >= MIN_HELDOUT
    calib = heldout if used_heldout else fit_scores[np.isfinite(fit_scores)]
    threshold = float(np.quantile(calib, REF_QUANTILE))
    fit_seconds += time.perf_counter() - started

    started = time.perf_counter()
    scores = scores_of(s.data[columns].to_numpy(np.float64))
    score_seconds = time.perf_counter() - started
    info = {
        "window": window,
        "aggregate": "max" if len(columns) <= ZSCORE_MAX_COLUMNS else "mean",
        "calibration": "held-out" if used_heldout else "all fit rows",
        "calibration_scores": int(calib.size),
    }
    return Output(scores, threshold, fit_seconds, score_seconds, info=info)


def run_windowed(
    kind: str, s: SeriesData, columns: list[str], window: int, val_fraction: float
) -> Output:
    """pca or iforest on flattened standardised windows; a window ending at t scores t."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    started = time.perf_counter()
    fit_values = s.fit[columns].to_numpy(np.float64)
    if len(fit_values) < window:
        raise ValueError(f"{len(fit_values)} fit rows: {kind} needs at least W = {window}")
    scale = standardiser(fit_values)
    n_fit = len(fit_values)
    train_rows, has_heldout = heldout_split(n_fit, window, val_fraction)
    fit_windows = flat_windows(scale(fit_values), window)
    train_windows = fit_windows[: train_rows - window + 1]
    calib_windows = fit_windows[train_rows:] if has_heldout else fit_windows
    info: dict = {"window": window, "features": int(fit_windows.shape[1]),
                  "train_windows": int(len(train_windows)),
                  "calibration": "held-out" if has_heldout else "all fit windows",
                  "calibration_scores": int(len(calib_windows))}

    if kind == "pca":
        centre = train_windows.mean(axis=0)
        total = float(((train_windows - centre) ** 2).sum())
        if total <= 1e-12:  # constant training windows: distance to the constant window
            def score_fn(w: np.ndarray) -> np.ndarray:
                return ((w - centre) ** 2).mean(axis=1)
            info["components"] = 0
        else:
            pca = PCA(n_components=PCA_VARIANCE, svd_solver="full", random_state=SEED)
            pca.fit(train_windows)
            info["components"] = int(pca.n_components_)

            def score_fn(w: np.ndarray) -> np.ndarray:
                recon = pca.inverse_transform(pca.transform(w))
                return ((w - recon) ** 2).mean(axis=1)
    else:
        forest = IsolationForest(n_estimators=100, random_state=SEED)
        forest.fit(train_windows)

        def score_fn(w: np.ndarray) -> np.ndarray:
            return -forest.score_samples(w)

    threshold = float(np.quantile(score_fn(calib_windows), REF_QUANTILE))
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    values = scale(s.data[columns].to_numpy(np.float64))
    scores = np.full(len(values), np.nan)
    if len(values) >= window:
        scores[window - 1:] = score_fn(flat_windows(values, window))
    score_seconds = time.perf_counter() - started
    return Output(scores, threshold, fit_seconds, score_seconds, info=info)


# --------------------------------------------------------------------------- #
# metrics
# --------------------------------------------------------------------------- #


def measure(labels: np.ndarray, out: Output, sliding_window: int) -> dict:
    """Metrics on the measured rows. Unscored (NaN) rows get the lowest finite score."""
    scores = out.scores
    finite = np.isfinite(scores)
    if not finite.any():
        raise ValueError("no finite score on the measured rows")
    predicted = out.predicted if out.predicted is not None else (
        finite & (np.nan_to_num(scores, nan=-np.inf) > out.threshold)
    )
    filled = np.where(finite, scores, scores[finite].min())
    result: dict = {
        "threshold": out.threshold,
        "flagged": float(predicted[finite].mean()),
        "unscored_rows": int((~finite).sum()),
        "rows": int(len(scores)),
        "anomalous_rows": int(labels.sum()),
        "fit_s": round(out.fit_seconds, 3),
        "score_s": round(out.score_seconds, 3),
    }
    if labels.sum() == 0:
        return result
    f1_best, thr_best = best_f1(labels, filled)
    precision, recall, f1 = precision_recall_f1(labels, predicted)
    result.update({
        "vus_pr": vus_pr(labels, filled, sliding_window),
        "auc_pr": auc_pr(labels, filled),
        "best_f1": f1_best,
        "best_f1_threshold": thr_best,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "event_recall": event_recall(labels, predicted),
    })
    if labels.sum() < len(labels):
        result["vus_roc"] = vus_roc(labels, filled, sliding_window)
        result["auc_roc"] = auc_roc(labels, filled)
    return result


# --------------------------------------------------------------------------- #
# the run
# --------------------------------------------------------------------------- #


def reference_window(requested, n_fit: int, sw: int) -> int:
    """The references' window where lstmae gave none: the one lstmae was asked for."""
    if requested is None:  # lstmae's default
        return default_window(n_fit)
    return int(np.clip(sw, 8, 256)) if requested == "auto" else int(requested)


def run_series(spec: SeriesSpec, detectors: list[str], params: dict, pos: str) -> dict:
    record: dict = {"series": spec.name, "dataset": spec.dataset, "group": spec.group,
                    "layout": spec.layout, "detectors": {}}
    try:
        s = spec.load()
        columns = params.get("columns") or value_columns(s.data, s.time_col)
        sw = tsb_sliding_window(s.first_column)
        labels = s.labels[s.eval_from:]
        record.update({
            "fit_rows": len(s.fit), "scored_rows": len(s.data), "measured_rows": len(labels),
            "anomalous_rows": int(labels.sum()), "columns": len(columns),
            "sliding_window": sw, "has_anomaly": bool(labels.sum() > 0),
            "repeated_timestamps": duplicate_times(s),
        })
    except Exception as exc:  # report it and go on with the next series
        record["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{pos} {spec.name}: FAILED to load: {record['error']}")
        return record
    log(f"{pos} {spec.name}: fit {len(s.fit)} rows, measure {len(labels)} rows "
        f"({int(labels.sum())} anomalous), {len(columns)} column(s), VUS window {sw}")
    if record["repeated_timestamps"]:
        log(f"{pos}   {record['repeated_timestamps']} timestamp(s) repeat or go back: "
            "lstmae gets the rows in file order, without the time column")

    val_fraction = params.get("val_fraction", 0.2)
    window = None  # what lstmae used; the references use the same
    for name in detectors:
        if name != "lstmae" and window is None:
            requested = params.get("window", DEFAULTS["window"])
            window = reference_window(requested, len(s.fit), sw)
            record["reference_window_note"] = (
                "no window from lstmae on this series; the references use "
                + ("its requested window" if requested != "auto" else "the VUS window")
            )
        try:
            np.random.seed(SEED)
            if name == "lstmae":
                # A fixed thread count: `auto` may change it with the load, and one and
                # two threads train to models that differ in the last digits
                # (lstmae.threads); a benchmark must give the same figures every run.
                with threads.using(torch.get_num_threads()):
                    out = run_lstmae(s, params)
                window = out.info["window"]
            elif name == "zscore":
                out = run_zscore(s, columns, window, val_fraction)
            else:
                out = run_windowed(name, s, columns, window, val_fraction)
            measured = Output(out.scores[s.eval_from:], out.threshold, out.fit_seconds,
                              out.score_seconds,
                              None if out.predicted is None else out.predicted[s.eval_from:],
                              out.info)
            result = {**measure(labels, measured, sw), **out.info}
            record["detectors"][name] = result
            extra = ""
            if "vus_pr" in result:
                extra = (f" VUS-PR {result['vus_pr']:.3f} AUC-PR {result['auc_pr']:.3f}"
                         f" F1 {result['f1']:.3f}")
            log(f"{pos}   {name:8s} W={out.info['window']:<4} fit {out.fit_seconds:7.1f}s"
                f" flagged {100 * result['flagged']:.2f}%{extra}")
            for issue in out.info.get("api_issues", []):
                log(f"{pos}   {name}: API ISSUE: {issue}")
        except Exception as exc:  # report it and go on with the next detector
            record["detectors"][name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6),
            }
            log(f"{pos}   {name:8s} FAILED: {type(exc).__name__}: {exc}")
    if "window" in record["detectors"].get("lstmae", {}):
        record["window"] = record["detectors"]["lstmae"]["window"]
    elif window is not None:
        record["window"] = window
    return record


METRICS = ("vus_pr", "vus_roc", "auc_pr", "auc_roc", "precision", "recall", "f1", "best_f1",
           "event_recall", "flagged", "fit_s")


def group_means(records: list[dict], detectors: list[str]) -> list[dict]:
    """Means per DATA_DIR (and per nab subfolder) over series with labelled anomalies."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get("has_anomaly"):
            groups.setdefault(r["dataset"], []).append(r)
            if r["group"] != r["dataset"]:
                groups.setdefault(r["group"], []).append(r)
    rows = []
    for group in sorted(groups, key=lambda g: (g.split("/")[0], "/" in g, g)):
        members = groups[group]
        for det in detectors:
            done = [m["detectors"][det] for m in members
                    if det in m["detectors"] and "error" not in m["detectors"][det]]
            row = {"group": group, "detector": det, "series": len(members), "n": len(done)}
            for metric in METRICS:
                values = [d[metric] for d in done if d.get(metric) is not None]
                row[metric] = float(np.mean(values)) if values else None
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- #
# output
# --------------------------------------------------------------------------- #


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    return f"{value:.{digits}f}"


METRIC_HEADS = ("VUS-PR", "VUS-ROC", "AUC-PR", "AUC-ROC", "P", "R", "F1", "bestF1", "ev.rec",
                "flag%", "fit s")
METRIC_KEYS = ("vus_pr", "vus_roc", "auc_pr", "auc_roc", "precision", "recall", "f1",
               "best_f1", "event_recall")


def print_tables(records: list[dict], means: list[dict], detectors: list[str]) -> None:
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 300, highlight=False)
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        table, notes = _series_table(dataset, [r for r in records if r["dataset"] == dataset],
                                     detectors)
        console.print(table)
        for note in notes:
            console.print(note, soft_wrap=True)
        if notes:
            console.print()
    if means:
        console.print(_means_table(means, detectors))
        console.print(_side_by_side(means, detectors))
    quiet = [r for r in records if "error" not in r and not r["has_anomaly"]]
    if quiet:
        console.print(_quiet_table(quiet, detectors))


def _table(title: str, *heads: str):
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for head in heads:
        table.add_column(head, **({"no_wrap": True} if head == "series" else
                                  {} if head in ("group", "detector") else {"justify": "right"}))
    return table


def _series_table(dataset: str, rows: list[dict], detectors: list[str]):
    """One dataset's per-series table, and the notes its cells point to."""
    table = _table(f"{dataset}: per series (measured rows; VUS buffer = sw)",
                   "series", "sw", "W", "detector", *METRIC_HEADS)
    notes: list[str] = []
    for i, r in enumerate(rows):
        short = r["series"].removeprefix(dataset + "/")
        if "error" in r:
            notes.append(f"[{len(notes) + 1}] {short}: could not load: {r['error']}")
            table.add_row(short, "", "", f"LOAD FAILED [{len(notes)}]",
                          end_section=i < len(rows) - 1)
            continue
        if not r["has_anomaly"]:
            short += " (no anomaly)"
        if r.get("repeated_timestamps"):
            notes.append(f"[{len(notes) + 1}] {short}: {r['repeated_timestamps']} "
                         "timestamp(s) repeat or go back; lstmae got the rows in file order, "
                         "without the time column")
            short += f" [{len(notes)}]"
        for j, det in enumerate(detectors):
            first = j == 0
            cells = [short if first else "", str(r["sliding_window"]) if first else "",
                     str(r.get("window", "")) if first else "", det,
                     *_detector_cells(short, det, r["detectors"].get(det, {}), notes)]
            table.add_row(*cells, end_section=j == len(detectors) - 1 and i < len(rows) - 1)
    return table, notes


def _detector_cells(short: str, det: str, d: dict, notes: list[str]) -> list[str]:
    if "error" in d:
        notes.append(f"[{len(notes) + 1}] {short} {det}: {d['error']}")
        return [f"FAILED [{len(notes)}]"]
    return [*(_fmt(d.get(m)) for m in METRIC_KEYS), _fmt(100 * d["flagged"], 2),
            _fmt(d["fit_s"], 1)]


def _means_table(means: list[dict], detectors: list[str]):
    table = _table("Means over series with labelled anomalies (n = series where the detector "
                   "ran)", "group", "detector", "n", *METRIC_HEADS)
    for i, m in enumerate(means):
        last_of_group = i == len(means) - 1 or means[i + 1]["group"] != m["group"]
        table.add_row(
            m["group"] if m["detector"] == detectors[0] else "", m["detector"],
            f"{m['n']}/{m['series']}",
            *[_fmt(m[k]) for k in METRIC_KEYS],
            _fmt(None if m["flagged"] is None else 100 * m["flagged"], 2),
            _fmt(m["fit_s"], 1),
            end_section=last_of_group and i < len(means) - 1,
        )
    return table


def _side_by_side(means: list[dict], detectors: list[str]):
    """One column per group: what a change did on every folder at once. VUS-PR for each
    detector, and the F1 of each one's own threshold against the best F1 any gives."""
    groups = list(dict.fromkeys(m["group"] for m in means))
    table = _table("Side by side: mean VUS-PR, and F1 of the threshold / best F1", "detector",
                   *groups)
    at = {(m["group"], m["detector"]): m for m in means}
    for det in detectors:
        table.add_row(det, *[_fmt(at[g, det]["vus_pr"]) for g in groups])
    for det in detectors:
        table.add_row(f"{det} F1/best", *[
            f"{_fmt(at[g, det]['f1'])}/{_fmt(at[g, det]['best_f1'])}" for g in groups])
    return table


def _quiet_table(quiet: list[dict], detectors: list[str]):
    checked = ["lstmae <= 1%"] if "lstmae" in detectors else []
    table = _table("No labelled anomaly: % of scored measured rows flagged (lstmae must be "
                   "<= 1%)", "series", *(f"{det} flag%" for det in detectors), *checked)
    for r in quiet:
        cells = [r["series"]]
        for det in detectors:
            d = r["detectors"].get(det, {})
            cells.append("FAILED" if "error" in d else _fmt(100 * d["flagged"], 2))
        if checked:
            d = r["detectors"].get("lstmae", {})
            cells.append("-" if "error" in d else
                         ("ok" if d["flagged"] <= 0.01 else "OVER"))
        table.add_row(*cells)
    return table


# --------------------------------------------------------------------------- #
# command line
# --------------------------------------------------------------------------- #


def parse_sets(items: list[str]) -> dict:
    allowed = list(FLAT_NAMES)  # Detector(**params) takes lstmae fit's parameters
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SystemExit(f"error: --set expects key=value, got {item!r}")
        if key not in allowed:
            raise SystemExit(
                f"error: --set {key}: not a Detector parameter; one of: {', '.join(allowed)}"
            )
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        params[key] = value
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Detection-quality benchmark of lstmae against reference detectors.",
    )
    parser.add_argument("data_dirs", nargs="+", metavar="DATA_DIR",
                        help="nab- or smap-style folder (see ../shared/data/README.md)")
    parser.add_argument("--json", metavar="OUT", help="write every result to this JSON file")
    parser.add_argument("--series", action="append", default=[], metavar="SUBSTR",
                        help="only series whose name contains SUBSTR (repeatable: any)")
    parser.add_argument("--detectors", default=",".join(ALL_DETECTORS),
                        help=f"comma-separated subset of {','.join(ALL_DETECTORS)}")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="Detector parameter, e.g. --set window=auto --set epochs=50")
    parser.add_argument("--average-rows", type=int, default=1, metavar="N",
                        help="nab folders: each series as means of N rows, so that the "
                        "same series are fitted on N times fewer rows (short fits)")
    args = parser.parse_args(argv)
    if args.average_rows < 1:
        parser.error("--average-rows must be 1 or more")

    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    unknown = [d for d in detectors if d not in ALL_DETECTORS]
    if unknown or not detectors:
        parser.error(f"--detectors: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(ALL_DETECTORS)}")
    # lstmae runs first on each series: the references use the window it chose.
    detectors = sorted(dict.fromkeys(detectors), key=ALL_DETECTORS.index)
    if any(d in SKLEARN_DETECTORS for d in detectors):
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print("error: the pca and iforest reference detectors need scikit-learn, "
                  "the bench extra of lstmae: pip install -e '.[bench]' "
                  "(or leave them out: --detectors lstmae,zscore)", file=sys.stderr)
            return 2
    params = {"device": "cpu", "seed": SEED, **parse_sets(args.sets)}

    specs: list[SeriesSpec] = []
    for text in args.data_dirs:
        folder = Path(text)
        if not folder.is_dir():
            parser.error(f"{folder}: not a folder")
        layout = detect_layout(folder)
        found = nab_specs(folder, args.average_rows) if layout == "nab" else smap_specs(
            folder, args.average_rows)
        log(f"{folder}: {layout} layout, {len(found)} series")
        specs += found
    if args.series:
        specs = [s for s in specs if any(sub in s.name for sub in args.series)]
    if not specs:
        log("error: no series to run")
        return 1

    started = time.perf_counter()
    records = []
    for i, spec in enumerate(specs, 1):
        records.append(run_series(spec, detectors, params, f"[{i}/{len(specs)}]"))
    total = time.perf_counter() - started
    means = group_means(records, detectors)

    print_tables(records, means, detectors)
    failures = sum("error" in r for r in records) + sum(
        "error" in d for r in records for d in r["detectors"].values())
    print(f"\n{len(records)} series, detectors {','.join(detectors)}, "
          f"lstmae {lstmae.__version__}, params {params}; "
          f"{failures} failure(s); total {total:.0f} s")

    if args.json:
        try:
            import sklearn
            sklearn_version = sklearn.__version__
        except ImportError:
            sklearn_version = None
        doc = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": [sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
            "settings": {
                "data_dirs": args.data_dirs, "series_filter": args.series,
                "average_rows": args.average_rows,
                "detectors": detectors, "lstmae_params": params, "seed": SEED,
                "reference_quantile": REF_QUANTILE, "zscore_std_floor": ZSCORE_STD_FLOOR,
                "zscore_max_columns_for_max": ZSCORE_MAX_COLUMNS, "pca_variance": PCA_VARIANCE,
                "nab_fit": f"min(int({NAB_FIT_FRACTION} * rows), {NAB_FIT_MAX})",
                "nan_scores": "filled with the lowest finite score of the measured rows",
            },
            "versions": {
                "lstmae": lstmae.__version__, "torch": torch.__version__,
                "numpy": np.__version__, "pandas": pd.__version__, "sklearn": sklearn_version,
                "python": platform.python_version(),
            },
            "total_seconds": round(total, 1),
            "series": records,
            "means": means,
        }
        Path(args.json).write_text(json.dumps(_jsonable(doc), indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
