"""fit's progress line on a real terminal (a pseudo-terminal), as people see it."""

import os
import pty
import select
import subprocess
import time

from .conftest import LSTMAE, SAMPLES


def run_on_terminal(args, cwd, timeout=300):
    """Run the installed lstmae with stderr and stdout on a pseudo-terminal; return what
    the terminal received (escape codes included) and the exit status."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([str(LSTMAE), *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    received, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
        raise AssertionError(f"lstmae {' '.join(args)} still running after {timeout} s on "
                             f"a terminal; it printed: {received[-2000:]!r}")
    os.close(leader)
    return received.decode("utf-8", "replace"), proc.wait(timeout=10)


def test_fit_on_a_terminal_shows_each_stage_and_finishes(tmp_path):
    # A progress display that wrote through a proxy of sys.stderr into itself once
    # spun for ever on a terminal (and only there).
    text, status = run_on_terminal(
        ["fit", str(SAMPLES / "univariate_train.csv"), "-m", "m.lstmae", "--window", "16",
         "--epochs", "3", "--patience", "2"], cwd=tmp_path)
    assert status == 0, text[-2000:]
    assert "reading " in text and "univariate_train.csv" in text
    assert "epoch 1 of at most 3" in text
    assert "windows/s" in text and "thread" in text
    assert "fitted m.lstmae" in text
    assert (tmp_path / "m.lstmae").exists()
