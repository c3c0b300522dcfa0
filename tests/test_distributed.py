"""Several training processes (torch.distributed, gloo on CPU): the same update as one process with the whole
batch, a two-process train_agent end to end with a resume after a kill, a NaN in one rank stopping the job."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from test_agent_stage import agent_stage, make_inputs

WORKER = Path(__file__).with_name("ddp_worker.py")


def launch(processes: int, *args: str, cwd: Path, **kwargs):
    """`python -m semguide_core.distributed N ARGS...`, as dvc.yaml runs a training stage."""
    return subprocess.run([sys.executable, "-m", "semguide_core.distributed", str(processes), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, **kwargs)


def one_update(tmp_path: Path, processes: int, kind: str) -> dict:
    out = tmp_path / f"{kind}_{processes}.pt"
    done = launch(processes, str(WORKER), "update", kind, str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.load(out, weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["actor", "renderer", "wgan"])
def test_two_processes_of_half_a_batch_update_as_one_process_of_the_whole(tmp_path, kind):
    """DDP averages the gradients and the actor's BatchNorm takes its statistics over both processes, so
    2 x 8 samples give the parameters 1 x 16 give (the semantic agent with gamma > 0: actor and critic)."""
    one, two = one_update(tmp_path, 1, kind), one_update(tmp_path, 2, kind)
    assert list(one["after"]) == list(two["after"])
    # the WGAN discriminators see in-between pairs drawn per process: only the actor and critic must agree
    compared = [k for k in one["after"] if not k.startswith("disc")]
    for key in compared:
        assert torch.allclose(one["after"][key].float(), two["after"][key].float(), atol=1e-5), key
    # one Adam step moves a weight by about the learning rate (1e-3): the comparison is not of two no-ops
    moved = max((one["after"][k].float() - one["before"][k].float()).abs().max().item() for k in compared)
    assert moved > 5e-4


def set_agent(root: Path, **values) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["agent"].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def outputs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for folder in ("models", "metrics", "figures", "dvclive")
            for p in (root / folder).rglob("*") if p.is_file()}


def metrics(root: Path) -> dict:
    out = json.loads((root / "metrics/agent_baseline.json").read_text())
    out.pop("train_minutes_this_run")
    return out


@pytest.mark.slow
def test_two_process_train_agent_writes_what_one_process_writes_and_resumes_after_a_kill(tmp_path):
    roots = {name: tmp_path / name for name in ("one", "two", "killed")}
    for root in roots.values():
        make_inputs(root)
        set_agent(root, train_steps=45, checkpoint_every=4)
    stage = agent_stage("baseline")
    for name, n in (("one", 1), ("two", 2)):
        done = launch(n, *stage, cwd=roots[name])
        assert done.returncode == 0, done.stderr[-2000:]
    assert outputs(roots["two"]) == outputs(roots["one"])
    assert metrics(roots["two"])["processes"] == 2 and metrics(roots["one"])["processes"] == 1
    assert metrics(roots["two"]) != {**metrics(roots["one"]), "processes": 2}  # twice the samples per update

    killed = roots["killed"]
    checkpoint = killed / "checkpoints/agent_baseline.pt"
    proc = subprocess.Popen([sys.executable, "-m", "semguide_core.distributed", "2", *stage], cwd=killed,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
    proc.wait()
    assert checkpoint.exists() and not (killed / "models/agent_baseline.pt").exists()
    assert len(torch.load(checkpoint, weights_only=True)["ranks"]) == 2  # each process's replay and streams
    resumed = launch(2, *stage, cwd=killed)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert metrics(killed) == metrics(roots["two"])  # as the uninterrupted two-process run, bit for bit


@pytest.mark.slow
def test_a_nan_in_one_process_stops_the_job_with_one_line_naming_the_rank(tmp_path):
    make_inputs(tmp_path)
    set_agent(tmp_path, train_steps=45, checkpoint_every=4)
    done = launch(2, str(WORKER), "nan", "1", "7", *agent_stage("baseline"), cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: agent baseline: actor loss is not finite on rank 1 at update 6; last good checkpoint "
                      "kept in checkpoints/agent_baseline.pt"]
    saved = torch.load(tmp_path / "checkpoints/agent_baseline.pt", weights_only=True)
    assert saved["updates"] == 4 and not (tmp_path / "models/agent_baseline.pt").exists()
