"""Batch-by-batch scoring gives exactly the in-memory answers, with bounded memory."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstmae import Detector
from lstmae.errors import DataError, OptionError

from .conftest import run_lstmae


def _chunks(frame: pd.DataFrame, size: int):
    return [frame.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(frame), size)]


@pytest.fixture(scope="module", params=[1, 3])
def strided(request, small_frame):
    det = Detector(window=16, stride=request.param, hidden=8, latent=3, epochs=2, device="cpu")
    return det.fit(small_frame)


@pytest.mark.parametrize("size", [1, 7, 15, 16, 17, 100, 399])
def test_batches_give_the_in_memory_answers(strided, small_frame, size):
    # The model sees the same windows either way; float32 kernels may round a
    # window computed in a batch of one differently, hence rtol, not equality.
    whole = strided.score_all(small_frame)
    parts = list(strided.iter_score(_chunks(small_frame, size)))
    for level in ("window", "point", "event"):
        joined = pd.concat([p[level] for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(joined, whole[level], check_dtype=False, rtol=1e-5)
    encoded = pd.concat(strided.iter_encode(_chunks(small_frame, size)), ignore_index=True)
    pd.testing.assert_frame_equal(encoded, strided.encode(small_frame), rtol=1e-5)
    rebuilt = pd.concat(strided.iter_reconstruct(_chunks(small_frame, size)), ignore_index=True)
    pd.testing.assert_frame_equal(rebuilt, strided.reconstruct(small_frame), rtol=1e-5)


def test_only_the_levels_asked_for_are_built(strided, small_frame):
    whole = strided.score_all(small_frame)
    parts = list(strided.iter_score(_chunks(small_frame, 100), levels=["window", "event"]))
    assert all(set(p) == {"window", "event"} for p in parts)
    for level in ("window", "event"):
        joined = pd.concat([p[level] for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(joined, whole[level], check_dtype=False, rtol=1e-5)
    with pytest.raises(OptionError, match="levels must be among"):
        list(strided.iter_score([small_frame], levels=["points"]))


def test_row_numbers_continue_across_batches(small_frame):
    frame = small_frame.drop(columns=["timestamp"])
    det = Detector(window=8, hidden=4, latent=2, epochs=1, device="cpu").fit(frame)
    points = pd.concat([p["point"] for p in det.iter_score(_chunks(frame, 50))])
    assert points["row"].tolist() == list(range(len(frame)))


def test_rows_going_back_in_time_across_batches_is_an_error(small_detector, small_frame):
    shuffled = [small_frame.iloc[200:], small_frame.iloc[:200]]
    with pytest.raises(DataError, match="not in time order.*sort the file by 'timestamp'"):
        list(small_detector.iter_score(shuffled))


def test_cli_scores_a_parquet_folder_like_the_single_file(tmp_path, small_detector, small_frame):
    small_detector.save(tmp_path / "m.lstmae")
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, chunk in enumerate(_chunks(small_frame, 150)):
        pq.write_table(pa.Table.from_pandas(chunk), folder / f"part-{i}.parquet")
    # Left-overs of a writer (Spark's _temporary/, hidden files) are not data.
    (folder / "_temporary").mkdir()
    pq.write_table(pa.Table.from_pandas(small_frame.iloc[:5]), folder / "_temporary" / "x.parquet")
    pq.write_table(pa.Table.from_pandas(small_frame.iloc[:5]), folder / ".part-9.parquet")
    small_frame.to_csv(tmp_path / "all.csv", index=False)
    args = ["-m", "m.lstmae", "--level", "point", "--batch-rows", "64"]
    from_folder = run_lstmae("score", "parts", *args, cwd=tmp_path, check=True)
    from_csv = run_lstmae("score", "all.csv", *args, cwd=tmp_path, check=True)
    a = pd.read_csv(io.StringIO(from_folder.stdout_text))
    b = pd.read_csv(io.StringIO(from_csv.stdout_text))
    assert len(a) == len(small_frame)
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-6)
