"""score --follow: rows written as each window completes, from a pipe or a growing file."""

import os
import select
import signal
import subprocess
import time

import pytest

from lstmae.cli import run

from .conftest import LSTMAE, TRACEABLE, communicate


@pytest.fixture(scope="module")
def model(tmp_path_factory, small_detector):
    path = tmp_path_factory.mktemp("follow") / "m.lstmae"
    small_detector.save(path)
    return path


def _read_lines(fd: int, buffer: bytearray, want: int, timeout: float) -> int:
    """Read from fd until `want` lines are there or `timeout` passes; the lines seen."""
    deadline = time.monotonic() + timeout
    while buffer.count(b"\n") < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            buffer += data
    return buffer.count(b"\n")


def _whole(tmp_path, model, frame, *args) -> bytes:
    data, out = tmp_path / "whole.csv", tmp_path / "whole.out.csv"
    frame.to_csv(data, index=False)
    assert run(["score", str(data), "-m", str(model), "-q", "-o", str(out), *args]) == 0
    return out.read_bytes()


def test_rows_appear_before_the_writer_closes_the_pipe(tmp_path, model, small_frame):
    lines = small_frame.to_csv(index=False).splitlines(keepends=True)
    proc = subprocess.Popen([str(LSTMAE), "score", "-", "-m", str(model), "--follow", "-q"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=TRACEABLE)
    out = bytearray()
    try:
        proc.stdin.write("".join(lines[:21]).encode())  # header + 20 rows: 5 windows of 16
        proc.stdin.flush()
        assert _read_lines(proc.stdout.fileno(), out, 6, timeout=120) == 6  # header + 5
        for line in lines[21:31]:  # one row at a time: one window each, at once
            proc.stdin.write(line.encode())
            proc.stdin.flush()
        assert _read_lines(proc.stdout.fileno(), out, 16, timeout=60) == 16
        assert proc.poll() is None  # still running, still reading
        rest, err = communicate(proc, 120, "".join(lines[31:]).encode())
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert bytes(out) + rest == _whole(tmp_path, model, small_frame)


def test_follow_with_a_state_resumes_where_it_stopped(tmp_path, model, small_frame):
    state = tmp_path / "s.json"
    text = small_frame.to_csv(index=False).splitlines(keepends=True)
    header, rows = text[0], text[1:]
    outputs = b""
    for i, part in enumerate([rows[:200], rows[150:]]):  # the second overlaps the first
        proc = subprocess.run([str(LSTMAE), "score", "-", "-m", str(model), "--follow", "-q",
                               "--state", str(state), "--level", "point"],
                              input=(header + "".join(part)).encode(), capture_output=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        outputs += proc.stdout if i == 0 else proc.stdout.split(b"\n", 1)[1]
    assert outputs == _whole(tmp_path, model, small_frame, "--level", "point")


def test_follow_a_growing_file_until_ctrl_c(tmp_path, model, small_frame):
    data = tmp_path / "growing.csv"
    frame = small_frame.copy()
    frame.loc[150:160, "b"] += 3.0  # an incident
    text = frame.to_csv(index=False).splitlines(keepends=True)
    data.write_text("".join(text[:101]))
    proc = subprocess.Popen([str(LSTMAE), "score", str(data), "-m", str(model), "--follow",
                             "--level", "event", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=TRACEABLE)
    out = bytearray()
    try:
        assert _read_lines(proc.stdout.fileno(), out, 1, timeout=120) >= 1  # the header
        with open(data, "a") as handle:  # the file grows, a row at a time
            for line in text[101:]:
                handle.write(line)
                handle.flush()
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        rest, err = communicate(proc, 60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err  # Ctrl-C while waiting for rows ends it cleanly
    log = (bytes(out) + rest).decode().splitlines()
    assert log[0] == "event,onset,start,end,windows,peak_error,top_column,status"
    # As a log: each event as it opens, and again when it closes.
    opened = [row for row in log[1:] if row.endswith(",open")]
    closed = [row for row in log[1:] if row.endswith(",closed")]
    assert len(opened) >= 1 and len(opened) >= len(closed) >= len(opened) - 1
    assert [row.split(",")[0] for row in opened] == [str(i) for i in range(len(opened))]


def test_follow_refuses_what_cannot_grow(tmp_path, model, small_frame):
    data = tmp_path / "d.parquet"
    small_frame.to_parquet(data)
    proc = subprocess.run([str(LSTMAE), "score", str(data), "-m", str(model), "--follow"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 2 and b"--follow reads CSV text" in proc.stderr
    proc = subprocess.run([str(LSTMAE), "score", "-", "-m", str(model), "--follow", "-o",
                           str(tmp_path / "o.parquet")], input=b"", capture_output=True,
                          timeout=120)
    assert proc.returncode == 2 and b"--follow writes rows as they come" in proc.stderr


def test_sigterm_ends_a_followed_stream_cleanly_and_it_resumes(tmp_path, model, small_frame):
    state = tmp_path / "s.json"
    text = small_frame.to_csv(index=False).splitlines(keepends=True)
    header, rows = text[0], text[1:]
    proc = subprocess.Popen([str(LSTMAE), "score", "-", "-m", str(model), "--follow", "-q",
                             "--state", str(state)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=TRACEABLE)
    out = bytearray()
    try:
        proc.stdin.write((header + "".join(rows[:250])).encode())  # the pipe stays open
        proc.stdin.flush()
        assert _read_lines(proc.stdout.fileno(), out, 1 + 250 - 15, timeout=120) == 236
        proc.send_signal(signal.SIGTERM)
        rest, err = communicate(proc, 60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err  # ended as the end of stdin would end it
    first = bytes(out) + rest
    again = subprocess.run([str(LSTMAE), "score", "-", "-m", str(model), "--follow", "-q",
                            "--state", str(state)],
                           input=(header + "".join(rows[200:])).encode(),
                           capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert first + again.stdout.split(b"\n", 1)[1] == _whole(tmp_path, model, small_frame)
