"""What distinguishes the agents trained by `train_agent@<name>`: painting, inputs, reward weights, data.

- baseline (Huang et al.): every stroke unmasked, reward r_b only.
- semantic (the paper): bi-level painting (Eq. 3-4), mask / GBP / alignment inputs, Eq. 19 with eta, nu.
- focus_ablation (Sec. 7.1): background-zeroed, bbox-cropped images; r_b + kappa * r_focus (Eq. 20).
- baseline_mask (control): the baseline given the semantic input channels, to separate the effect of the
  rewards from that of the extra input.
"""
from __future__ import annotations

from dataclasses import dataclass

from semguide_core.agent.rewards import RewardWeights
from semguide_core.config import Params
from semguide_core.errors import ConfigError

AGENTS = ("baseline", "semantic", "focus_ablation", "baseline_mask")


@dataclass(frozen=True)
class AgentSpec:
    name: str
    bilevel: bool           # split the bundle into background and foreground strokes (Eq. 3-4)
    semantic_inputs: bool   # S_I, G_I and the alignment grid as extra input channels
    uses_semantics: bool    # trains on Psi's masks / boxes and the GBP maps (else ground truth, no GBP)
    ablation_data: bool     # Sec. 7.1 images
    weights: RewardWeights

    @property
    def kind(self) -> str:
        """How `paint` must composite this agent's strokes."""
        return "semantic" if self.bilevel else "baseline"


def agent_spec(name: str, params: Params) -> AgentSpec:
    only_background = RewardWeights(background=1.0, foreground=0.0, focus=0.0)
    if name == "baseline":
        return AgentSpec(name, False, False, False, False, only_background)
    if name == "semantic":
        return AgentSpec(name, True, True, True, False, RewardWeights(1.0, params.eta, params.nu))
    if name == "focus_ablation":
        return AgentSpec(name, False, False, True, True, RewardWeights(1.0, 0.0, params.kappa))
    if name == "baseline_mask":
        return AgentSpec(name, False, True, True, False, only_background)
    raise ConfigError(f"unknown agent {name!r} (known: {', '.join(AGENTS)})")
