"""Data-parallel training of one run over several processes (``torchrun``), equal to one process's run.

    torchrun --nproc_per_node=2 -m sikd_utils train --task fundus --roles baseline --epochs 20

:func:`sikd_utils.train.train` uses this module when ``torch.distributed`` is initialised (the command
line does it from torchrun's environment, :func:`init_from_environment`). What makes N processes train
exactly as one process at the same ``batch_size``:

* **global batch** — ``TrainConfig.batch_size`` is the global batch. Every rank draws the same shuffled
  order from the same generator and takes a contiguous share of every global batch
  (:func:`rank_share`): shares differ by at most one item, the first ranks taking the extra ones, so a
  batch size not divisible by the world size, or a short last batch, is split as evenly as it can be.
  A rank whose share is empty (a last batch with fewer items than ranks) still takes part in the step
  with an empty batch, since every collective needs every rank. Augmentation stays a pure function of
  (seed, epoch, index), so the union of a step's shares is the single-process batch, item for item.
* **loss** — each rank's loss is the mean over its share; DDP *averages* gradients over ranks, so the
  rank's loss is scaled by ``world_size·n_rank/n_global`` (:class:`ShareScaler`) and the averaged
  gradient is that of the global batch's mean, also for unequal shares.
* **batch norm** — statistics over the global batch, not the share (:func:`global_batch_norm`):
  ``nn.SyncBatchNorm`` on CUDA, and on the CPU (gloo, where SyncBatchNorm does not run) a BatchNorm2d
  that all-reduces its sums. Without it, N ranks would normalise over batches N times smaller.

* **validation** — sharded: each rank scores a contiguous share of the validation slices and the pooled
  counts are summed over ranks (``validation_dice(across_ranks=True)``), so every rank gets the same Dice
  in 1/N of the time (rank 0 alone would leave N−1 GPUs waiting, then need a broadcast anyway). Loss
  sums and epoch times are all-reduced too: every rank keeps the same history, and callbacks (e.g. a
  deadline) decide alike on every rank.

Checkpoints are written by rank 0 alone (atomically, then a barrier); every rank resumes from the same
``last.pt``.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["world", "is_distributed", "init_from_environment", "launched_by_torchrun", "rank_device",
           "check_global_batch", "rank_share", "ShareScaler", "global_batch_norm", "all_reduce", "barrier"]


def is_distributed() -> bool:
    """Whether this process trains as one rank of several (a process group of size > 1 is initialised)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` for a single process."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) set the environment of a multi-process run."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment() -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Backend nccl with one GPU per process (cuda:LOCAL_RANK) when CUDA is available, else gloo on the
    CPU. Returns whether a group was initialised now; a plain single process is left alone.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def rank_device(device: torch.device) -> torch.device:
    """The device this rank trains on: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per rank).

    An explicit ``cuda:K`` other than this rank's GPU is refused: every rank would share GPU K."""
    if device.type != "cuda" or not is_distributed():
        return device
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank() % max(1, torch.cuda.device_count())))
    if device.index is not None and device.index != local:
        raise ValueError(f"device {str(device)!r} under torchrun: rank {dist.get_rank()} trains on its own GPU "
                         f"cuda:{local} (LOCAL_RANK); pass device 'cuda' or 'auto'")
    return torch.device("cuda", local)


def check_global_batch(batch_size: int, world_size: int) -> None:
    """Refuse more ranks than items in a global batch (some rank would never train)."""
    if world_size > batch_size:
        raise ValueError(f"world size {world_size} is larger than the global batch_size {batch_size}: every rank "
                         f"needs at least one item of each full batch; use at most {batch_size} processes or a "
                         "larger batch_size")


def rank_share(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous share of one global batch's ``indices`` (sizes differ by at most one)."""
    return torch.tensor_split(indices, world_size)[rank]


class ShareScaler:
    """A GradScaler that also weights this rank's mean loss by ``world_size·n_rank/n_global``.

    Why: DDP averages gradients over ranks; the average of the weighted rank means is the mean over the
    global batch, so the gradient is one process's (up to float rounding) even when shares differ.
    """

    def __init__(self, scaler, share: int, global_batch: int, world_size: int):
        self.scaler = scaler
        self.weight = world_size * share / global_batch

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss * self.weight)

    def step(self, optimizer):
        return self.scaler.step(optimizer)

    def update(self) -> None:
        self.scaler.update()


class _SumOverRanks(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients too: each rank's loss depends on every rank's
    input through the sum, so the gradient of the total reaches every rank's share."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _AllReducedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, summed over ranks.

    For the CPU (gloo), where ``nn.SyncBatchNorm`` refuses to run. Sums are taken in float64 (no
    cancellation in E[x²] − E[x]²) and all-reduced with autograd, so gradients flow through the global
    statistics as SyncBatchNorm's do. A rank with an empty share contributes zeros.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        wide = x.double()
        count = torch.full((1,), float(x.numel() // x.shape[1]), dtype=torch.float64, device=x.device)
        local = torch.cat([wide.sum((0, 2, 3)), (wide * wide).sum((0, 2, 3)), count])
        total = _SumOverRanks.apply(local)
        channels = x.shape[1]
        n = total[-1]
        mean = total[:channels] / n
        var = total[channels:2 * channels] / n - mean * mean
        self._update_running_stats(mean.detach(), var.detach(), n.item())
        scale = torch.rsqrt(var + self.eps)
        shape = (1, channels, 1, 1)
        out = (wide - mean.view(shape)) * scale.view(shape)
        if self.affine:
            out = out * self.weight.double().view(shape) + self.bias.double().view(shape)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        """As BatchNorm2d does: exponential average (or cumulative with momentum=None), unbiased variance."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)


@contextlib.contextmanager
def global_batch_norm(model: nn.Module, device: torch.device):
    """Within the block, ``model``'s BatchNorm2d layers normalise over the global batch of all ranks.

    The layers keep their parameters, buffers and state-dict keys (only their class changes, and is
    restored on leaving), so checkpoints and the returned model are those of a single-process run.
    Does nothing in a single process.
    """
    if not is_distributed():
        yield model
        return
    layers = [m for m in model.modules() if type(m) is nn.BatchNorm2d]
    target = nn.SyncBatchNorm if device.type == "cuda" else _AllReducedBatchNorm2d
    for layer in layers:
        layer.__class__ = target
        if target is nn.SyncBatchNorm:
            layer.process_group = None  # the default group: all ranks
    try:
        yield model
    finally:
        for layer in layers:
            layer.__class__ = nn.BatchNorm2d
            layer.__dict__.pop("process_group", None)


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum (or ``op="max"``) ``tensor`` over ranks, in place; returns it. A no-op in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint). A no-op in a single process."""
    if is_distributed():
        dist.barrier()
