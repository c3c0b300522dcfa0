"""Throughput of the hot paths: the rasteriser and the neural renderer (forward, forward + backward).

`semguide bench` prints strokes per second at each canvas side. Numbers depend on the machine and on
whatever else runs on it; the README records what they were on a quiet 2-core machine.
"""
from __future__ import annotations

import time

import torch

from semguide_core.config import RendererParams
from semguide_core.renderer import build_renderer
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
