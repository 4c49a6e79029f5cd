"""Bad inputs, run through the installed `lstmae` command as a subprocess.

Every case must end the way the README promises: exit status 2, exactly one
line `error: ...` on stderr that names what is at fault, no traceback, nothing
on stdout, and no file created or changed in the working folder (a valid
`model.lstmae` is there before every case and must stay byte-identical; score
cases ask for `-o out.csv` / `-o out.parquet`, which must not appear).

Static bad files live in tests/bad_inputs/; binary ones and damaged model
files are made by the `generated` fixture. A few inputs that are *not* errors
(unsorted timestamps for fit, repeated timestamps, a constant column, missing
values with --fill) are checked as successes at the end.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import run_lstmae

BAD = Path(__file__).resolve().parent / "bad_inputs"
TINY = ("--epochs", "1", "--hidden", "4", "--latent", "2", "--window", "4", "--quiet")
HAS_GPU = Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


# ---------------------------------------------------------------- fixtures
def _good_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    return pd.DataFrame({
        "timestamp": pd.date_range("2026-01-01", periods=rows, freq="min"),
        "a": np.sin(2 * np.pi * t / 20) + 0.05 * rng.standard_normal(rows),
        "b": np.cos(2 * np.pi * t / 20) + 0.05 * rng.standard_normal(rows),
    })


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A folder with good.csv (timestamp,a,b; 200 rows) and a tiny model trained on it."""
    folder = tmp_path_factory.mktemp("bad_inputs_model")
    _good_frame().to_csv(folder / "good.csv", index=False)
    run_lstmae("fit", "good.csv", "-m", "model.lstmae", *TINY, cwd=folder, check=True)
    assert (folder / "model.lstmae").is_file()
    return folder


class _Payload:
    """Unpickling this calls open(target, "w"): it creates the marker file."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _header_len(blob: bytes) -> int:
    return struct.unpack("<Q", blob[:8])[0]


@pytest.fixture(scope="session")
def generated(trained, tmp_path_factory) -> Path:
    """Binary bad data files and damaged or hostile model files."""
    from lstmae.artifact import load_model_file, save_model_file

    out = tmp_path_factory.mktemp("bad_inputs_generated")
    rng = np.random.default_rng(1)
    good_csv = (trained / "good.csv").read_bytes()

    # data files
    (out / "junk.csv").write_bytes(bytes(rng.integers(0, 256, 4096, dtype=np.uint8)))
    (out / "latin1.csv").write_bytes(
        "timestamp,a,b,site\n2026-01-01 00:00:00,1.0,2.0,Zürich\n"
        "2026-01-01 00:01:00,1.5,2.5,Genève\n".encode("latin-1")
    )
    (out / "not_gzip.csv.gz").write_bytes(good_csv)
    _good_frame().to_parquet(out / "whole.parquet", index=False)
    whole = (out / "whole.parquet").read_bytes()
    (out / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (out / "whole.parquet").unlink()

    # model files
    model = trained / "model.lstmae"
    blob = model.read_bytes()
    n = _header_len(blob)
    (out / "not_model.lstmae").write_bytes(good_csv)
    (out / "empty.lstmae").write_bytes(b"")
    cuts = {
        "4": 4, "8": 8, "header_mid": 8 + n // 2, "header_end": 8 + n,
        "tensor_mid": 8 + n + (len(blob) - 8 - n) // 2, "last_byte": len(blob) - 1,
    }
    for name, keep in cuts.items():
        (out / f"trunc_{name}.lstmae").write_bytes(blob[:keep])

    flipped = bytearray(blob)
    flipped[8 + n + (len(blob) - 8 - n) // 2] ^= 0xFF
    (out / "flipped_tensor.lstmae").write_bytes(bytes(flipped))
    stride = b'\\"stride\\": 1'
    assert blob.count(stride) >= 1  # beside the parameters' copy of it
    (out / "flipped_meta.lstmae").write_bytes(blob.replace(stride, b'\\"stride\\": 3', 1))

    tensors, meta = load_model_file(model)
    save_model_file(out / "v2.lstmae", tensors, {**meta, "format_version": 2})
    lie = json.loads(json.dumps(meta))
    lie["model"]["hidden"] = 8  # the tensors were trained with --hidden 4
    save_model_file(out / "lie_hidden.lstmae", tensors, lie)
    save_model_file(out / "lie_scaler.lstmae",
                    {**tensors, "scaler.mean": np.zeros(3), "scaler.std": np.ones(3)}, meta)
    for name in ("lie_hidden", "lie_scaler"):  # valid checksums: only the contents lie
        load_model_file(out / f"{name}.lstmae", meaning=False)

    marker = out / "PWNED"
    (out / "evil.lstmae").write_bytes(pickle.dumps(_Payload(str(marker))))
    import torch

    torch.save(_Payload(str(marker)), out / "evil_torch.lstmae")
    return out


# ---------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    expect: tuple[str, ...]  # substrings the one error line must contain
    files: tuple[str, ...] = ()  # from bad_inputs/ or generated; "adir/" makes a folder
    stdin: bytes | None = None


def fit(data: str, *extra: str, files: tuple[str, ...] | None = None, expect=()) -> Case:
    return Case(("fit", data, "-m", "model.lstmae", *TINY, *extra), tuple(expect),
                _files(data, files))


def score(data: str, *extra: str, out: str = "out.csv", files=None, expect=()) -> Case:
    return Case(("score", data, "-m", "model.lstmae", "-o", out, *extra), tuple(expect),
                _files(data, files))


def with_model(command: str, name: str, expect=()) -> Case:
    if command == "info":
        args = ("info", name)
    else:
        args = ("score", "good.csv", "-m", name, "-o", "out.csv")
    return Case(args, (name, *expect), (name,))


def _files(data: str, files) -> tuple[str, ...]:
    if files is not None:
        return tuple(files)
    if data in ("-", "good.csv", "missing.csv"):
        return ()
    return (data,)


def _cuda(case: Case):
    return pytest.param(case, id="option-device-cuda",
                        marks=pytest.mark.skipif(HAS_GPU, reason="a GPU is present"))


# Most cases pay for importing torch in the subprocess (~1.5 s here); model-file
# damage is therefore checked mostly through `info`, which reads the file before
# torch is imported, and through `score` for the cases that need the full load.
CASES = {
    # ---- files
    "file-missing": fit("missing.csv", expect=["missing.csv", "no such file"]),
    "file-is-a-folder": fit("adir", files=["adir/"], expect=["adir", "folder"]),
    "file-empty": fit("empty.csv", expect=["empty.csv", "empty"]),
    "file-header-only": fit("header_only.csv", expect=["header_only.csv", "no data rows"]),
    "file-not-utf8": fit("latin1.csv", expect=["latin1.csv", "UTF-8"]),
    "file-binary-junk-csv": fit("junk.csv", expect=["junk.csv"]),
    "file-parquet-not-parquet": fit("not_parquet.parquet",
                                    expect=["not_parquet.parquet", "Parquet"]),
    "file-parquet-truncated": fit("truncated.parquet", expect=["truncated.parquet", "Parquet"]),
    "file-gz-not-gzip": fit("not_gzip.csv.gz", expect=["not_gzip.csv.gz"]),
    "file-ragged-rows": fit("ragged.csv", expect=["ragged.csv", "line 6"]),
    "file-text-columns-only": fit("text_only.csv",
                                  expect=["text_only.csv", "no numeric columns"]),
    "file-stdin-empty": Case(("fit", "-", "-m", "model.lstmae", *TINY),
                             ("<stdin>", "empty"), stdin=b""),
    "score-parquet-truncated": score("truncated.parquet", out="out.parquet",
                                     expect=["truncated.parquet"]),
    # ---- values
    "value-nan": fit("nan.csv", expect=["nan.csv", "row 6", "column 'b'", "missing"]),
    "value-inf": fit("inf.csv", expect=["inf.csv", "row 3", "column 'a'", "infinite"]),
    "value-empty-cell": fit("empty_cells.csv", expect=["empty_cells.csv", "row 9", "column 'a'"]),
    "value-thousands-separators": fit("thousands.csv", "--columns", "a,b",
                                      expect=["thousands.csv", "column 'b'", "not numeric"]),
    "value-typo-cell-named-column": fit("typo_cell.csv", "--columns", "a,b",
                                        expect=["typo_cell.csv", "column 'a'", "'0.1O'"]),
    "value-1e300": fit("huge.csv", expect=["huge.csv", "row 4", "column 'a'", "too large"]),
    "value-time-unparsable": fit("bad_time.csv",
                                 expect=["time column 'timestamp'", "'not a time'"]),
    # read in batches of 4 rows, the bad row is still the file's row 6
    "score-value-nan-in-a-later-batch": score("nan.csv", "--batch-rows", "4",
                                              expect=["nan.csv", "row 6", "column 'b'"]),
    # score reads in batches, so it needs rows in time order (README, Data rules)
    "score-unsorted-timestamps": score("unsorted.csv", expect=["unsorted.csv", "time order"]),
    "shape-fewer-rows-than-window": fit("short.csv", expect=["3 row", "window of 4"]),
    "shape-window-0": fit("good.csv", "--window", "0", expect=["--window", "0"]),
    "shape-window-negative": fit("good.csv", "--window", "-3", expect=["--window", "-3"]),
    "shape-window-abc": fit("good.csv", "--window", "abc", expect=["--window", "abc"]),
    "shape-stride-0": fit("good.csv", "--stride", "0", expect=["--stride"]),
    "shape-stride-larger-than-series": fit("good.csv", "--stride", "500",
                                           expect=["--stride", "500"]),
    "shape-columns-missing": fit("good.csv", "--columns", "a,nope", expect=["nope"]),
    "score-lacks-model-columns": score("only_a.csv",
                                       expect=["only_a.csv", "missing column(s) b"]),
    # ---- options
    "option-device-tpu": fit("good.csv", "--device", "tpu", expect=["--device", "tpu"]),
    "option-device-cuda": fit("good.csv", "--device", "cuda", expect=["--device cuda"]),
    "option-threshold-negative": score("good.csv", "--threshold", "-1",
                                       expect=["--threshold", "-1"]),
    "option-threshold-nan": score("good.csv", "--threshold", "nan",
                                  expect=["--threshold", "nan"]),
    "option-threshold-inf": score("good.csv", "--threshold", "inf",
                                  expect=["--threshold", "inf"]),
    "option-epochs-0": fit("good.csv", "--epochs", "0", expect=["--epochs"]),
    "option-lr-0": fit("good.csv", "--lr", "0", expect=["--lr"]),
    "option-val-fraction-1.5": fit("good.csv", "--val-fraction", "1.5",
                                   expect=["--val-fraction", "1.5"]),
    "option-threshold-quantile-1.5": fit("good.csv", "--threshold-quantile", "1.5",
                                         expect=["--threshold-quantile", "1.5"]),
    "option-batch-size-0": fit("good.csv", "--batch-size", "0", expect=["--batch-size"]),
    "option-output-missing-folder": score("good.csv", out="nodir/out.csv",
                                          expect=["nodir"]),
    "option-output-unknown-extension": score("good.csv", out="out.xlsx", expect=["out.xlsx"]),
    "option-output-is-a-folder": score("good.csv", out="taken.csv", files=["taken.csv/"],
                                       expect=["taken.csv", "folder"]),
    "option-format-xml": score("good.csv", "--format", "xml", expect=["--format", "xml"]),
    "option-level-bogus": score("good.csv", "--level", "bogus", expect=["--level", "bogus"]),
    "option-fill-bogus": fit("good.csv", "--fill", "bogus", expect=["--fill", "bogus"]),
    "option-loss-bogus": fit("good.csv", "--loss", "bogus", expect=["--loss", "bogus"]),
    "option-top-0": score("good.csv", "--top", "0", expect=["--top"]),
    "option-batch-rows-0": score("good.csv", "--batch-rows", "0", expect=["--batch-rows"]),
    "option-unknown": score("good.csv", "--treshold", "0.1", expect=["--treshold"]),
    "option-fit-model-in-missing-folder": Case(
        ("fit", "good.csv", "-m", "nodir/model.lstmae", *TINY), ("nodir",)),
    "option-fit-model-is-a-folder": Case(
        ("fit", "good.csv", "-m", "adir", *TINY), ("adir", "folder"), ("adir/",)),
    "option-encode-format-xml": Case(
        ("encode", "good.csv", "-m", "model.lstmae", "--format", "xml"), ("--format", "xml")),
    # ---- model files
    "model-lies-about-hidden": with_model("score", "lie_hidden.lstmae", ["does not match"]),
    "model-is-a-folder": Case(("score", "good.csv", "-m", "adir", "-o", "out.csv"),
                              ("adir", "not a file"), ("adir/",)),
    "model-pickle-score": with_model("score", "evil.lstmae"),
    "info-pickle": with_model("info", "evil.lstmae"),
    "info-torch-pickle": with_model("info", "evil_torch.lstmae"),
    "info-missing": with_model("info", "missing.lstmae", ["no such model file"]),
    "info-not-a-model": with_model("info", "not_model.lstmae", ["not an lstmae model"]),
    "info-empty": with_model("info", "empty.lstmae"),
    "info-other-format-version": with_model("info", "v2.lstmae", ["version 2"]),
    **{
        f"info-truncated-{cut}": with_model("info", f"trunc_{cut}.lstmae")
        for cut in ("4", "8", "header_mid", "header_end", "tensor_mid", "last_byte")
    },
    "info-flipped-tensor-byte": with_model("info", "flipped_tensor.lstmae", ["checksum"]),
    "info-flipped-metadata": with_model("info", "flipped_meta.lstmae", ["checksum"]),
    "info-lies-about-scaler": with_model("info", "lie_scaler.lstmae", ["does not match"]),
}
PARAMS = [
    _cuda(case) if name == "option-device-cuda" else pytest.param(case, id=name)
    for name, case in CASES.items()
]


# ---------------------------------------------------------------- the check
def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every file and folder under `folder`: its bytes and mtime (None for folders)."""
    state = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        rel = str(path.relative_to(folder))
        state[rel] = (path.read_bytes(), stat.st_mtime_ns) if path.is_file() else None
    return state


def _prepare(folder: Path, case: Case, trained: Path, generated: Path) -> None:
    shutil.copy2(trained / "model.lstmae", folder / "model.lstmae")
    shutil.copy2(trained / "good.csv", folder / "good.csv")
    for name in case.files:
        if name.endswith("/"):
            (folder / name).mkdir()
            (folder / name / "notes.txt").write_text("not data\n")
            continue
        for source in (BAD / name, generated / name):
            if source.exists():
                shutil.copy2(source, folder / name)
                break
        else:
            if not name.startswith("missing"):
                raise AssertionError(f"no bad input named {name}")


def _problems(proc, case: Case, before: dict, after: dict) -> list[str]:
    problems = []
    err = proc.stderr_text
    lines = err.splitlines()
    if "Traceback" in err:
        problems.append("a traceback on stderr")
    if proc.returncode != 2:
        problems.append(f"exit status {proc.returncode}, expected 2")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected exactly 1")
    if not lines or not lines[0].startswith("error: "):
        problems.append("stderr does not start with 'error: '")
    else:
        missing = [s for s in case.expect if s not in lines[0]]
        if missing:
            problems.append(f"error line lacks {missing}")
    if proc.stdout:
        problems.append(f"stdout not empty ({len(proc.stdout)} bytes)")
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    if created or removed or changed:
        problems.append(f"files created {created}, removed {removed}, changed {changed}")
    return problems


def _run_case(case: Case, folder: Path, trained: Path, generated: Path):
    _prepare(folder, case, trained, generated)
    before = _snapshot(folder)
    proc = run_lstmae(*case.args, cwd=folder, input=case.stdin)
    return proc, before, _snapshot(folder), folder


TEST_NAME = "test_bad_input_is_refused_with_one_error_line"

# Inputs that are not errors: the success tests at the end check these runs.
def _fit_new(data: str, *extra: str) -> Case:
    return Case(("fit", data, "-m", "new.lstmae", *TINY, *extra), (), (data,))


SUCCESSES = {
    "test_unsorted_timestamps_are_sorted_with_one_warning": [_fit_new("unsorted.csv")],
    "test_duplicate_timestamps_are_kept_with_one_warning": [_fit_new("dup_time.csv")],
    "test_constant_column_fits_with_a_warning": [_fit_new("constant.csv")],
    "test_fill_makes_missing_values_usable": [
        _fit_new("nan.csv", "--fill", method) for method in ("ffill", "interpolate", "drop")
    ],
}


@pytest.fixture(scope="session")
def runs(request, trained, generated, tmp_path_factory) -> dict:
    """Run the selected tests' commands up front, two at a time.

    Most of each run is the subprocess importing torch; two at once halve the
    wait on a two-core machine. Returns {case: (proc, before, after, folder)}.
    """
    selected = []
    for item in request.session.items:
        name = getattr(item, "originalname", None)
        callspec = getattr(item, "callspec", None)
        skipped = any(m.name == "skipif" and m.args and m.args[0] for m in item.iter_markers())
        if name == TEST_NAME and callspec and not skipped:
            selected.append(callspec.params["case"])
        selected.extend(c for c in SUCCESSES.get(name, []) if c not in selected)
    base = tmp_path_factory.mktemp("bad_input_runs")
    folders = [base / f"run{i}" for i in range(len(selected))]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        done = list(pool.map(lambda pair: _run_case(*pair, trained, generated),
                             zip(selected, folders, strict=True)))
    return dict(zip(selected, done, strict=True))


def _result(case: Case, runs: dict, trained: Path, generated: Path, tmp_path: Path):
    if case in runs:
        return runs[case]
    return _run_case(case, tmp_path, trained, generated)  # not collected up front: run now


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_is_refused_with_one_error_line(case, runs, trained, generated, tmp_path):
    proc, before, after, _ = _result(case, runs, trained, generated, tmp_path)
    problems = _problems(proc, case, before, after)
    assert not problems, (
        f"lstmae {' '.join(case.args)}\n  -> " + "\n  -> ".join(problems)
        + f"\nexit {proc.returncode}\nstderr:\n{proc.stderr_text[-3000:]}"
        + f"\nstdout:\n{proc.stdout_text[:500]}"
    )
    assert not (generated / "PWNED").exists(), "a pickle payload in a model file was executed"


def test_case_count():
    assert len(CASES) >= 45


def test_pickle_payloads_are_live(generated):
    """The hostile model files really do create the marker when unpickled."""
    import torch

    marker = generated / "PWNED"
    try:
        pickle.loads((generated / "evil.lstmae").read_bytes()).close()
        assert marker.exists()
        marker.unlink()
        torch.load(generated / "evil_torch.lstmae", weights_only=False).close()
        assert marker.exists()
    finally:
        marker.unlink(missing_ok=True)


# ---------------------------------------------------------------- not errors
def _one_warning(proc, *needles: str) -> str:
    assert proc.returncode == 0, proc.stderr_text
    assert "Traceback" not in proc.stderr_text
    lines = proc.stderr_text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), proc.stderr_text
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _training(model: Path) -> dict:
    from lstmae.artifact import load_model_file

    return load_model_file(model)[1]["training"]


def _success(test: str, runs, trained, generated, tmp_path, index: int = 0):
    proc, _, _, folder = _result(SUCCESSES[test][index], runs, trained, generated, tmp_path)
    return proc, folder


def test_unsorted_timestamps_are_sorted_with_one_warning(runs, trained, generated, tmp_path):
    proc, folder = _success("test_unsorted_timestamps_are_sorted_with_one_warning",
                            runs, trained, generated, tmp_path)
    _one_warning(proc, "unsorted.csv", "time order", "'timestamp'")
    training = _training(folder / "new.lstmae")
    assert training["rows"] == 20
    assert training["first_time"] == "2026-01-01 00:00:00"  # sorted before training
    assert training["last_time"] == "2026-01-01 00:19:00"


def test_duplicate_timestamps_are_kept_with_one_warning(runs, trained, generated, tmp_path):
    """README, Data rules: repeated timestamps are kept in file order, with a warning."""
    proc, folder = _success("test_duplicate_timestamps_are_kept_with_one_warning",
                            runs, trained, generated, tmp_path)
    _one_warning(proc, "dup_time.csv", "repeats", "00:06:00")
    assert _training(folder / "new.lstmae")["rows"] == 12  # both rows kept


def test_constant_column_fits_with_a_warning(runs, trained, generated, tmp_path):
    proc, folder = _success("test_constant_column_fits_with_a_warning",
                            runs, trained, generated, tmp_path)
    _one_warning(proc, "column(s) b ", "constant")
    assert _training(folder / "new.lstmae")["rows"] == 20


@pytest.mark.parametrize("index,method", list(enumerate(["ffill", "interpolate", "drop"])))
def test_fill_makes_missing_values_usable(index, method, runs, trained, generated, tmp_path):
    proc, folder = _success("test_fill_makes_missing_values_usable",
                            runs, trained, generated, tmp_path, index)
    _one_warning(proc, "nan.csv", f"--fill {method}")
    assert _training(folder / "new.lstmae")["rows"] == (11 if method == "drop" else 12)


def test_bad_input_files_are_where_the_cases_expect(generated):
    for case in CASES.values():
        for name in case.files:
            if not name.endswith("/") and not name.startswith("missing"):
                assert (BAD / name).exists() or (generated / name).exists(), name
    assert not (BAD / "missing.csv").exists()
