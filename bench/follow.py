#!/usr/bin/env python
"""`score --follow`: latency from a row written to its scored row read, and memory
as the stream goes on.

    python bench/follow.py [--model M] [--rows 20000] [--rate 200] [--json out.json]

A writer pipes the server sample's rows (repeated to --rows) into
`lstmae score - --follow` at --rate rows a second, and reads the window rows as they
come: for each row, the time from writing it to reading the window row it completes.
The process's resident memory (VmRSS) is sampled as it runs. The reference, in the
same run: `lstmae score FILE` over the same rows at once (peak memory, wall time).
Memory is bounded when the follower's RSS after the last row is about its RSS once
started (at row WARM_UP_ROWS: until then torch is still loading).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LSTMAE = Path(sys.executable).parent / "lstmae"
# Rows written while lstmae starts (imports torch, loads the model) wait in the pipe:
# latency is measured from this row on.
WARM_UP_ROWS = 2000


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rows_text(n: int) -> tuple[str, list[str]]:
    frame = pd.read_csv(REPO / "sample_data" / "server_test.csv")
    reps = -(-n // len(frame))
    frame = pd.concat([frame] * reps, ignore_index=True).iloc[:n]
    frame["timestamp"] = pd.date_range("2026-01-01", periods=n, freq="5min")
    lines = frame.to_csv(index=False).splitlines(keepends=True)
    return lines[0], lines[1:]


def follow(model: Path, header: str, rows: list[str], rate: float, window: int) -> dict:
    proc = subprocess.Popen([str(LSTMAE), "score", "-", "-m", str(model), "--follow", "-q",
                             "--threads", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    sent_at = [math.inf] * len(rows)
    rss: list[tuple[int, float]] = []

    def write() -> None:  # a thread: a writer blocked on a full pipe must not stop reading
        assert proc.stdin is not None
        proc.stdin.write(header.encode())
        proc.stdin.flush()
        started = time.perf_counter()
        for i, row in enumerate(rows):
            time.sleep(max(0.0, started + i / rate - time.perf_counter()))
            sent_at[i] = time.perf_counter()
            proc.stdin.write(row.encode())
            proc.stdin.flush()
            if i % 500 == 0:
                rss.append((i, rss_mib(proc.pid)))
        rss.append((len(rows), rss_mib(proc.pid)))
        proc.stdin.close()

    writer = threading.Thread(target=write)
    writer.start()
    latencies, lines_read = [], 0
    for _ in proc.stdout:
        now = time.perf_counter()
        lines_read += 1
        row_index = lines_read - 2 + window - 1  # the header first; window k ends at row k+T-1
        if WARM_UP_ROWS <= row_index < len(rows):
            latencies.append(now - sent_at[row_index])
    writer.join()
    proc.wait()
    lat = np.array(latencies) * 1000
    return {"rows": len(rows), "rate": rate, "windows_read": lines_read - 1,
            "latency_ms_p50": float(np.median(lat)),
            "latency_ms_p95": float(np.quantile(lat, 0.95)),
            "latency_ms_max": float(lat.max()),
            "rss_mib_warm": dict(rss).get(WARM_UP_ROWS, math.nan),
            "rss_mib_last": rss[-1][1], "rss_samples": rss, "exit": proc.returncode}


def whole(model: Path, header: str, rows: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.csv"
        data.write_text(header + "".join(rows))
        started = time.perf_counter()
        proc = subprocess.Popen([str(LSTMAE), "score", str(data), "-m", str(model), "-q",
                                 "--threads", "1", "-o", str(Path(tmp) / "out.csv")])
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.05)
        return {"seconds": time.perf_counter() - started, "rss_mib_peak": peak,
                "exit": proc.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    header, rows = rows_text(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "server.lstmae"
            subprocess.run([str(LSTMAE), "fit", str(REPO / "sample_data" / "server_train.csv"),
                            "-m", str(model), "-q", "--epochs", "5", "--threads", "1"],
                           check=True)
        from lstmae import Detector

        window = Detector.load(model).window_
        followed = follow(model, header, rows, args.rate, window)
        at_once = whole(model, header, rows)
    print(f"{'':34} {'follow':>10} {'score FILE':>11}")
    print(f"{'rows':34} {followed['rows']:>10} {len(rows):>11}")
    print(f"{'latency, row -> its window (ms)':34} "
          f"{followed['latency_ms_p50']:>5.1f} p50  {followed['latency_ms_p95']:.1f} p95  "
          f"{followed['latency_ms_max']:.1f} max")
    print(f"{'resident memory (MiB)':34} {followed['rss_mib_warm']:>5.0f} at row "
          f"{WARM_UP_ROWS}, {followed['rss_mib_last']:.0f} at {len(rows)}; score FILE peak "
          f"{at_once['rss_mib_peak']:.0f}")
    print(f"{'memory growth, last / warm':34} "
          f"{followed['rss_mib_last'] / followed['rss_mib_warm']:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps({"follow": followed, "whole": at_once}, indent=1))
    return 0 if followed["exit"] == 0 and at_once["exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
