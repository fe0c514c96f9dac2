"""Several processes (torchrun DDP): setup and the two collectives the global-batch losses need.

Each process holds a contiguous slice of the global batch. loss_av compares every caption with every
image of the global batch, so embeddings are all-gathered with gradient; loss_aud sums over the
global batch's masked frames, so its partial sums are all-reduced with gradient. Every process then
computes the same global losses; their backward passes add each process's share of the gradient
world_size times over, and DDP's averaging divides that back out, so DDP with N processes follows the
loss curve of one process with the same global batch. Without a process group both are identities.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "setup",
    "is_distributed",
    "rank",
    "world_size",
    "gather",
    "global_sum",
    "barrier",
    "local_slice",
]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def setup(device: str) -> str:
    """Join the process group torchrun (or a test) describes in the environment; returns the device.

    WORLD_SIZE > 1 starts a group: NCCL with one GPU per process (LOCAL_RANK) on CUDA, gloo on CPU.
    """
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    on_cuda = device.startswith("cuda")
    dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    if on_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def local_slice(global_batch: list[int]) -> list[int]:
    """This process's contiguous share of a global batch (its size must divide evenly)."""
    n, w = len(global_batch), world_size()
    if n % w:
        raise ValueError(f"global batch size {n} is not divisible by {w} processes")
    share = n // w
    return global_batch[rank() * share : (rank() + 1) * share]


class _GatherWithGradient(torch.autograd.Function):
    """all_gather along dim 0; backward: sum the gradients of all processes, keep this one's slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.size = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.size
        return grad[start : start + ctx.size]


class _SumWithGradient(torch.autograd.Function):
    """all_reduce(sum); backward: the gradient is all-reduced too (every process used the sum)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather(x: Tensor) -> Tensor:
    """[B_local, ...] -> [B_global, ...] in process order, differentiable."""
    if not is_distributed():
        return x
    if not x.requires_grad:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)
    return _GatherWithGradient.apply(x)


def global_sum(x: Tensor) -> Tensor:
    """Sum of `x` over processes, differentiable."""
    if not is_distributed():
        return x
    if not x.requires_grad:
        x = x.clone()
        dist.all_reduce(x)
        return x
    return _SumWithGradient.apply(x)
