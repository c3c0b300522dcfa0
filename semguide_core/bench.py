"""Throughput of the hot paths: the rasteriser, the neural renderer (forward, forward + backward), painting.

`semguide bench` prints strokes per second at each canvas side. Numbers depend on the machine and on
whatever else runs on it; the README records what they were on a quiet 2-core machine.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from semguide_core.agent.inference import PaintingAgent, load_agent
from semguide_core.agent.networks import Actor, actor_arch
from semguide_core.config import RendererParams
from semguide_core.data.prepared import load_prepared
from semguide_core.metrics import psnr
from semguide_core.painting import make_scene, paint, refine
from semguide_core.renderer import build_renderer, load_renderer
from semguide_core.strokes import random_strokes, rasterise


def per_second(work, count: int, min_seconds: float = 1.0) -> float:
    """`count` / seconds per call of work(), after one warm-up call, repeated for at least min_seconds."""
    work()
    calls, started = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - started < min_seconds:
        work()
        calls += 1
    return count * calls / (time.perf_counter() - started)


def bench_strokes(sides=(64, 128), batch: int = 64, renderer: RendererParams | None = None) -> list[dict]:
    """Rows of strokes/s for the rasteriser and the renderer (default widths) at each canvas side."""
    rows = []
    strokes = random_strokes(batch, torch.Generator().manual_seed(0))
    for side in sides:
        model = build_renderer(renderer or RendererParams(), side)
        params = torch.rand(batch, 13, requires_grad=True)

        def forward_backward():
            model(params).mean().backward()

        with torch.no_grad():
            forward = per_second(lambda: model(params), batch)
        rows.append({"canvas": side, "rasteriser": per_second(lambda: rasterise(strokes, side), batch),
                     "renderer_forward": forward, "renderer_forward_backward": per_second(forward_backward, batch)})
    return rows


def bench_painting(params, sides: tuple[int, ...] = (), strokes: int = 200, images: int = 1) -> dict[int, float]:
    """Milliseconds per image to paint `strokes` strokes on the CPU, per canvas side (default: the params'
    canvas and 128 px), with a semantic actor of the params' architecture (untrained: the cost is the same)
    and the real rasteriser; Psi and the GBP map are not included (once per image)."""
    p = params.agent
    n_background = p.bundle - p.foreground_strokes
    actor = Actor(**actor_arch(p, True, n_background)).eval()
    agent = PaintingAgent("semantic", "semantic", n_background, p.episode_steps, True, actor, p.compositing)
    result = {}
    for side in sides or (params.canvas, 128):
        soft = torch.zeros(images, 1, side, side)
        soft[..., side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 1
        scene = make_scene(torch.rand(images, 3, side, side), soft, soft, 0.0, 1)
        started = time.perf_counter()
        paint(agent, scene, strokes)
        result[side] = 1000 * (time.perf_counter() - started) / images
    return result


def learning_to_paint_actor(bundle: int = 5) -> torch.nn.Module:
    """Learning to Paint's actor as published (REFERENCE.md): ResNet-18 on 9 channels (canvas, target, t, two
    coordinates) with a stride-2 3x3 first conv and no max-pool, sigmoid of bundle x 13 numbers."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=bundle * 13)
    net.conv1 = torch.nn.Conv2d(9, 64, 3, 2, 1, bias=False)
    net.maxpool = torch.nn.Identity()
    return torch.nn.Sequential(net, torch.nn.Sigmoid()).eval()


@torch.no_grad()
def bench_learning_to_paint(side: int, images: int, steps: int = 40, bundle: int = 5) -> float:
    """Milliseconds per image of a Learning-to-Paint-equivalent inference: its actor and its fully connected
    + pixel-shuffle renderer (the published widths; at 128 px exactly 10-512-1024-2048-4096, 16 x 16 x 16),
    `steps` steps of `bundle` strokes composited one at a time, random weights (the time does not depend on
    them), `images` images per batch."""
    actor, renderer = learning_to_paint_actor(bundle), build_renderer(RendererParams(), side).eval()
    target, canvas = torch.rand(images, 3, side, side), torch.zeros(images, 3, side, side)
    r = torch.linspace(0, 1, side)
    coords = torch.stack(torch.meshgrid(r, r, indexing="ij"))[None].expand(images, -1, -1, -1)
    started = time.perf_counter()
    for t in range(steps):
        step = torch.full((images, 1, side, side), t / steps)
        a = actor(torch.cat([canvas, target, step, coords], 1)).view(images * bundle, 13)
        density = renderer(a).view(images, bundle, 1, side, side)
        colour = a.view(images, bundle, 13)[..., 10:13, None, None]
        for k in range(bundle):
            canvas = canvas * (1 - density[:, k]) + density[:, k] * colour[:, k]
    return 1000 * (time.perf_counter() - started) / images


def bench_versus_learning_to_paint(params, sides=(64, 128), batches=(1, 16)) -> list[dict]:
    """semguide's painting (`bench_painting`: its semantic actor, the real rasteriser, 200 strokes) and the
    Learning-to-Paint-equivalent inference, one after the other in this process (same threads): ms per image
    and how many times faster semguide is, per canvas side and batch size. Each is run once to warm up."""
    rows = []
    for side in sides:
        for images in batches:
            bench_painting(params, (side,), images=images)  # warm-up runs of both
            bench_learning_to_paint(side, images)
            ours = bench_painting(params, (side,), images=images)[side]
            theirs = bench_learning_to_paint(side, images)
            rows.append({"canvas": side, "images": images, "semguide_ms": ours, "learning_to_paint_ms": theirs,
                         "speedup": theirs / ours})
    return rows


def bench_refine(params, models: Path, prepared: Path, steps: tuple[int, ...] = (0, 50, 200),
                 images: int = 8) -> list[dict]:
    """`semguide paint --refine N` on the first `images` prepared test images: mean PSNR and seconds per image
    (painting included) for each N, with the trained baseline agent and the renderer in `models` (the
    baseline needs no Psi or GBP maps; refinement's cost is per image, so a few images measure it)."""
    data = load_prepared(prepared)
    batch = data.tensors(data.split("test")[:images])
    painter = load_agent(models / "agent_baseline.pt", "cpu", "baseline", params.canvas)
    renderer = load_renderer(models / "renderer.pt", "cpu")
    zeros = batch.masks.new_zeros(len(batch.images), 1, *batch.images.shape[-2:])
    scene = make_scene(batch.images, zeros, zeros, params.paint.min_instance_area, params.paint.max_instances)
    started = time.perf_counter()
    painting = paint(painter, scene, params.paint.strokes)
    paint_seconds = time.perf_counter() - started
    rows = []
    for n in steps:
        started = time.perf_counter()
        refined = refine(painting, scene, renderer, n) if n else painting
        seconds = paint_seconds + time.perf_counter() - started
        rows.append({"refine_steps": n, "psnr_db": psnr(batch.images, refined.canvas).mean().item(),
                     "seconds_per_image": seconds / len(batch.images), "images": len(batch.images)})
    return rows


# What `semguide paint` does before painting: the entry point's imports, the painting code's, and the models
STARTUP = """
import json, time
started = time.perf_counter()
import semguide_core.cli
from semguide_core.config import load_params
from semguide_core.paint import Models
from semguide_core.runtime import pick_device
imported = time.perf_counter()
p = load_params({params!r})
Models.load({models!r} + "/agent_{agent}.pt", {agent!r}, p.canvas, {models!r} + "/psi.pt", {models!r} + "/expert.pt",
            p.gbp.percentile, pick_device(p.device))
print(json.dumps({{"imports_s": imported - started, "loading_s": time.perf_counter() - imported}}))
"""


def bench_startup(models: Path, params_file: Path, agents=("baseline", "semantic"), repeats: int = 5) -> list[dict]:
    """`semguide paint`'s start-up per agent, in fresh processes (imports are only paid once per process):
    the medians over `repeats` runs of the whole process (interpreter start included), its imports and its
    model loading, in seconds. The first run of each agent is a warm-up (the files come into the OS cache)."""
    rows = []
    for agent in agents:
        code = STARTUP.format(params=str(params_file), models=str(models), agent=agent)
        runs = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            runs.append({"process_s": time.perf_counter() - started, **json.loads(done.stdout.splitlines()[-1])})
        runs = runs[1:]
        rows.append({"agent": agent, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}})
    return rows
