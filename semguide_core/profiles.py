"""Turn a profile (a YAML file of params that differ from params.yaml) into `dvc exp run -S` arguments.

    dvc exp run $(python -m semguide_core.profiles profiles/paper.yaml)

Every key is checked against config.py first, so a typo fails here with the key's name.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from semguide_core.config import Params, build
from semguide_core.errors import ConfigError


def profile_args(path: str | Path) -> list[str]:
    """['-S', 'key=value', ...] for every leaf of the profile (lists as JSON, which DVC reads as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    build(Params, raw, where=str(path))
    args = []

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                text = json.dumps(value, separators=(",", ":"))  # no spaces: survives the shell's splitting
                args.extend(["-S", f"{prefix}{key}={text}"])
    walk(raw, "")
    return args


if __name__ == "__main__":
    try:
        print(" ".join(profile_args(sys.argv[1])))
    except (ConfigError, IndexError) as err:
        print(f"error: {err or 'usage: python -m semguide_core.profiles PROFILE.yaml'}", file=sys.stderr)
        sys.exit(1)
