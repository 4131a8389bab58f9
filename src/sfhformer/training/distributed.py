"""Many processes (torchrun), one run: the process group, BatchNorm over the global batch, and a
sampler that gives every global batch the same samples whatever the number of processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, TrainingError


@dataclass
class Processes:
    """This process's place in a (possibly one-process) run; torchrun sets the environment."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str = "auto") -> "Processes":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        from ..restore import resolve_device

        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device: expected auto, cpu or cuda, got {device!r}")
        cuda = resolve_device(device).type == "cuda"
        dev = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")  # torchrun: a GPU each
        if cuda:
            torch.cuda.set_device(dev)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(rank, local_rank, world, dev)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The network to train: ``model`` itself in one process, else DDP around it."""
        if self.world == 1:
            return model
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over processes (one collective)."""
        if self.world > 1:
            values = values.clone()
            dist.all_reduce(values)
        return values

    def on_main(self, work) -> None:
        """Run ``work()`` on the main process alone; every process returns together, and when it
        failed every process raises (the main one its own error), so none is left waiting."""
        error = None
        if self.main:
            try:
                work()
            except Exception as e:
                error = e
        failed = error is not None
        if self.world > 1:
            failed = bool(self.sum(torch.tensor([float(failed)], device=self.device)).item())
        if error is not None:
            raise error
        if failed:
            raise TrainingError("stopped because the main process failed (its error is printed there)")

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def stop(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the batch of every process.

    ``nn.SyncBatchNorm`` refuses CPU tensors; this one sums per-channel moments with an
    autograd-aware all-reduce, so it works with gloo (CPU) and NCCL alike. Outside training or
    a process group it is plain BatchNorm; its state-dict keys are BatchNorm2d's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        count = torch.full((1,), xf.numel() / xf.shape[1], device=x.device)
        moments = all_reduce(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        c = x.shape[1]
        n = moments[-1]
        mean = moments[:c] / n
        var = (moments[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)).clamp_min(0) * m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def use_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by :class:`GlobalBatchNorm2d`, keeping its state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats).to(child.weight.device)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            use_global_batchnorm(child)
    return module


class EpochBatchSampler:
    """Endless batches of ``(index, epoch)``: epoch e visits a permutation seeded by (seed, e);
    global batch k is the same whatever the number of processes, each taking its slice; the
    stream can start at any step without touching the data (resume)."""

    def __init__(self, size: int, global_batch: int, seed: int = 0, rank: int = 0, world: int = 1,
                 start_step: int = 0) -> None:
        if global_batch % world:
            raise ConfigError(f"train.batch_size {global_batch} must be divisible by the {world} processes")
        if size < global_batch:
            raise ConfigError(f"the dataset has {size} samples, fewer than the batch size {global_batch}; "
                              f"raise its length or lower train.batch_size")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.rank, self.world, self.start_step = rank, world, start_step
        self.per_epoch = size // global_batch
        self.local = global_batch // world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        perm, perm_epoch = None, -1
        while True:
            epoch, pos = divmod(step, self.per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
                perm_epoch = epoch
            start = pos * self.global_batch + self.rank * self.local
            yield [(int(i), epoch) for i in perm[start:start + self.local]]
            step += 1
