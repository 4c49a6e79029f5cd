"""Killed and interrupted jobs lose nothing; the same input gives the same answer."""

import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from lstmae import Detector
from lstmae.artifact import load_model_file

from .conftest import LSTMAE, run_lstmae

FIT = ["--window", "8", "--hidden", "8", "--latent", "2", "--epochs", "100000",
       "--val-fraction", "0"]


@pytest.fixture
def workdir(tmp_path, small_frame):
    small_frame.to_csv(tmp_path / "data.csv", index=False)
    run_lstmae("fit", "data.csv", "-m", "model.lstmae", "--window", "8", "--hidden", "8",
               "--latent", "2", "--epochs", "2", "-q", cwd=tmp_path, check=True)
    return tmp_path


def _start_fit(folder, *extra):
    # A suite started in the background inherits SIGINT ignored, and so would the
    # fit; give it the default disposition, as a fit started from a terminal has.
    return subprocess.Popen([str(LSTMAE), "fit", "data.csv", "-m", "model.lstmae", *FIT, *extra],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_until_training(folder, proc, seconds=60.0, cpu_seconds=3.0):
    """Wait until the fit is past start-up (torch imported, data read, training): start-up
    takes about 3.3 CPU seconds here, an epoch of FIT's tiny model 0.02."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            cpu = float(open(f"/proc/{proc.pid}/stat").read().split()[13]) / 100
        except OSError:
            break
        if cpu > cpu_seconds:  # a few CPU seconds: imports done, epochs running
            return
    assert proc.poll() is None, "fit ended before it could be interrupted"


@pytest.mark.parametrize("delay", [0.0, 0.3, "training"])
def test_sigkill_during_fit_leaves_the_old_model_intact(workdir, delay):
    before = (workdir / "model.lstmae").read_bytes()
    proc = _start_fit(workdir)
    if delay == "training":
        _wait_until_training(workdir, proc)
    else:
        time.sleep(delay)
    proc.kill()
    proc.wait()
    assert (workdir / "model.lstmae").read_bytes() == before
    # a stray temp file may remain, but it neither blocks nor confuses the next run
    run_lstmae("fit", "data.csv", "-m", "model.lstmae", "--window", "8", "--epochs", "1", "-q",
               cwd=workdir, check=True)
    Detector.load(workdir / "model.lstmae")


def test_sigkill_while_writing_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old contents")
    code = (
        "import sys, time\n"
        "from lstmae.output import atomic_output\n"
        f"with atomic_output({str(target)!r}) as tmp:\n"
        "    open(tmp, 'wb').write(b'half of the new')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"writing\n"
    proc.kill()
    proc.wait()
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir() if p.name != "out.parquet"][0].endswith(".tmp")


def test_sigint_stops_cleanly_and_writes_nothing(workdir):
    before = (workdir / "model.lstmae").read_bytes()
    proc = _start_fit(workdir)
    _wait_until_training(workdir, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.decode().strip() == "interrupted: nothing was written"
    assert (workdir / "model.lstmae").read_bytes() == before


def test_sigint_with_save_on_interrupt_keeps_the_best_model(workdir):
    before = (workdir / "model.lstmae").read_bytes()
    proc = _start_fit(workdir, "--save-on-interrupt")
    _wait_until_training(workdir, proc, cpu_seconds=5.0)  # an epoch must have ended
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.decode().startswith("interrupted: wrote model.lstmae with the best epoch")
    after = (workdir / "model.lstmae").read_bytes()
    assert after != before
    assert Detector.load(workdir / "model.lstmae").training_["interrupted"] is True


def test_same_seed_same_model_and_scores(tmp_path, small_frame):
    # With a fixed thread count: under --threads auto the count follows the load, and one
    # and two threads train to models that differ in the last digits (README, Speed).
    small_frame.to_csv(tmp_path / "data.csv", index=False)
    for name in ("a", "b"):
        run_lstmae("fit", "data.csv", "-m", f"{name}.lstmae", "--window", "8", "--hidden", "8",
                   "--epochs", "3", "--seed", "7", "--threads", "1", "-q", cwd=tmp_path,
                   check=True)
    (ta, ma), (tb, mb) = (load_model_file(tmp_path / f"{n}.lstmae") for n in ("a", "b"))
    assert ta.keys() == tb.keys()
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key])
    for meta in (ma, mb):  # only the wall-clock facts may differ
        meta.pop("created")
        meta["training"].pop("seconds")
        meta["training"]["threads"].pop("cpu_share")
    assert ma == mb
    scores = [run_lstmae("score", "data.csv", "-m", f"{n}.lstmae", cwd=tmp_path, check=True)
              for n in ("a", "b")]
    assert scores[0].stdout == scores[1].stdout


def test_stdin_and_file_give_identical_output(tmp_path, small_frame, small_detector):
    small_frame.to_csv(tmp_path / "data.csv", index=False)
    small_detector.save(tmp_path / "m.lstmae")
    for level in ("window", "point"):
        from_file = run_lstmae("score", "data.csv", "-m", "m.lstmae", "--level", level,
                               "--batch-rows", "50", cwd=tmp_path, check=True)
        from_stdin = run_lstmae("score", "-", "-m", "m.lstmae", "--level", level,
                                "--batch-rows", "50", cwd=tmp_path, check=True,
                                input=(tmp_path / "data.csv").read_bytes())
        assert from_file.stdout == from_stdin.stdout
        assert len(pd.read_csv(tmp_path / "data.csv")) == len(small_frame)
