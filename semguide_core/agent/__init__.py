"""The painting agent: environment, rewards, networks, model-based DDPG, replay, training and inference."""
from semguide_core.agent.inference import PaintingAgent, load_agent

__all__ = ["PaintingAgent", "load_agent"]
