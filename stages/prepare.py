"""Stage `prepare`: read the `dataset` param's dataset (or `--dataset`'s) through its loader, resize it to
the canvas, and write the prepared dataset (see semguide_core.data.prepared), its summary and the contact
sheet."""
from pathlib import Path
from typing import Optional

import typer

from semguide_core.config import load_params
from semguide_core.data.datasets import list_records
from semguide_core.data.prepare import prepare, select
from semguide_core.data.prepared import write_prepared
from semguide_core.data.report import contact_sheet, summarise
from semguide_core.runtime import atomic_path, run_stage, write_json


def main(out: Path = typer.Option(..., help="the prepared dataset (folder)"),
         metrics: Path = typer.Option(..., help="image counts and distributions (JSON)"),
         figure: Path = typer.Option(..., help="contact sheet: 32 prepared images, mask, part and box (PNG)"),
         dataset: Optional[str] = typer.Option(None, help="replaces the `dataset` param (datasets/dvc.yaml)")):
    params = load_params()
    p = params.prepare
    name = dataset or params.dataset
    records = select(list_records(name, p.data_dir, p.test_fraction), p.max_images)
    prepared, dropped = prepare(records, params.canvas, where=f"dataset {name!r} in {p.data_dir}")
    # everything was read, checked and drawn above; only now is anything written (each output atomically)
    summary, sheet = summarise(prepared, name, dropped), contact_sheet(prepared)
    write_prepared(out, prepared)
    write_json(metrics, summary)
    with atomic_path(figure) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"prepared {len(prepared)} images of {name} at {params.canvas} px ({dropped} dropped)")


if __name__ == "__main__":
    run_stage(main)
