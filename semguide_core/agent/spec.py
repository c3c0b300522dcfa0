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


def agent_spec(name: str, params: Params, kappa: float = 0.0) -> AgentSpec:
    """The agent called `name`, with its reward weights: eta, nu from params, kappa (the focus ablation's
    weight, Eq. 20) given, as ablation/dvc.yaml trains one focus ablation per kappa."""
    agents = {
        "baseline": AgentSpec("baseline", bilevel=False, semantic_inputs=False, uses_semantics=False,
                              ablation_data=False, weights=RewardWeights()),
        "semantic": AgentSpec("semantic", bilevel=True, semantic_inputs=True, uses_semantics=True,
                              ablation_data=False, weights=RewardWeights(eta=params.eta, nu=params.nu)),
        "focus_ablation": AgentSpec("focus_ablation", bilevel=False, semantic_inputs=False, uses_semantics=True,
                                    ablation_data=True, weights=RewardWeights(nu=kappa)),
        "baseline_mask": AgentSpec("baseline_mask", bilevel=False, semantic_inputs=True, uses_semantics=True,
                                   ablation_data=False, weights=RewardWeights()),
    }
    if name not in agents:
        raise ConfigError(f"unknown agent {name!r} (known: {', '.join(AGENTS)})")
    return agents[name]
