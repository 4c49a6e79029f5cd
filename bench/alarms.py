#!/usr/bin/env python
"""Alarm quality: one alarm per incident, scored by NAB's own rules.

    python bench/alarms.py ../shared/data/nab-dev [--cache DIR] [--series SUBSTR]
        [--json out.json]

For each series of a NAB-style folder (bench/quality.py's nab protocol: fit on the
first min(15 % of rows, 750), score the whole file), lstmae's window errors are
turned into alarms by several policies, and each policy's alarms are scored as NAB
scores a detector (bench/nab_score.py: windows, scaled sigmoid, standard profile
TP 1, FP 0.11, FN 1; detections in the probationary period ignored). Reported per
policy: the normalised NAB score, event precision and recall, and the median delay
from an anomaly window's start to its first alarm.

The policies, all from the same errors:
* rows above: every row whose point score is above the threshold is a detection
  (what a pipeline reading `anomaly` gets; what lstmae gave before events had onsets)
* onset: `score --level point`'s `alarm` (lstmae.events: one per event, at its onset),
  for cooldowns and threshold margins
* hysteresis: an event opens above the threshold and goes on while errors stay above
  a lower one
* min duration: an event alarms only once it has lasted k anomalous windows
* likelihood: the error against its own recent history (HTM's anomaly likelihood:
  the short-term mean of errors against the long-term mean and spread)

Models are cached in --cache (default bench/.cache/alarms) so policies can be
changed and scored again without refitting. Fits run on one thread (repeatable).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nab_score  # noqa: E402
import quality  # noqa: E402

from lstmae import Detector, threads  # noqa: E402
from lstmae.events import Events, Surprise  # noqa: E402
from lstmae.params import DEFAULTS  # noqa: E402


def fitted(spec, s, cache: Path) -> Detector:
    key = hashlib.sha256(json.dumps([spec.name, DEFAULTS, quality.SEED],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache / f"{key}.lstmae"
    if path.exists():
        return Detector.load(path)
    det = Detector(seed=quality.SEED).fit(_frame(s.fit, s))
    cache.mkdir(parents=True, exist_ok=True)
    det.save(path)
    return det


def _frame(frame: pd.DataFrame, s) -> pd.DataFrame:
    # lstmae refuses repeated timestamps (NAB has some); the protocol is by rows.
    return frame.drop(columns=["timestamp"]) if quality.duplicate_times(s) else frame


# --------------------------------------------------------------- policies
def events_alarms(windows: pd.DataFrame, det: Detector, n_rows: int, cooldown: int,
                  flags: np.ndarray, opens: np.ndarray | None = None) -> np.ndarray:
    """Alarms at event onsets (lstmae.events, the code score runs) for these flags."""
    w = det.window_
    starts = windows["start_row"].to_numpy()
    piece = SimpleNamespace(series=SimpleNamespace(labels=np.arange(n_rows)), offset=0,
                            starts=starts, window=w)
    frame = windows.assign(anomaly=flags)
    fed = Events(det.columns_, cooldown).feed(piece, frame, opens)
    alarms = np.zeros(n_rows, dtype=bool)
    alarms[fed.onsets] = True
    return alarms


def hysteresis_alarms(errors: np.ndarray, ends: np.ndarray, n_rows: int, high: float,
                      low: float, cooldown: int) -> np.ndarray:
    """Open above `high`; stay open while a window above `low` comes within `cooldown`."""
    alarms = np.zeros(n_rows, dtype=bool)
    last = None  # end row of the open event's latest window above `low`
    for error, end in zip(errors, ends, strict=True):
        if last is not None and end - last > cooldown:
            last = None
        if last is None and error > high:
            alarms[end] = True
            last = end
        elif last is not None and error > low:
            last = end
    return alarms


def min_duration_alarms(flags: np.ndarray, ends: np.ndarray, n_rows: int, k: int,
                        cooldown: int) -> np.ndarray:
    """Alarm at the k-th anomalous window of an event (none for shorter events)."""
    alarms = np.zeros(n_rows, dtype=bool)
    last, count = None, 0
    for flag, end in zip(flags, ends, strict=True):
        if last is not None and end - last > cooldown:
            last, count = None, 0
        if flag:
            last, count = end, count + 1
            if count == k:
                alarms[end] = True
    return alarms


def surprise(det: Detector, errors: np.ndarray, short: int, long: int) -> np.ndarray:
    """lstmae.events.Surprise's likelihood at other sizes, seeded as score seeds it."""
    tracker = Surprise(det.heldout_errors_)
    tracker.SHORT, tracker.LONG = short, long
    tracker.history = np.asarray(det.heldout_errors_, dtype=np.float64)[-(short + long):]
    return tracker.feed(errors)


def policies(windows: pd.DataFrame, points: pd.DataFrame, det: Detector, n_rows: int,
             chosen: str = ""):
    """(name, per-row alarms) of every policy measured (those whose name holds `chosen`)."""
    errors, ends = windows["error"].to_numpy(), windows["end_row"].to_numpy()
    threshold, w = det.threshold_, det.window_
    above = errors > threshold

    def onset(flags, cooldown, opens=None):
        return lambda: events_alarms(windows, det, n_rows, cooldown * w, flags, opens)

    candidates = {"rows above threshold": lambda: points["anomaly"].to_numpy(bool),
                  "lstmae score --level point: alarm": lambda: points["alarm"].to_numpy(bool)}
    for margin, cooldown in itertools.product((1.0, 1.5), (1, 4, 16)):
        candidates[f"onset, threshold x{margin:g}, cooldown {cooldown}w"] = onset(
            errors > margin * threshold, cooldown)
    for low in (0.5, 0.8):
        candidates[f"hysteresis, close below x{low:g}, cooldown 1w"] = functools.partial(
            hysteresis_alarms, errors, ends, n_rows, threshold, low * threshold, w)
    for k in (2, 5):
        candidates[f"min duration {k} windows, cooldown 1w"] = functools.partial(
            min_duration_alarms, above, ends, n_rows, k, w)
    for short, long in ((10, 500), (5, 500), (10, 1000)):
        like = surprise(det, errors, short, long)
        for level, cooldown in itertools.product((0.99, 0.999, 0.9999), (1, 4)):
            tag = f"short {short}, long {long}, > {level:g}, cooldown {cooldown}w"
            candidates[f"likelihood alone {tag}"] = onset(like > level, cooldown)
            candidates[f"above, opened by news {tag}"] = onset(above, cooldown, like > level)
    for name, make in candidates.items():
        if chosen in name:
            yield name, make()


# --------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache" / "alarms")
    parser.add_argument("--series", default="")
    parser.add_argument("--policies", default="", help="only policies whose name holds this")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    windows_json = json.loads((args.folder / "windows.json").read_text())
    results: dict[str, list[dict]] = {}
    started = time.perf_counter()
    with threads.using(1):
        for spec in quality.nab_specs(args.folder):
            if args.series not in spec.name:
                continue
            s = spec.load()
            det = fitted(spec, s, args.cache)
            data = _frame(s.data, s)
            scored = det.score_all(data)
            n_rows = len(data)
            windows = scored["window"].reset_index(drop=True)
            windows["start_row"] = _start_rows(n_rows, det, len(windows))
            windows["end_row"] = windows["start_row"] + det.window_ - 1
            key = spec.name.split("/", 1)[1]
            for name, alarms in policies(windows, scored["point"], det, n_rows, args.policies):
                result = nab_score.file_score(s.data["timestamp"], alarms, windows_json[key])
                results.setdefault(name, []).append(result)
            quality.log(f"{spec.name}: {n_rows} rows, window {det.window_}, threshold "
                        f"{det.threshold_:.4g} ({time.perf_counter() - started:.0f} s)")
    table = []
    for name, per_file in results.items():
        corpus = nab_score.corpus_score(per_file)
        table.append({"policy": name, **{k: corpus[k] for k in (
            "score", "tp", "fp", "fn", "event_precision", "event_recall", "median_delay_rows")}})
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps({"series": len(next(iter(results.values()), [])),
                                         "policies": table}, indent=1) + "\n")
    return 0


def _start_rows(n_rows: int, det: Detector, count: int) -> np.ndarray:
    from lstmae.windows import window_starts

    starts = window_starts(n_rows, det.window_, det.params.window.stride)
    assert len(starts) == count
    return starts


def print_table(rows: list[dict]) -> None:
    print(f"{'policy':48} {'NAB':>6} {'TP':>4} {'FP':>5} {'FN':>4} {'prec':>5} {'rec':>5} "
          f"{'delay':>6}")
    for r in rows:
        print(f"{r['policy']:48} {r['score']:6.1f} {r['tp']:4d} {r['fp']:5d} {r['fn']:4d} "
              f"{r['event_precision']:5.2f} {r['event_recall']:5.2f} "
              f"{r['median_delay_rows']:6.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
