"""Stage `prepare`: read the `dataset` param's dataset through its loader, resize it to the canvas, and
write the prepared dataset (see semguide_core.data.prepared), its summary and the contact sheet."""
from pathlib import Path

import typer

from semguide_core.config import load_params
from semguide_core.data.datasets import list_records
from semguide_core.data.prepare import prepare, select
from semguide_core.data.prepared import write_prepared
from semguide_core.data.report import contact_sheet, summarise
from semguide_core.runtime import atomic_path, run_stage, write_json


def main(out: Path = typer.Option(..., help="the prepared dataset (folder)"),
         metrics: Path = typer.Option(..., help="image counts and distributions (JSON)"),
         figure: Path = typer.Option(..., help="contact sheet: 32 prepared images, mask, part and box (PNG)")):
    params = load_params()
    p = params.prepare
    records = select(list_records(params.dataset, p.data_dir, p.test_fraction), p.max_images)
    dataset, dropped = prepare(records, params.canvas, where=f"dataset {params.dataset!r} in {p.data_dir}")
    # everything was read, checked and drawn above; only now is anything written (each output atomically)
    summary, sheet = summarise(dataset, params.dataset, dropped), contact_sheet(dataset)
    write_prepared(out, dataset)
    write_json(metrics, summary)
    with atomic_path(figure) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"prepared {len(dataset)} images of {params.dataset} at {params.canvas} px ({dropped} dropped)")


if __name__ == "__main__":
    run_stage(main)
