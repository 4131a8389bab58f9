"""Many processes started by torchrun, one job: this process's rank, device and process group.

Training splits each batch across processes; ``restore`` and ``eval`` split the images. With
one process (no torchrun) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError, TrainingError


def launched_rank() -> int:
    """This process's rank as torchrun sets it (``RANK``); 0 without torchrun."""
    return int(os.environ.get("RANK", "0"))


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
    def start(cls, device: str = "auto", option: str = "train.device") -> "Processes":
        """Join torchrun's process group (when there is one); ``device`` is auto, cpu or cuda
        (each process then takes the GPU of its LOCAL_RANK); ``option`` names it in errors."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = launched_rank(), int(os.environ.get("LOCAL_RANK", "0"))
        from .restore import resolve_device

        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"{option}: expected auto, cpu or cuda (each process takes the GPU of its "
                              f"LOCAL_RANK), got {device!r}")
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

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every process, in rank order (picklable objects; one collective)."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def stop(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
