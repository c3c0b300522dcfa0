"""What each process runs in tests/test_distributed.py, started by `python -m semguide_core.distributed N`.

    ddp_worker.py update actor|renderer|wgan OUT   one update on this rank's share of 16 fixed samples;
                                                   rank 0 saves the parameters before and after to OUT
    ddp_worker.py nan RANK UPDATE STAGE ARGS...    run stage script STAGE (as `python STAGE ARGS`) with the
                                                   actor loss of rank RANK's update UPDATE made NaN
"""
import runpy
import sys

import torch

from semguide_core.agent.ddpg import DDPG
from semguide_core.agent.rewards import Context
from semguide_core.agent.spec import agent_spec
from semguide_core.config import AgentParams, Params, RendererParams
from semguide_core.distributed import join, leave
from semguide_core.renderer import build_renderer, loss_fn

SIDE, BATCH = 16, 16


def share(x: torch.Tensor, world) -> torch.Tensor:
    """This rank's consecutive share of the batch."""
    n = len(x) // world.size
    return x[world.rank * n:(world.rank + 1) * n]


def parameters(ddpg: DDPG) -> dict:
    return {f"{name}.{k}": v.clone() for name, net in ddpg.nets.items() for k, v in net.state_dict().items()}


def update(kind: str, out: str) -> None:
    world = join("cpu")
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if kind == "renderer":
        model = build_renderer(RendererParams(fc_widths=[32], conv_width=4, upsample_blocks=2), SIDE)
        trained = world.wrap(model)
        shapes, targets = torch.rand(BATCH, 13, generator=gen), torch.rand(BATCH, SIDE, SIDE, generator=gen)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        loss_fn(trained, share(shapes, world), share(targets, world), "bce").backward()
        opt.step()
        state = model.state_dict()
    else:
        p = AgentParams(actor_width=4, critic_width=4, disc_width=4, gamma=0.774,
                        distance="l2" if kind == "actor" else "wgan")
        renderer = build_renderer(RendererParams(fc_widths=[32], conv_width=4, upsample_blocks=2), SIDE).eval()
        ddpg = DDPG(agent_spec("semantic", Params()), p, lambda a: renderer(a[:, :10]), 100, "cpu", world)
        masks = torch.zeros(BATCH, 1, SIDE, SIDE)
        masks[:, :, 4:12, 3:11] = 1
        gbp = masks * torch.rand(BATCH, 1, 1, 1, generator=gen)
        ctx = Context(torch.rand(BATCH, 3, SIDE, SIDE, generator=gen), masks, gbp,
                      torch.tensor([[3 / SIDE, 4 / SIDE, 0.5, 0.5]]).repeat(BATCH, 1))
        canvas = torch.rand(BATCH, 3, SIDE, SIDE, generator=gen)
        t = torch.randint(p.episode_steps, (BATCH,), generator=gen)
        action = torch.rand(BATCH, p.bundle, 13, generator=gen)
        before = parameters(ddpg)
        mine = Context(*(share(x, world) for x in (ctx.targets, ctx.masks, ctx.gbp, ctx.bboxes)))
        ddpg.update(share(canvas, world), share(t, world), share(action, world), mine)
        state = parameters(ddpg)
    if world.main:
        torch.save({"before": before, "after": state}, out)
    leave(world)


def nan_at(rank: int, at_update: int, stage: str, args: list[str]) -> None:
    """Run `stage` with the actor loss of rank `rank`'s update number `at_update` (from 1) made NaN."""
    import os

    real_loss, calls = DDPG.actor_loss, {"n": 0}

    def failing_loss(self, *args):
        calls["n"] += 1
        loss, *rest = real_loss(self, *args)
        if calls["n"] == at_update and int(os.environ.get("RANK", "0")) == rank:
            loss = loss * float("nan")
        return (loss, *rest)

    DDPG.actor_loss = failing_loss
    sys.argv = [stage, *args]
    runpy.run_path(stage, run_name="__main__")


if __name__ == "__main__":
    if sys.argv[1] == "update":
        update(sys.argv[2], sys.argv[3])
    else:
        nan_at(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:])
