"""Stage `prepare`: read the `dataset` param's dataset through its loader, resize it to the canvas, and
write artifacts/prepared/ (see semguide_core.data.prepared), metrics/data.json and the contact sheet."""
from semguide_core.config import load_params
from semguide_core.data.datasets import list_records
from semguide_core.data.prepare import prepare, select
from semguide_core.data.prepared import write_prepared
from semguide_core.data.report import contact_sheet, summarise
from semguide_core.runtime import atomic_path, run_stage, write_json

OUT = "artifacts/prepared"
METRICS = "metrics/data.json"
CONTACT_SHEET = "figures/contact_sheet.png"


def main():
    params = load_params()
    p = params.prepare
    records = select(list_records(params.dataset, p.data_dir, p.test_fraction), p.max_images)
    dataset, dropped = prepare(records, params.canvas, where=f"dataset {params.dataset!r} in {p.data_dir}")
    # everything was read, checked and drawn above; only now is anything written (each output atomically)
    summary, sheet = summarise(dataset, params.dataset, dropped), contact_sheet(dataset)
    write_prepared(OUT, dataset)
    write_json(METRICS, summary)
    with atomic_path(CONTACT_SHEET) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"prepared {len(dataset)} images of {params.dataset} at {params.canvas} px ({dropped} dropped)")


if __name__ == "__main__":
    run_stage(main)
