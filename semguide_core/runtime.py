"""What every stage shares: atomic output, device choice, seeding, checkpoints, and the stage entry point.

Outputs are written under a temporary name and renamed into place, so a killed or failed stage never
leaves a half-written file or folder behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import typer
import typer.main

import semguide_core
from semguide_core.errors import ModelFileError, SemguideError

try:  # recent typer releases carry their own copy of click and raise its errors, not click's
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling of `path` to write (file or folder); rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, what: str = "checkpoint") -> dict:
    """torch.load with weights_only=True; a missing or unreadable file is a one-line ModelFileError."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a corrupt file
        raise ModelFileError(f"{path}: cannot read {what} ({type(err).__name__})") from None


def load_state(model: torch.nn.Module, state: dict, path: str | Path) -> None:
    """load_state_dict with a one-line error naming the file when keys or shapes do not fit."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelFileError(f"{path}: weights do not match {type(model).__name__} ({detail})") from None


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_stage(main: Callable[..., None]) -> None:
    """Run a stage's main(), its arguments parsed from the command line (typer, from main's signature).

    Each stage's `cmd` in dvc.yaml passes every path the script reads or writes, so dvc.yaml is the one
    place paths are written. A usage error (an argument missing or extra) becomes one line on stderr and
    exit status 2, a SemguideError one line and exit status 1.
    """
    _wait_passively(main)
    # Late in training, gradients and Adam's second moments fall into the float32 denormal range,
    # where CPU arithmetic is many times slower: the renderer's backward pass went from 24 to 65 ms.
    # Flushing them to zero changes no result that matters and keeps every step as fast as the first.
    torch.set_flush_denormal(True)
    app = typer.Typer(add_completion=False)
    app.command()(main)
    script = sys.argv[0]
    first_rank = os.environ.get("RANK", "0") == "0"  # one line per job, not one per process
    try:
        # standalone_mode=False: return when main does instead of sys.exit(0), so a stage run in-process
        # (runpy, as tests do) leaves its host running; errors are raised to be reported below
        typer.main.get_command(app).main(sys.argv[1:], prog_name=script, standalone_mode=False)
    except UsageError as err:
        if first_rank:
            print(f"error: {script}: {err.format_message()}", file=sys.stderr)
        sys.exit(2)
    except SemguideError as err:
        if not err.every_rank or first_rank:
            print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def _wait_passively(main: Callable[[], None]) -> None:
    """Re-execute a stage script whose OpenMP runtime was loaded without OMP_WAIT_POLICY=PASSIVE.

    Most stage scripts import torch before semguide_core, so the variable set in semguide_core/__init__.py
    comes after OpenMP has read it, and its threads spin: with one other busy process on 2 cores every
    training step was 35x slower and a stage's speed depended on what else ran. OpenMP reads the variable
    only once, when it loads, so the only way to change it is to start the process again with it set.
    """
    # Only a process started to run the stage is re-executed, never a host such as pytest: main is defined
    # in __main__, by the script Python was started with (runpy, which tests use to run a stage in-process,
    # sets sys.argv[0] to the stage but leaves sys.orig_argv as it was).
    started_as_stage = main.__module__ == "__main__" and sys.argv[0] in sys.orig_argv
    if semguide_core.OMP_PASSIVE or not started_as_stage:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    sys.stdout.flush()  # exec discards what is still buffered
    sys.stderr.flush()
    # orig_argv keeps the interpreter's own options (-c, -X, -W ...), which sys.argv drops
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def fingerprint(*parts) -> str:
    """A short stable hash of params / inputs, stored in a checkpoint so that a resume only continues
    the same run (a changed param or input starts over instead of mixing two runs)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpoint:
    """A training checkpoint outside DVC's outputs, so a killed stage can resume where it stopped.

    DVC deletes a stage's declared outputs before re-running it; this file is not declared, and it is
    removed when training finishes, so the next run with other params starts from scratch.
    """

    def __init__(self, path: str | Path, run_id: str):
        self.path, self.run_id = Path(path), run_id

    def load(self) -> dict | None:
        """The saved state of this same run, or None (no file, or a file from another run)."""
        if not self.path.is_file():
            return None
        state = load_torch(self.path, "checkpoint")
        return state if state.get("run_id") == self.run_id else None

    def save(self, state: dict) -> None:
        save_torch(self.path, {**state, "run_id": self.run_id})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def kept(self) -> str:
        """For a TrainingDiverged message: the checkpoint a rerun resumes from, named only if it exists."""
        return f"last good checkpoint kept in {self.path}" if self.path.is_file() else "no checkpoint written yet"
