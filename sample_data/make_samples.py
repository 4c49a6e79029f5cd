"""Generate the synthetic sample data sets shipped with lstmae.

Run ``python sample_data/make_samples.py``; every file is written next to this
script. The output is fully deterministic (fixed seed, numpy + pandas + pyarrow
only) and takes well under a second to produce.

Files
-----
univariate_train.csv
    ``timestamp,value`` at 5-minute steps, 14 days of normal behaviour: a daily
    cycle (288 rows per day) with a weak weekly modulation plus mild noise.
univariate_test.csv
    The same generator continued in time for 7 more days, with a spike, a level
    shift and a stretch where the daily cycle runs at 3x frequency.
server_train.csv
    ``timestamp,load,cpu,memory,latency`` at 5-minute steps, 21 days of a
    healthy web server. ``load`` (requests/s) carries the daily and weekly
    seasonality; the other channels are derived from it: ``cpu`` (%) is linear
    in load, ``latency`` (ms) rises nonlinearly with cpu like a queue nearing
    saturation, and ``memory`` (GB) follows a lagged, smoothed copy of load.
server_test.csv / server_test.parquet
    The server generator continued for 10.5 more days with four anomalies:
    a latency/cpu spike, a memory level shift, a broken cpu/load correlation
    and a 4x-frequency stretch. The Parquet file holds the identical table with
    ``timestamp`` stored as a real timestamp column.
univariate_test_labels.csv / server_test_labels.csv
    ``start,end,kind``: first and last timestamp (inclusive) of each anomalous
    stretch; ``kind`` is spike, level_shift, broken_correlation or
    frequency_change.

How anomalies are injected
--------------------------
Train and test come from one continuous series that is split in two, so the
test timestamps, phase and noise carry on seamlessly from the training data.
Spikes and level shifts are added on top of the finished signal. A frequency
change speeds up the phase of the daily cycle; its length is chosen so the
extra phase is a whole number of days, leaving the cycle back in step
afterwards. The broken correlation replaces cpu (and latency, which is derived
from cpu) with values computed from the load mirrored about its mid-range, so
every channel stays inside its normal range while cpu runs opposite to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

OUT_DIR = Path(__file__).resolve().parent
SEED = 20260105
START = pd.Timestamp("2026-01-05 00:00:00")  # a Monday, so weekdays line up
STEP = pd.Timedelta(minutes=5)
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
DAY = 288  # rows per day at 5-minute sampling
WEEK = 7 * DAY
DECIMALS = 4

UNI_TRAIN_ROWS = 14 * DAY  # 4032
UNI_TEST_ROWS = 7 * DAY  # 2016
SERVER_TRAIN_ROWS = 21 * DAY  # 6048
SERVER_TEST_ROWS = 3024  # 10.5 days

SERVER_CHANNELS = ["load", "cpu", "memory", "latency"]


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly covering test rows ``start``..``end`` inclusive."""

    kind: str
    start: int
    end: int

    @property
    def rows(self) -> slice:
        return slice(self.start, self.end + 1)


# Frequency-change lengths are multiples of DAY / (factor - 1) so the sped-up
# cycle gains whole days and rejoins the normal phase when the stretch ends.
UNI_ANOMALIES = [
    Anomaly("spike", 300, 302),
    Anomaly("level_shift", 800, 899),
    Anomaly("frequency_change", 1400, 1543),  # 144 rows at 3x = +1 cycle
]
UNI_FREQ_FACTOR = 3.0

# The broken-correlation stretch runs 09:00-21:25 so it straddles the 15:00
# load peak, where cpu running opposite to load differs from normal the most.
SERVER_ANOMALIES = [
    Anomaly("spike", 420, 423),
    Anomaly("level_shift", 800, 919),
    Anomaly("broken_correlation", 4 * DAY + 108, 4 * DAY + 257),  # 1260-1409
    Anomaly("frequency_change", 1900, 2091),  # 192 rows at 4x = +2 cycles
]
SERVER_FREQ_FACTOR = 4.0


def timestamps(n_rows: int) -> pd.DatetimeIndex:
    return pd.date_range(START, periods=n_rows, freq=STEP)


def cycle_phase(n_rows: int, speedups: list[tuple[slice, float]]) -> np.ndarray:
    """Phase (radians) of the daily cycle, integrated so speed-ups stay continuous."""
    rate = np.full(n_rows, 2 * np.pi / DAY)
    for rows, factor in speedups:
        rate[rows] *= factor
    return np.concatenate([[0.0], np.cumsum(rate)[:-1]])


def weekly_factor(n_rows: int, depth: float) -> np.ndarray:
    """Multiplicative weekly modulation, lowest around the weekend."""
    t = np.arange(n_rows)
    # cos peaks at t=0 (Monday 00:00); shift so the trough lands on Sunday.
    return 1.0 + depth * np.cos(2 * np.pi * (t - 0.5 * DAY) / WEEK)


def ar1_noise(rng: np.random.Generator, n_rows: int, sd: float, phi: float) -> np.ndarray:
    """Stationary AR(1) noise: real metrics wander a little rather than jitter."""
    shocks = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n_rows)
    out = np.empty(n_rows)
    out[0] = rng.normal(0.0, sd)
    for i in range(1, n_rows):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def split_frame(frame: pd.DataFrame, n_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = frame.iloc[:n_train].reset_index(drop=True)
    test = frame.iloc[n_train:].reset_index(drop=True)
    return train, test


# --------------------------------------------------------------------------
# Univariate
# --------------------------------------------------------------------------


def make_univariate(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = UNI_TRAIN_ROWS + UNI_TEST_ROWS
    offset = UNI_TRAIN_ROWS  # anomalies are given in test-row coordinates
    speedups = [
        (slice(a.start + offset, a.end + offset + 1), UNI_FREQ_FACTOR)
        for a in UNI_ANOMALIES
        if a.kind == "frequency_change"
    ]
    phase = cycle_phase(n, speedups)
    value = 50.0 + 10.0 * np.sin(phase) * weekly_factor(n, 0.15)
    value += rng.normal(0.0, 0.8, n)

    normal_sd = value[:UNI_TRAIN_ROWS].std()
    for a in UNI_ANOMALIES:
        rows = slice(a.start + offset, a.end + offset + 1)
        if a.kind == "spike":
            value[rows] += 5.0 * normal_sd
        elif a.kind == "level_shift":
            value[rows] += 2.5 * normal_sd

    frame = pd.DataFrame({"timestamp": timestamps(n), "value": value})
    return split_frame(frame, UNI_TRAIN_ROWS)


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


def load_signal(phase: np.ndarray, n_rows: int) -> np.ndarray:
    """Noise-free request rate (req/s) peaking at 15:00 each day."""
    peak_shift = 2 * np.pi * 9 / 24  # sin peaks at 06:00 + 9 h = 15:00
    return (400.0 + 200.0 * np.sin(phase - peak_shift)) * weekly_factor(n_rows, 0.08)


def cpu_from_load(load: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(6.0 + 0.095 * load + noise, 0.0, 100.0)


def latency_from_cpu(cpu: np.ndarray, noise: np.ndarray) -> np.ndarray:
    # M/M/1-style 1/(1-utilisation): flat when idle, steep as cpu saturates.
    return 12.0 / (1.0 - cpu / 100.0) * np.exp(noise)


def memory_from_load(load: np.ndarray, noise: np.ndarray) -> np.ndarray:
    # Caches and session state grow and drain slowly: EMA with ~1 h time constant.
    alpha = 1.0 / 12.0
    smooth = np.empty_like(load)
    smooth[0] = load[0]
    for i in range(1, len(load)):
        smooth[i] = smooth[i - 1] + alpha * (load[i] - smooth[i - 1])
    return 5.0 + 0.008 * smooth + noise


def make_server(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = SERVER_TRAIN_ROWS + SERVER_TEST_ROWS
    offset = SERVER_TRAIN_ROWS

    def test_rows(a: Anomaly) -> slice:
        return slice(a.start + offset, a.end + offset + 1)

    by_kind = {a.kind: test_rows(a) for a in SERVER_ANOMALIES}
    phase = cycle_phase(n, [(by_kind["frequency_change"], SERVER_FREQ_FACTOR)])

    clean_load = load_signal(phase, n)
    load = clean_load + ar1_noise(rng, n, sd=12.0, phi=0.8) + rng.normal(0.0, 5.0, n)
    cpu_noise = rng.normal(0.0, 1.2, n)
    latency_noise = rng.normal(0.0, 0.04, n)
    memory_noise = rng.normal(0.0, 0.03, n)

    # cpu driven by the load it would see if load ran half a day out of phase:
    # same range as normal, opposite direction.
    driver = load.copy()
    broken = by_kind["broken_correlation"]
    train_load = clean_load[:SERVER_TRAIN_ROWS]
    mid = 0.5 * (train_load.min() + train_load.max())
    driver[broken] = 2 * mid - clean_load[broken] + (load[broken] - clean_load[broken])

    cpu = cpu_from_load(driver, cpu_noise)
    latency = latency_from_cpu(cpu, latency_noise)
    memory = memory_from_load(load, memory_noise)

    spike = by_kind["spike"]
    # A stalled dependency: requests pile up, cpu pegs and latency explodes.
    cpu[spike] = rng.uniform(96.0, 99.0, spike.stop - spike.start)
    latency[spike] *= rng.uniform(8.0, 12.0, spike.stop - spike.start)
    # A process grabs a fixed extra buffer and later releases it.
    memory[by_kind["level_shift"]] += 3.0

    frame = pd.DataFrame(
        {
            "timestamp": timestamps(n),
            "load": load,
            "cpu": cpu,
            "memory": memory,
            "latency": latency,
        }
    )
    return split_frame(frame, SERVER_TRAIN_ROWS)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def to_output(frame: pd.DataFrame) -> pd.DataFrame:
    """Round floats so CSV and Parquet hold exactly the same numbers."""
    out = frame.copy()
    numeric = out.columns.drop("timestamp")
    out[numeric] = out[numeric].round(DECIMALS)
    return out


def write_csv(frame: pd.DataFrame, name: str) -> None:
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime(TS_FORMAT)
    out.to_csv(OUT_DIR / name, index=False)


def write_parquet(frame: pd.DataFrame, name: str) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Pin the unit so the schema does not depend on the pandas version.
    schema = table.schema.set(0, pa.field("timestamp", pa.timestamp("us")))
    pq.write_table(table.cast(schema), OUT_DIR / name)


def labels_frame(test: pd.DataFrame, anomalies: list[Anomaly]) -> pd.DataFrame:
    ts = test["timestamp"]
    return pd.DataFrame(
        {
            "start": [ts.iloc[a.start].strftime(TS_FORMAT) for a in anomalies],
            "end": [ts.iloc[a.end].strftime(TS_FORMAT) for a in anomalies],
            "kind": [a.kind for a in anomalies],
        }
    )


# --------------------------------------------------------------------------
# Sanity report
# --------------------------------------------------------------------------


def report_univariate(train: pd.DataFrame, test: pd.DataFrame) -> None:
    normal = train["value"]
    print("\nunivariate_test anomalies vs train (mean +- std):")
    print(f"  {'normal':32s}{normal.mean():10.2f} +-{normal.std():7.2f}")
    for a in UNI_ANOMALIES:
        part = test["value"].iloc[a.rows]
        label = f"{a.kind} [{a.start}-{a.end}]"
        print(f"  {label:32s}{part.mean():10.2f} +-{part.std():7.2f}")


def report_server(train: pd.DataFrame, test: pd.DataFrame) -> None:
    normal = train[SERVER_CHANNELS]
    normal_corr = normal["cpu"].corr(normal["load"])
    print("\nserver_test anomalies vs train (mean +- std):")
    print(f"  {'':32s}" + "".join(f"{c:>20s}" for c in SERVER_CHANNELS))
    print(
        f"  {'normal':32s}"
        + "".join(f"{normal[c].mean():10.2f} +-{normal[c].std():7.2f}" for c in SERVER_CHANNELS)
        + f"   corr(cpu,load)={normal_corr:.2f}"
    )
    for a in SERVER_ANOMALIES:
        part = test.iloc[a.rows][SERVER_CHANNELS]
        label = f"{a.kind} [{a.start}-{a.end}]"
        print(
            f"  {label:32s}"
            + "".join(f"{part[c].mean():10.2f} +-{part[c].std():7.2f}" for c in SERVER_CHANNELS)
            + f"   corr(cpu,load)={part['cpu'].corr(part['load']):.2f}"
        )

    broken = next(a for a in SERVER_ANOMALIES if a.kind == "broken_correlation")
    part = test.iloc[broken.rows]
    print("\nbroken_correlation range check (stretch min/max within train min/max):")
    for c in SERVER_CHANNELS:
        lo, hi = normal[c].min(), normal[c].max()
        ok = lo <= part[c].min() and part[c].max() <= hi
        print(
            f"  {c:8s} stretch [{part[c].min():8.2f}, {part[c].max():8.2f}]"
            f"  normal [{lo:8.2f}, {hi:8.2f}]  {'ok' if ok else 'OUT OF RANGE'}"
        )
        if not ok:
            raise SystemExit(f"broken_correlation: {c} leaves its normal range")


def main() -> None:
    rng = np.random.default_rng(SEED)
    uni_rng, server_rng = rng.spawn(2)

    uni_train, uni_test = (to_output(f) for f in make_univariate(uni_rng))
    server_train, server_test = (to_output(f) for f in make_server(server_rng))

    outputs = {
        "univariate_train.csv": uni_train,
        "univariate_test.csv": uni_test,
        "univariate_test_labels.csv": labels_frame(uni_test, UNI_ANOMALIES),
        "server_train.csv": server_train,
        "server_test.csv": server_test,
        "server_test_labels.csv": labels_frame(server_test, SERVER_ANOMALIES),
    }
    for name, frame in outputs.items():
        if "timestamp" in frame:
            write_csv(frame, name)
        else:
            frame.to_csv(OUT_DIR / name, index=False)
    write_parquet(server_test, "server_test.parquet")

    print(f"wrote to {OUT_DIR}")
    for name, frame in outputs.items():
        print(f"  {name:28s} {len(frame):6d} rows")
    print(f"  {'server_test.parquet':28s} {len(server_test):6d} rows")
    report_univariate(uni_train, uni_test)
    report_server(server_train, server_test)


if __name__ == "__main__":
    main()
