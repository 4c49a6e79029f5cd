"""Trust at the edges, through the installed `lstmae` command as a subprocess.

Each refusal must end as the README promises: exit status 2, exactly one
`error: ...` line naming what is at fault, no traceback, nothing on stdout, and
every file in the folder (data, model, labels, links) byte-identical, with no
file created or removed. The cases are grouped by the promise they test:
never destroy an input; never call an anomaly normal (model files checked for
meaning, absurd sizes refused); time as the user wrote it; names and shapes;
exit status; messages that lead to the fix. Successes at the edges (offsets
kept, a clock stepping back, /dev/null, a full disk) are checked after them.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import LSTMAE, SHARED_DATA, run_lstmae

TINY = ("--epochs", "1", "--hidden", "4", "--latent", "2", "--window", "4", "--quiet")


def _frame(rows: int = 120, start: str = "2026-01-01", freq: str = "min", tz=None):
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    return pd.DataFrame({
        "timestamp": pd.date_range(start, periods=rows, freq=freq, tz=tz),
        "a": np.sin(2 * np.pi * t / 20) + 0.05 * rng.standard_normal(rows),
        "b": np.cos(2 * np.pi * t / 20) + 0.05 * rng.standard_normal(rows),
    })


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """good.csv (timestamp,a,b; 120 rows), its tiny model, and two models whose column
    names collide with output columns."""
    folder = tmp_path_factory.mktemp("edges")
    _csv(_frame(), folder / "good.csv")
    run_lstmae("fit", "good.csv", "-m", "model.lstmae", *TINY, cwd=folder, check=True)
    frame = _frame()
    _csv(frame.rename(columns={"b": "a_recon"}), folder / "recon_names.csv")
    run_lstmae("fit", "recon_names.csv", "-m", "recon_names.lstmae", *TINY, cwd=folder,
               check=True)
    _csv(frame.rename(columns={"timestamp": "score"}), folder / "score_time.csv")
    run_lstmae("fit", "score_time.csv", "-m", "score_time.lstmae", "--time-col", "score",
               *TINY, cwd=folder, check=True)
    return folder


# ---------------------------------------------------------------- model mutations
def _model_parts(base: Path):
    from lstmae.artifact import load_model_file

    tensors, meta = load_model_file(base / "model.lstmae")
    for key in ("format", "format_version"):
        meta.pop(key)
    return tensors, meta


def _save(path: Path, tensors, meta) -> None:
    from lstmae.artifact import save_model_file

    save_model_file(path, tensors, meta)


def _save_raw(path: Path, tensors, metadata_json: str) -> None:
    """A model file with a valid checksum over any metadata text."""
    from safetensors.numpy import save

    from lstmae.artifact import _checksum

    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    path.write_bytes(save(tensors, metadata={
        "lstmae": metadata_json, "sha256": _checksum(metadata_json, tensors)}))


def _model_edit(edit, part: str):
    """A setup writing bad.lstmae: the good model with edit() applied to its metadata
    ("meta") or its tensors ("tensors"), under a valid checksum."""
    def make(folder: Path, base: Path) -> None:
        tensors, meta = _model_parts(base)
        edit(meta if part == "meta" else tensors)
        _save(folder / "bad.lstmae", tensors, meta)
    return make


def _meta_edit(edit):
    return _model_edit(edit, "meta")


def _tensor_edit(edit):
    return _model_edit(edit, "tensors")


def _set(path: str, value):
    def edit(meta):
        *parents, key = path.split(".")
        target = meta
        for p in parents:
            target = target[p]
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value
    return edit


_DELETE = object()


def _deep_metadata(folder: Path, base: Path) -> None:
    tensors, meta = _model_parts(base)
    text = json.dumps({"format": "lstmae", "format_version": 1, **meta})
    _save_raw(folder / "bad.lstmae", tensors, text[:-1] + ', "x": ' + "[" * 50_000
              + "]" * 50_000 + "}")


def _deep_header(folder: Path, base: Path) -> None:
    header = ('{"__metadata__": {"lstmae": "{}"}, "x": ' + "[" * 50_000 + "]" * 50_000
              + "}").encode()
    (folder / "bad.lstmae").write_bytes(len(header).to_bytes(8, "little") + header)


def _header_claims_too_much(folder: Path, base: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [100000000], "data_offsets": [0, 400000000]}}'
    (folder / "bad.lstmae").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)


def _nan_weight(tensors):
    name = next(k for k in tensors if k.startswith("model."))
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan


# ---------------------------------------------------------------- data setups
def _link(name: str, target: str):
    def make(folder: Path, base: Path) -> None:
        (folder / name).symlink_to(target)
    return make


def _hardlink(name: str, target: str):
    def make(folder: Path, base: Path) -> None:
        os.link(folder / target, folder / name)
    return make


def _write(name: str, text: str):
    def make(folder: Path, base: Path) -> None:
        (folder / name).write_text(text)
    return make


def _frame_file(name: str, frame_fn, kind: str = "csv"):
    def make(folder: Path, base: Path) -> None:
        frame = frame_fn()
        if kind == "csv":
            _csv(frame, folder / name)
        else:
            frame.to_parquet(folder / name, index=False)
    return make


def _copy_model(name: str):
    def make(folder: Path, base: Path) -> None:
        shutil.copy2(base / f"{name}.lstmae", folder / f"{name}.lstmae")
        shutil.copy2(base / f"{name}.csv", folder / f"{name}.csv")
    return make


def _parquet_folder(folder: Path, base: Path) -> None:
    (folder / "parts").mkdir()
    frame = _frame()
    frame.iloc[:60].to_parquet(folder / "parts" / "part-0.parquet", index=False)
    frame.iloc[60:].to_parquet(folder / "parts" / "part-1.parquet", index=False)


def _parquet_folder_mixed_time(folder: Path, base: Path) -> None:
    (folder / "mixed").mkdir()
    frame = _frame()
    frame.iloc[:60].to_parquet(folder / "mixed" / "part-0.parquet", index=False)
    later = frame.iloc[60:].copy()
    later["timestamp"] = later["timestamp"].astype(str)
    later.to_parquet(folder / "mixed" / "part-1.parquet", index=False)


def _parquet_duplicate_names(folder: Path, base: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _frame()
    table = pa.Table.from_arrays(
        [pa.array(frame["timestamp"]), pa.array(frame["a"]), pa.array(frame["b"])],
        names=["timestamp", "a", "a"])
    pq.write_table(table, folder / "dup.parquet")


def _dmy():
    frame = _frame(freq="h")
    frame["timestamp"] = frame["timestamp"].dt.strftime("%d/%m/%Y %H:%M")
    return frame


def _numbers_then_text():
    frame = _frame()
    stamps = frame["timestamp"].astype(str).tolist()
    frame["timestamp"] = [str(i) for i in range(60)] + stamps[60:]
    return frame


def _naive_and_aware():
    frame = _frame()
    stamps = frame["timestamp"].astype(str).tolist()
    stamps[50] += "+01:00"
    frame["timestamp"] = stamps
    return frame


def _with_huge_cell():
    frame = _frame().astype({"a": object})
    frame.loc[7, "a"] = "x" * 20_000
    return frame


def _with_huge_time():
    frame = _frame().astype({"timestamp": object})
    frame.loc[7, "timestamp"] = "y" * 20_000
    return frame


# ---------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    expect: tuple[str, ...]  # substrings the one error line must contain
    setup: object = None  # setup(folder, base): makes the case's files
    shell: str | None = None  # run through sh -c instead (for closed streams)


def score(*args: str, expect=(), setup=None) -> Case:
    return Case(("score", *args), tuple(expect), setup)


def fit(*args: str, expect=(), setup=None) -> Case:
    # TINY first: an option given again in `args` overrides it
    return Case(("fit", *TINY, *args), tuple(expect), setup)


def info_bad(*expect: str, setup) -> Case:
    return Case(("info", "bad.lstmae"), ("bad.lstmae", *expect), setup)


def score_bad(*expect: str, setup) -> Case:
    return Case(("score", "good.csv", "-m", "bad.lstmae", "-o", "out.csv"),
                ("bad.lstmae", *expect), setup)


LONG_NAME = "n" * 300 + ".csv"  # beyond every file system's 255-byte limit

CASES = {
    # ---- 1. never destroy what it was given
    "out-is-data": score("good.csv", "-m", "model.lstmae", "-o", "good.csv",
                         expect=["--output good.csv", "data file"]),
    "out-is-data-by-symlink": score("good.csv", "-m", "model.lstmae", "-o", "link.csv",
                                    expect=["link.csv", "data file good.csv"],
                                    setup=_link("link.csv", "good.csv")),
    "out-is-data-by-hard-link": score("good.csv", "-m", "model.lstmae", "-o", "hard.csv",
                                      expect=["hard.csv", "data file"],
                                      setup=_hardlink("hard.csv", "good.csv")),
    "out-is-data-by-other-path": score("good.csv", "-m", "model.lstmae", "-o",
                                       "./sub/../good.csv", expect=["data file"],
                                       setup=lambda f, b: (f / "sub").mkdir()),
    "out-is-model": score("good.csv", "-m", "model.lstmae", "-o", "model.lstmae", "-f", "csv",
                          expect=["model file"]),
    "out-is-model-by-hard-link": score("good.csv", "-m", "model.lstmae", "-o", "m.csv",
                                       expect=["model file"],
                                       setup=_hardlink("m.csv", "model.lstmae")),
    "out-is-model-json": score("good.csv", "-m", "model.lstmae", "-o", "m.jsonl",
                               "--level", "event", expect=["model file"],
                               setup=_link("m.jsonl", "model.lstmae")),
    "out-is-model-parquet": score("good.csv", "-m", "model.lstmae", "-o", "m.parquet",
                                  expect=["model file"],
                                  setup=_link("m.parquet", "model.lstmae")),
    "out-inside-data-folder": score("parts", "-m", "model.lstmae", "-o", "parts/x.parquet",
                                    expect=["inside the data folder"], setup=_parquet_folder),
    "reconstruct-out-is-data": Case(("reconstruct", "good.csv", "-m", "model.lstmae", "-o",
                                     "good.csv"), ("data file",)),
    "reconstruct-out-is-model-by-link": Case(
        ("reconstruct", "good.csv", "-m", "model.lstmae", "-o", "r.csv"), ("model file",),
        _link("r.csv", "model.lstmae")),
    "encode-out-is-data-by-link": Case(
        ("encode", "good.csv", "-m", "model.lstmae", "-o", "e.csv"), ("data file",),
        _link("e.csv", "good.csv")),
    "plot-out-is-data-by-link": Case(
        ("plot", "good.csv", "-m", "model.lstmae", "-o", "report.png"), ("data file",),
        _link("report.png", "good.csv")),
    "plot-out-is-model-by-hard-link": Case(
        ("plot", "good.csv", "-m", "model.lstmae", "-o", "report.png"), ("model file",),
        _hardlink("report.png", "model.lstmae")),
    "fit-model-is-data": fit("good.csv", "-m", "good.csv", expect=["--model good.csv",
                                                                   "data file"]),
    "fit-model-is-data-by-symlink": fit("good.csv", "-m", "m.lstmae",
                                        expect=["data file good.csv"],
                                        setup=_link("m.lstmae", "good.csv")),
    "fit-model-is-data-by-hard-link": fit("good.csv", "-m", "copy.lstmae",
                                          expect=["data file"],
                                          setup=_hardlink("copy.lstmae", "good.csv")),
    "out-onto-full-device": score("good.csv", "-m", "model.lstmae", "-o", "/dev/full",
                                  expect=["/dev/full", "No space left"]),
    "out-name-too-long": score("good.csv", "-m", "model.lstmae", "-o", LONG_NAME,
                               expect=["cannot write", "too long"]),
    # ---- 2. never call an anomaly normal: model files checked for meaning
    "model-nan-weight": info_bad("model.", "finite", setup=_tensor_edit(_nan_weight)),
    "model-scaler-std-zero": info_bad("scaler.std", "above 0", setup=_tensor_edit(
        lambda t: t.__setitem__("scaler.std", np.zeros_like(t["scaler.std"])))),
    "model-scaler-std-inf": info_bad("scaler.std", "finite", setup=_tensor_edit(
        lambda t: t.__setitem__("scaler.std", np.full_like(t["scaler.std"], np.inf)))),
    "model-scaler-mean-nan": score_bad("scaler.mean", setup=_tensor_edit(
        lambda t: t.__setitem__("scaler.mean", np.full_like(t["scaler.mean"], np.nan)))),
    "model-heldout-nan": info_bad("heldout_errors", setup=_tensor_edit(
        lambda t: t.__setitem__("heldout_errors", np.array([0.1, np.nan])))),
    "model-heldout-empty": info_bad("heldout_errors", setup=_tensor_edit(
        lambda t: t.__setitem__("heldout_errors", np.zeros(0)))),
    "model-threshold-nan": info_bad("threshold.value", setup=_meta_edit(
        _set("threshold.value", float("nan")))),
    "model-threshold-negative": score_bad("threshold.value", setup=_meta_edit(
        _set("threshold.value", -1.0))),
    "model-threshold-string": info_bad("threshold.value", setup=_meta_edit(
        _set("threshold.value", "0.3"))),
    "model-threshold-method-unknown": info_bad("threshold.method", setup=_meta_edit(
        _set("threshold.method", "magic"))),
    "model-threshold-floor-string": info_bad("threshold.floor", setup=_meta_edit(
        _set("threshold.floor", "high"))),
    "model-window-huge": info_bad("'window'", setup=_meta_edit(_set("window", 10**9))),
    "model-stride-zero": info_bad("'stride'", setup=_meta_edit(_set("stride", 0))),
    "model-stride-above-window": info_bad("'stride'", setup=_meta_edit(_set("stride", 99))),
    "model-hidden-huge": info_bad("model.hidden", setup=_meta_edit(
        _set("model.hidden", 10**6))),
    "model-layers-huge": score_bad("model.layers", setup=_meta_edit(
        _set("model.layers", 1000))),
    "model-error-unknown": info_bad("'error'", setup=_meta_edit(_set("error", "bogus"))),
    "model-peak-scale-inf": info_bad("peak_scale", setup=_meta_edit(
        _set("peak_scale", float("inf")))),
    "model-columns-repeated": info_bad("'columns'", setup=_meta_edit(_set("columns", ["a", "a"]))),
    "model-columns-not-a-list": info_bad("'columns'", setup=_meta_edit(_set("columns", "a,b"))),
    "model-training-field-missing": info_bad("training.rows", setup=_meta_edit(
        _set("training.rows", _DELETE))),
    "model-created-not-text": info_bad("created", setup=_meta_edit(_set("created", 5))),
    "model-metadata-nested-deep": info_bad("nests deeper", setup=_deep_metadata),
    "model-header-nested-deep": info_bad("nests deeper", setup=_deep_header),
    "model-header-claims-more-than-the-file": info_bad("truncated",
                                                       setup=_header_claims_too_much),
    "model-scaler-std-huge": info_bad("scaler.std", "hides", setup=_tensor_edit(
        lambda t: t.__setitem__("scaler.std", np.full_like(t["scaler.std"], 1e308)))),
    "model-threshold-huge": info_bad("threshold.value", "at most", setup=_meta_edit(
        _set("threshold.value", 1e308))),
    "model-heldout-huge": info_bad("heldout_errors", setup=_tensor_edit(
        lambda t: t.__setitem__("heldout_errors", np.full(5, 1e308)))),
    "model-peak-scale-zero": info_bad("peak_scale", setup=_meta_edit(_set("peak_scale", 0.0))),
    "model-tensor-shape-is-named": score_bad("model.head.weight", "shape", setup=_tensor_edit(
        lambda t: t.__setitem__("model.head.weight", np.zeros((3, 3), np.float32)))),
    "model-tensor-missing-is-named": score_bad("model.head.bias", setup=_tensor_edit(
        lambda t: t.pop("model.head.bias"))),
    "model-is-a-device": Case(("score", "good.csv", "-m", "/dev/zero", "-o", "out.csv"),
                              ("/dev/zero", "not a file")),
    # ---- absurd fit options, refused before training
    "fit-hidden-100000": fit("good.csv", "-m", "new.lstmae", "--hidden", "100000",
                             expect=["--hidden", "100000"]),
    "fit-seed-beyond-2-64": fit("good.csv", "-m", "new.lstmae", "--seed", str(2**64),
                                expect=["--seed", str(2**64)]),
    "fit-seed-huge": fit("good.csv", "-m", "new.lstmae", "--seed", str(2**200),
                         expect=["--seed"]),
    "fit-window-100000": fit("good.csv", "-m", "new.lstmae", "--window", "100000",
                             expect=["--window", "100000"]),
    "fit-layers-100": fit("good.csv", "-m", "new.lstmae", "--layers", "100",
                          expect=["--layers", "100"]),
    "fit-batch-size-huge": fit("good.csv", "-m", "new.lstmae", "--batch-size", str(10**9),
                               expect=["--batch-size"]),
    "fit-latent-times-hidden-too-big": fit("good.csv", "-m", "new.lstmae", "--hidden", "4096",
                                           "--layers", "16", expect=["weights", "--hidden"]),
    "fit-threads-huge": fit("good.csv", "-m", "new.lstmae", "--threads", "100000",
                            expect=["--threads"]),
    "fit-margin-inf": fit("good.csv", "-m", "new.lstmae", "--margin", "1e309",
                          expect=["--margin"]),
    "fit-epochs-huge": fit("good.csv", "-m", "new.lstmae", "--epochs", str(10**12),
                           expect=["--epochs"]),
    "fit-margin-gives-a-huge-threshold": fit("good.csv", "-m", "new.lstmae", "--margin",
                                             "1e308", expect=["threshold", "--margin"]),
    "score-batch-rows-huge": score("good.csv", "-m", "model.lstmae", "--batch-rows",
                                   str(10**12), expect=["--batch-rows"]),
    "score-top-huge": score("good.csv", "-m", "model.lstmae", "--top", str(10**12),
                            expect=["--top"]),
    # ---- 3. time as the user wrote it
    "time-day-month-ambiguous-fit": fit("dmy.csv", "-m", "new.lstmae",
                                        expect=["dmy.csv", "day first or month first",
                                                "--time-format '%d/%m/%Y %H:%M'"],
                                        setup=_frame_file("dmy.csv", _dmy)),
    "time-day-month-ambiguous-score": score("dmy.csv", "-m", "model.lstmae", "-o", "out.csv",
                                            expect=["dmy.csv", "--time-format"],
                                            setup=_frame_file("dmy.csv", _dmy)),
    "time-format-that-does-not-fit": score("good.csv", "-m", "model.lstmae", "-o", "out.csv",
                                           "--time-format", "%d/%m/%Y",
                                           expect=["cannot parse", "%d/%m/%Y"]),
    "time-format-not-a-format": score("good.csv", "-m", "model.lstmae", "--time-format",
                                      "hello", expect=["--time-format"]),
    "time-naive-and-aware-mixed": fit("mixed.csv", "-m", "new.lstmae",
                                      expect=["mixed.csv", "offset"],
                                      setup=_frame_file("mixed.csv", _naive_and_aware)),
    "time-type-changes-between-parquet-files": score(
        "mixed", "-m", "model.lstmae", "-o", "out.csv",
        expect=["part-1.parquet", "'timestamp'", "part-0.parquet"],
        setup=_parquet_folder_mixed_time),
    "time-type-changes-between-csv-batches": score(
        "nt.csv", "-m", "model.lstmae", "-o", "out.csv", "--batch-rows", "30",
        expect=["nt.csv", "'timestamp'", "numbers"],
        setup=_frame_file("nt.csv", _numbers_then_text)),
    "time-score-shuffled-rows": score("shuffled.csv", "-m", "model.lstmae", "-o", "out.csv",
                                      expect=["shuffled.csv", "not in time order"],
                                      setup=_frame_file("shuffled.csv", lambda: _frame().sample(
                                          frac=1.0, random_state=1))),
    "labels-interval-end-empty": Case(
        ("evaluate", "good.csv", "-m", "model.lstmae", "--labels", "lab.csv"),
        ("lab.csv", "'end'", "row 2", "empty"),
        _write("lab.csv", "start,end\n2026-01-01 00:10,2026-01-01 00:20\n2026-01-01 00:30,\n")),
    "labels-interval-start-after-end": Case(
        ("evaluate", "good.csv", "-m", "model.lstmae", "--labels", "lab.csv"),
        ("lab.csv", "ends before it starts"),
        _write("lab.csv", "start,end\n2026-01-01 00:30,2026-01-01 00:20\n")),
    "labels-offset-but-data-naive": Case(
        ("evaluate", "good.csv", "-m", "model.lstmae", "--labels", "lab.csv"),
        ("lab.csv", "UTC offset"),
        _write("lab.csv", "start,end\n2026-01-01T00:10+01:00,2026-01-01T00:20+01:00\n")),
    "labels-rows-not-numbers": Case(
        ("evaluate", "rows.csv", "-m", "rows.lstmae", "--labels", "lab.csv"),
        ("lab.csv", "not a row number"),
        lambda f, b: (_write("lab.csv", "start,end\nfoo,3\n")(f, b),)),
    # ---- 4. names and shapes
    "names-repeated-in-csv-fit": fit("dup.csv", "-m", "new.lstmae",
                                     expect=["dup.csv", "'a'", "more than once"],
                                     setup=_write("dup.csv", "timestamp,a,a\n" + "\n".join(
                                         f"2026-01-01 00:{i:02d},{i},{i}" for i in range(30)))),
    "names-repeated-in-csv-score": score("dup.csv", "-m", "model.lstmae", "-o", "out.csv",
                                         expect=["dup.csv", "'b'"],
                                         setup=_write("dup.csv", "timestamp,a,b,b\n" + "\n".join(
                                             f"2026-01-01 00:{i:02d},{i},{i},1"
                                             for i in range(30)))),
    "names-repeated-on-stdin": Case(("score", "-", "-m", "model.lstmae", "-o", "out.csv"),
                                    ("<stdin>", "'a'"), None),
    "names-repeated-in-parquet": fit("dup.parquet", "-m", "new.lstmae",
                                     expect=["dup.parquet", "'a'"],
                                     setup=_parquet_duplicate_names),
    "names-repeated-in-columns-option": fit("good.csv", "-m", "new.lstmae", "--columns",
                                            "a,b,a", expect=["--columns", "'a'"]),
    "names-recon-collides": Case(
        ("reconstruct", "recon_names.csv", "-m", "recon_names.lstmae", "-o", "out.csv"),
        ("'a_recon'", "twice"), _copy_model("recon_names")),
    "names-time-column-called-score": Case(
        ("score", "score_time.csv", "-m", "score_time.lstmae", "--level", "point", "-o",
         "out.csv"), ("'score'", "twice"), _copy_model("score_time")),
    # ---- 5. exit status: closed streams
    "stdout-closed": Case((), ("standard output is closed",),
                          shell="lstmae score good.csv -m model.lstmae >&-"),
    "stdout-full": Case((), ("cannot write standard output", "No space left"),
                        shell="lstmae score good.csv -m model.lstmae > /dev/full"),
    "help-into-a-full-stdout": Case((), ("cannot write standard output",),
                                    shell="lstmae --help > /dev/full"),
    "info-stdout-closed": Case((), ("standard output is closed",),
                               shell="lstmae info model.lstmae >&-"),
    "stdin-closed": Case((), ("<stdin>", "closed"),
                         shell="lstmae score - -m model.lstmae -o out.csv <&-"),
    # ---- 6. messages that lead to the fix
    "score-missing-column-lists-found": score("only_a.csv", "-m", "model.lstmae", "-o", "o.csv",
                                              expect=["missing column(s) b",
                                                      "the data has: timestamp, a"],
                                              setup=_frame_file("only_a.csv", lambda: _frame()[
                                                  ["timestamp", "a"]])),
    "score-too-short-says-rows-needed": score("short.csv", "-m", "model.lstmae", "-o", "o.csv",
                                              expect=["short.csv", "3 usable row",
                                                      "at least 4 rows"],
                                              setup=_frame_file("short.csv",
                                                                lambda: _frame().iloc[:3])),
    "huge-cell-is-cut": fit("cell.csv", "-m", "new.lstmae", "--columns", "a,b",
                            expect=["cell.csv", "column 'a'", "…"],
                            setup=_frame_file("cell.csv", _with_huge_cell)),
    "huge-time-value-is-cut": fit("hugetime.csv", "-m", "new.lstmae",
                                  expect=["hugetime.csv", "cannot parse", "…"],
                                  setup=_frame_file("hugetime.csv", _with_huge_time)),
    "huge-column-name-is-cut": fit("good.csv", "-m", "new.lstmae", "--columns", "a," + "c" * 5000,
                                   expect=["missing column(s) ccc", "…"]),
}
STDIN = {"names-repeated-on-stdin": b"timestamp,a,a\n2026-01-01,1,2\n"}
ROWS_MODEL = {"labels-rows-not-numbers"}


def test_case_count():
    assert len(CASES) >= 60


# ---------------------------------------------------------------- the check
def _snapshot(folder: Path) -> dict:
    """Every entry under `folder`: bytes and mtime of files, targets of links."""
    state = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_file():
            stat = path.stat()
            state[rel] = (path.read_bytes(), stat.st_mtime_ns, stat.st_ino)
        else:
            state[rel] = None
    return state


def _run_case(name: str, case: Case, folder: Path, base: Path):
    shutil.copy2(base / "model.lstmae", folder / "model.lstmae")
    shutil.copy2(base / "good.csv", folder / "good.csv")
    if name in ROWS_MODEL:
        _csv(_frame().drop(columns="timestamp"), folder / "rows.csv")
        run_lstmae("fit", "rows.csv", "-m", "rows.lstmae", *TINY, cwd=folder, check=True)
    if case.setup is not None:
        case.setup(folder, base)
    before = _snapshot(folder)
    if case.shell:
        env = {**os.environ, "PATH": f"{LSTMAE.parent}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(["sh", "-c", case.shell], cwd=folder, capture_output=True,
                              env=env, timeout=300)
        proc.stdout_text = proc.stdout.decode("utf-8", "replace")
        proc.stderr_text = proc.stderr.decode("utf-8", "replace")
    else:
        proc = run_lstmae(*case.args, cwd=folder, input=STDIN.get(name))
    return proc, before, _snapshot(folder)


@pytest.fixture(scope="module")
def runs(base, tmp_path_factory) -> dict:
    """Every case, run up front two at a time (most of each is importing torch)."""
    root = tmp_path_factory.mktemp("edge_runs")
    jobs = []
    for i, (name, case) in enumerate(CASES.items()):
        folder = root / f"case{i}"
        folder.mkdir()
        jobs.append((name, case, folder))
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda job: _run_case(*job, base), jobs))
    return {name: result for (name, _, _), result in zip(jobs, done, strict=True)}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_with_one_line_and_nothing_changed(name, runs):
    case = CASES[name]
    proc, before, after = runs[name]
    err = proc.stderr_text
    lines = err.splitlines()
    problems = []
    if "Traceback" in err:
        problems.append("a traceback")
    if proc.returncode != 2:
        problems.append(f"exit status {proc.returncode}, expected 2")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"{len(lines)} stderr lines, expected one 'error: ' line")
    elif [s for s in case.expect if s not in lines[0]]:
        problems.append(f"error line lacks {[s for s in case.expect if s not in lines[0]]}")
    elif len(lines[0]) > 600:
        problems.append(f"error line of {len(lines[0])} characters")
    if proc.stdout:
        problems.append(f"stdout not empty ({proc.stdout[:200]!r})")
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        problems.append(f"files changed, created or removed: {changed}")
    assert not problems, f"{name}: {problems}\nstderr:\n{err[-2000:]}"


# ---------------------------------------------------------------- successes at the edges
def test_offsets_come_back_as_written_in_csv_json_and_parquet(base, tmp_path):
    frame = _frame(tz="UTC").assign(timestamp=lambda f: f["timestamp"].dt.tz_convert("+01:00"))
    frame.assign(timestamp=[t.isoformat() for t in frame["timestamp"]]).to_csv(
        tmp_path / "plus1.csv", index=False)
    frame.to_parquet(tmp_path / "plus1.parquet", index=False)
    run_lstmae("fit", "plus1.csv", "-m", "m.lstmae", *TINY, cwd=tmp_path, check=True)
    csv_rows = run_lstmae("score", "plus1.csv", "-m", "m.lstmae", "--level", "point", "-q",
                          cwd=tmp_path, check=True).stdout_text.splitlines()
    assert csv_rows[1].startswith("2026-01-01 01:00:00+01:00,")  # not 00:00 naive UTC
    windows = run_lstmae("score", "plus1.csv", "-m", "m.lstmae", "-f", "json", "-q",
                         cwd=tmp_path, check=True).stdout_text.splitlines()
    first = json.loads(windows[0])
    assert first["start"] == "2026-01-01T01:00:00+01:00"
    assert first["end"] == "2026-01-01T01:03:00+01:00"
    run_lstmae("score", "plus1.parquet", "-m", "m.lstmae", "-o", "out.parquet", "-q",
               cwd=tmp_path, check=True)
    back = pd.read_parquet(tmp_path / "out.parquet")
    assert str(back["start"].dt.tz) == "UTC+01:00"
    assert back["start"].iloc[0] == pd.Timestamp("2026-01-01 00:00", tz="UTC")
    info = run_lstmae("info", "m.lstmae", "--json", cwd=tmp_path, check=True)
    assert json.loads(info.stdout_text)["training"]["first_time"] == "2026-01-01 01:00:00+01:00"


def test_daylight_saving_offsets_are_read_as_instants_and_kept(tmp_path):
    stamps = pd.date_range("2026-03-29 00:00", periods=120, freq="10min", tz="Europe/Berlin")
    frame = _frame(120).assign(timestamp=[t.isoformat() for t in stamps])
    _csv(frame, tmp_path / "dst.csv")
    proc = run_lstmae("fit", "dst.csv", "-m", "m.lstmae", *TINY, cwd=tmp_path, check=True)
    assert proc.stderr_text == ""  # no step back, no sorting: offsets make the instants
    rows = run_lstmae("score", "dst.csv", "-m", "m.lstmae", "--level", "point", "-q",
                      cwd=tmp_path, check=True).stdout_text.splitlines()
    times = [r.split(",")[0] for r in rows[1:]]
    assert "2026-03-29 01:50:00+01:00" in times and "2026-03-29 03:00:00+02:00" in times
    assert times.index("2026-03-29 03:00:00+02:00") == times.index(
        "2026-03-29 01:50:00+01:00") + 1


def test_a_clock_stepping_back_keeps_file_order_in_fit_and_score(tmp_path):
    nab = SHARED_DATA / "nab-dev" / "realKnownCause" / "machine_temperature_system_failure.csv"
    if not nab.exists():
        pytest.skip("../shared/data is not here")
    head = pd.read_csv(nab).iloc[9000:11000]  # steps back from 02:55 to 02:00 on 2014-01-07
    head.to_csv(tmp_path / "mt.csv", index=False)
    fit_run = run_lstmae("fit", "mt.csv", "-m", "m.lstmae", *TINY, cwd=tmp_path, check=True)
    assert "steps back 1 time(s)" in fit_run.stderr_text
    assert "2014-01-07 02:55:00 to 2014-01-07 02:00:00" in fit_run.stderr_text
    for batch in ("100000", "1149", "1150"):  # the step at and around a batch boundary
        proc = run_lstmae("score", "mt.csv", "-m", "m.lstmae", "--level", "point",
                          "--batch-rows", batch, cwd=tmp_path, check=True)
        rows = proc.stdout_text.splitlines()
        assert rows[1:] and [r.split(",")[0] for r in rows[1:]] == head["timestamp"].tolist()
        assert proc.stderr_text.count("steps back") == 1


def test_day_month_dates_are_read_with_time_format_stored_in_the_model(tmp_path):
    frame = _frame(freq="h")
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%d/%m/%Y %H:%M")).to_csv(
        tmp_path / "dmy.csv", index=False)
    run_lstmae("fit", "dmy.csv", "-m", "m.lstmae", *TINY, "--time-format", "%d/%m/%Y %H:%M",
               cwd=tmp_path, check=True)
    proc = run_lstmae("score", "dmy.csv", "-m", "m.lstmae", "--level", "point", "-q",
                      cwd=tmp_path, check=True)
    first = proc.stdout_text.splitlines()[-1].split(",")[0]
    assert first == str(frame["timestamp"].iloc[-1])  # 5 January, not 1 May


def test_index_like_columns_are_not_modelled_and_time_like_ones_are_time(tmp_path):
    frame = _frame().drop(columns="timestamp")
    frame.to_csv(tmp_path / "pandas_index.csv")  # an "Unnamed: 0" column 0, 1, 2 ...
    proc = run_lstmae("fit", "pandas_index.csv", "-m", "a.lstmae", *TINY, cwd=tmp_path,
                      check=True)
    assert "'Unnamed: 0'" in proc.stderr_text or "Unnamed: 0" in proc.stderr_text
    meta = json.loads(run_lstmae("info", "a.lstmae", "--json", cwd=tmp_path).stdout_text)
    assert meta["columns"] == ["a", "b"]
    frame.assign(epoch=1_700_000_000 + 60 * np.arange(len(frame))).to_csv(
        tmp_path / "epoch.csv", index=False)
    run_lstmae("fit", "epoch.csv", "-m", "b.lstmae", *TINY, cwd=tmp_path, check=True)
    meta = json.loads(run_lstmae("info", "b.lstmae", "--json", cwd=tmp_path).stdout_text)
    assert meta["columns"] == ["a", "b"] and meta["time_col"] == "epoch"
    assert meta["interval"] == 60


def test_another_interval_and_gaps_are_warned_about(base, tmp_path):
    _csv(_frame(freq="5min"), tmp_path / "five.csv")
    proc = run_lstmae("score", "five.csv", "-m", str(base / "model.lstmae"), "-q", "-o",
                      "out.csv", cwd=tmp_path, check=True)
    assert "5 min apart" in proc.stderr_text and "1 min apart" in proc.stderr_text
    gap = _frame()
    gap.loc[60:, "timestamp"] += pd.Timedelta("3h")
    _csv(gap, tmp_path / "gap.csv")
    proc = run_lstmae("score", "gap.csv", "-m", str(base / "model.lstmae"), "-q", "-o",
                      "out.csv", cwd=tmp_path, check=True)
    assert "1 gap(s)" in proc.stderr_text and "after 2026-01-01 00:59:00" in proc.stderr_text


def test_extreme_values_are_anomalous_never_normal(base, tmp_path):
    frame = _frame()
    frame.loc[80, "a"] = 1e37  # within the range check, far beyond float32 once scaled
    _csv(frame, tmp_path / "extreme.csv")
    proc = run_lstmae("score", "extreme.csv", "-m", str(base / "model.lstmae"), "-q",
                      "--fail-on-anomaly", "--threshold", "1e30", "-f", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr_text
    rows = [json.loads(line) for line in proc.stdout_text.splitlines()]  # valid JSON
    hit = [r for r in rows if r["anomaly"]]
    assert hit and all(r["error"] > 1e30 for r in hit)
    assert {r["window"] for r in hit} == set(range(77, 81))


def test_non_finite_errors_are_anomalous(small_detector, small_frame):
    import torch

    det = small_detector
    original = det.model_.head.bias.data.clone()
    try:
        det.model_.head.bias.data[:] = float("nan")  # a model that outputs NaN
        scores = det.score(small_frame, threshold=1e300)
    finally:
        det.model_.head.bias.data.copy_(original)
    assert scores["anomaly"].all()
    assert np.isinf(scores["error"]).all()
    assert torch.isfinite(det.model_.head.bias).all()


def test_a_derived_infinite_threshold_names_the_model(base):
    from lstmae import Detector
    from lstmae.errors import OptionError

    det = Detector.load(base / "model.lstmae")
    det.heldout_errors_ = np.array([10.0])  # 1e308 times it overflows
    with pytest.raises(OptionError, match=r"'margin' 1e\+308 on .*model.lstmae's held-out"):
        det.threshold_for(margin=1e308)


def test_outputs_into_devices_and_fifos_are_streams(base, tmp_path):
    shutil.copy2(base / "model.lstmae", tmp_path / "model.lstmae")
    shutil.copy2(base / "good.csv", tmp_path / "good.csv")
    before = os.stat("/dev/null")
    proc = run_lstmae("score", "good.csv", "-o", "/dev/null", "-q", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr_text == ""
    after = os.stat("/dev/null")
    assert (before.st_ino, before.st_rdev) == (after.st_ino, after.st_rdev)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    proc = run_lstmae("score", "good.csv", "-o", "pipe", "-q", cwd=tmp_path)
    out, _ = reader.communicate(timeout=60)
    assert proc.returncode == 0, proc.stderr_text
    assert out.decode().startswith("window,start,end,error")
    assert len(out.decode().splitlines()) == 120 - 4 + 2
    assert fifo.is_fifo()


def test_a_full_disk_leaves_the_old_output_whole(base, tmp_path):
    shutil.copy2(base / "model.lstmae", tmp_path / "model.lstmae")
    shutil.copy2(base / "good.csv", tmp_path / "good.csv")
    (tmp_path / "out.csv").write_text("old results\n")

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # writes fail past 4 KiB

    proc = subprocess.run([str(LSTMAE), "score", "good.csv", "--level", "point", "-o",
                           "out.csv", "-q"], cwd=tmp_path, capture_output=True,
                          preexec_fn=small_disk, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("error: cannot write out.csv") and "Traceback" not in err
    assert (tmp_path / "out.csv").read_text() == "old results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv", "model.lstmae",
                                                          "out.csv"]


def test_a_long_valid_name_can_be_written(base, tmp_path):
    name = "r" * 251 + ".csv"  # 255 bytes: the limit of ext4, tmpfs, xfs
    proc = run_lstmae("score", str(base / "good.csv"), "-m", str(base / "model.lstmae"), "-o",
                      name, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr_text
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_replacing_an_output_keeps_its_mode_and_writes_through_a_symlink(base, tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    real.chmod(0o640)
    (tmp_path / "link.csv").symlink_to("real.csv")
    run_lstmae("score", str(base / "good.csv"), "-m", str(base / "model.lstmae"), "-o",
               "link.csv", "-q", cwd=tmp_path, check=True)
    assert (tmp_path / "link.csv").is_symlink()
    assert real.read_text().startswith("window,start")
    assert real.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_remove_the_temporary_file(base, tmp_path, signum):
    shutil.copy2(base / "good.csv", tmp_path / "good.csv")
    (tmp_path / "model.lstmae").write_bytes(b"old model")
    proc = subprocess.Popen(
        [str(LSTMAE), "fit", "good.csv", "-m", "model.lstmae", "--epochs", "100000",
         "--window", "4", "--hidden", "4", "--val-fraction", "0", "-q"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until it trains: a few CPU seconds
        time.sleep(0.2)
        cpu = float(open(f"/proc/{proc.pid}/stat").read().split()[13]) / 100
        if cpu > 3.0:
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.decode().strip() == (f"interrupted by {signal.Signals(signum).name}: "
                                    "nothing was written")
    assert (tmp_path / "model.lstmae").read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv", "model.lstmae"]


def test_a_reader_closing_the_pipe_ends_quietly(base, tmp_path):
    _csv(_frame(20_000), tmp_path / "long.csv")  # ~1 MB of rows: more than a pipe holds
    proc = subprocess.Popen([str(LSTMAE), "score", str(tmp_path / "long.csv"), "-m",
                             str(base / "model.lstmae"), "--level", "point", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"timestamp,score")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0 and err == b""


def test_event_rows_are_json_lines(base):
    proc = run_lstmae("score", str(base / "good.csv"), "-m", str(base / "model.lstmae"),
                      "--level", "event", "-f", "json", "--threshold", "0", "-q", check=True)
    rows = [json.loads(line) for line in proc.stdout_text.splitlines()]
    assert rows and rows[0]["start"] == "2026-01-01T00:00:00"


def test_evaluate_aligns_a_label_column_with_sorted_rows(base, tmp_path):
    frame = _frame()
    order = np.r_[np.arange(60, 120), np.arange(0, 60)]  # exported second half first
    frame.iloc[order].to_csv(tmp_path / "halves.csv", index=False)
    labels = np.zeros(120, dtype=int)
    labels[100:110] = 1  # rows 100-109 in time order
    pd.DataFrame({"label": labels[order]}).to_csv(tmp_path / "lab.csv", index=False)
    report = json.loads(run_lstmae(
        "evaluate", "halves.csv", "-m", str(base / "model.lstmae"), "--labels", "lab.csv",
        "--json", "--sliding-window", "0", cwd=tmp_path, check=True).stdout_text)
    assert report["anomalous_rows"] == 10 and report["events"] == 1


def test_a_huge_constant_column_does_not_hide_anomalies(tmp_path):
    frame = _frame()
    frame["a"] = 1e30  # its float64 mean is off by ~1e14: it must not become the error
    _csv(frame, tmp_path / "train.csv")
    run_lstmae("fit", "train.csv", "-m", "m.lstmae", *TINY, cwd=tmp_path, check=True)
    meta = json.loads(run_lstmae("info", "m.lstmae", "--json", cwd=tmp_path).stdout_text)
    assert meta["threshold"]["value"] < 100
    frame.loc[60:70, "b"] = 1e6
    _csv(frame, tmp_path / "test.csv")
    proc = run_lstmae("score", "test.csv", "-m", "m.lstmae", "--fail-on-anomaly", "-q",
                      cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr_text


def test_a_full_or_closed_stderr_does_not_change_the_status(base, tmp_path):
    env = {**os.environ, "PATH": f"{LSTMAE.parent}{os.pathsep}{os.environ['PATH']}"}
    model, data = base / "model.lstmae", base / "good.csv"
    for redirect in ("2>/dev/full", "2>&-"):
        ok = subprocess.run(f"lstmae score {data} -m {model} -o out.csv {redirect}",
                            shell=True, cwd=tmp_path, env=env, timeout=300)
        assert ok.returncode == 0
        bad = subprocess.run(f"lstmae score {data} -m nope.lstmae -o out.csv {redirect}",
                             shell=True, cwd=tmp_path, env=env, timeout=300)
        assert bad.returncode == 2


def test_dev_stdout_into_a_file_is_a_stream(base, tmp_path):
    env = {**os.environ, "PATH": f"{LSTMAE.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(f"lstmae score {base / 'good.csv'} -m {base / 'model.lstmae'} "
                          "-o /dev/stdout -q > out.txt", shell=True, cwd=tmp_path, env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.txt").read_text().startswith("window,start,end")


def test_escape_sequences_from_a_model_file_are_not_sent_to_the_terminal(base, tmp_path):
    tensors, meta = _model_parts(base)
    meta["columns"] = ["\x1b[2J\x1b[31ma", "b\nc"]
    _save(tmp_path / "ansi.lstmae", tensors, meta)
    proc = run_lstmae("info", "ansi.lstmae", cwd=tmp_path, check=True)
    assert "\x1b" not in proc.stdout_text and "\\x1b[2J" in proc.stdout_text
    proc = run_lstmae("score", str(base / "good.csv"), "-m", "ansi.lstmae", cwd=tmp_path)
    assert proc.returncode == 2 and "\x1b" not in proc.stderr_text
    assert len(proc.stderr_text.splitlines()) == 1
