"""Each stage's `deps` in dvc.yaml, ablation/dvc.yaml and datasets/dvc.yaml list exactly the repository code its script imports.

DVC re-runs a stage only when one of its listed deps changes, so a module the script imports but the stage
does not list leaves stale results after an edit to that module; a listed module the script no longer
imports re-runs the stage (often a long training) for nothing. The deps lists are written by hand, so this
test recomputes them from the scripts' imports.
"""
import ast
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import DVC_FILES, dvc_stages

REPO = Path(__file__).resolve().parents[1]

# Imported by (nearly) every stage but never results-relevant, so not required in deps:
# - semguide_core/__init__.py only sets OMP_WAIT_POLICY, which changes speed, never outputs;
# - config.py only types and range-checks params.yaml; params.yaml sets every key config.py declares
#   (test_params_yaml_sets_every_key), so its defaults never reach a stage, and DVC tracks the values
#   themselves through each stage's `params`;
# - errors.py only defines exception classes.
# Package __init__.py files that re-export names are looked through (see `imported_files`).
IGNORED = {"semguide_core/__init__.py", "semguide_core/config.py", "semguide_core/errors.py"}


def imported_files(script: str) -> set[str]:
    """Repository files `script` imports, directly or through other semguide_core modules, itself included.

    Imports inside functions count. `from P import n` resolves to the submodule P.n when there is one, else
    to P's file; a name that a package __init__.py re-exports (`from semguide_core.agent import load_agent`)
    resolves to the module it comes from, so the package's other re-exports are not dragged in. The parent
    packages Python also runs on import (semguide_core/semantics/__init__.py for semguide_core.semantics.boxes)
    are not followed: they load code the stage never calls.
    """
    def file_of(module: str) -> Path | None:
        base = REPO / module.replace(".", "/")
        return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)

    def resolve(module: str, name: str | None = None) -> Path:
        if name and (sub := file_of(f"{module}.{name}")):
            return sub
        path = file_of(module)
        assert path, f"{module}: imported but not a file in the repository"
        if name and path.name == "__init__.py":  # a re-export: follow it to the defining module
            for node in ast.parse(path.read_text()).body:
                for alias in node.names if isinstance(node, ast.ImportFrom) and node.module else []:
                    if (alias.asname or alias.name) == name:
                        return resolve(node.module, alias.name)
        return path

    ours = lambda module: (module or "").split(".")[0] == "semguide_core"  # noqa: E731
    seen, todo = set(), [REPO / script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                todo += [resolve(a.name) for a in node.names if ours(a.name)]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and ours(node.module):
                todo += [resolve(node.module, a.name) for a in node.names]
    return {p.relative_to(REPO).as_posix() for p in seen} - IGNORED


def stages():
    """One (script, deps) per stage, paths relative to the repository root; a foreach stage's `do` template
    counts once (its items only add artifacts and params)."""
    for dvc_file in DVC_FILES:
        for name, stage in yaml.safe_load((REPO / dvc_file).read_text())["stages"].items():
            stage = stage.get("do", stage)
            wdir = Path(dvc_file).parent / stage.get("wdir", ".")
            script = next(word for word in stage["cmd"].split() if word.endswith(".py"))
            yield pytest.param(os.path.normpath(wdir / script), [os.path.normpath(wdir / d) for d in stage["deps"]],
                               id=f"{dvc_file}:{name}")


@pytest.mark.parametrize("script, deps", stages())
def test_deps_match_imports(request, script, deps):
    files = imported_files(script)
    covers = lambda dep, file: file == dep or file.startswith(dep + "/")  # noqa: E731
    missing = sorted(f for f in files if not any(covers(d, f) for d in deps))
    stale = sorted(d for d in deps if d.startswith(("semguide_core", "stages/"))
                   and not any(covers(d, f) for f in files))
    assert not missing and not stale, (f"stage {request.node.callspec.id}: deps missing {missing}; "
                                       f"deps not imported by {script}: {stale}")


def test_params_yaml_sets_every_key():
    """Why config.py can stay out of deps: no default of it is ever used by a stage."""
    import dataclasses

    from semguide_core.config import Params

    declared = set(pd.json_normalize(dataclasses.asdict(Params())).columns)
    assert declared <= set(pd.json_normalize(yaml.safe_load((REPO / "params.yaml").read_text())).columns)


def test_a_reward_weight_invalidates_only_the_semantic_agent(repo_copy):
    """`dvc exp run -S eta=3` retrains only the semantic agent (paint and evaluate follow through its model):
    no other stage reads eta or nu (the foreach items name the params each agent reads). In
    datasets/dvc.yaml (not part of the default `dvc exp run`) the same holds for its semantic agents."""
    import json

    repo = repo_copy()
    repo.set_params({"eta": 3.0, "nu": 5.0})
    status = json.loads(repo.run("dvc", "status", "--json").stdout)
    # `dvc status --json`: {stage: [{"changed deps": {..., "params.yaml": {"eta": "modified"}}}, ...]}
    reads = {stage for stage, changes in status.items() for change in changes if isinstance(change, dict)
             for params in [change.get("changed deps", {}).get("params.yaml", {})]
             if isinstance(params, dict) and {"eta", "nu"} & set(params)}
    datasets = {f"datasets/dvc.yaml:train_agent@{key}" for key in
                ("cars_semantic", "cars_semantic_seed1", "scenes_semantic", "scenes_semantic_seed1")}
    assert reads == {"train_agent@semantic"} | datasets


def test_every_stage_has_a_committed_lock():
    """A fresh clone's `dvc status` knows every stage's last run: each stage of every pipeline file (each
    foreach item) has an entry in the dvc.lock beside it."""
    locked = set()
    for dvc_file in DVC_FILES:
        lock, prefix = dvc_file.replace(".yaml", ".lock"), "" if dvc_file == "dvc.yaml" else f"{dvc_file}:"
        locked |= {prefix + name for name in yaml.safe_load((REPO / lock).read_text())["stages"]}
    assert sorted(set(dvc_stages()) - locked) == []
