"""Shared fixtures: a temporary copy of the repository to run stages end to end with `dvc repro`."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


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
