"""Training on several processes: `torchrun ... -m lstmae fit` with gloo on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from lstmae import Detector
from lstmae.metrics import auc_roc
from lstmae.train import cpu_has_amx, shard

from .conftest import SAMPLES, run_lstmae, window_labels

TORCHRUN = Path(sys.executable).parent / "torchrun"
# 3000 rows and 8 epochs: a 2-process fit takes half the steps per epoch of a
# 1-process one (each step sees 2 x 64 windows), and after 3 epochs it still
# lags by about 0.03 AUC-ROC; by 8 both have converged (0.977 and 0.975).
OPTIONS = ["--window", "32", "--epochs", "8", "--threads", "1", "--device", "cpu"]


def test_shards_are_disjoint_equal_and_cover_the_epoch():
    order = torch.randperm(11)
    shards = [shard(order, rank, 4) for rank in range(4)]
    assert {len(s) for s in shards} == {3}  # the same number of steps on every rank
    together = torch.cat(shards).tolist()
    assert set(together) == set(order.tolist())  # every window is trained on
    assert len(together) - len(set(together)) == 1  # and only the one padding window twice


def test_torchrun_two_processes_scores_like_one(tmp_path):
    train = tmp_path / "train.csv"
    pd.read_csv(SAMPLES / "server_train.csv").head(3000).to_csv(train, index=False)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "lstmae", "fit",
         str(train), "-m", str(tmp_path / "two.lstmae"), *OPTIONS],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone prints the summary; the other rank is silent
    assert proc.stderr.count("fitted ") == 1, proc.stderr
    precision = "bf16" if cpu_has_amx() else "fp32"  # what --precision auto picks here
    assert f"on cpu ({precision}) x 2 processes" in proc.stderr
    run_lstmae("fit", str(train), "-m", str(tmp_path / "one.lstmae"), *OPTIONS, "-q",
               check=True)

    test = pd.read_csv(SAMPLES / "server_test.csv")
    labels = pd.read_csv(SAMPLES / "server_test_labels.csv")
    auc = {}
    for name, processes in [("one", 1), ("two", 2)]:
        detector = Detector.load(tmp_path / f"{name}.lstmae")
        assert detector.training_["processes"] == processes
        assert detector.training_["epochs_run"] == 8
        scores = detector.score(test)
        truth = window_labels(scores, labels)
        auc[name] = auc_roc(truth.astype(int), scores["error"].to_numpy())
    assert auc["one"] > 0.9 and auc["two"] > 0.9, auc
    assert abs(auc["two"] - auc["one"]) < 0.05, auc
