"""Replay buffer: a ring of transitions (C_t as uint8, t, image idx, instance, bundle a_t).

Targets, masks and GBP maps are not copied in: a transition names its image by index into the `Pool`.
The next canvas is not stored either: the update re-paints it from C_t and a_t with the renderer, which it
must run anyway for the model-based reward. So a transition costs 3*H*W bytes plus a few numbers
(`bytes_per_transition`), where the published buffer holds float canvas and target (7-14 GB in all).
"""
from __future__ import annotations

import torch

from semguide_core.strokes import STROKE_SIZE


class Replay:
    FIELDS = ("canvas", "step", "idx", "instance", "action")

    def __init__(self, capacity: int, canvas: int, bundle: int):
        self.capacity, self.size, self.next = capacity, 0, 0
        self.canvas = torch.zeros(capacity, 3, canvas, canvas, dtype=torch.uint8)
        self.step = torch.zeros(capacity, dtype=torch.int16)
        self.idx = torch.zeros(capacity, dtype=torch.int32)
        self.instance = torch.zeros(capacity, dtype=torch.int16)
        self.action = torch.zeros(capacity, bundle, STROKE_SIZE, dtype=torch.float16)

    @property
    def bytes_per_transition(self) -> int:
        return sum(getattr(self, name)[0].numel() * getattr(self, name).element_size() for name in self.FIELDS)

    def state_dict(self) -> dict:
        """The filled slots and the ring position: what a checkpoint needs to resume the same sampling."""
        return {"next": self.next, "size": self.size,
                **{name: getattr(self, name)[:self.size].clone() for name in self.FIELDS}}

    def load_state_dict(self, state: dict) -> None:
        self.next, self.size = state["next"], state["size"]
        for name in self.FIELDS:
            getattr(self, name)[:self.size] = state[name]

    def add(self, canvas: torch.Tensor, step: int, idx: torch.Tensor, instance: torch.Tensor,
            action: torch.Tensor) -> None:
        """A batch of transitions; canvas float [B,3,H,W] in [0,1] is stored as uint8."""
        b = len(canvas)
        slots = (self.next + torch.arange(b)) % self.capacity
        self.canvas[slots] = (canvas.detach().cpu() * 255).round().to(torch.uint8)
        self.step[slots] = step
        self.idx[slots] = idx.to(torch.int32)
        self.instance[slots] = instance.to(torch.int16)
        self.action[slots] = action.detach().cpu().half()
        self.next = int((self.next + b) % self.capacity)
        self.size = min(self.size + b, self.capacity)

    def sample(self, n: int, gen: torch.Generator, device) -> dict:
        """n random transitions: canvas float [n,3,H,W], step [n] float, idx, instance, action float."""
        slots = torch.randint(self.size, (n,), generator=gen)
        return {"canvas": self.canvas[slots].to(device).float() / 255, "step": self.step[slots].to(device).float(),
                "idx": self.idx[slots].long(), "instance": self.instance[slots].long(),
                "action": self.action[slots].to(device).float()}
