"""Shared fixtures: a temporary copy of the repository to run stages end to end with `dvc repro`, and each
stage's command line as dvc.yaml writes it (tests run stage scripts with the paths dvc.yaml gives them)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC_FILES = ("dvc.yaml", "ablation/dvc.yaml", "datasets/dvc.yaml")


def dvc_stages() -> dict[str, dict]:
    """Every stage of dvc.yaml, ablation/dvc.yaml and datasets/dvc.yaml by its DVC address ("strokes",
    "train_agent@semantic", "ablation/dvc.yaml:train_agent_focus"), a foreach stage once per item with
    ${key} and ${item.*} filled in (other ${...}, params, are left as they are). Paths in them are relative
    to the repository root."""
    stages = {}
    for dvc_file in DVC_FILES:
        prefix = "" if dvc_file == "dvc.yaml" else f"{dvc_file}:"
        for name, stage in yaml.safe_load((REPO / dvc_file).read_text())["stages"].items():
            wdir = stage.get("do", stage).get("wdir", ".")
            assert os.path.normpath(Path(dvc_file).parent / wdir) == ".", f"{dvc_file}:{name}: wdir is not the root"
            if "foreach" not in stage:
                stages[prefix + name] = stage
                continue
            for key, item in stage["foreach"].items():
                values = {"key": key, **{f"item.{k}": str(v) for k, v in item.items()}}
                stages[f"{prefix}{name}@{key}"] = _fill(stage["do"], values)
    return stages


def _fill(obj, values: dict):
    """obj (strings, lists, dicts, keys too) with each ${name} of `values` replaced by its value."""
    if isinstance(obj, str):
        return re.sub(r"\$\{([\w.]+)\}", lambda m: values.get(m[1], m[0]), obj)
    if isinstance(obj, list):
        return [_fill(x, values) for x in obj]
    if isinstance(obj, dict):
        return {_fill(k, values): _fill(v, values) for k, v in obj.items()}
    return obj


def stage_command(address: str) -> list[str]:
    """A stage's cmd from its script on, as a list of words: stage_command("strokes") is
    ["stages/strokes.py", "artifacts/strokes"]. The launcher before the script (`python`, or `python -m
    semguide_core.distributed N`) is left out: a test starts the script its own way."""
    words = dvc_stages()[address]["cmd"].split()
    return words[next(i for i, word in enumerate(words) if word.endswith(".py")):]


class RepoCopy:
    """The working tree (tracked and untracked-but-not-ignored files) copied into a fresh git repo."""

    def __init__(self, root: Path, extra: tuple[str, ...] = ()):
        self.root = root
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.split()
        for rel in [*listed, *extra]:
            src, dst = REPO / rel, root / rel
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            elif src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        # a repo with one commit, as a user's clone is (DVCLive reads the baseline revision)
        git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run([*git, "commit", "-qm", "copy"], cwd=root, check=True)
        for rel in extra:  # a fresh clone (CI) has no data/ yet: pull it from the remote committed in git
            if not (REPO / rel).exists() and (root / f"{rel}.dvc").is_file():
                self.run("dvc", "pull", "-q", f"{rel}.dvc")

    def set_params(self, overrides: dict) -> None:
        """Deep-merge `overrides` into the copy's params.yaml."""
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        _merge(params, overrides)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command in the copy (`dvc` and `python` resolve to this interpreter's)."""
        if args[0] == "dvc":
            args = (sys.executable, "-m", "dvc", *args[1:])
        elif args[0] == "python":
            args = (sys.executable, *args[1:])
        result = subprocess.run(args, cwd=self.root, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


def _merge(base: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@pytest.fixture
def repo_copy(tmp_path):
    """A RepoCopy factory: `repo_copy()` or `repo_copy(extra=("data",))` to bring ignored paths along."""
    return lambda extra=(): RepoCopy(tmp_path / "repo", tuple(extra))
