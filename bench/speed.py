#!/usr/bin/env python
"""Speed benchmark: lstmae against bare PyTorch references, measured in the same run.

    python bench/speed.py [--threads N] [--rounds N] [--json out.json]
        [--skip fit,score,busy,e2e,startup,ramp] [--rows 1000000,5000000]
        [--workdir /tmp/lstmae-speed] [--quick]

Parts (see bench/README.md, "Speed"):

1. fit:     windows/s of lstmae.train.train() against a bare PyTorch loop over
            pre-materialised windows, and a naive per-window nn.LSTMCell loop.
2. score:   windows/s and rows/s of Detector.iter_score() on one frame (window
            and event levels, as `lstmae score` builds them) against a bare
            batched forward pass (eval, inference_mode, batch 256).
3. e2e:     `lstmae score FILE -m MODEL -o out.csv -q` on generated CSV and
            Parquet files of 1M and 5M rows: wall time, rows/s and peak RSS.
4. startup: `lstmae --help`, and `lstmae score` on a 100-row file.
5. busy:    fit and score throughput on the quick-start sample, each in a fresh
            process, with `--threads auto` (the default) and `--threads 1`, on a quiet
            machine and with a competing CPU-bound process pinned to one core
            (started and stopped by the bench); and the wall time of the README's
            quick-start `lstmae fit`, quiet and busy.
6. ramp:    `lstmae fit` on the 5-row ramp 0.0..0.4 (window 5, 500 epochs),
            and whether `lstmae reconstruct` gets every value within 0.01.

Every ratio is taken within one round (ours and the reference run back to
back, their order alternating between rounds); the table shows the median over
rounds and the min-max range. --quick is for smoke-testing the script only: its
sizes are far too small for the targets to mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lstmae

# isort: split
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lstmae import threads
from lstmae.detector import Detector
from lstmae.inference import forward
from lstmae.model import LSTMAutoencoder, ModelConfig
from lstmae.series import to_series
from lstmae.train import WindowSet, train, training_precision
from lstmae.windows import window_starts, window_view

PARTS = ("fit", "score", "busy", "e2e", "startup", "ramp")
FIT_SHAPES = ((64, 64, 1), (64, 64, 25), (100, 128, 38))  # (T, H, D)
LATENT = 16
BATCH = 128
DEFAULT_BATCH = 64  # Detector's and `lstmae fit`'s default batch size
LR = 3e-3
CLI_LEVELS = ("window", "event")  # what `lstmae score` builds at its default --level window
SCORE_BATCH = 256  # lstmae's own; 128-256 was the bare forward's fastest batch here
E2E_COLUMNS = 8
E2E_WINDOW = 64
E2E_EPOCHS = 2
CHUNK_ROWS = 250_000  # rows generated and written at a time
DATA_VERSION = 1  # bump when the generated data changes: cached files are named by it

# Targets
FIT_VS_BARE, FIT_VS_NAIVE, SCORE_VS_BARE = 0.9, 50.0, 0.9
BUSY_VS_ONE, BUSY_VS_QUIET, QUICKSTART_BUSY = 0.9, 0.4, 2.0
RSS_LIMIT_MIB, RSS_GROWTH = 1024.0, 0.25
HELP_LIMIT_S, RAMP_LIMIT_S, RAMP_TOLERANCE = 0.3, 3.0, 0.01


def log(message: str) -> None:
    print(f"[speed] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ results
class Results:
    """Rows of the table (and of the JSON), plus the raw samples behind them."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, part: str, name: str, samples, unit: str = "", target: str = "",
            ok: bool | None = None, note: str = "", fmt: str = "{:,.0f}") -> dict:
        samples = [float(s) for s in (samples if isinstance(samples, (list, tuple)) else [samples])]
        row = {
            "part": part, "measure": name, "unit": unit,
            "median": statistics.median(samples) if samples else None,
            "min": min(samples) if samples else None,
            "max": max(samples) if samples else None,
            "samples": samples, "target": target,
            "status": "" if ok is None else ("PASS" if ok else "FAIL"),
            "note": note, "fmt": fmt,
        }
        self.rows.append(row)
        return row

    def fail(self, part: str, name: str, error: str) -> None:
        self.rows.append({"part": part, "measure": name, "unit": "", "median": None,
                          "min": None, "max": None, "samples": [], "target": "",
                          "status": "ERROR", "note": error, "fmt": "{}"})


def _fmt(row: dict, value) -> str:
    if value is None:
        return "-"
    return row["fmt"].format(value)


def _cells(row: dict) -> list[str]:
    value = _fmt(row, row["median"])
    if row["unit"]:
        value += f" {row['unit']}"
    spread = ""
    if len(row["samples"]) > 1:
        spread = f"{_fmt(row, row['min'])} – {_fmt(row, row['max'])}"
    return [row["part"], row["measure"], value, spread, row["target"], row["status"], row["note"]]


HEADERS = ["part", "measure", "median", "range (min – max)", "target", "result", "note"]


def print_table(results: Results, title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        rows = [HEADERS] + [_cells(r) for r in results.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
        print(title)
        for i, r in enumerate(rows):
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in widths))
        return
    table = Table(title=title, title_justify="left")
    for name in HEADERS:
        justify = "right" if name in ("median", "range (min – max)") else "left"
        table.add_column(name, justify=justify, overflow="fold")
    styles = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold red"}
    for row in results.rows:
        cells = _cells(row)
        if row["status"] in styles:
            cells[5] = f"[{styles[row['status']]}]{cells[5]}[/]"
        table.add_row(*cells)
    Console(width=max(shutil.get_terminal_size((160, 24)).columns, 140)).print(table)


# --------------------------------------------------------------- machinery
def interleaved(variants: dict[str, Callable[[], float]], rounds: int, label: str):
    """Run every variant once per round, alternating the order; samples per variant."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(variants[name]())
        log(f"{label}: round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {samples[n][-1]:,.0f}" for n in names))
    return samples


def ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def sine_mix(first_row: int, n_rows: int, n_cols: int, seed: int = 0) -> np.ndarray:
    """A few sines per column plus noise; row r is the same whatever the chunking."""
    params = np.random.default_rng([seed, n_cols])
    periods = params.uniform(16, 400, size=(3, n_cols))
    phases = params.uniform(0, 2 * np.pi, size=(3, n_cols))
    amps = params.uniform(0.2, 1.0, size=(3, n_cols))
    t = np.arange(first_row, first_row + n_rows, dtype=np.float64)[:, None]
    x = sum(amps[k] * np.sin(2 * np.pi * t / periods[k] + phases[k]) for k in range(3))
    chunks = []  # noise drawn per fixed block of rows, so a prefix never changes
    block = 65_536
    for b in range(first_row // block, (first_row + n_rows - 1) // block + 1):
        noise = np.random.default_rng([seed, n_cols, b]).standard_normal((block, n_cols))
        lo = max(first_row, b * block) - b * block
        hi = min(first_row + n_rows, (b + 1) * block) - b * block
        chunks.append(noise[lo:hi])
    return x + 0.1 * np.concatenate(chunks)


def standardised(n_rows: int, n_cols: int) -> torch.Tensor:
    x = sine_mix(0, n_rows, n_cols)
    return torch.from_numpy(((x - x.mean(0)) / x.std(0)).astype(np.float32))


def default_precision() -> str:
    """What `--precision auto` trains in on this machine's CPU."""
    return training_precision("auto", torch.device("cpu"))


# ---------------------------------------------------------------- 1. fit
class NaiveAE(nn.Module):
    """The per-window reference: LSTMCells stepped in Python, batch 1."""

    def __init__(self, n_features: int, hidden: int, latent: int):
        super().__init__()
        self.hidden = hidden
        self.encoder = nn.LSTMCell(n_features, hidden)
        self.to_latent = nn.Linear(hidden, latent)
        self.decoder = nn.LSTMCell(latent, hidden)
        self.head = nn.Linear(hidden, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, D] -> [T, D]
        h = c = torch.zeros(1, self.hidden)
        for t in range(x.shape[0]):
            h, c = self.encoder(x[t : t + 1], (h, c))
        z = self.to_latent(h)
        h = c = torch.zeros(1, self.hidden)
        out = []
        for _ in range(x.shape[0]):
            h, c = self.decoder(z, (h, c))
            out.append(self.head(h))
        return torch.cat(out)


def bench_fit(results: Results, args) -> None:
    for T, H, D in FIT_SHAPES:
        _fit_shape(results, args, T, H, D)


def _fit_shape(results: Results, args, T: int, H: int, D: int) -> None:
    shape = f"T={T},H={H},D={D}"
    log(f"fit {shape}: {args.windows} windows, {args.fit_epochs} epoch(s) per measurement")
    values = standardised(args.windows + T - 1, D)
    starts = torch.from_numpy(window_starts(len(values), T, 1))
    windows = WindowSet(values, starts, T)  # what Detector.fit builds
    materialised = window_view(values, T)[starts].contiguous()  # [N, T, D], bare only
    config = ModelConfig(D, H, LATENT, 1)
    n_naive = min(args.naive_windows, len(starts))
    naive_sample = materialised[torch.randperm(len(starts),
                                               generator=torch.Generator().manual_seed(1))
                                [:n_naive]]

    def ours(batch_size, subset=None, precision="auto"):
        ws = windows if subset is None else WindowSet(values, starts[:subset], T)
        torch.manual_seed(0)
        model = LSTMAutoencoder(config)
        began = time.perf_counter()
        with threads.using(threads.AUTO):  # the default policy, as `lstmae fit` runs it
            train(model, ws, None, epochs=args.fit_epochs, batch_size=batch_size, lr=LR,
                  loss="mse", patience=10**9, seed=0, precision=precision)
        return args.fit_epochs * len(ws) / (time.perf_counter() - began)

    def bare(batch_size=BATCH, subset=None):
        x = materialised if subset is None else materialised[:subset]
        torch.manual_seed(0)
        model = LSTMAutoencoder(config)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        generator = torch.Generator().manual_seed(0)
        began = time.perf_counter()
        for _ in range(args.fit_epochs):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), batch_size):
                batch = x[order[i : i + batch_size]]
                optimizer.zero_grad(set_to_none=True)
                loss = F.mse_loss(model(batch), batch)
                loss.backward()
                optimizer.step()
        return args.fit_epochs * len(x) / (time.perf_counter() - began)

    def naive(subset=None):
        sample = naive_sample if subset is None else naive_sample[:subset]
        torch.manual_seed(0)
        model = NaiveAE(D, H, LATENT)
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        began = time.perf_counter()
        for window in sample:
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(model(window), window)
            loss.backward()
            optimizer.step()
        return len(sample) / (time.perf_counter() - began)

    default = default_precision()
    # Warm-up: oneDNN builds its LSTM primitives on first use of a shape.
    ours(BATCH, 2 * BATCH), ours(DEFAULT_BATCH, 2 * BATCH), bare(BATCH, 2 * BATCH)
    ours(BATCH, 2 * BATCH, "fp32")
    naive(2)
    s = interleaved({
        "ours": lambda: ours(BATCH),
        "bare": bare,
        "naive": naive,
        "ours_b64": lambda: ours(DEFAULT_BATCH),
        "ours_fp32": lambda: ours(BATCH, precision="fp32"),
    }, args.rounds, f"fit {shape}")
    results.add("fit", f"{shape} lstmae train, batch {BATCH} ({default}, the default here)",
                s["ours"], "win/s")
    results.add("fit", f"{shape} bare loop, batch {BATCH} (fp32)", s["bare"], "win/s")
    results.add("fit", f"{shape} naive LSTMCell, batch 1 ({n_naive} win, fp32)", s["naive"],
                "win/s")
    r = ratios(s["ours"], s["bare"])
    results.add("fit", f"{shape} ours / bare", r, "×", f"≥ {FIT_VS_BARE}",
                statistics.median(r) >= FIT_VS_BARE, fmt="{:.2f}")
    r = ratios(s["ours"], s["naive"])
    results.add("fit", f"{shape} ours / naive", r, "×", f"≥ {FIT_VS_NAIVE:.0f}",
                statistics.median(r) >= FIT_VS_NAIVE, fmt="{:.1f}")
    results.add("fit", f"{shape} lstmae train, --precision fp32, batch {BATCH}",
                s["ours_fp32"], "win/s")
    r = ratios(s["ours_fp32"], s["bare"])
    results.add("fit", f"{shape} fp32 ours / bare", r, "×", f"≥ {FIT_VS_BARE}",
                statistics.median(r) >= FIT_VS_BARE, fmt="{:.2f}",
                note="the loop's own overhead, same arithmetic")
    results.add("fit", f"{shape} fp32 ours / naive", ratios(s["ours_fp32"], s["naive"]), "×",
                fmt="{:.1f}", note="info")
    results.add("fit", f"{shape} lstmae train, default batch {DEFAULT_BATCH}",
                s["ours_b64"], "win/s")
    results.add("fit", f"{shape} batch {DEFAULT_BATCH} / batch {BATCH} (ours)",
                ratios(s["ours_b64"], s["ours"]), "×", fmt="{:.2f}",
                note="info: what the default batch size costs")


# -------------------------------------------------------------- 2. score
def bench_score(results: Results, args) -> None:
    for T, H, D in FIT_SHAPES:
        _score_shape(results, args, T, H, D)


def _score_shape(results: Results, args, T: int, H: int, D: int) -> None:
    shape = f"T={T},H={H},D={D}"
    n_rows = args.windows + T - 1
    log(f"score {shape}: {args.windows} windows ({n_rows} rows)")
    columns = [f"c{i}" for i in range(D)]
    frame = pd.DataFrame(sine_mix(0, n_rows, D), columns=columns)
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=n_rows, freq="min"))
    det = Detector(window=T, hidden=H, latent=LATENT, epochs=1, batch_size=BATCH,
                   val_fraction=0.0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det.fit(frame.iloc[: T + 4 * BATCH])  # weights do not matter for speed
    model = det.model_.eval()
    scaled = torch.from_numpy(det.scaler_.transform(frame[columns].to_numpy()))
    starts = window_starts(n_rows, T, 1)
    materialised = window_view(scaled, T)[torch.from_numpy(starts)].contiguous()

    def ours():
        began = time.perf_counter()
        for _ in det.iter_score([frame], levels=CLI_LEVELS):
            pass
        return len(starts) / (time.perf_counter() - began)

    def ours_run():  # the model part of scoring alone: lstmae's forward pass and window error
        began = time.perf_counter()
        series = to_series(frame, det.columns_, "timestamp", sort=False)
        values = torch.from_numpy(det.scaler_.transform(series.values))
        with torch.inference_mode():
            for batch in forward(det.model_, window_view(values, T), torch.from_numpy(starts)):
                det.error_.columns(batch.reconstruction, batch.inputs)
        return len(starts) / (time.perf_counter() - began)

    scale = det.error_.peak_scale  # the default error: mae+peak

    def bare():
        began = time.perf_counter()
        with torch.inference_mode():
            # lstmae's window error: per column, the larger of the mean absolute
            # error and the scaled largest one; the worst column
            errors = []
            for b in materialised.split(SCORE_BATCH):
                size = (model(b) - b).abs()
                errors.append(torch.maximum(size.mean(dim=1), scale * size.amax(dim=1))
                              .amax(dim=1))
            torch.cat(errors)
        return len(materialised) / (time.perf_counter() - began)

    variants = {"ours": ours, "bare": bare, "run": ours_run}
    try:
        ours_run()
    except Exception as exc:  # lstmae's internals moved: skip the diagnostic
        log(f"score {shape}: forward-pass diagnostic skipped ({exc!r})")
        del variants["run"]
    ours(), bare()  # warm-up
    s = interleaved(variants, args.rounds, f"score {shape}")
    results.add("score", f"{shape} Detector.iter_score", s["ours"], "win/s")
    results.add("score", f"{shape} Detector.iter_score, rows",
                [w * n_rows / len(starts) for w in s["ours"]], "rows/s")
    results.add("score", f"{shape} bare forward, batch {SCORE_BATCH}", s["bare"], "win/s")
    r = ratios(s["ours"], s["bare"])
    results.add("score", f"{shape} ours / bare", r, "×", f"≥ {SCORE_VS_BARE}",
                statistics.median(r) >= SCORE_VS_BARE, fmt="{:.2f}")
    if "run" in s:
        results.add("score", f"{shape} model part only (inference.forward) / bare",
                    ratios(s["run"], s["bare"]), "×", fmt="{:.2f}",
                    note="info: to_series + inference.forward + window error, no frames")



# ----------------------------------------------------------- 3. busy machine
BUSY_FIT_EPOCHS = 2
BUSY_SCORE_COPIES = 4  # the sample test file, end to end this many times: ~12,000 rows

# Run in a fresh process per measurement (`python bench/speed.py --worker ...`): torch's
# thread pool and lstmae's policy start from nothing, as in a user's run.
def worker(kind: str, setting: str, workdir: Path) -> None:
    """Print one JSON line: windows/s of fitting or scoring the quick-start sample."""
    sample = Path(lstmae.__file__).resolve().parents[1] / "sample_data"
    count: int | str = setting if setting == threads.AUTO else int(setting)
    with threads.using(count):
        if kind == "fit":
            frame = pd.read_csv(sample / "server_train.csv")
            epochs: list = []
            det = Detector(epochs=BUSY_FIT_EPOCHS, patience=10**6, seed=0)
            det.fit(frame, progress=epochs.append)
            rate = sum(e.windows for e in epochs) / sum(e.seconds for e in epochs)
            det.save(workdir / "busy.lstmae")
        else:
            det = Detector.load(workdir / "busy.lstmae")
            frame = pd.concat([pd.read_csv(sample / "server_test.csv")] * BUSY_SCORE_COPIES,
                              ignore_index=True)
            frame["time"] = pd.date_range("2026-01-01", periods=len(frame), freq="5min")
            began = time.perf_counter()
            scored = det.score(frame)
            rate = len(scored) / (time.perf_counter() - began)
    print(json.dumps({"rate": rate}))


class CompetingProcess:
    """A CPU-bound process pinned to one core, for the length of a with-block."""

    def __init__(self):
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
        self.core = cpus[-1]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> CompetingProcess:
        code = (f"import os\nif hasattr(os, 'sched_setaffinity'): "
                f"os.sched_setaffinity(0, {{{self.core}}})\nwhile True: pass\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.5)  # running before the measurement starts
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def run_worker(kind: str, setting: str, args, busy: bool) -> float:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", f"{kind}:{setting}",
           "--workdir", str(args.workdir)]
    with CompetingProcess() if busy else contextlib.nullcontext():
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind}:{setting} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["rate"]


def bench_busy(results: Results, args) -> None:
    log("busy: fit and score, quiet and with a CPU-bound process on one core")
    run_worker("fit", "1", args, busy=False)  # the model the score runs load
    for kind in ("fit", "score"):
        s = interleaved({
            f"quiet_{t}": functools.partial(run_worker, kind, t, args, False)
            for t in ("auto", "1")
        } | {f"busy_{t}": functools.partial(run_worker, kind, t, args, True)
             for t in ("auto", "1", "2")}, args.busy_rounds, f"busy {kind}")
        unit = "win/s"
        for name, label in (("quiet_auto", "quiet, --threads auto (default)"),
                            ("quiet_1", "quiet, --threads 1"),
                            ("busy_auto", "busy, --threads auto (default)"),
                            ("busy_1", "busy, --threads 1"),
                            ("busy_2", "busy, --threads 2")):
            results.add("busy", f"{kind} {label}", s[name], unit)
        r = ratios(s["busy_auto"], s["busy_1"])
        results.add("busy", f"{kind} busy: auto / --threads 1", r, "×", f"≥ {BUSY_VS_ONE}",
                    statistics.median(r) >= BUSY_VS_ONE, fmt="{:.2f}")
        r = ratios(s["busy_auto"], s["quiet_auto"])
        results.add("busy", f"{kind} auto: busy / quiet", r, "×", f"≥ {BUSY_VS_QUIET}",
                    statistics.median(r) >= BUSY_VS_QUIET, fmt="{:.2f}",
                    note="one of two cores taken: 0.5 is the fair share")
        results.add("busy", f"{kind} busy: --threads 2 / --threads 1",
                    ratios(s["busy_2"], s["busy_1"]), "×", fmt="{:.2f}",
                    note="info: what a fixed two threads cost under load")
    if args.quick:
        return
    sample = Path(lstmae.__file__).resolve().parents[1] / "sample_data" / "server_train.csv"
    cmd = [*lstmae_command(), "fit", str(sample), "-m", str(args.workdir / "qs.lstmae"), "-q"]
    walls: dict[str, list[float]] = {"quiet": [], "busy": []}
    for busy in (False, True):
        with CompetingProcess() if busy else contextlib.nullcontext():
            walls["busy" if busy else "quiet"].append(run_checked(cmd))
        log(f"busy: quick-start fit, {'busy' if busy else 'quiet'}: "
            f"{walls['busy' if busy else 'quiet'][-1]:.1f} s")
    results.add("busy", "quick-start `lstmae fit`, quiet", walls["quiet"], "s", fmt="{:.1f}")
    results.add("busy", "quick-start `lstmae fit`, busy", walls["busy"], "s", fmt="{:.1f}")
    r = ratios(walls["busy"], walls["quiet"])
    results.add("busy", "quick-start fit: busy / quiet wall time", r, "×",
                f"≤ {QUICKSTART_BUSY}", statistics.median(r) <= QUICKSTART_BUSY, fmt="{:.2f}")

# ----------------------------------------------------------------- CLI runs
def lstmae_command() -> list[str]:
    beside = Path(sys.executable).with_name("lstmae")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("lstmae")
    return [found] if found else [sys.executable, "-m", "lstmae"]


def threads_opt(args) -> list[str]:
    return ["--threads", str(args.threads)] if args.threads else []


_RUSAGE_CHILD = (
    "import json, resource, subprocess, sys, time\n"
    "began = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "wall = time.perf_counter() - began\n"
    "kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(json.dumps({'rc': p.returncode, 'kib': kib, 'wall': wall,"
    " 'stderr': p.stderr.decode(errors='replace')[-2000:]}))\n"
)


def run_measured(cmd: list[str], workdir: Path) -> dict:
    """Run a command; wall seconds, peak RSS (MiB) and exit status."""
    gnu_time = Path("/usr/bin/time")
    if gnu_time.exists():
        report = workdir / "time-v.txt"
        began = time.perf_counter()
        proc = subprocess.run([str(gnu_time), "-v", "-o", str(report), *cmd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - began
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        rss = int(match.group(1)) / 1024 if match else None
        return {"rc": proc.returncode, "wall": wall, "rss_mib": rss, "how": "/usr/bin/time -v",
                "stderr": proc.stderr.decode(errors="replace")[-2000:]}
    report = workdir / "rusage.json"  # a fresh child per measurement: its children's maxrss
    subprocess.run([sys.executable, "-c", _RUSAGE_CHILD, str(report), *cmd], check=True)
    got = json.loads(report.read_text())
    return {"rc": got["rc"], "wall": got["wall"], "rss_mib": got["kib"] / 1024,
            "how": "getrusage(RUSAGE_CHILDREN)", "stderr": got["stderr"]}


def run_checked(cmd: list[str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{' '.join(cmd[:2])} exited {proc.returncode}: {tail[0]}")
    return wall


# ---------------------------------------------------------------- data files
def data_file(workdir: Path, rows: int, fmt: str) -> Path:
    """The generated file of `rows` rows (timestamp + 8 columns), cached in workdir."""
    path = workdir / f"data-v{DATA_VERSION}-{rows}.{fmt}"
    if path.exists():
        return path
    log(f"generating {path} ({rows:,} rows)")
    tmp = path.with_name(f".{path.name}.tmp")
    columns = [f"x{i}" for i in range(E2E_COLUMNS)]
    start = np.datetime64("2024-01-01T00:00:00")
    writer = None
    try:
        with open(tmp, "wb") as handle:
            for first in range(0, rows, CHUNK_ROWS):
                n = min(CHUNK_ROWS, rows - first)
                chunk = pd.DataFrame(sine_mix(first, n, E2E_COLUMNS), columns=columns)
                chunk.insert(0, "timestamp",
                             start + np.arange(first, first + n).astype("timedelta64[m]"))
                if fmt == "csv":
                    handle.write(chunk.to_csv(index=False, header=first == 0,
                                              float_format="%.5f").encode())
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(handle, table.schema)
                    writer.write_table(table)
            if writer is not None:
                writer.close()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class Model:
    """The small model that e2e and startup score with: fitted once per run, via the CLI."""

    def __init__(self, args):
        self.args = args
        self.path: Path | None = None
        self.fit_s: float | None = None

    def get(self) -> Path:
        if self.path is None:
            args = self.args
            train_csv = data_file(args.workdir, args.fit_rows, "csv")
            path = args.workdir / "model.lstmae"
            log(f"fitting {path} on {args.fit_rows:,} rows (window {E2E_WINDOW}, "
                f"{E2E_EPOCHS} epochs) via the CLI")
            self.fit_s = run_checked([
                *lstmae_command(), "fit", str(train_csv), "--window", str(E2E_WINDOW),
                "--epochs", str(E2E_EPOCHS), "--stride", "1", "-m", str(path), "-q",
                *threads_opt(args),
            ])
            self.path = path
        return self.path


# ----------------------------------------------------------------- 3. e2e
def bench_e2e(results: Results, args, model: Model) -> None:
    sizes = sorted(args.rows)
    files = {(fmt, n): data_file(args.workdir, n, fmt) for fmt in ("csv", "parquet")
             for n in sizes}
    model_path = model.get()
    results.add("e2e", f"lstmae fit, {args.fit_rows:,} rows, window {E2E_WINDOW}, "
                f"{E2E_EPOCHS} epochs", model.fit_s, "s", fmt="{:.1f}",
                note="info: CLI wall time, start-up included")
    out = args.workdir / "out.csv"
    rss: dict[tuple[str, int], float] = {}
    for fmt in ("csv", "parquet"):
        for n in sizes:
            walls, peaks = [], []
            for r in range(args.e2e_rounds):
                got = run_measured([*lstmae_command(), "score", str(files[fmt, n]), "-m",
                                    str(model_path), "-o", str(out), "-q", *threads_opt(args)],
                                   args.workdir)
                out.unlink(missing_ok=True)
                if got["rc"] != 0:
                    tail = got["stderr"].strip().splitlines()[-1:] or ["?"]
                    raise RuntimeError(f"lstmae score {files[fmt, n].name} exited "
                                       f"{got['rc']}: {tail[0]}")
                walls.append(got["wall"])
                peaks.append(got["rss_mib"])
                log(f"e2e {fmt} {n:,} rows, run {r + 1}/{args.e2e_rounds}: "
                    f"{got['wall']:.1f} s, {got['rss_mib']:.0f} MiB ({got['how']})")
            label = f"score {fmt}, {n:,} rows"
            results.add("e2e", f"{label}: wall", walls, "s", fmt="{:.1f}")
            results.add("e2e", f"{label}: rows/s", [n / w for w in walls], "rows/s")
            big = n == sizes[-1] and len(sizes) > 1
            results.add("e2e", f"{label}: peak RSS", peaks, "MiB",
                        f"≤ {RSS_LIMIT_MIB:.0f}" if big else "",
                        statistics.median(peaks) <= RSS_LIMIT_MIB if big else None,
                        fmt="{:.0f}")
            rss[fmt, n] = statistics.median(peaks)
        if len(sizes) > 1:
            growth = rss[fmt, sizes[-1]] / rss[fmt, sizes[0]]
            results.add("e2e", f"score {fmt}: peak RSS {sizes[-1]:,} / {sizes[0]:,} rows", growth,
                        "×", f"within {RSS_GROWTH:.0%}", abs(growth - 1) <= RSS_GROWTH,
                        fmt="{:.2f}")


# ------------------------------------------------------------- 4. start-up
def bench_startup(results: Results, args, model: Model) -> None:
    help_runs = 3 if args.quick else 10
    score_runs = 2 if args.quick else 5
    log(f"startup: lstmae --help x{help_runs}")
    walls = [run_checked([*lstmae_command(), "--help"]) for _ in range(help_runs)]
    results.add("startup", f"lstmae --help (median of {help_runs})", walls, "s",
                f"≤ {HELP_LIMIT_S}", statistics.median(walls) <= HELP_LIMIT_S, fmt="{:.3f}")
    small = data_file(args.workdir, 100, "csv")
    model_path = model.get()
    out = args.workdir / "out-100.csv"
    log(f"startup: lstmae score on 100 rows x{score_runs}")
    walls = []
    for _ in range(score_runs):
        walls.append(run_checked([*lstmae_command(), "score", str(small), "-m", str(model_path),
                                  "-o", str(out), "-q", *threads_opt(args)]))
        out.unlink(missing_ok=True)
    results.add("startup", f"lstmae score, 100-row file (median of {score_runs})", walls, "s",
                fmt="{:.2f}", note="info")


# ----------------------------------------------------------------- 5. ramp
def bench_ramp(results: Results, args) -> None:
    ramp = args.workdir / "ramp.csv"
    ramp.write_text("value\n0.0\n0.1\n0.2\n0.3\n0.4\n")
    model_path = args.workdir / "ramp.lstmae"
    recon = args.workdir / "ramp-recon.csv"
    walls, worst = [], []
    for r in range(args.rounds):
        model_path.unlink(missing_ok=True)
        # Default epochs (100): they reach about 0.002 on every seed we tried.
        walls.append(run_checked([*lstmae_command(), "fit", str(ramp), "--window", "5",
                                  "-m", str(model_path),
                                  *threads_opt(args)]))
        run_checked([*lstmae_command(), "reconstruct", str(ramp), "-m", str(model_path),
                     "-o", str(recon), *threads_opt(args)])
        got = pd.read_csv(recon)
        worst.append(float((got["value"] - got["value_recon"]).abs().max()))
        log(f"ramp: round {r + 1}/{args.rounds}: fit {walls[-1]:.2f} s, "
            f"max |error| {worst[-1]:.4f}")
    results.add("ramp", "lstmae fit ramp.csv --window 5 (wall)", walls, "s",
                f"≤ {RAMP_LIMIT_S:.0f}", statistics.median(walls) <= RAMP_LIMIT_S, fmt="{:.2f}",
                note="start-up included")
    results.add("ramp", "max |value − reconstruction| (lstmae reconstruct)", worst, "",
                f"≤ {RAMP_TOLERANCE}", max(worst) <= RAMP_TOLERANCE, fmt="{:.4f}",
                note="every value within tolerance" if max(worst) <= RAMP_TOLERANCE else "")


# ------------------------------------------------------------------ main
def machine(args) -> dict:
    model_name = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": model_name,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threads_set_by": "--threads" if args.threads else "torch default",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "default_cpu_precision": default_precision(),
        "lstmae": lstmae.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads here and --threads for the CLI runs "
                   "(default: torch's default, printed)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per comparison (default 5; 1 with --quick)")
    p.add_argument("--e2e-rounds", type=int, default=1,
                   help="runs per file in the end-to-end part (default 1)")
    p.add_argument("--windows", type=int, default=None,
                   help="windows per fit/score measurement (default 8192; 2000 with --quick)")
    p.add_argument("--naive-windows", type=int, default=None,
                   help="windows of the naive per-window loop (default 200; 30 with --quick)")
    p.add_argument("--fit-epochs", type=int, default=None,
                   help="epochs per fit measurement (default 2; 1 with --quick)")
    p.add_argument("--rows", default=None,
                   help="end-to-end file sizes, comma-separated "
                   "(default 1000000,5000000; 20000,50000 with --quick)")
    p.add_argument("--fit-rows", type=int, default=None,
                   help="rows the end-to-end model is fitted on (default 20000; 2000 with --quick)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/lstmae-speed"),
                   help="where generated data, models and outputs go (data files are cached)")
    p.add_argument("--skip", default="", help=f"parts to skip, comma-separated: {','.join(PARTS)}")
    p.add_argument("--json", type=Path, default=None, help="write everything to this JSON file")
    p.add_argument("--busy-rounds", type=int, default=None,
                   help="rounds of the busy part (default 3; 1 with --quick)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # fit:auto, score:1 ...
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and 1 round: a smoke test of the script, not a measurement")
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (1 if q else 5)
    args.busy_rounds = args.busy_rounds or (1 if q else 3)
    args.windows = args.windows or (2000 if q else 8192)
    args.naive_windows = args.naive_windows or (30 if q else 200)
    args.fit_epochs = args.fit_epochs or (1 if q else 2)
    args.fit_rows = args.fit_rows or (2000 if q else 20000)
    args.rows = [int(x.replace("_", "")) for x in
                 (args.rows or ("20000,50000" if q else "1000000,5000000")).split(",") if x]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(PARTS)
    if unknown:
        p.error(f"--skip: unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}")
    if min(args.rows) < E2E_WINDOW or args.fit_rows < E2E_WINDOW * 2:
        p.error("--rows and --fit-rows must leave room for windows of 64 rows")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        kind, setting = args.worker.split(":")
        worker(kind, setting, args.workdir)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = machine(args)
    head = (f"lstmae speed: {info['cpu']}, {info['cpu_count']} CPUs ({info['cpus_usable']} "
            f"usable), torch {info['torch']}, {info['torch_threads']} thread(s) "
            f"({info['threads_set_by']}), OMP_WAIT_POLICY={info['OMP_WAIT_POLICY']}, "
            f"lstmae {info['lstmae']} (trains in {info['default_cpu_precision']} here by "
            f"default), load average {info['loadavg_start']}")
    print(head, flush=True)
    if args.quick:
        print("QUICK MODE: smoke test only, sizes far too small for the targets to mean "
              "anything", flush=True)
    results = Results()
    model = Model(args)
    began = time.perf_counter()
    steps = {
        "fit": lambda: bench_fit(results, args),
        "score": lambda: bench_score(results, args),
        "busy": lambda: bench_busy(results, args),
        "e2e": lambda: bench_e2e(results, args, model),
        "startup": lambda: bench_startup(results, args, model),
        "ramp": lambda: bench_ramp(results, args),
    }
    for part in PARTS:
        if part in args.skip:
            continue
        try:
            steps[part]()
        except Exception as exc:  # report and carry on with the next part
            log(f"{part} failed: {exc!r}")
            results.fail(part, "(part failed)", f"{type(exc).__name__}: {exc}"[:300])
    total = time.perf_counter() - began
    info["loadavg_end"] = _loadavg()
    info["seconds"] = round(total, 1)
    title = (f"{args.rounds} round(s), {args.windows} windows, threads "
             f"{torch.get_num_threads()}, {total:.0f} s, load average "
             f"{info['loadavg_start']} → {info['loadavg_end']}")
    print_table(results, title)
    failed = [r for r in results.rows if r["status"] in ("FAIL", "ERROR")]
    print(f"{sum(r['status'] == 'PASS' for r in results.rows)} target(s) met, {len(failed)} "
          f"missed or failed" + (" (quick mode: not a measurement)" if args.quick else ""))
    if args.json:
        settings = {k: (str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, set)
                        else v) for k, v in vars(args).items()}
        document = {"machine": info, "settings": settings,
                    "results": [{k: v for k, v in r.items() if k != "fmt"}
                                for r in results.rows]}
        args.json.write_text(json.dumps(document, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
