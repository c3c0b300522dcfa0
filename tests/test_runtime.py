"""The stage entry point: arguments from the command line, passive OpenMP wait and denormals flushed (CPU
speed), errors as one line and exit status 1 (a usage error: 2)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer

from semguide_core.errors import ConfigError
from semguide_core.runtime import run_stage

REPO = Path(__file__).resolve().parents[1]
TINY = 1e-40  # a float32 denormal: representable, but below the smallest normal number (1.18e-38)


def test_a_stage_gets_its_paths_from_the_command_line(monkeypatch):
    seen = {}

    def main(out: Path, metrics: Path = typer.Option(...)):
        seen.update(out=out, metrics=metrics)

    monkeypatch.setattr(sys, "argv", ["stage.py", "artifacts/x", "--metrics", "metrics/x.json"])
    run_stage(main)  # returns: a stage run in-process (runpy) must not end its host
    assert seen == {"out": Path("artifacts/x"), "metrics": Path("metrics/x.json")}


@pytest.mark.parametrize("args, message", [
    ([], "Missing argument 'OUT'."),
    (["artifacts/x", "artifacts/y"], "Got unexpected extra argument(s) (artifacts/y)"),
    (["artifacts/x", "--metric", "m.json"], "No such option: --metric"),
])
def test_a_usage_error_is_one_line_and_exit_status_2(monkeypatch, capsys, args, message):
    def main(out: Path):
        raise AssertionError("main must not run")

    monkeypatch.setattr(sys, "argv", ["stages/x.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        run_stage(main)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # (typer releases differ in the case of an argument's name)
    assert err.lower().startswith(f"error: stages/x.py: {message}".lower()) and err.count("\n") == 1


def test_a_usage_error_is_printed_by_rank_0_alone(monkeypatch, capsys):
    # every process of a distributed run gets the same arguments: one line per job, not one per process
    monkeypatch.setattr(sys, "argv", ["stages/x.py"])
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as exit_info:
        run_stage(lambda out: None)
    assert exit_info.value.code == 2 and capsys.readouterr().err == ""


def test_a_stage_script_run_without_its_paths_says_so_in_one_line(tmp_path):
    script = str(REPO / "stages/strokes.py")
    done = subprocess.run([sys.executable, script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.lower() == f"error: {script}: Missing argument 'out'.\n".lower()
    assert not any(tmp_path.iterdir())  # nothing read, nothing written


def test_a_stage_runs_with_denormals_flushed_to_zero(monkeypatch):
    seen = {}

    def main():
        seen["product"] = (torch.tensor(TINY, dtype=torch.float32) * 1.0).item()

    monkeypatch.setattr(sys, "argv", ["stage.py"])
    torch.set_flush_denormal(False)
    assert torch.tensor(TINY, dtype=torch.float32).item() != 0  # denormals exist when not flushed
    try:
        run_stage(main)
    finally:
        torch.set_flush_denormal(False)
    assert seen["product"] == 0.0


def test_a_stage_error_is_one_line_and_exit_status_1(monkeypatch, capsys):
    def main():
        raise ConfigError("params.yaml: renderer.steps = -1 is below 1")

    monkeypatch.setattr(sys, "argv", ["stage.py"])
    with pytest.raises(SystemExit) as exit_info:
        run_stage(main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: params.yaml: renderer.steps = -1 is below 1\n"


STAGE_IMPORTING_TORCH_FIRST = """
import os
import torch
from semguide_core.runtime import run_stage

def main():
    print(os.environ["OMP_WAIT_POLICY"])

run_stage(main)
"""


def test_a_stage_started_with_torch_first_runs_with_passive_openmp_wait():
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"  # libgomp (torch's OpenMP) prints its settings to stderr when it loads
    done = subprocess.run([sys.executable, "-c", STAGE_IMPORTING_TORCH_FIRST], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "PASSIVE\n"
    # The variable alone is not enough: OpenMP must have loaded with it (PASSIVE: spin count 0, unset: 300000).
    spin_counts = re.findall(r"GOMP_SPINCOUNT = '(\d+)'", done.stderr)
    assert spin_counts and spin_counts[-1] == "0"


def test_a_stage_run_in_process_by_runpy_does_not_restart_its_host(tmp_path):
    # tests run stages in the pytest process with runpy: re-executing would start the whole session again
    (tmp_path / "stage.py").write_text(STAGE_IMPORTING_TORCH_FIRST)
    host = "import torch, runpy; print('host started', flush=True); runpy.run_path('stage.py', run_name='__main__')"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", host], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "host started\nPASSIVE\n"


def test_checkpoint_names_itself_only_when_it_exists(tmp_path):
    from semguide_core.runtime import Checkpoint
    checkpoint = Checkpoint(tmp_path / "c.pt", "run")
    assert checkpoint.kept() == "no checkpoint written yet"
    checkpoint.save({"step": 3})
    assert checkpoint.kept() == f"last good checkpoint kept in {tmp_path / 'c.pt'}"
