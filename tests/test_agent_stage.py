"""End-to-end: stage train_agent on a tiny synthetic prepared set, in a temporary directory."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from semguide_core.agent import load_agent, rollout
from semguide_core.agent.rewards import Context
from semguide_core.agent import env
from semguide_core.data.prepared import INDEX_COLUMNS, PreparedDataset, write_prepared
from semguide_core.renderer import NeuralRenderer, renderer_file
from semguide_core.runtime import save_torch

REPO = Path(__file__).resolve().parents[1]
SIDE, N = 16, 10


def make_inputs(root: Path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (N, SIDE, SIDE, 3), dtype=np.uint8)
    masks = np.zeros((N, SIDE, SIDE), np.uint8)
    masks[:, 4:12, 2:10] = 1
    index = pd.DataFrame({"idx": range(N), "split": ["train"] * 6 + ["test"] * 4, "label": 0, "label_name": "bird",
                          "source": "synthetic", "has_mask": True, "bbox_x": 2 / SIDE, "bbox_y": 4 / SIDE,
                          "bbox_w": 0.5, "bbox_h": 0.5, "n_instances": 1})[INDEX_COLUMNS]
    write_prepared(root / "artifacts/prepared", PreparedDataset(index=index, images=images, masks=masks,
                                                               instances=masks, parts=masks * 0))
    (root / "artifacts/psi").mkdir(parents=True)
    np.save(root / "artifacts/psi/masks.npy", masks.astype(np.float16))
    index[["idx"]].assign(x=2 / SIDE, y=4 / SIDE, w=0.5, h=0.5).to_csv(root / "artifacts/psi/bboxes.csv", index=False)
    (root / "artifacts/gbp").mkdir(parents=True)
    np.save(root / "artifacts/gbp/maps.npy", (masks * 0.5).astype(np.float16))
    torch.manual_seed(0)
    save_torch(root / "models/renderer.pt", renderer_file(NeuralRenderer(SIDE, [32], 4, 2)))
    params = {"canvas": SIDE, "device": "cpu", "agent": {
        "episode_steps": 3, "envs": 4, "train_steps": 9, "warmup_steps": 3, "batch_size": 8, "replay_size": 64,
        "actor_width": 4, "critic_width": 4, "checkpoint_every": 2, "log_every": 2, "val_images": 2}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def run(root: Path, name: str):
    return subprocess.run([sys.executable, str(REPO / "stages/train_agent.py"), name], cwd=root,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_stage_trains_writes_outputs_and_the_agent_paints(tmp_path):
    make_inputs(tmp_path)
    done = run(tmp_path, "semantic")
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = yaml.safe_load((tmp_path / "metrics/agent_semantic.json").read_text())
    assert 0 <= metrics["test_fg_l2"] <= 1 and 0 <= metrics["test_l2"] <= 1
    assert metrics["replay_bytes_per_transition"] == 3 * SIDE * SIDE + 8 + 2 * 5 * 13
    assert (tmp_path / "figures/agent_semantic_val.png").is_file()
    assert (tmp_path / "dvclive/agent_semantic/metrics.json").is_file()
    assert not (tmp_path / "checkpoints/agent_semantic.pt").exists()  # cleared once training finished

    agent = load_agent(tmp_path / "models/agent_semantic.pt")
    assert (agent.kind, agent.bundle, agent.n_background, agent.steps) == ("semantic", 5, 2, 3)
    target = torch.rand(2, 3, SIDE, SIDE)
    ctx = Context(target, torch.ones(2, 1, SIDE, SIDE), torch.zeros(2, 1, SIDE, SIDE), torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 2))
    bundle = agent.act(torch.zeros_like(target), ctx.targets, ctx.masks, ctx.gbp, ctx.bboxes, step=0)
    assert bundle.shape == (2, 5, 13) and 0 <= bundle.min() and bundle.max() <= 1
    out = rollout(agent, ctx, env.raster_density(SIDE), steps=2)
    assert out["strokes"].shape == (2, 10, 13) and out["foreground"][0].tolist() == [False, False, True, True, True] * 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["focus_ablation", "baseline_mask"])
def test_ablation_and_control_agents_train(tmp_path, name):
    make_inputs(tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "kappa": 5.0}))
    done = run(tmp_path, name)
    assert done.returncode == 0, done.stderr[-2000:]
    agent = load_agent(tmp_path / f"models/agent_{name}.pt")
    assert agent.kind == "baseline" and agent.semantic_inputs == (name == "baseline_mask")


@pytest.mark.slow
def test_stage_reports_missing_input_in_one_line_and_writes_nothing(tmp_path):
    make_inputs(tmp_path)
    (tmp_path / "artifacts/gbp/maps.npy").unlink()
    done = run(tmp_path, "semantic")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: artifacts/gbp/maps.npy: not found"
    assert not (tmp_path / "models/agent_semantic.pt").exists()


@pytest.mark.slow
def test_killed_stage_resumes_to_the_same_model_metrics_and_log(tmp_path):
    """Killed after a checkpoint and re-run, train_agent ends exactly as an uninterrupted run."""
    import json
    import time
    roots = {name: tmp_path / name for name in ("straight", "killed")}
    for root in roots.values():
        make_inputs(root)
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["agent"].update(train_steps=45, checkpoint_every=4)
        (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert run(roots["straight"], "baseline").returncode == 0

    checkpoint = roots["killed"] / "checkpoints/agent_baseline.pt"
    proc = subprocess.Popen([sys.executable, str(REPO / "stages/train_agent.py"), "baseline"], cwd=roots["killed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # somewhere after the first checkpoint, with rows logged past it
    proc.kill()
    proc.wait()
    assert checkpoint.exists() and not (roots["killed"] / "models/agent_baseline.pt").exists()
    resumed = run(roots["killed"], "baseline")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def metrics(root):
        out = json.loads((root / "metrics/agent_baseline.json").read_text())
        out.pop("train_minutes_this_run")
        return out

    assert metrics(roots["killed"]) == metrics(roots["straight"])
    models = [torch.load(root / "models/agent_baseline.pt", weights_only=True)["state"] for root in roots.values()]
    assert all(torch.equal(a, b) for a, b in zip(models[0].values(), models[1].values()))
    logs = {name: {p.relative_to(root).as_posix(): p.read_text()
                   for p in (root / "dvclive/agent_baseline/plots/metrics").rglob("*.tsv")}
            for name, root in roots.items()}
    assert logs["killed"] == logs["straight"] and len(logs["straight"]) > 5
