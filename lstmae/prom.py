"""`score -o FILE.prom`: the latest scores in Prometheus' text format, for node_exporter's
textfile collector (which reads whole files: the file is replaced atomically).

Every name starts with `lstmae_` and carries a `model` label (the model file as given),
so one collector folder can hold a file per model. Counters end in `_total` and are
kept by `--state`; without a state each run stands alone and only gauges are written.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import pandas as pd


@dataclass
class Snapshot:
    """What one run of score knows at its end."""

    model: str
    threshold: float
    columns: list[str]
    latest: pd.DataFrame | None = None  # the latest window's point values (score, error_<col>)
    windows: int = 0  # scored in this run
    anomalies: int = 0  # anomalous windows in this run
    new_events: int = 0  # events that opened in this run
    open_events: int = 0  # events still open at the end
    events_total: int | None = None  # events opened since the state began (--state)
    last_time: float | None = None  # the last row's time, in seconds since the epoch


def exposition(snap: Snapshot) -> bytes:
    """The text exposition format (prometheus_client writes it, escaping and all)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    model = [snap.model]

    def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"lstmae_{name}", text, labels=["model"])
        family.add_metric(model, value)
        return family

    families: list = [
        gauge("threshold", "Anomaly when a window's error is above this.", snap.threshold),
        gauge("windows_scored", "Windows scored in the last run.", snap.windows),
        gauge("anomalous_windows", "Anomalous windows in the last run.", snap.anomalies),
        gauge("new_events", "Events (incidents) that opened in the last run.", snap.new_events),
        gauge("open_events", "Events still going at the last scored row.", snap.open_events),
        gauge("last_run_timestamp_seconds", "When score last ran (Unix time).", time.time()),
    ]
    if snap.latest is not None and len(snap.latest):
        row = snap.latest.iloc[0]
        error = _finite(row["score"])
        families += [
            gauge("window_error", "The latest window's reconstruction error.", error),
            # At this run's threshold (a window scored in an earlier run was judged by its own).
            gauge("anomaly", "1 when the latest window is anomalous.",
                  float(error > snap.threshold)),
        ]
        by_column = GaugeMetricFamily("lstmae_column_error", "The latest window's error in "
                                      "each column.", labels=["model", "column"])
        for col in snap.columns:
            if f"error_{col}" in row.index:
                by_column.add_metric([snap.model, col], _finite(row[f"error_{col}"]))
        families.append(by_column)
    if snap.last_time is not None:
        families.append(gauge("last_scored_timestamp_seconds", "The time of the last scored "
                              "row (Unix time; times without an offset taken as UTC).",
                              snap.last_time))
    if snap.events_total is not None:
        total = CounterMetricFamily("lstmae_events_opened", "Events (incidents) opened since "
                                    "the state file began.", labels=["model"])
        total.add_metric(model, snap.events_total)
        families.append(total)

    class _Collected:
        def collect(self):
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collected())
    return generate_latest(registry)


def _finite(value) -> float:
    """An error that overflowed is the largest there is (+Inf is valid in the format)."""
    value = float(value)
    return math.inf if math.isnan(value) else value


def label(path: str) -> str:
    """A file name as a label value: bytes that are not UTF-8 written as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def unix_seconds(value, kind: str) -> float | None:
    """A time as Unix seconds, for date-times only (numbers have no known epoch); a time
    without an offset is taken as UTC."""
    if kind not in ("naive", "aware") or value is None:
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tz is None else stamp).timestamp()
