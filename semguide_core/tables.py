"""Result tables as CSV (for tools) and Markdown (for people), written atomically: one writer for the
evaluation's tables, the focus ablation's and the references', so a stage that only writes tables does not
depend on how the evaluation scores."""
from __future__ import annotations

import math

import pandas as pd

from semguide_core.runtime import atomic_path


def write_table(frame: pd.DataFrame, stem, title: str) -> None:
    """frame as stem.csv and stem.md (a Markdown table under a heading)."""
    with atomic_path(f"{stem}.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4g")
    with atomic_path(f"{stem}.md") as tmp:
        tmp.write_text(f"### {title}\n\n{markdown(frame)}\n")


def markdown(frame: pd.DataFrame) -> str:
    """frame as a Markdown table: floats to 4 significant digits, missing values as '-'."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
