"""Data-parallel training with ``torchrun``: the process group and the few collectives we use.

``torchrun --nproc_per_node N train.py ...`` (or several nodes with
``--nnodes``/``--rdzv_endpoint``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
and the rendezvous variables; :func:`init` reads them and joins the group (NCCL
on CUDA, gloo on CPU). Without them every function here is the single-process
identity, so the trainer has one code path.

What is distributed and how:

- the model is wrapped in ``DistributedDataParallel`` (:func:`wrap`); every
  forward a regularizer runs goes through its ``forward``, and
  ``find_unused_parameters`` is on when the model has more than one task head
  (each step uses one head; the others get no gradient on that step);
- every rank sees the same global batches and takes its slice of each
  (``data_utils.sampler``), so ``--batch_size`` is the global batch;
- TAT sums its confusion tallies over ranks (:func:`all_reduce_sum`);
- evaluation is sharded and gathered (:func:`all_gather_objects`);
- only rank 0 writes logs, TensorBoard and checkpoints (``World.main``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> World:
    """The world ``torchrun`` describes in the environment (one process if none)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def init(device_type: str) -> World:
    """Join the process group torchrun set up (no-op for a single process)."""
    world = from_env()
    if world.distributed and not active():
        if device_type == "cuda":
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return world


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def wrap(model: nn.Module, device: torch.device, n_heads: int) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when distributed, else ``model`` itself."""
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=n_heads > 1
    )


def unwrap(model: nn.Module) -> Any:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``model`` itself).

    Typed ``Any``: callers know which module class they wrapped."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def no_sync(model: nn.Module) -> contextlib.AbstractContextManager:
    """Backwards inside accumulate gradients locally, without the all-reduce."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(values: Any) -> Any:
    """Element-wise sum over ranks of a tensor (returned on its device) or a numpy array.

    The input itself for one process.
    """
    if not active():
        return values
    is_tensor = isinstance(values, torch.Tensor)
    tensor = torch.as_tensor(values).clone()
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        tensor = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(tensor)
    if is_tensor:
        return tensor.to(values.device)
    return tensor.cpu().numpy()


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` for one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
