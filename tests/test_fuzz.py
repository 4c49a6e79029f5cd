"""Property-based fuzzing of the readers and of the model-file loader, in-process.

Whatever bytes a CSV, a Parquet file or a model file holds, `lstmae` ends with
status 0, 1 or 2 (never the internal-error status 70, which stands for a
traceback) and, on 2, with exactly one `error:` line. Hypothesis runs with a
fixed seed (derandomize) and a fixed budget, so the suite stays fast and gives
the same cases every run.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmae.cli import run

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny model on timestamp,a,b (window 4)."""
    from lstmae import Detector

    folder = tmp_path_factory.mktemp("fuzz")
    t = np.arange(80)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=80, freq="min"),
                          "a": np.sin(t / 5), "b": np.cos(t / 5)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Detector(window=4, hidden=4, latent=2, epochs=1, device="cpu").fit(frame).save(
            folder / "model.lstmae")
    return folder / "model.lstmae"


def _check(args: list[str], capsys) -> int:
    code = run(args)
    out = capsys.readouterr()
    assert code in (0, 1, 2), f"status {code}: {out.err[-2000:]}"
    assert "Traceback" not in out.err
    if code == 2:
        lines = out.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    return code


# ---------------------------------------------------------------- CSV and time
TIMES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.strftime("%d/%m/%Y %H:%M")),
    st.datetimes().map(lambda d: d.strftime("%m.%d.%y")),
    st.builds(lambda d, h, m: f"{d.isoformat()}{'+' if h >= 0 else '-'}{abs(h):02d}:{m:02d}",
              st.datetimes(), st.integers(-14, 14), st.sampled_from([0, 30, 45])),
    st.integers(-(2**63), 2**63).map(str),
    st.sampled_from(["", "NaT", "now", "2026-02-30", "9999-12-31T23:59:59", "0001-01-01",
                     "2026-13-01 00:00", "2026-01-01T00:00:00Z"]),
    st.text(max_size=30),
)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e308", "3.5e38", "1,234", "0x10",
                     "true", "NULL", " 1 "]),
    st.text(max_size=10),
)
NAMES = st.sampled_from(["timestamp", "a", "b", "time", "a_recon", "score", "Unnamed: 0",
                         "", "ts", "été", '"q"'])


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


@st.composite
def csv_files(draw) -> bytes:
    names = draw(st.lists(NAMES, min_size=1, max_size=4))
    if draw(st.booleans()):
        names = ["timestamp", "a", "b", *names[:1]]
    rows = draw(st.integers(0, 12))
    lines = [",".join(_csv_cell(n) for n in names)]
    for _ in range(rows):
        cells = [draw(TIMES) if n in ("timestamp", "time", "ts") else draw(VALUES)
                 for n in names]
        if draw(st.integers(0, 9)) == 0:  # a ragged row now and then
            cells = cells[:-1] or ["x", "y"]
        lines.append(",".join(_csv_cell(c) for c in cells))
    text = "\n".join(lines) + "\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


@FUZZ
@given(data=csv_files(), level=st.sampled_from(["window", "point", "event"]),
       batch=st.sampled_from(["2", "5", "100000"]))
def test_score_on_any_csv_ends_in_0_1_or_2(model, tmp_path, capsys, data, level, batch):
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    _check(["score", str(path), "-m", str(model), "-o", str(tmp_path / "out.jsonl"), "-q",
            "--level", level, "--batch-rows", batch], capsys)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=csv_files())
def test_fit_on_any_csv_ends_in_0_or_2(tmp_path, capsys, data):
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    code = _check(["fit", str(path), "-m", str(tmp_path / "m.lstmae"), "--epochs", "1",
                   "--hidden", "2", "--latent", "1", "--window", "2", "-q"], capsys)
    assert code in (0, 2)


TIME_COLUMNS = st.sampled_from(["naive", "utc", "plus2", "text", "ints", "floats", "bools",
                                "mixed-objects"])


def _time_column(kind: str, n: int):
    stamps = pd.date_range("2026-01-01", periods=n, freq="min")
    return {
        "naive": stamps, "utc": stamps.tz_localize("UTC"),
        "plus2": stamps.tz_localize("UTC").tz_convert("+02:00"),
        "text": stamps.astype(str), "ints": np.arange(n), "floats": np.arange(n) * 0.5,
        "bools": np.arange(n) % 2 == 0,
        "mixed-objects": pd.Series([str(s) if i % 2 else i for i, s in enumerate(stamps)],
                                   dtype=object),
    }[kind]


@FUZZ
@given(kinds=st.lists(TIME_COLUMNS, min_size=1, max_size=3), n=st.integers(1, 30),
       reverse=st.booleans())
def test_score_on_any_parquet_folder_ends_in_0_1_or_2(model, tmp_path, capsys, kinds, n,
                                                       reverse):
    folder = tmp_path / "parts"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for i, kind in enumerate(kinds):
        frame = pd.DataFrame({"timestamp": _time_column(kind, n),
                              "a": np.linspace(0, 1, n), "b": np.linspace(1, 0, n)})
        if reverse:
            frame = frame.iloc[::-1]
        try:
            frame.to_parquet(folder / f"part-{i}.parquet", index=False)
        except Exception:  # noqa: BLE001 - pyarrow cannot write this mix: nothing to read
            return
    _check(["score", str(folder), "-m", str(model), "-o", str(tmp_path / "out.csv"), "-q"],
           capsys)


# ---------------------------------------------------------------- model files
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _paths(meta: dict, prefix=()) -> list[tuple]:
    found = []
    for key, value in meta.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found.extend(_paths(value, (*prefix, key)))
    return found


@FUZZ
@given(data=st.data())
def test_a_model_file_with_any_field_changed_ends_in_0_1_or_2(model, tmp_path, capsys, data):
    """Valid checksums over metadata with one field set to any JSON value."""
    from safetensors.numpy import save

    from lstmae.artifact import _checksum, load_model_file

    tensors, meta = load_model_file(model)
    path = data.draw(st.sampled_from(sorted(_paths(meta), key=str)))
    target = meta
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()):
        target[path[-1]] = data.draw(JSON_VALUES)
    else:
        del target[path[-1]]
    text = json.dumps(meta)
    bad = tmp_path / "bad.lstmae"
    bad.write_bytes(save(tensors, metadata={"lstmae": text, "sha256": _checksum(text, tensors)}))
    command = data.draw(st.sampled_from(["info", "score"]))
    if command == "info":
        _check(["info", str(bad)], capsys)
    else:
        good = tmp_path / "good.csv"
        t = np.arange(20)
        pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=20, freq="min"),
                      "a": np.sin(t), "b": np.cos(t)}).to_csv(good, index=False)
        _check(["score", str(good), "-m", str(bad), "-o", str(tmp_path / "o.csv"), "-q"],
               capsys)


@FUZZ
@given(data=st.data())
def test_a_damaged_model_file_ends_in_0_or_2(model, tmp_path, capsys, data):
    """Flipped, inserted and cut bytes anywhere, the header included."""
    blob = bytearray(model.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if action == "flip":
            blob[where] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del blob[where:]
            if not blob:
                break
        elif action == "insert":
            blob[where:where] = data.draw(st.binary(min_size=1, max_size=8))
        else:  # the header length itself
            blob[:8] = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
    bad = tmp_path / "bad.lstmae"
    bad.write_bytes(bytes(blob))
    assert _check(["info", str(bad)], capsys) in (0, 2)
