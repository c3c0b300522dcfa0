"""A trained agent for painting: `load_agent(path, device)` and `PaintingAgent.act`.

Painting with it, one bundle at a time, is `painting.paint` (the one episode loop: the `paint` stage,
`semguide paint`, the validation canvases while training and the agents' final metrics).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from semguide_core.agent import env
from semguide_core.agent.networks import Actor
from semguide_core.agent.rewards import Context
from semguide_core.errors import ModelFileError
from semguide_core.runtime import load_state, load_torch

FILE_KEYS = ("name", "kind", "canvas", "arch", "n_background", "steps", "semantic_inputs", "state")


@dataclass
class PaintingAgent:
    name: str              # baseline | semantic | focus_ablation | baseline_mask
    kind: str              # 'semantic': background strokes masked by 1 - S, foreground by S; 'baseline': unmasked
    n_background: int      # background strokes per bundle (drawn first); K for the baseline
    steps: int             # bundles per training episode, T
    semantic_inputs: bool  # whether the actor reads mask, GBP map and bbox
    actor: Actor
    compositing: str = "paper"  # how masked strokes composite (strokes.composite): paper | layered

    @property
    def layered(self) -> bool:
        return self.compositing == "layered"

    @property
    def bundle(self) -> int:
        return self.actor.bundle

    @torch.no_grad()
    def act(self, canvas: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, gbp: torch.Tensor,
            bbox: torch.Tensor, step: int, object_steps=None) -> torch.Tensor:
        """The next bundle [B, K, 13] for canvas C_t after `step` bundles; background strokes first.

        object_steps: bundles already painted on each image's current instance ([B] or an int; default
        `step`), whose coarse-to-fine grid its foreground strokes follow (`placement.place`)."""
        ctx = Context(target, mask, gbp, bbox)
        was_training = self.actor.training
        self.actor.eval()
        bundle, _ = env.actor_bundle(self.actor, canvas, ctx, step, self.steps, self.semantic_inputs, object_steps)
        self.actor.train(was_training)
        return bundle


def agent_file(agent: PaintingAgent, arch: dict, canvas: int) -> dict:
    """What models/agent_<name>.pt holds: the actor, how to paint with it and the canvas it was trained at."""
    saved = {"name": agent.name, "kind": agent.kind, "canvas": canvas, "arch": arch, "n_background": agent.n_background,
             "steps": agent.steps, "semantic_inputs": agent.semantic_inputs, "state": agent.actor.state_dict()}
    if agent.kind == "semantic":  # only a bi-level agent masks its strokes; the others' files do not say how
        saved["compositing"] = agent.compositing
    return saved


def load_agent(path, device: torch.device | str = "cpu", name: str | None = None,
               canvas: int | None = None) -> PaintingAgent:
    """A trained agent, frozen and in eval mode; ModelFileError for a missing or mismatched file.

    name / canvas: what the caller expects; a file holding another agent or trained at another canvas
    side is refused (it would paint, at the wrong size or under the wrong name).
    """
    saved = load_torch(path, "agent")
    if not isinstance(saved, dict) or any(k not in saved for k in FILE_KEYS):
        raise ModelFileError(f"{path}: not an agent file (expected keys {', '.join(FILE_KEYS)})")
    if name is not None and saved["name"] != name:
        raise ModelFileError(f"{path}: holds the {saved['name']!r} agent, not {name!r}")
    if canvas is not None and saved["canvas"] != canvas:
        raise ModelFileError(f"{path}: trained at canvas {saved['canvas']}, params say canvas = {canvas}")
    actor = Actor(**saved["arch"])
    load_state(actor, saved["state"], path)
    actor = actor.to(device).eval().requires_grad_(False)
    # no key: an agent without masked strokes, or one trained before agent.compositing existed (Eq. 3-4 as printed)
    return PaintingAgent(saved["name"], saved["kind"], saved["n_background"], saved["steps"],
                         saved["semantic_inputs"], actor, saved.get("compositing", "paper"))

