"""Shared fixtures: paths, a runner for the installed `lstmae` command, trained models."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data"
SHARED_DATA = REPO.parent / "shared" / "data"
LSTMAE = Path(sys.executable).parent / "lstmae"  # the installed entry point


# For the commands a test starts and waits on: one that hangs prints where it is stuck
# (faulthandler, on the SIGABRT that `communicate` sends it) instead of only timing out.
TRACEABLE = {**os.environ, "PYTHONFAULTHANDLER": "1"}


def communicate(proc: subprocess.Popen, timeout: float, input: bytes | None = None
                ) -> tuple[bytes, bytes]:
    """proc.communicate; a process still running after `timeout` fails the test with the
    Python stack of each of its threads (started with env=TRACEABLE)."""
    try:
        return proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGABRT)
    _, err = proc.communicate(timeout=30)
    pytest.fail(f"{proc.args[:2]} still ran {timeout} s later; its stderr and stack:\n"
                + err.decode("utf-8", "replace")[-8000:])


def run_lstmae(*args: str, cwd: Path | None = None, input: bytes | None = None,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run the installed `lstmae` command; stdout/stderr captured as text."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [str(LSTMAE), *args], cwd=cwd, input=input, capture_output=True, env=env, timeout=600
    )
    proc.stdout_text = proc.stdout.decode("utf-8", "replace")
    proc.stderr_text = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"lstmae {' '.join(args)} failed: {proc.stderr_text}")
    return proc


def readme_block(marker: str) -> list[str]:
    """The command lines of the README's fenced block that follows `<!-- marker -->`."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"README.md has no block marked <!-- {marker} -->"
    return [line for line in match.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> dict:
    """Run the README's quick-start commands, as written, in a fresh folder.

    The model it leaves (`model.lstmae`, trained on the server sample with the
    default options) is reused by the detection and CLI tests.
    """
    folder = tmp_path_factory.mktemp("quickstart")
    shutil.copytree(SAMPLES, folder / "sample_data")
    results = []
    for line in readme_block("quickstart"):
        env = {**os.environ, "PATH": f"{LSTMAE.parent}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(line, shell=True, cwd=folder, capture_output=True, text=True,
                              env=env, timeout=900)
        results.append(proc)
    return {"folder": folder, "model": folder / "model.lstmae", "runs": results}


def window_labels(scores: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """True for windows that overlap a labelled anomalous stretch."""
    start = pd.to_datetime(scores["start"]).to_numpy()
    end = pd.to_datetime(scores["end"]).to_numpy()
    hit = np.zeros(len(scores), dtype=bool)
    for row in labels.itertuples():
        hit |= (start <= np.datetime64(pd.Timestamp(row.end))) & (
            end >= np.datetime64(pd.Timestamp(row.start))
        )
    return hit


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    """A short 3-channel series (sine, cosine, their sum) for fast in-process tests."""
    rng = np.random.default_rng(0)
    t = np.arange(400)
    a = np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(len(t))
    b = np.cos(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(len(t))
    return pd.DataFrame({
        "timestamp": pd.date_range("2026-01-01", periods=len(t), freq="min"),
        "a": a, "b": b, "c": a + b,
    })


@pytest.fixture(scope="session")
def small_detector(small_frame):
    from lstmae import Detector

    return Detector(window=16, hidden=16, latent=4, epochs=3, device="cpu").fit(small_frame)
