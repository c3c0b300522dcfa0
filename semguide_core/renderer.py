"""The neural renderer Phi: stroke shape (10 numbers) -> stroke density map, and its training loop.

Architecture as published (Huang et al. 2019), with widths as params: a fully connected expansion to a
small feature map, then blocks of (conv3x3, ReLU, conv3x3, PixelShuffle(2)) up to the canvas, sigmoid.
It is differentiable, which is what makes the DDPG model-based: the actor's gradient flows through it.

Trained against the real rasteriser (strokes.py). The published renderers use MSE on the sigmoid output;
here the default is binary cross-entropy on the logits, which trains reliably where MSE through the
sigmoid can collapse to an all-zero map (DESIGN.md). Held-out MSE / PSNR are reported either way.

The logits are bounded to +-LOGIT_BOUND by a scaled tanh. Unbounded, BCE drives the logits of empty pixels
towards -6,000, where sigmoid' underflows into float32 denormals (very slow CPU arithmetic) and then to 0;
at +-20 the density is within 2e-9 of 0 or 1, so the bound costs no accuracy.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from semguide_core.config import RendererParams
from semguide_core.distributed import World
from semguide_core.errors import ModelFileError, TrainingDiverged
from semguide_core.runtime import Checkpoint, load_state, load_torch
from semguide_core.strokes import SHAPE_SIZE

LOGIT_BOUND = 20.0


class NeuralRenderer(nn.Module):
    def __init__(self, canvas: int, fc_widths: list[int], conv_width: int, upsample_blocks: int):
        super().__init__()
        self.arch = dict(canvas=canvas, fc_widths=list(fc_widths), conv_width=conv_width,
                         upsample_blocks=upsample_blocks)
        self.start = canvas // 2 ** upsample_blocks
        if self.start * 2 ** upsample_blocks != canvas:
            raise ValueError(f"canvas {canvas} is not divisible by 2**upsample_blocks = {2 ** upsample_blocks}")
        widths = [SHAPE_SIZE, *fc_widths, conv_width * self.start ** 2]
        fc = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            fc += [nn.Linear(w_in, w_out), nn.ReLU()]
        self.fc = nn.Sequential(*fc)
        blocks = []
        for i in range(upsample_blocks):
            out = 1 if i == upsample_blocks - 1 else conv_width
            blocks += [nn.Conv2d(conv_width, conv_width, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(conv_width, 4 * out, 3, padding=1), nn.PixelShuffle(2)]
            if out != 1:
                blocks.append(nn.ReLU())
        # channels-last convs: 1.25x faster forward + backward on CPU (measured, batch 80 at 64 px), same output
        self.up = nn.Sequential(*blocks).to(memory_format=torch.channels_last)

    def logits(self, shape: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid density, [N, canvas, canvas], from stroke shapes [N, >=10] (colour ignored)."""
        x = self.fc(shape[:, :SHAPE_SIZE])
        raw = self.up(x.view(-1, self.arch["conv_width"], self.start, self.start))[:, 0]
        return LOGIT_BOUND * torch.tanh(raw / LOGIT_BOUND)

    def forward(self, shape: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Density Phi[a] in [0,1], [N, canvas, canvas] (its logits with `logits`: what training reads,
        through forward so that DDP sees it)."""
        raw = self.logits(shape)
        return raw if logits else torch.sigmoid(raw)


def build_renderer(p: RendererParams, canvas: int) -> NeuralRenderer:
    return NeuralRenderer(canvas, p.fc_widths, p.conv_width, p.upsample_blocks)


def renderer_file(model: NeuralRenderer) -> dict:
    """What models/renderer.pt holds: the architecture and the weights."""
    return {"arch": model.arch, "state": model.state_dict()}


def load_renderer(path, device: torch.device | str = "cpu") -> NeuralRenderer:
    """A trained renderer, frozen and in eval mode (the agent only backpropagates through it)."""
    saved = load_torch(path, "renderer")
    if not isinstance(saved, dict) or "arch" not in saved or "state" not in saved:
        raise ModelFileError(f"{path}: not a renderer file (expected keys arch, state)")
    model = NeuralRenderer(**saved["arch"])
    load_state(model, saved["state"], path)
    return model.to(device).eval().requires_grad_(False)


def loss_fn(model: NeuralRenderer, shape: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The training loss (`renderer.loss`); model may be inside DDP."""
    logits = model(shape, logits=True)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(torch.sigmoid(logits), target)


@torch.no_grad()
def evaluate(model: NeuralRenderer, shapes: torch.Tensor, targets: torch.Tensor, batch: int = 256) -> dict:
    """Held-out MSE, PSNR (peak 1) and the worst single stroke's MSE; targets as uint8 or float."""
    model.eval()
    per_stroke = []
    for s, t in zip(shapes.split(batch), targets.split(batch)):
        pred = model(s)
        per_stroke.append(((pred - as_float(t)) ** 2).mean(dim=(1, 2)))
    model.train()
    per_stroke = torch.cat(per_stroke)
    mse = per_stroke.mean().item()
    return {"mse": mse, "psnr": 10 * math.log10(1 / max(mse, 1e-12)), "worst_stroke_mse": per_stroke.max().item()}


def as_float(density: torch.Tensor) -> torch.Tensor:
    """Stored density maps are uint8 (0..255) to keep the stroke sets small."""
    return density.float() / 255 if density.dtype == torch.uint8 else density


def train_renderer(model: NeuralRenderer, p: RendererParams, train: dict, val: dict,
                   checkpoint: Checkpoint, live, device: torch.device, world: World = World()) -> dict:
    """Train `model` on train = {"strokes": [N,13], "density": uint8 [N,H,W]}; resume from `checkpoint`.

    Logs the loss and held-out metrics through `live` (DVCLive), returns the final held-out metrics. With
    several processes (`world`) each draws its own batches and DDP averages the gradients; rank 0 logs,
    evaluates and writes the checkpoint (with every process's batch stream) and returns the metrics.
    """
    model.to(device).train()
    trained = world.wrap(model)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    milestones = [int(f * p.steps) for f in p.lr_decay_at]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    gen = torch.Generator().manual_seed(world.seed(p.seed))
    step = 0
    saved = checkpoint.load()
    if saved is not None:
        model.load_state_dict(saved["model"]), opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"]), gen.set_state(saved["rngs"][world.rank])
        step = saved["step"]
    val_shapes, val_density = val["strokes"].to(device), val["density"].to(device)
    n = len(train["strokes"])
    bar = tqdm(range(step, p.steps), initial=step, total=p.steps, desc="train_renderer", disable=not world.main)
    for step in bar:
        idx = torch.randint(n, (p.batch_size,), generator=gen)
        shape, target = train["strokes"][idx].to(device), as_float(train["density"][idx].to(device))
        loss = loss_fn(trained, shape, target, p.loss)
        try:
            world.check_finite(loss, "renderer loss")
        except FloatingPointError as err:
            raise TrainingDiverged(f"{err} at step {step}; {checkpoint.kept()}", every_rank=world.distributed) from None
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        done = step + 1
        if done % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if done % p.checkpoint_every == 0 or done == p.steps:
            rngs = world.gather(gen.get_state())
            if not world.main:
                continue
            held_out = evaluate(model, val_shapes, val_density)
            live.step = done
            live.log_metric("train/loss", loss.item())
            live.log_metric("train/lr", sched.get_last_lr()[0])
            for key, value in held_out.items():
                live.log_metric(f"val/{key}", value)
            live.next_step()
            checkpoint.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                             "rngs": rngs, "step": done})
    return evaluate(model, val_shapes, val_density) if world.main else {}

