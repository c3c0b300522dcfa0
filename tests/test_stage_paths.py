"""dvc.yaml is the one place paths are written: each stage's cmd passes every path its script reads or
writes, the scripts hold none, and every path a cmd passes is one DVC knows about (deps, outs, metrics,
plots). A path written in a script, or a cmd argument missing from the stage's lists, would let the script
and DVC disagree about what the stage reads and writes: DVC would not re-run it, or not keep its output."""
import ast
from pathlib import Path

import pytest
from conftest import dvc_stages, stage_command

REPO = Path(__file__).resolve().parents[1]
PATH_ROOTS = ("artifacts/", "models/", "metrics/", "figures/", "dvclive/", "checkpoints/", "data/")


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("*.py")))
def test_stage_scripts_hold_no_paths(script):
    tree = ast.parse((REPO / "stages" / script).read_text())
    literals = [(node.lineno, node.value) for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(PATH_ROOTS)]
    assert not literals, f"stages/{script}: paths belong in the stage's cmd in dvc.yaml: {literals}"


def declared(stage: dict, *kinds: str) -> set[str]:
    """The paths of a stage's `kinds` lists (an entry is a path or {path: options})."""
    return {entry if isinstance(entry, str) else next(iter(entry))
            for kind in kinds for entry in stage.get(kind, [])}


def path_arguments(address: str) -> set[str]:
    """The paths a stage's cmd passes: every word after the script with a '/', or naming one of the
    repository's output folders (evaluate's `--tables metrics`); numbers such as `--kappa 5` are not paths."""
    script, *args = stage_command(address)
    paths = {word for word in args if "/" in word or f"{word}/" in PATH_ROOTS}
    assert not any("${" in path for path in paths), f"{address}: a path left to interpolate: {paths}"
    return paths


@pytest.mark.parametrize("address", sorted(dvc_stages()))
def test_every_path_a_cmd_passes_is_declared(address):
    stage = dvc_stages()[address]
    known, outs = declared(stage, "deps", "outs", "metrics", "plots"), declared(stage, "outs", "metrics", "plots")
    inside = lambda path, folder: path.startswith(folder.rstrip("/") + "/")  # noqa: E731

    def covered(path: str) -> bool:
        # a declared path, a file inside a declared folder, or a folder the stage writes declared files into
        # (evaluate's tables)
        return path in known or any(inside(path, p) for p in known) or any(inside(p, path) for p in outs)

    # checkpoints are not outputs: DVC deletes a stage's outputs before running it, and they exist to resume
    undeclared = sorted(path for path in path_arguments(address) if not path.startswith("checkpoints/")
                        and not covered(path))
    assert not undeclared, f"{address}: cmd passes paths its stage does not declare: {undeclared}"


@pytest.mark.parametrize("address", sorted(dvc_stages()))
def test_every_declared_output_and_artifact_is_passed_by_the_cmd(address):
    """The other way round: the script learns every output, and every stage output it reads, from its cmd
    (the data/ folder comes from the prepare.data_dir param)."""
    stage = dvc_stages()[address]
    passed = path_arguments(address)
    wanted = declared(stage, "outs", "metrics", "plots") | {
        dep for dep in declared(stage, "deps") if dep.startswith(("artifacts/", "models/"))}
    missing = sorted(path for path in wanted
                     if not any(path == arg or path.startswith(arg.rstrip("/") + "/") for arg in passed))
    assert not missing, f"{address}: declared in dvc.yaml but not passed by the cmd: {missing}"
