"""Stage `compare_focus` (ablation/dvc.yaml): the paper's Fig. 5, the focus-only ablation side by side.

Paints the focus ablation's test images (background zeroed with Psi's mask, cropped to its box, as the
agents trained on them) with each agent (one per kappa and seed), and writes one row per image (one column
per agent, then the target), and a table of each agent's scores read from its metrics file: whole-crop MSE,
the object's, the distinguishing part's (Sec. 7.1's claim: more detail there) and the GBP-weighted error,
with a row per kappa of the mean over its seeds.
"""
import json
from collections import Counter
from pathlib import Path
from typing import List

import pandas as pd
import torch
import typer

from semguide_core.agent.data import load_pool
from semguide_core.agent.inference import load_agent
from semguide_core.config import load_params
from semguide_core.errors import DataError
from semguide_core.figures import save_grid
from semguide_core.metrics import db
from semguide_core.painting import paint_episodes
from semguide_core.runtime import pick_device, run_stage
from semguide_core.tables import write_table


def read_scores(path: Path) -> dict:
    """An agent's metrics file; missing or broken: a one-line DataError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}; run `dvc repro ablation/dvc.yaml`)") from None


SCORES = {"test_l2": "MSE", "test_fg_l2": "object MSE", "test_part_l2": "part MSE", "test_gbp_l2": "GBP-weighted MSE"}


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         masks: Path = typer.Option(..., help="Psi's masks and boxes (stage train_psi)"),
         maps: Path = typer.Option(..., help="the GBP maps (stage gbp)"),
         agent: List[Path] = typer.Option(..., help="a focus-ablation agent (repeat: one per kappa)"),
         scores: List[Path] = typer.Option(..., help="its metrics file, in the same order"),
         figure: Path = typer.Option(..., help="Fig. 5: the test crops painted at each kappa (PNG)"),
         tables: Path = typer.Option(..., help="folder of the table focus_ablation.{csv,md}")):
    if len(agent) != len(scores):
        raise DataError(f"--agent given {len(agent)} times, --scores {len(scores)}: one metrics file per agent")
    params = load_params()
    device = pick_device(params.device)
    pool = load_pool(prepared, masks, maps).focus_ablation()
    shown = torch.as_tensor(pool.test[:params.evaluate.figure_images])
    ctx = pool.context(shown, torch.zeros_like(shown), device)
    runs, columns = [], []
    for path, metrics_path in zip(agent, scores):
        metrics = read_scores(metrics_path)
        columns.append(paint_episodes(load_agent(path, device, "focus_ablation", params.canvas), ctx).canvas)
        runs.append({"kappa": metrics["reward_nu"], "run": metrics_path.stem,
                     **{name: metrics.get(key, float("nan")) for key, name in SCORES.items()},
                     "PSNR (dB)": metrics["test_psnr_db"]})
    # Fig. 5's columns by kappa, its runs side by side (the table names each run's metrics file)
    order = sorted(range(len(runs)), key=lambda i: runs[i]["kappa"])
    titles, seen = [], Counter()
    for i in order:
        seen[runs[i]["kappa"]] += 1
        titles.append(f"kappa = {runs[i]['kappa']:g}\nrun {seen[runs[i]['kappa']]}")
    save_grid([[*(columns[j][i] for j in order), ctx.targets[i]] for i in range(len(shown))], figure,
              col_titles=titles + ["target"])
    write_table(with_means(pd.DataFrame(runs)), tables / "focus_ablation",
                "Focus-only ablation (Sec. 7.1, Eq. 20): the test crops, by kappa (each run, then their mean)")


def with_means(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of each kappa followed by a row of their mean (run "mean"); PSNR of the mean MSE."""
    rows = []
    for kappa, group in runs.groupby("kappa", sort=True):
        mean = group.drop(columns="run").mean().to_dict()
        mean.update(kappa=kappa, run="mean", **{"PSNR (dB)": db(mean["MSE"])})
        rows += [group, pd.DataFrame([mean])]
    return pd.concat(rows, ignore_index=True)[runs.columns]


if __name__ == "__main__":
    run_stage(main)
