"""How many CPU threads torch runs lstmae's batches on, chosen by measuring them.

On a quiet 2-core machine two threads train 1.5-2x faster than one. When
another process holds a core, torch's threads wait for each other at every
time step of the LSTM and two threads ran 2.5-3x slower than one (bench/README.md,
"Threads on a busy machine"). Neither count is right everywhere, and the load
changes while a fit runs, so `auto` times batches at each candidate count now
and then and keeps the fastest:

- probe: a few batches at a first guess (the CPUs no other process is running
  on right now), then at the other counts (the most allowed, half as many,
  ..., 1), nearest first, until two in a row were slower; keep the fastest;
- hold it for a while (5 s, doubling up to a minute while the answer stays the
  same), or until batches run 1.5x slower or faster than the probe measured
  (the load changed), then probe again.

Training steps and forward passes are timed apart ("phases"): they differ in
cost per window and in what suits them. Only CPU work is managed; a GPU's
batches are not timed.

Results: a forward pass gives the same numbers at any thread count (checked at
12-256 windows; smaller batches run on one thread), so scores do not depend on
the choice. Training does: one and two threads sum gradients in another order,
so two `auto` fits whose choices differed give models that differ in the last
digits. `--threads N` fits the same model bit for bit every time.

One policy is active at a time (torch's thread count is the process's):
`using(setting)` installs one for a block and restores torch's count after it;
`lstmae fit` and `score` install theirs from `--threads`; Detector's methods
install `auto` when none is active. `auto` never uses more threads than torch
had when the block began (OMP_NUM_THREADS, torch.set_num_threads, torchrun's 1).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch

AUTO = "auto"
PROBE_BATCHES = 3  # timed batches per candidate count in a probe
FIRST_HOLD_S, MAX_HOLD_S = 5.0, 60.0
LOAD_CHANGE = 1.5  # batch times this many times slower or faster than probed: probe again
RECENT = 5  # batches whose median is compared with the probe
# Forward passes of fewer windows than this run on one thread under `auto`, untimed: two
# threads gain nothing there, and their time is not what the phase's batches cost. (Their
# numbers do not depend on it: lstmae.inference pads them to MIN_BATCH windows, where 1
# and 2 threads give the same last bits.)
SMALL_BATCH = 16
# Below this share of the CPU time its threads asked for, the process is being made to
# wait by other jobs: say so (lstmae.render, the progress line).
STARVED_SHARE = 0.7


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as taskset or a container's cpuset sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def ladder(most: int) -> list[int]:
    """The thread counts a probe tries, in order: most, half as many, ..., 1."""
    counts = [max(1, most)]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


def free_cpus(most: int) -> int:
    """A first guess at the threads that will run fastest: the usable CPUs that other
    processes are not running on right now (Linux's count of runnable threads, ours
    included), between 1 and `most`. The probe checks the guess."""
    try:
        with open("/proc/loadavg") as f:
            runnable = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return most
    others = max(0, runnable - 1)  # this thread is running: it is reading the file
    return max(1, min(most, usable_cpus() - others))


def probe_order(candidates: list[int], first: int) -> list[int]:
    """`first`, then the other counts from the nearest (in factors of two) outwards."""
    rest = [c for c in candidates if c != first]
    return [first, *sorted(rest, key=lambda c: (abs(math.log2(c / first)), c))]


class Chooser:
    """The thread count of one phase: probe, hold, probe again when the load changes."""

    def __init__(self, most: int, clock: Callable[[], float] = time.perf_counter,
                 first: int | None = None):
        self.candidates = ladder(most)
        self.clock = clock
        self.threads = first if first in self.candidates else self.candidates[0]
        self.probes = 0
        self._hold_s = FIRST_HOLD_S
        self._last_choice: int | None = None
        self._expected = 0.0
        self._recent: list[float] = []
        self._until = 0.0
        self._warm = False  # the first batch of a phase builds kernels: never timed
        self._start_probe()

    def _start_probe(self) -> None:
        """Probe from the count in use (the first guess, or the last choice) outwards."""
        self._probing = len(self.candidates) > 1
        self._order = probe_order(self.candidates, self.threads)
        self._step = 0  # index into _order
        self._slower = 0  # candidates in a row slower than the best so far
        self._times: list[float] = []
        self._rates: dict[int, float] = {}

    def record(self, threads: int, seconds_per_window: float) -> None:
        """A batch ran at `threads` threads and took this long per window."""
        if not self._warm:
            self._warm = True
            return
        if self._probing:
            self._probe(seconds_per_window)
        else:
            self._watch(seconds_per_window)

    def _probe(self, seconds: float) -> None:
        self._times.append(seconds)
        if len(self._times) < PROBE_BATCHES:
            return
        count = self._order[self._step]
        self._rates[count] = statistics.median(self._times)
        self._times = []
        best = min(self._rates, key=self._rates.__getitem__)
        self._slower = 0 if best == count else self._slower + 1
        self._step += 1
        if self._step < len(self._order) and self._slower < 2:
            self.threads = self._order[self._step]
            return
        self._probing = False
        self.probes += 1
        unchanged = best == self._last_choice
        self._hold_s = min(2 * self._hold_s, MAX_HOLD_S) if unchanged else FIRST_HOLD_S
        self.threads = self._last_choice = best
        self._expected = self._rates[best]
        self._recent = []
        self._until = self.clock() + self._hold_s

    def _watch(self, seconds: float) -> None:
        self._recent = (self._recent + [seconds])[-RECENT:]
        if self.clock() >= self._until:
            self._start_probe()
            return
        if len(self._recent) == RECENT and self._expected > 0:
            ratio = statistics.median(self._recent) / self._expected
            if ratio > LOAD_CHANGE or ratio < 1 / LOAD_CHANGE:
                self._hold_s = FIRST_HOLD_S / 2  # doubles back to FIRST_HOLD_S if unchanged
                self._start_probe()


class ThreadPolicy:
    """`auto` or a fixed count, for the length of a `using` block."""

    def __init__(self, setting: int | str = AUTO):
        if setting != AUTO and not (isinstance(setting, int) and setting >= 1):
            raise ValueError(f"threads must be a whole number >= 1 or 'auto' (got {setting!r})")
        self.setting = setting
        self.most = torch.get_num_threads() if setting == AUTO else int(setting)
        self._phases: dict[tuple[str, int], Chooser] = {}
        self._batches: dict[str, dict[int, int]] = {}  # phase -> thread count -> batches
        self._cpu_s = self._asked_s = 0.0

    @contextlib.contextmanager
    def batch(self, phase: str, size: int, windows: int, device: torch.device
              ) -> Iterator[None]:
        """Run one batch of `windows` windows at the phase's current thread count, timed.
        size: the loop's batch size (a last, smaller batch is timed with its loop's)."""
        if device.type != "cpu":
            yield
            return
        chooser = self._phases.get((phase, size))
        if chooser is None and self.setting == AUTO:
            chooser = self._phases.setdefault(
                (phase, size), Chooser(self.most, first=free_cpus(self.most)))
        threads = chooser.threads if chooser is not None else self.most
        if chooser is not None and phase == "forward" and windows < SMALL_BATCH:
            threads, chooser = 1, None  # not timed: not what the phase's batches cost
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        cpu, wall = _cpu_seconds(), time.perf_counter()
        yield
        wall = time.perf_counter() - wall
        self._cpu_s += _cpu_seconds() - cpu
        self._asked_s += wall * threads
        counts = self._batches.setdefault(phase, {})
        counts[threads] = counts.get(threads, 0) + 1
        if chooser is not None:
            chooser.record(threads, wall / max(windows, 1))

    def threads_used(self, phase: str) -> dict[int, int]:
        """Batches the phase ran at each thread count, most threads first."""
        return dict(sorted(self._batches.get(phase, {}).items(), reverse=True))

    def cpu_share(self) -> float | None:
        """CPU time the timed batches got, over the time their threads asked for (1.0: a
        core for every thread all along). None before any batch was timed."""
        return min(1.0, self._cpu_s / self._asked_s) if self._asked_s > 0.1 else None

    def current(self, phase: str) -> int:
        """The thread count the phase runs at now (for progress lines)."""
        choosers = [c for (name, _), c in self._phases.items() if name == phase]
        return choosers[-1].threads if choosers else self.most

    def report(self, phase: str) -> dict:
        """What a model file and the fit summary record about threads."""
        share = self.cpu_share()
        return {"setting": self.setting, "most": self.most,
                "batches": {str(k): v for k, v in self.threads_used(phase).items()},
                "cpu_share": None if share is None else round(share, 3),
                "usable_cpus": usable_cpus()}


def _cpu_seconds() -> float:
    """This process's CPU time so far, user and system, all threads."""
    t = os.times()
    return t.user + t.system


_active: ThreadPolicy | None = None


def active() -> ThreadPolicy | None:
    return _active


@contextlib.contextmanager
def using(setting: int | str | None = AUTO) -> Iterator[ThreadPolicy]:
    """Make a policy the active one for the block; restore torch's thread count after.

    None: keep the active policy if there is one, else install `auto`.
    """
    global _active
    if setting is None and _active is not None:
        yield _active
        return
    before, outer = torch.get_num_threads(), _active
    policy = ThreadPolicy(AUTO if setting is None else setting)
    if policy.setting != AUTO:
        torch.set_num_threads(policy.most)  # all of the block's work, not only its batches
    _active = policy
    try:
        yield policy
    finally:
        _active = outer
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def batch(phase: str, size: int, windows: int, device: torch.device):
    """The active policy's `batch` context (ThreadPolicy.batch), or nothing when none is."""
    if _active is None:
        return contextlib.nullcontext()
    return _active.batch(phase, size, windows, device)
