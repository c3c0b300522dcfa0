"""End-to-end: stage train_agent on a tiny synthetic prepared set, in a temporary directory."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import dvc_stages, stage_command

from semguide_core.agent import load_agent
from semguide_core.agent.rewards import Context
from semguide_core.data.prepared import INDEX_COLUMNS, PreparedDataset, write_prepared
from semguide_core.painting import episode_scene, paint
from semguide_core.renderer import NeuralRenderer, renderer_file
from semguide_core.runtime import save_torch

REPO = Path(__file__).resolve().parents[1]
SIDE, N = 16, 10
STAGES = {"baseline": "train_agent@baseline", "semantic": "train_agent@semantic",
          "focus_ablation": "ablation/dvc.yaml:train_agent_focus@kappa5",
          "baseline_mask": "ablation/dvc.yaml:train_agent_mask_control",
          "scenes_semantic": "datasets/dvc.yaml:train_agent@scenes_semantic"}


def make_inputs(root: Path, artifacts: str = "artifacts"):
    """A tiny prepared set with Psi's outputs and GBP maps in `artifacts`, a renderer and params in root."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (N, SIDE, SIDE, 3), dtype=np.uint8)
    masks = np.zeros((N, SIDE, SIDE), np.uint8)
    masks[:, 4:12, 2:10] = 1
    index = pd.DataFrame({"idx": range(N), "split": ["train"] * 6 + ["test"] * 4, "label": 0, "label_name": "bird",
                          "source": "synthetic", "has_mask": True, "bbox_x": 2 / SIDE, "bbox_y": 4 / SIDE,
                          "bbox_w": 0.5, "bbox_h": 0.5, "n_instances": 1})[INDEX_COLUMNS]
    write_prepared(root / artifacts / "prepared", PreparedDataset(index=index, images=images, masks=masks,
                                                               instances=masks, parts=masks))
    (root / artifacts / "psi").mkdir(parents=True)
    np.save(root / artifacts / "psi/masks.npy", masks.astype(np.float16))
    index[["idx"]].assign(x=2 / SIDE, y=4 / SIDE, w=0.5, h=0.5).to_csv(root / artifacts / "psi/bboxes.csv", index=False)
    (root / artifacts / "gbp").mkdir(parents=True)
    np.save(root / artifacts / "gbp/maps.npy", (masks * 0.5).astype(np.float16))
    torch.manual_seed(0)
    save_torch(root / "models/renderer.pt", renderer_file(NeuralRenderer(SIDE, [32], 4, 2)))
    params = {"canvas": SIDE, "device": "cpu", "agent": {
        "episode_steps": 3, "envs": 4, "train_steps": 9, "warmup_steps": 3, "batch_size": 8, "replay_size": 64,
        "actor_width": 4, "critic_width": 4, "checkpoint_every": 2, "log_every": 2, "val_images": 2}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def agent_stage(name: str) -> list[str]:
    """stages/train_agent.py (its absolute path: tests run it in a temporary folder) and the arguments its
    stage in dvc.yaml, ablation/dvc.yaml or datasets/dvc.yaml gives it to train agent `name`."""
    script, *args = stage_command(STAGES[name])
    return [str(REPO / script), *args]


def run(root: Path, name: str):
    return subprocess.run([sys.executable, *agent_stage(name)], cwd=root, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_stage_trains_writes_outputs_and_the_agent_paints(tmp_path):
    make_inputs(tmp_path)
    done = run(tmp_path, "semantic")
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = yaml.safe_load((tmp_path / "metrics/agent_semantic.json").read_text())
    assert 0 <= metrics["test_fg_l2"] <= 1 and 0 <= metrics["test_l2"] <= 1
    # the "part" here is the whole object, so its error is the foreground's; G_I weighs the same pixels
    assert metrics["test_part_l2"] == pytest.approx(metrics["test_fg_l2"])
    assert metrics["test_gbp_l2"] == pytest.approx(metrics["test_fg_l2"])  # G_I = 0.5 on the object
    assert metrics["replay_bytes_per_transition"] == 3 * SIDE * SIDE + 8 + 2 * 5 * 13
    assert (tmp_path / "figures/agent_semantic_val.png").is_file()
    assert (tmp_path / "dvclive/agent_semantic/metrics.json").is_file()
    assert not (tmp_path / "checkpoints/agent_semantic.pt").exists()  # cleared once training finished

    agent = load_agent(tmp_path / "models/agent_semantic.pt")
    assert (agent.kind, agent.bundle, agent.n_background, agent.steps) == ("semantic", 5, 2, 3)
    assert agent.compositing == "layered"  # params' agent.compositing, saved with the actor
    old_file = torch.load(tmp_path / "models/agent_semantic.pt")
    del old_file["compositing"]  # written before the key existed: trained with Eq. 3-4 as printed
    torch.save(old_file, tmp_path / "old.pt")
    assert load_agent(tmp_path / "old.pt").compositing == "paper"
    target = torch.rand(2, 3, SIDE, SIDE)
    ctx = Context(target, torch.ones(2, 1, SIDE, SIDE), torch.zeros(2, 1, SIDE, SIDE), torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 2))
    bundle = agent.act(torch.zeros_like(target), ctx.targets, ctx.masks, ctx.gbp, ctx.bboxes, step=0)
    assert bundle.shape == (2, 5, 13) and 0 <= bundle.min() and bundle.max() <= 1
    out = paint(agent, episode_scene(ctx), n_strokes=10)
    assert out.strokes.shape == (2, 10, 13) and out.foreground[0].tolist() == [False, False, True, True, True] * 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["focus_ablation", "baseline_mask"])
def test_ablation_and_control_agents_train(tmp_path, name):
    make_inputs(tmp_path)
    done = run(tmp_path, name)
    assert done.returncode == 0, done.stderr[-2000:]
    model = {"focus_ablation": "agent_focus_kappa5", "baseline_mask": "agent_baseline_mask"}[name]
    agent = load_agent(tmp_path / f"models/{model}.pt")
    assert agent.kind == "baseline" and agent.semantic_inputs == (name == "baseline_mask")



@pytest.mark.slow
def test_scenes_agent_trains_with_the_cars_episodes_mixed_in(tmp_path):
    """datasets/dvc.yaml as written: sample-scenes' semantic agent reads sample-cars' artifacts (Sec. 5),
    and DVC knows it (they are deps of the stage)."""
    stage = dvc_stages()[STAGES["scenes_semantic"]]
    assert {"artifacts/cars/prepared", "artifacts/cars/psi", "artifacts/cars/gbp"} <= set(stage["deps"])
    for artifacts in ("artifacts/scenes", "artifacts/cars"):
        make_inputs(tmp_path, artifacts)
    done = run(tmp_path, "scenes_semantic")
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_agent(tmp_path / "models/scenes/agent_semantic.pt").kind == "semantic"
    assert yaml.safe_load((tmp_path / "metrics/scenes/agent_semantic.json").read_text())["n_test"] == 4
    # without the mixed-in dataset it stops with one line naming what is missing
    (tmp_path / "models/scenes/agent_semantic.pt").unlink()
    for part in ("prepared", "psi", "gbp"):
        shutil.rmtree(tmp_path / "artifacts/cars" / part)
    done = run(tmp_path, "scenes_semantic")
    assert done.returncode != 0 and "artifacts/cars/prepared" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "models/scenes/agent_semantic.pt").exists()


@pytest.mark.slow
def test_focus_ablation_at_each_kappa_and_its_figure(tmp_path):
    """ablation/dvc.yaml as written: one focus agent per kappa, then Fig. 5 and the table from them."""
    make_inputs(tmp_path)
    (tmp_path / "artifacts/prepared/parts.npy").unlink()  # parts: the left half of each object
    parts = np.zeros((N, SIDE, SIDE), np.uint8)
    parts[:, 4:12, 2:6] = 1
    np.save(tmp_path / "artifacts/prepared/parts.npy", parts)
    focus_stages = [a for a in dvc_stages() if a.startswith("ablation/dvc.yaml:train_agent_focus@")]
    assert len(focus_stages) == 6  # kappa 0, 5, 10, two seeds each
    for address in focus_stages:
        script, *args = stage_command(address)
        done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        metrics = yaml.safe_load((tmp_path / f"metrics/agent_focus_{address.split('@')[1]}.json").read_text())
        assert metrics["reward_nu"] == float(args[args.index("--kappa") + 1]) and metrics["reward_eta"] == 0
        assert 0 < metrics["test_part_l2"] < 1 and 0 < metrics["test_gbp_l2"] < 1
    first, second = (yaml.safe_load((tmp_path / f"metrics/agent_focus_kappa5{run}.json").read_text())
                     for run in ("", "_seed1"))
    assert first["test_l2"] != second["test_l2"]  # the second seed is another run, not a copy
    script, *args = stage_command("ablation/dvc.yaml:compare_focus")
    done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "metrics/focus_ablation.csv")
    assert table["kappa"].tolist() == [0, 0, 0, 5, 5, 5, 10, 10, 10]
    assert table["run"].tolist()[3:6] == ["agent_focus_kappa5", "agent_focus_kappa5_seed1", "mean"]
    assert table["part MSE"].iloc[3] == pytest.approx(first["test_part_l2"], rel=1e-3)
    assert table["part MSE"].iloc[5] == pytest.approx((first["test_part_l2"] + second["test_part_l2"]) / 2, rel=1e-3)
    assert (tmp_path / "figures/focus_ablation.png").stat().st_size > 0


def test_kappa_is_refused_for_an_agent_without_the_focus_only_reward(tmp_path):
    make_inputs(tmp_path)
    done = subprocess.run([sys.executable, *agent_stage("semantic"), "--kappa", "5"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: --kappa 5.0: only the focus_ablation agent")
    assert not (tmp_path / "models/agent_semantic.pt").exists()


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
    proc = subprocess.Popen([sys.executable, *agent_stage("baseline")], cwd=roots["killed"],
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
