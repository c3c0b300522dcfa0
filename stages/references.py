"""Stage `references`: flat-colour reference canvases on the test images, to read the agents against.

Each image's mean colour, flat-colour mosaics (2 x 2, 4 x 4, 8 x 8) and each object filled with its mean
colour (scored on the object), as MSE and PSNR: a metrics file and a Markdown table. The per-image optimum
of 200 strokes is not part of the stage (2,000 Adam steps per image, long on a CPU): `semguide references`.
"""
from pathlib import Path

import typer

from semguide_core import references as R
from semguide_core.runtime import atomic_path, run_stage, write_json
from semguide_core.tables import markdown


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         metrics: Path = typer.Option(..., help="the references' MSE and PSNR (JSON)"),
         table: Path = typer.Option(..., help="the same as a Markdown table")):
    targets, masks = R.test_images(prepared)
    rows = R.reference_table(targets, masks)
    write_json(metrics, rows)
    with atomic_path(table) as tmp:
        tmp.write_text(f"### Reference canvases on the {len(targets)} test images\n\n{markdown(R.as_frame(rows))}\n")


if __name__ == "__main__":
    run_stage(main)
