"""Several processes, one training run: PyTorch's DistributedDataParallel (DDP), launched by torchrun.

A stage started by `torchrun --nproc_per_node N` (or `--nnodes M` with a rendezvous) finds RANK,
LOCAL_RANK and WORLD_SIZE in its environment and joins the process group: `gloo` on CPU, `nccl` on CUDA,
one process per device. Every process draws its own episodes or batches from its own random stream (seed
derived from (seed, rank)); DDP averages the gradients and BatchNorm's statistics are taken over all
processes, so one update of N processes x batch B is the update one process makes with batch N x B (tested).
Rank 0 alone writes checkpoints, logs, models and metrics. Started without torchrun, a stage is rank 0 of
a world of 1 and runs exactly as before.

`python -m semguide_core.distributed N SCRIPT ARGS...` is what dvc.yaml runs: SCRIPT itself for N = 1,
torchrun's standalone launcher with N processes on this machine otherwise.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from semguide_core.runtime import pick_device

RANK_SEED_STRIDE = 1_000_003  # rank r draws from seed + r * stride: rank 0 keeps the one-process stream


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def seed(self, seed: int) -> int:
        """This process's seed, derived from (seed, rank)."""
        return seed + RANK_SEED_STRIDE * self.rank

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` for training: as it is in a world of 1; else with its BatchNorm synchronised across the
        processes, inside DDP (which averages the gradients in backward)."""
        if not self.distributed:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:  # torch's SyncBatchNorm runs on GPUs only
            _swap_batchnorms(model)
        devices = [self.device] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=devices)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of x's elements over every process (no gradient): x.mean() in a world of 1."""
        if not self.distributed:
            return x.mean()
        total = torch.stack([x.detach().sum(), torch.tensor(float(x.numel()), device=x.device, dtype=x.dtype)])
        dist.all_reduce(total)
        return total[0] / total[1]

    def check_finite(self, value: torch.Tensor, what: str) -> None:
        """Raise FloatingPointError on every process when `value` is NaN / inf on any, naming the ranks.

        Every process must stop at the same update: one that raised alone would leave the others waiting
        for its gradients.
        """
        finite = torch.isfinite(value.detach()).all()
        if not self.distributed:
            if not finite:
                raise FloatingPointError(f"{what} is {value.item()}")
            return
        flags = torch.zeros(self.size, device=value.device)
        flags[self.rank] = float(not finite)
        dist.all_reduce(flags)
        bad = flags.nonzero().flatten().tolist()
        if bad:
            raise FloatingPointError(f"{what} is not finite on rank {', '.join(map(str, bad))}")

    def gather(self, obj) -> list | None:
        """Every process's `obj` as a list on rank 0 (None elsewhere); [obj] in a world of 1."""
        if not self.distributed:
            return [obj]
        out = [None] * self.size if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DDP (its attributes, its plain forward)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def join(device_name: str = "auto") -> World:
    """This process's World: joins the process group when torchrun started several processes."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if size == 1:
        return World(0, 1, device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, device)


def leave(world: World) -> None:
    """Leave the process group (after the last collective call), all processes together: one that tore its
    gloo connections down while another was still in its last collective once aborted the job at exit
    ("terminate called without an active exception", 1 two-process test run in about 25)."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _SumOverRanks(torch.autograd.Function):
    """x summed over every process; the gradient of the sum is the sum of the gradients (all-reduce both ways)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are the mean and variance over every process's batch.

    The CPU counterpart of torch's SyncBatchNorm (GPU only): per-channel sums are added up across the
    processes by an all-reduce that autograd differentiates through, so the gradient is that of one
    BatchNorm over the whole batch. Same parameters and buffers as BatchNorm2d (state dicts load both ways).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        n = sums[-1]
        mean = sums[:c] / n
        var = sums[c:2 * c] / n - mean * mean  # biased, as BatchNorm normalises with
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        scale = self.weight / torch.sqrt(var + self.eps)
        return x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]


def _swap_batchnorms(model: nn.Module) -> None:
    """Make every BatchNorm2d of `model` a GlobalBatchNorm2d in place (the same parameters and buffers)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d


def launch(argv: list[str]) -> int:
    """`python -m semguide_core.distributed N SCRIPT ARGS...`: run SCRIPT with N processes on this machine.

    N = 1 runs SCRIPT in this process's place (exactly as `python SCRIPT ARGS`); N > 1 starts torchrun's
    standalone launcher. When a process fails its own one-line error is what the user reads, so the
    launcher's traceback report is silenced and only the exit status is passed on.
    """
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m semguide_core.distributed PROCESSES SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    processes, script = int(argv[0]), argv[1:]
    if processes == 1:
        os.execv(sys.executable, [sys.executable, *script])
    # the cores shared out between the processes (torchrun would give each one thread, and warn)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(["--standalone", f"--nproc_per_node={processes}", *script])
    except ChildFailedError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
