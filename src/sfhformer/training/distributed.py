"""Many processes (torchrun), one training run: BatchNorm over the global batch, and a sampler
that gives every global batch the same samples whatever the number of processes. The process
group itself is :class:`sfhformer.distributed.Processes` (restore and eval use it too)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..distributed import Processes
from ..errors import ConfigError

__all__ = ["EpochBatchSampler", "GlobalBatchNorm2d", "Processes", "use_global_batchnorm"]


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
