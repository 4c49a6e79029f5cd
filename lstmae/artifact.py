"""The model file: safetensors tensors plus JSON metadata, in one file.

Layout (the safetensors format): an 8-byte little-endian header length, a JSON
header describing each tensor (dtype, shape, byte range) with a `__metadata__`
map of strings, then the raw tensor bytes. lstmae keeps its metadata as one JSON
document under `__metadata__["lstmae"]` and a SHA-256 over that document and
every tensor's bytes under `__metadata__["sha256"]`.

A model file is untrusted input: it is parsed as data only (never unpickled);
every size it claims is checked against caps and the real file size before
anything is allocated, and only as many bytes as its header describes are read;
JSON nesting is bounded before it is parsed; the checksum catches truncation and
flipped bytes; and `check_meaning` refuses a well-formed file whose contents
could not have come from `fit` (a NaN weight, a zero scale, a negative
threshold), naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from pathlib import Path

import numpy as np

from lstmae import params as limits
from lstmae.errors import ModelFileError, shorten
from lstmae.output import atomic_output

FORMAT_NAME = "lstmae"
FORMAT_VERSION = 1
# The largest legitimate file: MAX_PARAMETERS float32 weights and some held-out errors.
MAX_FILE_BYTES = 512 * 1024**2
MAX_HEADER_BYTES = 4 * 1024**2
MAX_JSON_DEPTH = 32  # lstmae writes at most 3 levels; json.loads recurses per level
MAX_TENSORS = 1000
MAX_TEXT = 10_000  # characters of any one string field


def _checksum(metadata_json: str, tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(metadata_json.encode("utf-8"))
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(name.encode("utf-8"))
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_model_file(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict
) -> None:
    """Write tensors and metadata atomically: the old file stays whole until the new one is."""
    from safetensors.numpy import save

    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata}
    metadata_json = json.dumps(metadata, sort_keys=True)
    tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    blob = save(
        tensors,
        metadata={"lstmae": metadata_json, "sha256": _checksum(metadata_json, tensors)},
    )
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(blob)


def load_model_file(
    path: str | os.PathLike, meaning: bool = True
) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a model file; any problem is a ModelFileError naming the file.

    meaning=False checks the format and the checksum only (for tests that build a
    file whose contents lie)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file; train one with `lstmae fit`")
    if not path.is_file():
        raise ModelFileError(f"{path}: is not a file; give the path of a model file")
    try:
        blob, header = _read_bounded(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror or exc}); check the "
                             "path and its permissions") from None
    raw_meta = header.pop("__metadata__", None)
    if not isinstance(raw_meta, dict) or not isinstance(raw_meta.get("lstmae"), str):
        raise ModelFileError(f"{path}: is a safetensors file but not an lstmae model")
    metadata = _parse_json(raw_meta["lstmae"], path, "model metadata")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: is not an lstmae model file")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {shorten(version)} is not supported by this "
            f"lstmae (reads version {FORMAT_VERSION}); refit the model with this version"
        )
    tensors = _read_tensors(path, blob)
    if raw_meta.get("sha256") != _checksum(raw_meta["lstmae"], tensors):
        raise ModelFileError(f"{path}: checksum mismatch; the model file is damaged, refit it")
    if meaning:
        check_meaning(path, metadata, tensors)
    return tensors, metadata


def _read_bounded(path: Path) -> tuple[bytes, dict]:
    """The header and exactly the tensor bytes it describes, checked against the file
    size before they are read (a header may not make lstmae allocate what is not there)."""
    not_model = f"{path}: is not an lstmae model file (or is truncated)"
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {size} bytes is larger than any lstmae model file")
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelFileError(not_model)
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise ModelFileError(not_model)
        header_bytes = handle.read(header_len)
        header = _parse_json(header_bytes, path, "header", not_model=True)
        extent = _tensor_extent(header, path)
        if 8 + header_len + extent > size:
            raise ModelFileError(f"{path}: is truncated ({size} bytes, its header describes "
                                 f"{8 + header_len + extent}); the file is damaged, refit it")
        body = handle.read(extent)
    return prefix + header_bytes + body, header


def _tensor_extent(header: dict, path: Path) -> int:
    """Bytes of tensor data the safetensors header describes (each entry checked)."""
    entries = [(name, entry) for name, entry in header.items() if name != "__metadata__"]
    if len(entries) > MAX_TENSORS:
        raise ModelFileError(f"{path}: lists {len(entries)} tensors; not an lstmae model file")
    extent = 0
    for name, entry in entries:
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(_is_int(x) and 0 <= x <= MAX_FILE_BYTES for x in offsets)
                and offsets[0] <= offsets[1]):
            raise ModelFileError(f"{path}: tensor {shorten(name)!r} has no valid byte range; "
                                 "the file is damaged")
        extent = max(extent, offsets[1])
    return extent


def _json_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text, counted without recursion."""
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', "", text).encode()
    codes = np.frombuffer(skeleton, dtype=np.uint8)
    steps = np.isin(codes, (91, 123)).astype(np.int64) - np.isin(codes, (93, 125))
    return int(np.cumsum(steps).max()) if steps.size else 0


def _parse_json(data: bytes | str, path: Path, what: str, not_model: bool = False):
    bad = (f"{path}: is not an lstmae model file (or is truncated)" if not_model
           else f"{path}: {what} is not valid JSON; the file is damaged")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ModelFileError(bad) from None
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: {what} nests deeper than {MAX_JSON_DEPTH} levels; "
                             "not an lstmae model file")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFileError(bad) from None
    if not_model and not isinstance(value, dict):
        raise ModelFileError(bad)
    return value


def _read_tensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ModelFileError(
            f"{path}: tensors cannot be read ({shorten(exc, 120)}); the file is damaged"
        ) from None


# ------------------------------------------------------------ meaning
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_text(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


class _Check:
    """Refusals that name the model file and the field: `field 'threshold.value' ...`."""

    def __init__(self, path):
        self.path = path

    def fail(self, name: str, rule: str, value=None) -> None:
        found = "" if value is None else f" (found {shorten(json.dumps(value, default=str))})"
        raise ModelFileError(
            f"{self.path}: field '{name}' must be {rule}{found}; the model file is damaged or "
            "was not written by lstmae"
        )

    def get(self, meta: dict, name: str, ok, rule: str, optional: bool = False):
        """meta[name] after checking it with ok(value); a dotted name for the message."""
        key = name.rsplit(".", 1)[-1]
        if not isinstance(meta, dict) or key not in meta:
            if optional:
                return None
            self.fail(name, f"present ({rule})")
        value = meta[key]
        if not (optional and value is None) and not ok(value):
            self.fail(name, rule, value)
        return value

    def integer(self, meta, name, low, high, optional=False):
        return self.get(meta, name, lambda v: _is_int(v) and low <= v <= high,
                        f"an integer from {low} to {high}", optional)

    def number(self, meta, name, low=0.0, high=math.inf, optional=False, above=False):
        def ok(v):
            return _is_number(v) and math.isfinite(v) and (v > low if above else v >= low) \
                and v <= high
        rule = f"a finite number {'above' if above else 'of at least'} {low:g}"
        if high < math.inf:
            rule += f" and at most {high:g}"
        return self.get(meta, name, ok, rule, optional)

    def text(self, meta, name, optional=False):
        return self.get(meta, name, _is_text, f"a string of at most {MAX_TEXT} characters",
                        optional)

    def choice(self, meta, name, choices, optional=False):
        return self.get(meta, name, lambda v: v in choices, f"one of {', '.join(choices)}",
                        optional)


def check_meaning(path, meta: dict, tensors: dict[str, np.ndarray]) -> None:
    """Refuse a model file whose fields `fit` could not have written, naming the field.

    Every field that `score`, `info` and the others read is checked here, so that
    later code can trust it: no NaN weight scores every window as normal, no
    zero scale divides by zero, no giant shape allocates memory.
    """
    check = _Check(path)
    for name in ("lstmae_version", "torch_version", "created"):
        check.text(meta, name)
    columns = check.get(meta, "columns", lambda v: isinstance(v, list)
                        and 1 <= len(v) <= limits.MAX_COLUMNS
                        and all(isinstance(c, str) and 0 < len(c) <= 1000 for c in v)
                        and len(set(v)) == len(v),
                        f"a list of 1 to {limits.MAX_COLUMNS} distinct column names")
    check.text(meta, "time_col", optional=True)
    check.choice(meta, "time_kind", ("rows", "number", "naive", "aware"), optional=True)
    check.get(meta, "time_format", lambda v: isinstance(v, str) and len(v) <= 200,
              "a strftime format", optional=True)
    check.number(meta, "interval", above=True, optional=True)
    window = check.integer(meta, "window", 2, limits.MAX_WINDOW)
    check.integer(meta, "stride", 1, window)
    check.choice(meta, "loss", limits.LOSSES + tuple(limits.ALIASES["loss"]))
    check.choice(meta, "error", limits.ERRORS, optional=True)
    check.number(meta, "peak_scale", above=True, high=1.0, optional=True)  # a quantile ratio

    context = check.get(meta, "context", lambda v: isinstance(v, list) and all(
        isinstance(c, str) for c in v) and len(set(v)) == len(v) and set(v) < set(columns),
        "a list of some (not all) of the columns", optional=True) or []
    check.get(meta, "left_out", lambda v: isinstance(v, list) and len(v) <= limits.MAX_COLUMNS
              and all(_is_text(c) for c in v) and len(set(v)) == len(v)
              and not set(v) & set(columns),
              "a list of names that are not columns (context left out at fit)", optional=True)
    model = check.get(meta, "model", lambda v: isinstance(v, dict) and (
        set(v) - {"outputs"}) == {"n_features", "hidden", "latent", "layers"},
        "n_features, hidden, latent, layers and outputs")
    clock = check.get(meta, "clock", lambda v: isinstance(v, bool), "true or false",
                      optional=True)
    inputs = len(columns) + (2 if clock else 0)  # the clock: sin and cos of the time of day
    n_features = check.integer(model, "model.n_features", inputs, inputs)
    scored = [i for i, c in enumerate(columns) if c not in context]
    check.get(model, "model.outputs", lambda v: v == (scored if context or clock else None),
              "the columns that are not context", optional=not (context or clock))
    hidden = check.integer(model, "model.hidden", 1, limits.MAX_HIDDEN)
    latent = check.integer(model, "model.latent", 1, limits.MAX_LATENT)
    layers = check.integer(model, "model.layers", 1, limits.MAX_LAYERS)
    if limits.lstm_parameters(n_features, hidden, latent, layers) > limits.MAX_PARAMETERS:
        check.fail("model", f"a model of at most {limits.MAX_PARAMETERS:,} weights", model)

    threshold = check.get(meta, "threshold", lambda v: isinstance(v, dict), "an object")
    check.number(threshold, "threshold.value", high=limits.MAX_ERROR)
    method = check.choice(threshold, "threshold.method", limits.THRESHOLD_METHODS)
    setting = {"max": "margin", "quantile": "quantile", "pot": "risk", "sigma": "sigma"}[method]
    if method in ("quantile", "pot"):
        check.get(threshold, f"threshold.{setting}",
                  lambda v: _is_number(v) and 0 < v < 1, "a number between 0 and 1")
    else:
        check.number(threshold, f"threshold.{setting}", above=True)
    check.integer(threshold, "threshold.windows", 0, 2**53)
    check.text(threshold, "threshold.source")
    # present when the rule gave less than lstmae.threshold.MIN_THRESHOLD
    check.number(threshold, "threshold.floor", high=limits.MAX_ERROR, optional=True)

    long = check.get(meta, "long_window", lambda v: isinstance(v, dict), "an object",
                     optional=True)
    if long is not None:  # the second model (lstmae.detector.LongModel)
        long_window = check.integer(long, "long_window.window", window + 1, limits.MAX_WINDOW)
        # rows per step of the second model (absent in files written before steps: 1)
        check.get(long, "long_window.step",
                  lambda v: _is_int(v) and 1 <= v < long_window and long_window % v == 0,
                  f"an integer that divides long_window.window ({long_window}) into at "
                  "least 2 steps", optional=True)
        # above 0: the first model's threshold is divided by it
        check.number(long, "long_window.threshold", above=True, high=limits.MAX_ERROR)
        check.number(long, "long_window.peak_scale", above=True, high=1.0, optional=True)
        long_training = check.get(long, "long_window.training", lambda v: isinstance(v, dict),
                                  "an object")
        for name in ("train_windows", "val_windows", "epochs_run", "best_epoch"):
            check.integer(long_training, f"long_window.training.{name}", 0, 2**53)
        check.number(long_training, "long_window.training.best_loss")

    training = check.get(meta, "training", lambda v: isinstance(v, dict), "an object")
    for name in ("rows", "train_windows", "val_windows", "epochs_run", "best_epoch"):
        check.integer(training, f"training.{name}", 0, 2**53)
    check.integer(training, "training.processes", 1, 1 << 20, optional=True)
    check.number(training, "training.best_loss")
    check.number(training, "training.seconds")
    for name in ("monitored", "device"):
        check.text(training, f"training.{name}")
    check.text(training, "training.precision", optional=True)
    for name in ("stopped_early", "interrupted"):
        check.get(training, f"training.{name}", lambda v: isinstance(v, bool), "true or false")
    for name in ("first_time", "last_time"):
        check.get(training, f"training.{name}", lambda v: _is_text(v) or (
            _is_number(v) and math.isfinite(v)), "a time or a number")
    check.get(meta, "params", lambda v: isinstance(v, dict), "an object")

    _check_tensors(check, tensors, len(columns))


def _check_tensors(check: _Check, tensors: dict[str, np.ndarray], n_columns: int) -> None:
    for name in ("scaler.mean", "scaler.std", "heldout_errors"):
        if name not in tensors:
            check.fail(name, "present in the file")
    for name, array in tensors.items():
        if array.dtype.kind != "f":
            check.fail(name, f"a float tensor (found {array.dtype})")
        if not np.isfinite(array).all():
            check.fail(name, "finite numbers (it holds NaN or infinity)")
    for name in ("scaler.mean", "scaler.std"):
        if tensors[name].shape != (n_columns,):
            check.fail(name, f"one number per column: its shape {list(tensors[name].shape)} "
                       f"does not match the {n_columns} column(s)")
    std, mean = tensors["scaler.std"], tensors["scaler.mean"]
    if not ((std > 0).all() and (std <= limits.MAX_VALUE).all()):
        check.fail("scaler.std", f"above 0 and at most {limits.MAX_VALUE:.3g} (what data may "
                   "hold) for every column; a scale of 0 divides by zero, a huge one hides "
                   "every anomaly")
    if not (np.abs(mean) <= limits.MAX_VALUE).all():
        check.fail("scaler.mean", f"at most {limits.MAX_VALUE:.3g} in size for every column")
    errors = tensors["heldout_errors"]
    if errors.ndim != 1 or errors.size == 0 or (errors < 0).any() or (
        errors > limits.MAX_ERROR
    ).any():
        check.fail("heldout_errors", f"a non-empty list of errors from 0 to "
                   f"{limits.MAX_ERROR:g}")


def params_of(meta: dict) -> dict:
    """The parameters a model file was fitted with, by their flat names
    (lstmae.params.FitParams.from_flat), from a file checked by check_meaning.

    The fields at the top level are the fitted facts that scoring reads (the
    columns and time column found, stride, loss, error, the network's sizes) and
    win over `params`. Files of lstmae 0.1 keep only some parameters in `params`,
    and the oldest ones have no `error` (their windows were scored with the
    training loss) and no `precision`.
    """
    loss = meta["loss"]
    known = {name: value for name, value in meta["params"].items() if name in limits.FIELDS}
    return {
        "precision": "auto",
        **known,  # a parameter of a later lstmae is left out, as a missing one is defaulted
        "columns": list(meta["columns"]),
        "context": list(meta.get("context") or []),
        "time_col": meta["time_col"],
        "time_format": meta.get("time_format"),
        "stride": meta["stride"],
        "loss": loss,
        "error": meta.get("error", "mae" if loss in ("l1", "mae") else loss),
        **{name: meta["model"][name] for name in ("hidden", "latent", "layers")},
    }
