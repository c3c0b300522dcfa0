"""The painting agent: Eq. 3-4, rewards (Eq. 5, 12, 14-15, 19), instance sampling, DDPG, replay, training."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from semguide_core.agent import env
from semguide_core.agent.data import Pool, sample_instance
from semguide_core.agent.ddpg import DDPG
from semguide_core.probe import run_probe
from semguide_core.agent.replay import Replay
from semguide_core.agent.rewards import Context, Rewards, RewardWeights, focus_distance, total_reward
from semguide_core.agent.spec import agent_spec
from semguide_core.agent.train import train
from semguide_core.config import AgentParams, Params
from semguide_core.errors import ConfigError, TrainingDiverged
from semguide_core.runtime import Checkpoint
from semguide_core.semantics.boxes import mask_to_bbox
from semguide_core.strokes import rasterise

SIDE = 16
TINY = AgentParams(episode_steps=2, envs=4, train_steps=8, warmup_steps=2, batch_size=8, replay_size=64,
                   actor_width=4, critic_width=4, disc_width=4, checkpoint_every=2, log_every=2, val_images=2,
                   gamma=0.774, updates_per_step=1.0,
                   training_canvas="renderer")  # TinyRenderer is no model of the rasteriser


class TinyRenderer(torch.nn.Module):
    """A differentiable stand-in for Phi: a linear map of the 10 shape numbers to a density map."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(10, SIDE * SIDE).requires_grad_(False)

    def forward(self, a):
        return torch.sigmoid(self.fc(a[:, :10])).view(-1, SIDE, SIDE)


def synthetic_pool(n=12) -> Pool:
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(n, 3, SIDE, SIDE, generator=gen) * 255).to(torch.uint8)
    masks = torch.zeros(n, 1, SIDE, SIDE)
    masks[:, :, 4:12, 3:11] = 1
    instances = masks[:, 0].to(torch.uint8)
    return Pool(images=images, masks=masks.half(), gbp=(masks * 0.5).half(), bboxes=mask_to_bbox(masks[:, 0]),
                gt_masks=masks.to(torch.uint8), parts=masks.to(torch.uint8), instances=instances,
                n_instances=np.ones(n, dtype=int), train=[np.arange(8)], test=np.arange(8, n))


def test_unknown_agent_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown agent 'painter'"):
        agent_spec("painter", Params())


# ---------------------------------------------------------------------------------------------- Eq. 3-4
def test_bilevel_update_matches_hand_computed_canvas():
    canvas = torch.full((1, 3, 1, 2), 0.5)
    mask = torch.tensor([[[[1.0, 0.0]]]])             # S_I: left pixel foreground
    bundle = torch.zeros(1, 2, 13)
    bundle[0, 0, 10:13] = torch.tensor([1.0, 0.0, 0.0])  # background stroke, red
    bundle[0, 1, 10:13] = torch.tensor([0.0, 0.0, 1.0])  # foreground stroke, blue
    density = torch.tensor([[[0.5, 0.5]], [[1.0, 0.25]]])  # Phi of the two strokes
    out = env.paint_bundle(canvas, bundle, lambda a: density, n_background=1, masks=mask)
    # Eq. 3: C_b = C (1 - 0.5) + 0.5 * red * (1 - S)  -> left (.25,.25,.25), right (.75,.25,.25)
    # Eq. 4: C = C_b (1 - Phi_f) + Phi_f * blue * S    -> left (0,0,1), right (.5625,.1875,.1875)
    expected = torch.tensor([[[0.0, 0.5625]], [[0.0, 0.1875]], [[1.0, 0.1875]]])
    assert torch.allclose(out[0], expected)
    # layered: each density limited to its layer. Background (1 - S = [0, 1]): left stays (.5,.5,.5),
    # right .5 * .5 + .5 * red = (.75,.25,.25); foreground (S = [1, 0]): left (0,0,1), right unchanged
    layered = env.paint_bundle(canvas, bundle, lambda a: density, n_background=1, masks=mask, layered=True)
    assert torch.allclose(layered[0], torch.tensor([[[0.0, 0.75]], [[0.0, 0.25]], [[1.0, 0.25]]]))


@pytest.mark.parametrize("compositing, outside", [("paper", 0.0), ("layered", 0.5)])
def test_semantic_agent_composites_with_the_thresholded_mask(compositing, outside):
    # a white foreground stroke of full density where Psi's soft mask says 0.6: the pixel turns white
    # (with the soft mask in Eq. 4 it could only reach 0.6, the dark halo stroke_mask avoids); where it
    # says 0.4 Eq. 4 as printed erases the grey to black, the layered rule leaves it
    p = replace(TINY, bundle=1, foreground_strokes=1, compositing=compositing)
    ddpg = DDPG(agent_spec("semantic", Params()), p, lambda a: torch.ones(len(a), 1, 2), 1, "cpu")
    soft = torch.tensor([[[[0.6, 0.4]]]])
    ctx = Context(torch.zeros(1, 3, 1, 2), soft, soft, torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    bundle = torch.ones(1, 1, 13)
    out = ddpg.paint(torch.full((1, 3, 1, 2), 0.5), bundle, ctx)
    assert torch.allclose(out[0, :, 0], torch.tensor([[1.0, outside]] * 3))


def test_baseline_composites_unmasked():
    canvas = torch.zeros(1, 3, 1, 2)
    bundle = torch.zeros(1, 1, 13)
    bundle[0, 0, 10:13] = 1.0
    out = env.paint_bundle(canvas, bundle, lambda a: torch.ones(1, 1, 2), n_background=1, masks=None)
    assert torch.allclose(out, torch.ones_like(out))


# ---------------------------------------------------------------------------------------------- rewards
def test_straight_through_density_has_the_rasterisers_values_and_the_renderers_gradient():
    renderer = TinyRenderer()
    a = torch.rand(6, 13, generator=torch.Generator().manual_seed(3), requires_grad=True)
    density = env.training_density(renderer, "rasteriser", SIDE)
    weights = torch.rand(SIDE, SIDE)
    (density(a) * weights).sum().backward()
    assert torch.allclose(density(a), rasterise(a.detach(), SIDE), atol=1e-6)
    expected = torch.autograd.grad((renderer(a[:, :10]) * weights).sum(), a)[0]
    assert torch.allclose(a.grad, expected) and a.grad[:, :10].abs().sum() > 0
    with torch.no_grad():  # acting and validation: the rasteriser alone
        assert torch.equal(density(a), rasterise(a, SIDE))
    assert torch.equal(env.training_density(renderer, "renderer", SIDE)(a), renderer(a[:, :10]))


def test_focus_distance_hand_case_and_invariance_to_extent():
    target = torch.zeros(1, 3, 4, 4)
    canvas = torch.zeros(1, 3, 4, 4)
    canvas[:, :, :2] = 0.5                 # error 0.5 on the top half, 0 below
    g = torch.zeros(1, 1, 4, 4)
    g[:, :, 0, 0] = 1.0                    # one key pixel, in the wrong half
    assert focus_distance(target, canvas, g).item() == pytest.approx(0.25, rel=1e-4)
    g_wide = torch.zeros(1, 1, 4, 4)
    g_wide[:, :, :2] = 1.0                 # 8 key pixels with the same error: same distance
    assert focus_distance(target, canvas, g_wide).item() == pytest.approx(0.25, rel=1e-4)
    g_mixed = g_wide.clone()
    g_mixed[:, :, 2:] = 1.0                # half the key pixels now correct: half the distance
    assert focus_distance(target, canvas, g_mixed).item() == pytest.approx(0.125, rel=1e-4)
    assert focus_distance(target, canvas, 0.3 * g_wide).item() == pytest.approx(0.25, rel=1e-4)


@pytest.mark.parametrize("weights", [RewardWeights(), RewardWeights(eta=2, nu=10), RewardWeights(nu=1)])
def test_stroke_towards_target_earns_positive_reward(weights):
    stroke = torch.tensor([[0.2, 0.3, 0.5, 0.5, 0.8, 0.7, 0.3, 0.3, 1.0, 1.0, 0.9, 0.6, 0.1]])
    canvas = torch.zeros(1, 3, 32, 32)
    target = env.paint_bundle(canvas, stroke[:, None], lambda a: rasterise(a, 32), 1, None)
    mask = torch.ones(1, 1, 32, 32)
    ctx = Context(target, mask, mask, torch.tensor([[0.1, 0.1, 0.8, 0.8]]))
    reward, terms = Rewards(weights, "l2")(canvas, target, ctx)
    assert reward.item() > 0 and all(r.item() > 0 for r in terms.values())
    worse, _ = Rewards(weights, "l2")(target, canvas, ctx)  # undoing it is penalised
    assert worse.item() < 0


def test_image_scale_makes_eq19_one_pixel_weighted_l2():
    """scale 'image': r_b + eta r_f + nu r_focus = the change of mean e^2 (1 + eta S + nu G^2 S) over pixels."""
    target, canvas = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)  # e^2 = 0.25 everywhere
    ones = torch.ones(1, 1, 8, 8)
    ctx = Context(target, ones, 0.5 * ones, torch.tensor([[0.25, 0.25, 0.5, 0.5]]))  # object: a quarter
    weights = RewardWeights(eta=2, nu=10)
    image = Rewards(weights, "l2", scale="image").distances(canvas, ctx)
    crop = Rewards(weights, "l2", scale="crop").distances(canvas, ctx)
    assert {k: v.item() for k, v in crop.items()} == pytest.approx({"background": .25, "foreground": .25, "focus": .25})
    # object pixels are a quarter of the image: .25 * .25; salient: (0.5 * 0.5)^2 = .0625 on a quarter
    assert {k: v.item() for k, v in image.items()} == pytest.approx(
        {"background": .25, "foreground": .0625, "focus": .015625})
    assert total_reward(image, weights).item() == pytest.approx(0.25 * (1 + (2 + 10 * 0.25) * 0.25))


def test_cell_weights_favour_small_cells_and_average_one():
    from semguide_core.agent.ddpg import cell_weights
    cells = torch.tensor([[[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.125, 0.125]]])  # areas 1/4 and 1/64
    assert cell_weights(cells, 0.0).tolist() == [1.0, 1.0]
    assert cell_weights(cells, 0.5).tolist() == pytest.approx([0.4, 1.6])        # 2 : 8
    assert cell_weights(cells, 1.0).tolist() == pytest.approx([2 / 17, 32 / 17])  # 4 : 64


# ------------------------------------------------------------------------------------------- instances
def test_instance_sampling_follows_pixel_areas():
    instances = torch.zeros(10, 10, dtype=torch.uint8)
    instances[:1] = 1      # 10 pixels
    instances[1:4] = 2     # 30 pixels
    instances[4:10] = 3    # 60 pixels
    gen = torch.Generator().manual_seed(0)
    draws = np.array([sample_instance(instances, 3, gen) for _ in range(3000)])
    freq = np.bincount(draws, minlength=4)[1:] / len(draws)
    assert np.allclose(freq, [0.1, 0.3, 0.6], atol=0.03)
    assert sample_instance(instances, 1, gen) == 0


def test_instance_context_restricts_mask_and_box():
    pool = synthetic_pool()
    inst = pool.instances.clone()
    inst[0, :, :] = 0
    inst[0, 4:12, 3:7] = 1
    inst[0, 4:12, 7:11] = 2
    pool = replace(pool, instances=inst, n_instances=np.array([2] + [1] * 11))
    ctx = pool.context(torch.tensor([0]), torch.tensor([2]), "cpu")
    assert ctx.masks[0, 0, 4:12, 7:11].min() == 1 and ctx.masks[0, 0, :, :7].max() == 0
    assert torch.allclose(ctx.bboxes[0], torch.tensor([7 / SIDE, 4 / SIDE, 4 / SIDE, 8 / SIDE]))


def test_mixed_pool_draws_in_ratio():
    pool = synthetic_pool().merged(synthetic_pool(), mix=0.2)
    idx, _ = pool.sample(2000, torch.Generator().manual_seed(1))
    assert (idx >= 12).float().mean().item() == pytest.approx(0.2, abs=0.03)


# ------------------------------------------------------------------------------------------ DDPG, replay
@pytest.mark.parametrize("distance", ["l2", "wgan"])
def test_ddpg_updates_on_a_fixed_batch_lower_the_critic_loss(distance):
    torch.manual_seed(0)
    p = replace(TINY, distance=distance, tau=0.0, critic_lr=3e-3, gamma=0.9, critic_blocks=[1, 1, 1, 1])
    spec = agent_spec("semantic", Params())
    ddpg = DDPG(spec, p, env.neural_density(TinyRenderer()), 100, "cpu")
    pool = synthetic_pool()
    ctx = pool.context(torch.arange(8), torch.zeros(8), "cpu")
    canvas, t = torch.rand(8, 3, SIDE, SIDE), torch.zeros(8)
    action = torch.rand(8, p.bundle, 13)
    losses = [ddpg.update(canvas, t, action, ctx)["loss/critic"] for _ in range(15)]
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


def test_bilevel_background_strokes_learn_from_r_b_alone():
    """Sec. 4.1: each stroke type has its own reward. The foreground weights (eta, nu) must not move the
    background head; they must move the foreground head."""
    pool = synthetic_pool()
    ctx = pool.context(torch.arange(8), torch.zeros(8), "cpu")
    canvas = torch.rand(8, 3, SIDE, SIDE)
    heads = {}
    for eta, nu in ((0.0, 0.0), (2.0, 10.0)):
        params = Params(eta=eta, nu=nu)
        torch.manual_seed(0)
        ddpg = DDPG(agent_spec("semantic", params), replace(TINY, gamma=0.0), env.neural_density(TinyRenderer()),
                    10, "cpu")
        ddpg.update(canvas, torch.zeros(8), None, ctx)
        heads[nu] = [torch.cat([q.flatten() for q in h.parameters()]) for h in ddpg.actor.heads]
    assert torch.equal(heads[0.0][0], heads[10.0][0])       # background head: the same update
    assert not torch.allclose(heads[0.0][1], heads[10.0][1])  # foreground head: moved by eta, nu


def test_replay_stores_uint8_canvases_and_indexes():
    replay = Replay(5, SIDE, 5)
    assert replay.bytes_per_transition == 3 * SIDE * SIDE + 2 + 4 + 2 + 2 * 5 * 13
    canvas = torch.rand(3, 3, SIDE, SIDE)
    for _ in range(2):
        replay.add(canvas, 1, torch.tensor([4, 5, 6]), torch.zeros(3), torch.rand(3, 5, 13))
    assert replay.size == 5 and replay.next == 1
    batch = replay.sample(4, torch.Generator().manual_seed(0), "cpu")
    assert batch["canvas"].shape == (4, 3, SIDE, SIDE) and set(batch["idx"].tolist()) <= {4, 5, 6}
    assert (batch["canvas"] - canvas[0]).abs().min() <= 1 / 255  # quantised, not altered


# ---------------------------------------------------------------------------------------------- training
class Recorder:
    """Stands in for DVCLive."""

    def __init__(self):
        self.step, self.metrics = 0, {}

    def log_metric(self, name, value):
        self.metrics.setdefault(name, []).append((self.step, value))

    def log_image(self, name, image):
        self.image = image

    def next_step(self):
        pass


def test_nan_stops_with_clear_error_and_resume_ends_bit_for_bit_as_an_uninterrupted_run(tmp_path, monkeypatch):
    spec, pool = agent_spec("semantic", Params()), synthetic_pool()
    p = replace(TINY, train_steps=12, log_every=3)  # 3 does not divide the checkpoint's update count
    straight_live = Recorder()
    straight, _ = train(spec, p, pool, TinyRenderer(), Checkpoint(tmp_path / "a.pt", "run"), straight_live, "cpu")

    checkpoint = Checkpoint(tmp_path / "ckpt.pt", "run")
    real_update, calls = DDPG.update, {"n": 0}

    def failing_update(self, *args):
        calls["n"] += 1
        logs = real_update(self, *args)
        if calls["n"] == 6:  # two updates after the checkpoint at 4 updates
            self.step("critic", torch.tensor(float("nan"), requires_grad=True))
        return logs

    monkeypatch.setattr(DDPG, "update", failing_update)
    with pytest.raises(TrainingDiverged, match="critic loss is nan at update 5; last good checkpoint kept in .*ckpt.pt"):
        train(spec, p, pool, TinyRenderer(), checkpoint, Recorder(), "cpu")
    saved = checkpoint.load()
    assert saved is not None and saved["updates"] == 4 and saved["env_step"] == 6
    assert saved["ranks"][0]["replay"]["size"] == 24
    monkeypatch.setattr(DDPG, "update", real_update)
    live = Recorder()
    resumed, reached = train(spec, p, pool, TinyRenderer(), checkpoint, live, "cpu", checkpoint.load())
    assert reached == {"env_steps": 12, "updates": 10}
    for name, net in straight.nets.items():  # same weights, bit for bit: the replay and sums were restored
        for a, b in zip(net.state_dict().values(), resumed.nets[name].state_dict().values()):
            assert torch.equal(a, b), name
    # the resumed log holds the steps after the checkpoint once, ending at the final update like the straight one
    after = {k: [row for row in v if row[0] > 4] for k, v in straight_live.metrics.items()}
    assert live.metrics == {k: v for k, v in after.items() if v}
    assert straight_live.metrics["test/l2"][-1][0] == 10


def test_divergence_before_any_checkpoint_names_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(DDPG, "update", lambda self, *a: self.step("actor", torch.tensor(float("inf"))))
    with pytest.raises(TrainingDiverged, match="actor loss is inf at update 0; no checkpoint written yet"):
        train(agent_spec("baseline", Params()), TINY, synthetic_pool(), TinyRenderer(),
              Checkpoint(tmp_path / "ckpt.pt", "run"), Recorder(), "cpu")


def test_probe_actor_learns_the_first_bundle_and_direct_optimisation_sets_the_bar():
    pool = synthetic_pool()  # flat colours: one bundle of the right colour paints them
    colours = (torch.rand(len(pool), 3, 1, 1, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    pool = replace(pool, images=colours.expand(-1, -1, SIDE, SIDE).contiguous())
    test = torch.as_tensor(pool.test)
    ctx = pool.context(test, torch.zeros_like(test), "cpu")
    out = run_probe(agent_spec("baseline", Params()), replace(TINY, actor_lr=1e-2), pool, TinyRenderer(), ctx,
                    updates=60, every=20, direct_steps=50)
    steps, l2 = zip(*out["curve"])
    assert steps == (0, 20, 40, 60)
    assert l2[-1] < 0.5 * l2[0] and out["direct"] < 0.2 * l2[-1]


def test_probe_trains_at_a_constant_learning_rate():
    """A schedule that drops the lr mid-run would confound the probe's curve: every optimiser keeps its lr."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    lrs = {}
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: lrs.setdefault(id(opt), set()).update(g["lr"] for g in opt.param_groups))
    pool = synthetic_pool()
    test = torch.as_tensor(pool.test)
    try:  # params that would drop the lr after 1 and 2 of the 4 updates
        run_probe(agent_spec("baseline", Params()), replace(TINY, lr_decay_at=[0.25, 0.5], lr_decay=0.3), pool,
                  TinyRenderer(), pool.context(test, torch.zeros_like(test), "cpu"), updates=4, every=4,
                  direct_steps=2)
    finally:
        handle.remove()
    assert len(lrs) == 2 and all(len(seen) == 1 for seen in lrs.values())  # the actor's and the direct bar's


# ---------------------------------------------------------------------------------------------- profiles
def test_paper_profile_becomes_dvc_set_args_and_typos_are_named(tmp_path):
    from semguide_core.profiles import profile_args
    args = profile_args(Path(__file__).resolve().parents[1] / "profiles/paper.yaml")
    assert "agent.actor_blocks=[2,2,2]" in args and "canvas=128" in args and args[0] == "-S"
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  actor_widht: 3\n")
    with pytest.raises(ConfigError, match="agent.actor_widht"):
        profile_args(bad)


def test_forget_logs_after_drops_rows_past_the_checkpoint(tmp_path):
    from semguide_core.agent.train import forget_logs_after
    tsv = tmp_path / "plots/metrics/train/loss/actor.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tactor\n50\t-0.25\n100\t-0.125\n150\t0.1\n")
    forget_logs_after(tmp_path, 100)
    assert tsv.read_text() == "step\tactor\n50\t-0.25\n100\t-0.125\n"
