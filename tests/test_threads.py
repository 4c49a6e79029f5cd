"""lstmae.threads: the thread count chosen by timing batches, and how it is reported."""

import pytest
import torch

from lstmae import threads
from lstmae.render import describe_threads

from .conftest import SAMPLES, run_lstmae


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(chooser, clock, seconds_at, batches):
    """Run `batches` batches, each taking seconds_at(threads) per window and that long."""
    counts = []
    for _ in range(batches):
        n = chooser.threads
        counts.append(n)
        clock.now += seconds_at(n)
        chooser.record(n, seconds_at(n))
    return counts


def test_ladder_halves_down_to_one():
    assert threads.ladder(16) == [16, 8, 4, 2, 1]
    assert threads.ladder(3) == [3, 1]
    assert threads.ladder(1) == [1]


def test_one_thread_is_kept_when_it_is_faster_as_under_load():
    clock = Clock()
    chooser = threads.Chooser(2, clock)
    counts = drive(chooser, clock, {2: 0.127, 1: 0.049}.__getitem__, 40)
    # warm-up + 3 probe batches at 2 threads, 3 at 1, then 1 thread until the hold ends
    assert counts[:7] == [2, 2, 2, 2, 1, 1, 1]
    assert set(counts[7:]) == {1}
    assert chooser.threads == 1


def test_a_first_guess_of_one_thread_costs_no_slow_warm_up():
    clock = Clock()
    chooser = threads.Chooser(2, clock, first=1)
    counts = drive(chooser, clock, {2: 0.127, 1: 0.049}.__getitem__, 20)
    assert counts[:7] == [1, 1, 1, 1, 2, 2, 2] and set(counts[7:]) == {1}
    assert threads.probe_order([16, 8, 4, 2, 1], 4) == [4, 2, 8, 1, 16]
    assert 1 <= threads.free_cpus(2) <= 2


def test_two_threads_are_kept_on_a_quiet_machine_and_the_probe_grows_rare():
    clock = Clock()
    chooser = threads.Chooser(2, clock)
    counts = drive(chooser, clock, {2: 0.031, 1: 0.047}.__getitem__, 20_000)
    assert chooser.threads == 2
    share_at_one = counts.count(1) / len(counts)
    assert 0 < share_at_one < 0.01  # re-probes happen, less and less often
    assert chooser.probes >= 5


def test_a_change_in_load_is_noticed_before_the_hold_ends():
    clock = Clock()
    chooser = threads.Chooser(2, clock)
    drive(chooser, clock, {2: 0.031, 1: 0.047}.__getitem__, 30)
    assert chooser.threads == 2
    # another job takes a core: two threads collapse; within a few batches, one thread
    counts = drive(chooser, clock, {2: 0.127, 1: 0.049}.__getitem__, 15)
    assert counts[-1] == 1 and clock.now < threads.FIRST_HOLD_S * 2


def test_fixed_threads_are_set_for_the_block_and_restored_after():
    before = torch.get_num_threads()
    with threads.using(1) as policy:
        assert torch.get_num_threads() == 1
        with threads.batch("train", 8, 8, torch.device("cpu")):
            pass
        assert policy.threads_used("train") == {1: 1}
        with threads.using(None) as inner:  # Detector's methods keep the active policy
            assert inner is policy
    assert torch.get_num_threads() == before
    assert threads.active() is None


def test_auto_never_uses_more_threads_than_torch_had():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threads.using("auto") as policy:
            assert policy.most == 1
            for _ in range(10):
                with threads.batch("forward", 4, 4, torch.device("cpu")):
                    pass
            assert policy.threads_used("forward") == {1: 10}
    finally:
        torch.set_num_threads(before)


def test_a_bad_setting_is_refused():
    with pytest.raises(ValueError, match="threads"):
        threads.ThreadPolicy(0)


@pytest.mark.parametrize("report, expected", [
    ({"setting": "auto", "most": 2, "batches": {"2": 96, "1": 4}, "cpu_share": 0.98},
     "threads auto (2 of 2; 1 on 4% of batches)"),
    ({"setting": "auto", "most": 2, "batches": {"1": 50}, "cpu_share": 0.99},
     "threads auto (1 of 2)"),
    ({"setting": 2, "most": 2, "batches": {"2": 50}, "cpu_share": 0.62},
     "threads 2, busy machine: got 62% of the CPU time asked for"),
    ({"setting": "auto", "most": 2, "batches": {}, "cpu_share": None}, ""),  # a GPU
    (None, ""),  # a model file from before 0.2
    ({"setting": "auto", "batches": {"2": 5}}, "threads: (record unreadable)"),  # damaged
    ({"setting": "auto", "most": 2, "batches": "x"}, "threads: (record unreadable)"),
])
def test_threads_in_words(report, expected):
    assert describe_threads(report) == expected


def test_fit_records_the_policy_and_refuses_a_bad_threads(tmp_path):
    bad = run_lstmae("fit", str(SAMPLES / "univariate_train.csv"), "-m",
                     str(tmp_path / "m.lstmae"), "--threads", "many")
    assert bad.returncode == 2 and "--threads" in bad.stderr_text
    assert not (tmp_path / "m.lstmae").exists()
    proc = run_lstmae("fit", str(SAMPLES / "univariate_train.csv"), "-m",
                      str(tmp_path / "m.lstmae"), "--epochs", "2", "--window", "16",
                      check=True)
    assert "threads auto (" in proc.stderr_text
    info = run_lstmae("info", str(tmp_path / "m.lstmae"), check=True)
    assert "threads auto (" in info.stdout_text


def test_scores_do_not_depend_on_the_thread_choice():
    import pandas as pd

    from lstmae import Detector

    train = pd.read_csv(SAMPLES / "univariate_train.csv")
    test = pd.read_csv(SAMPLES / "univariate_test.csv")
    with threads.using(1):
        det = Detector(window=16, epochs=2, seed=0).fit(train)
        one = det.score(test, per_column=True)
    if torch.get_num_threads() < 2:
        pytest.skip("one CPU: nothing to compare")
    with threads.using(2):  # every batch on two threads, the small last one too
        two = det.score(test, per_column=True)
    with threads.using("auto"):
        auto = det.score(test, per_column=True)
    pd.testing.assert_frame_equal(auto, one)
    pd.testing.assert_frame_equal(two, one)
    # Batches of a few windows (1-3 at one thread, 5-11 at two) once gave other last bits:
    # padded to lstmae.inference.MIN_BATCH, a window scores the same in any company.
    for size in (1, 2, 5, 11):
        with threads.using(2):
            alone = det.score(test.iloc[len(test) - 15 - size:], per_column=True)
        pd.testing.assert_frame_equal(alone.drop(columns="window").reset_index(drop=True),
                                      one.drop(columns="window").tail(size)
                                      .reset_index(drop=True))
