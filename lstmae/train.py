"""The training loop: mini-batches from one tensor, early stopping, device choice.

Batches are gathered straight from a strided view of the series that already
lives on the training device (no DataLoader, no per-sample collation), and the
loss is read back to the host once per epoch, not once per step.

Under torchrun (`process_group`), each process trains on its share of every
epoch's windows and DistributedDataParallel averages the gradients, so all
copies of the model stay the same.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.adam import adam  # the functional step; importing it loads no torch._dynamo

from lstmae import threads
from lstmae.errors import OptionError, TrainingError, arg
from lstmae.inference import forward
from lstmae.model import LSTMAutoencoder
from lstmae.params import DEVICES
from lstmae.scoring import column_errors, reconstruction_loss
from lstmae.windows import iter_batches, window_view

# Early stopping's patience restarts only when the monitored loss improves by more
# than this fraction. Held-out losses wander on a plateau, and counting every new
# low as progress kept fits running for tens of epochs of noise.
MIN_IMPROVEMENT = 0.01


class EarlyStopping:
    """Keeps the best epoch; says stop after `patience` epochs without clear progress.

    Clear progress is a loss more than MIN_IMPROVEMENT below the last clear
    progress; any new low is still the best epoch, whose weights are kept.
    patience None: never stop (without held-out data there is nothing to stop
    on: a noisy training loss would end tiny fits too soon, so all epochs run).
    """

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best_loss, self.best_epoch = math.inf, 0
        self._progress_loss, self._progress_epoch = math.inf, 0

    def update(self, loss: float, epoch: int) -> tuple[bool, bool]:
        """(is this epoch the best so far, should training stop now)"""
        is_best = loss < self.best_loss
        if is_best:
            self.best_loss, self.best_epoch = loss, epoch
        if loss < self._progress_loss * (1 - MIN_IMPROVEMENT):
            self._progress_loss, self._progress_epoch = loss, epoch
        stop = self.patience is not None and epoch - self._progress_epoch >= self.patience
        return is_best, stop

    def last_epoch(self, epochs: int) -> int:
        """The epoch training ends at unless the loss makes clear progress before then."""
        if self.patience is None:
            return epochs
        return min(epochs, self._progress_epoch + self.patience)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether training runs its forward pass under bf16 autocast (loss and weights stay fp32).

    auto: where the hardware multiplies bf16 natively: a CUDA GPU that supports
    it, or a CPU with Intel AMX tiles. There it trained 1.4-2x more windows/s
    with the same detection quality (bench/README.md). Other CPUs were not
    measured, so auto stays fp32 there.
    """
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise OptionError(f"{arg('precision')} bf16 runs on cpu or cuda, not {device.type}")
    if precision == "bf16" and device.type == "cpu" and not cpu_runs_bf16():
        raise OptionError(f"{arg('precision')} bf16: this CPU cannot run the LSTM in bf16 "
                          f"(oneDNN needs AVX-512 for it); use {arg('precision')} fp32 or auto")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_amx()


def training_precision(precision: str, device: torch.device) -> str:
    """The arithmetic `precision` trains in on `device`: "bf16" or "fp32"."""
    return "bf16" if uses_bf16(precision, device) else "fp32"


@functools.cache
def cpu_runs_bf16() -> bool:
    """Whether oneDNN runs an LSTM under bf16 autocast on this CPU: without AVX-512 it
    cannot create the primitive and raises, which would end a fit as an internal error."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 2, batch_first=True)(torch.zeros(1, 2, 2))
    except RuntimeError:
        return False
    return True


def cpu_has_amx() -> bool:
    """Intel AMX tiles, which oneDNN uses for bf16 matrix products (a private torch probe)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def resolve_device(name: str) -> torch.device:
    """auto -> CUDA when present, else CPU. An explicit device must exist."""
    if name not in DEVICES:
        raise OptionError(f"{arg('device')} must be one of {', '.join(DEVICES)} (got {name!r})")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"{arg('device')} cuda: no CUDA GPU is available here; use "
                          f"{arg('device')} cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise OptionError(f"{arg('device')} mps: Apple MPS is not available here; use "
                          f"{arg('device')} cpu or auto")
    return torch.device(name)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes training together (0, 1 alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rank() -> int:
    """Which of this machine's processes this is (torchrun sets LOCAL_RANK)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join the torchrun job this process was started by, for the length of the block.

    torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
    a plain run sets none of them (or WORLD_SIZE=1) and nothing happens.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    kind = resolve_device(device).type
    if kind == "mps":
        raise OptionError(f"{arg('device')} mps cannot train on several processes; use cpu "
                          "or cuda")
    if kind == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise OptionError(
                f"torchrun started local rank {local_rank()} but this machine has "
                f"{torch.cuda.device_count()} GPU(s); use --nproc-per-node at most that"
            )
        torch.cuda.set_device(local_rank())  # one GPU per process: cuda:LOCAL_RANK
    dist.init_process_group("nccl" if kind == "cuda" else "gloo")  # env:// from torchrun
    try:
        yield
        # Leave together: a rank that tears down its group while rank 0 is still
        # calibrating aborts at exit after DDP has used gloo (seen with torch 2.13).
        dist.barrier()
    finally:
        dist.destroy_process_group()


@dataclass
class WindowSet:
    """Windows of a standardised series: a view of `values` starting at `starts`."""

    values: torch.Tensor  # [N, D] float32, on the training device
    starts: torch.Tensor  # [N_w] int64, on the same device
    window: int  # rows
    step: int = 1  # rows averaged into each step the model reads (windows.window_view)

    @property
    def view(self) -> torch.Tensor:
        return window_view(self.values, self.window, self.step)

    def __len__(self) -> int:
        return len(self.starts)


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int
    best_loss: float  # validation loss, or training loss when nothing was held out
    monitored: str  # "validation" or "training"
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    interrupted: bool = False


@dataclass
class EpochReport:
    epoch: int
    epochs: int  # the most epochs training may run
    train_loss: float
    val_loss: float | None
    seconds: float = 0.0  # this epoch's wall time, validation included
    windows: int = 0  # training windows in an epoch (this process's share)
    last_epoch: int = 0  # where early stopping ends training unless the loss improves
    best_epoch: int = 0


@dataclass
class BatchReport:
    """Where an epoch is, reported a few times a second while it runs."""

    epoch: int
    done: int  # training windows done in this epoch
    windows: int  # training windows in the epoch
    seconds: float  # since the epoch began


# How often train() reports batches to its `on_batch` callback.
BATCH_REPORT_S = 0.25


def train(
    model: LSTMAutoencoder,
    train_set: WindowSet,
    val_set: WindowSet | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    loss: str,
    patience: int,
    seed: int,
    precision: str = "auto",
    progress: Callable[[EpochReport], None] | None = None,
    keep_best_on_interrupt: bool = False,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> TrainResult:
    """Train in place; on return the model holds the weights of its best epoch.

    progress: called after every epoch; on_batch: every BATCH_REPORT_S seconds within one.

    Ctrl-C (KeyboardInterrupt) propagates, unless keep_best_on_interrupt is set
    and an epoch has finished: then training stops and the best epoch is kept.
    """
    device = train_set.values.device
    use_amp = uses_bf16(precision, device)
    rank, world = rank_and_world()
    # DDP averages the gradients over the processes in backward, so every copy
    # takes the same optimiser step; validation and checkpoints use the bare model.
    net = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
    optimizer = Adam(model.parameters(), lr=lr)
    # The same seed on every rank: the same permutation, so the shards are disjoint.
    generator = torch.Generator().manual_seed(seed)
    view = train_set.view
    best_state = None
    stopper = EarlyStopping(patience if val_set is not None else None)
    history: list[dict] = []
    started = time.perf_counter()
    epoch, interrupted = 0, False
    try:
        for epoch in range(1, epochs + 1):
            epoch_started = time.perf_counter()
            batch_report = None if on_batch is None else _every_so_often(
                on_batch, epoch, epoch_started)
            train_loss = _train_epoch(net, model.target, optimizer, view, train_set,
                                      batch_size, loss, generator, use_amp, rank, world,
                                      batch_report)
            if not math.isfinite(train_loss):
                raise TrainingError(
                    f"training loss became {train_loss} in epoch {epoch}; "
                    f"try a smaller {arg('lr')}, or check the data for extreme values"
                )
            val_loss = None
            if val_set is not None:
                # the training objective (mean over every value) on unseen windows
                val_loss = validation_loss(model, val_set, loss, batch_size * 8)
                if world > 1:
                    # Every rank scored the whole held-out set with the same weights;
                    # take rank 0's number so that a last-bit difference can never
                    # make one rank stop early and leave the others waiting.
                    val_loss = _from_rank0(val_loss, device)
            monitored = val_loss if val_loss is not None else train_loss
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            is_best, stop = stopper.update(monitored, epoch)
            if progress is not None:
                progress(EpochReport(epoch, epochs, train_loss, val_loss,
                                     time.perf_counter() - epoch_started,
                                     math.ceil(len(train_set) / world),
                                     stopper.last_epoch(epochs), stopper.best_epoch))
            if is_best:
                best_state = copy.deepcopy(model.state_dict())
            if stop:
                break
    except KeyboardInterrupt:
        if not keep_best_on_interrupt or best_state is None:
            raise
        interrupted = True
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(
        epochs_run=epoch,
        best_epoch=stopper.best_epoch,
        best_loss=stopper.best_loss,
        monitored="validation" if val_set is not None else "training",
        history=history,
        seconds=time.perf_counter() - started,
        stopped_early=epoch < epochs,
        interrupted=interrupted,
    )


def _every_so_often(on_batch: Callable[[BatchReport], None], epoch: int, started: float
                    ) -> Callable[[int, int], None]:
    """(done, windows) after each batch -> on_batch at most every BATCH_REPORT_S seconds."""
    last = started

    def report(done: int, windows: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= BATCH_REPORT_S:
            last = now
            on_batch(BatchReport(epoch, done, windows, now - started))

    return report


def _train_epoch(model, target, optimizer, view, train_set, batch_size, loss, generator,
                 use_amp, rank=0, world=1, on_batch=None) -> float:
    """One pass over the training windows in a random order; the mean loss (over all ranks).
    target: the bare model's `target` (the columns it reconstructs). on_batch(windows
    done, windows) after each batch, when given."""
    device = train_set.values.device
    model.train()
    order = torch.randperm(len(train_set), generator=generator)
    if world > 1:
        order = shard(order, rank, world)
    order = train_set.starts[order.to(device)]
    total = torch.zeros((), device=device)
    done = 0
    for batch in iter_batches(view, order, batch_size):
        with threads.batch("train", batch_size, len(batch), device):
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                prediction = model(batch)
            batch_loss = reconstruction_loss(prediction, target(batch), loss)
            batch_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += batch_loss.detach() * len(batch)
        done += len(batch)
        if on_batch is not None:
            on_batch(done, len(order))
    if world == 1:
        return total.item() / len(train_set)  # the one host sync of the epoch
    summed = torch.stack([total, torch.tensor(float(len(order)), device=device)])
    dist.all_reduce(summed)  # the same mean on every rank, so all see the same NaN check
    return (summed[0] / summed[1]).item()


class Adam:
    """torch.optim.Adam's default update, with its state kept here.

    The step is torch's own: torch.optim.adam.adam, the function torch.optim.Adam
    calls. Only the state lives here, because building any torch.optim optimiser
    imports torch._dynamo, which cost 0.6-0.8 s of every `lstmae fit` on these
    CPUs (a quarter of fitting the 5-row ramp). tests/test_model.py checks that
    the weights match torch.optim.Adam's exactly, step by step.
    """

    def __init__(self, params, lr: float):
        self.params = list(params)
        self.lr = lr
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        # torch.optim.Adam keeps each step count as a float32 scalar on the CPU
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        have = [i for i, p in enumerate(self.params) if p.grad is not None]
        adam(
            [self.params[i] for i in have], [self.params[i].grad for i in have],
            [self.exp_avgs[i] for i in have], [self.exp_avg_sqs[i] for i in have], [],
            [self.steps[i] for i in have],
            amsgrad=False, beta1=0.9, beta2=0.999, lr=self.lr, weight_decay=0.0, eps=1e-8,
            maximize=False,
        )


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of an epoch's order: every world-th item from the rank on.

    The order is first padded (wrapping round to its start) to a multiple of
    world, so every rank takes the same number of steps: a rank that finished
    early would leave the others waiting in DDP's gradient all-reduce for ever.
    """
    per_rank = math.ceil(len(order) / world)
    padded = order[torch.arange(per_rank * world) % len(order)]
    return padded[rank::world]


def _from_rank0(value: float, device: torch.device) -> float:
    number = torch.tensor(value, dtype=torch.float64, device=device)
    dist.broadcast(number, src=0)
    return number.item()


@torch.inference_mode()
def validation_loss(model: LSTMAutoencoder, windows: WindowSet, loss: str,
                    batch_size: int) -> float:
    """The training objective (the mean loss over every value) on held-out windows."""
    model.eval()
    errors = [column_errors(b.reconstruction, b.target, loss)
              for b in forward(model, windows.view, windows.starts, batch_size)]
    return float(torch.cat(errors).double().cpu().numpy().mean())
