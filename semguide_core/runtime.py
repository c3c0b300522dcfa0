"""What every stage shares: atomic output, device choice, seeding, checkpoints, and the stage entry point.

Outputs are written under a temporary name and renamed into place, so a killed or failed stage never
leaves a half-written file or folder behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from semguide_core.errors import ModelFileError, SemguideError


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


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a SemguideError becomes one line on stderr and exit status 1."""
    try:
        main()
    except SemguideError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
