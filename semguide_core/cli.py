"""The `semguide` command: paint images, write the sample data, benchmark, check params, profiles."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from semguide_core.errors import SemguideError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Sample datasets in the real layouts.")
app.add_typer(data_app, name="data")


def _fail(err: SemguideError):
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1)


@app.command()
def paint(images: List[Path] = typer.Argument(..., help="image files (grey, RGBA, 16-bit converted; at most "
                                                         "Pillow's limit of 179 M pixels)"),
          agent: str = typer.Option("semantic", help="semantic or baseline"),
          strokes: int = typer.Option(200, help="strokes per image"),
          out: Path = typer.Option(Path("paintings"), help="output folder"),
          divide: int = typer.Option(1, help="paint D x D patches at D times the canvas (Huang's divide)"),
          models: Path = typer.Option(Path("models"), help="folder of the trained models"),
          params: Path = typer.Option(Path("params.yaml"), help="params file the models were trained with"),
          refine: int = typer.Option(0, help="then N Adam steps on all strokes against the image (slower, "
                                             "more detail; not the agent alone)")):
    """Paint images with a trained agent: PNG, animated GIF, strokes JSON and SVG per image."""
    from semguide_core.paint import paint_files
    try:
        status = paint_files(images, agent, strokes, out, divide, models, params, refine)
    except SemguideError as err:
        _fail(err)
    raise typer.Exit(status)


@data_app.command("synth")
def data_synth(out: Path = typer.Option(Path("data"), help="data folder to write into"),
               seed: int = 0, birds: int = 320, cars: int = 150, scenes: int = 60):
    """Write sample-birds (CUB layout), sample-cars (Stanford Cars) and sample-scenes (Virtual KITTI 2)."""
    from semguide_core.data.synth import synth
    try:
        synth(out, seed, birds, cars, scenes)
    except SemguideError as err:
        _fail(err)


@app.command()
def bench(params: Path = typer.Option(Path("params.yaml"), help="params for the agent's architecture"),
          inference: bool = typer.Option(True, help="also time painting 200 strokes per image"),
          startup: bool = typer.Option(False, help="also time `semguide paint`'s start-up (imports, models/)"),
          refine: int = typer.Option(0, help="also `paint --refine` 0 / 50 / 200 on this many test images "
                                             "with the trained baseline (models/, artifacts/prepared)")):
    """Strokes/s of the rasteriser and the neural renderer at 64 and 128 px; ms per painted image."""
    import torch

    from semguide_core.bench import bench_strokes
    from semguide_core.config import load_params
    try:
        p = load_params(params)
    except SemguideError as err:
        _fail(err)
    typer.echo("canvas  rasteriser  renderer fwd  renderer fwd+bwd   (strokes/s, batch 64, "
               f"{torch.get_num_threads()} threads)")
    for row in bench_strokes(renderer=p.renderer):
        typer.echo(f"{row['canvas']:>6}  {row['rasteriser']:>10.0f}  {row['renderer_forward']:>12.0f}  "
                   f"{row['renderer_forward_backward']:>16.0f}")
    if inference:
        from semguide_core.bench import bench_versus_learning_to_paint

        typer.echo("canvas  images  semguide  Learning-to-Paint-equivalent  speed-up   (ms per image, 200 strokes)")
        for row in bench_versus_learning_to_paint(p):
            typer.echo(f"{row['canvas']:>6}  {row['images']:>6}  {row['semguide_ms']:>8.0f}  "
                       f"{row['learning_to_paint_ms']:>28.0f}  {row['speedup']:>7.2f}x")
    if startup:
        from semguide_core.bench import bench_startup

        typer.echo("`semguide paint` start-up (s, median of 5 fresh processes): agent  process  imports  models")
        for row in bench_startup(Path("models"), params):
            typer.echo(f"{row['agent']:>9}  {row['process_s']:7.2f}  {row['imports_s']:7.2f}  {row['loading_s']:6.2f}")
    if refine:
        from semguide_core.bench import bench_refine
        try:
            rows = bench_refine(p, Path("models"), Path("artifacts/prepared"), images=refine)
        except SemguideError as err:
            _fail(err)
        for row in rows:
            typer.echo(f"--refine {row['refine_steps']:>3}: {row['psnr_db']:.2f} dB, {row['seconds_per_image']:.1f} s "
                       f"per image ({row['images']} test images, baseline agent)")


@app.command("probe-actor")
def probe_actor(params: Path = typer.Option(Path("params.yaml"), help="params of the agent (architecture, lr, batch)"),
                updates: int = typer.Option(600, min=1, help="actor updates on first bundles"),
                every: int = typer.Option(100, min=1, help="evaluate every this many updates"),
                images: int = typer.Option(32, min=1, help="test images evaluated"),
                direct_steps: int = typer.Option(300, min=0, help="Adam steps per image for the direct bar"),
                artifacts: Path = typer.Option(Path("artifacts"), help="folder holding prepared/"),
                renderer: Path = typer.Option(Path("models/renderer.pt"), help="trained neural renderer")):
    """Test L2 after one bundle: a fresh actor learning it (constant lr) vs each image's bundle optimised directly.

    Also prints two flat-colour reference canvases to read the agents' test L2 against (`semguide references`)."""
    import torch

    from semguide_core import references as R
    from semguide_core.agent.data import load_pool
    from semguide_core.metrics import image_means
    from semguide_core.probe import run_probe
    from semguide_core.agent.spec import agent_spec
    from semguide_core.config import load_params
    from semguide_core.renderer import load_renderer
    try:
        p = load_params(params)
        pool = load_pool(artifacts / "prepared", None, None)
        model = load_renderer(renderer)
    except SemguideError as err:
        _fail(err)
    torch.set_flush_denormal(True)  # as runtime.run_stage: float32 denormals slow training down several times
    test = torch.as_tensor(pool.test[:images])
    ctx = pool.context(test, torch.zeros_like(test), "cpu")
    out = run_probe(agent_spec("baseline", p), p.agent, pool, model, ctx, updates, every, direct_steps)
    typer.echo(f"test L2 after one bundle of {p.agent.bundle} strokes, {len(test)} test images")
    for step, l2 in out["curve"]:
        typer.echo(f"  actor after {step:>5} updates: {l2:.4f}")
    typer.echo(f"  direct, {direct_steps} Adam steps per image: {out['direct']:.4f}")
    every_test = torch.as_tensor(pool.test)
    targets, masks = pool.images[every_test].float() / 255, pool.gt_masks[every_test].float()
    typer.echo(f"flat references on all {len(every_test)} test images: each image's mean colour, L2 "
               f"{image_means(targets, R.mean_colour(targets), masks)['l2']:.4f}; the object filled with its mean colour, "
               f"foreground L2 {image_means(targets, R.object_mean_colour(targets, masks), masks)['fg_l2']:.4f}")


@app.command()
def references(params: Path = typer.Option(Path("params.yaml"),
                                           help="params: device, and the agents' strokes per episode and bundle"),
               optimum: bool = typer.Option(True, help="also optimise 200 strokes per image through the renderer "
                                                       "(2,000 Adam steps: long on a CPU, see --max-images)"),
               max_images: int = typer.Option(0, min=0, help="first test images used for every row, 0 = all"),
               steps: int = typer.Option(50, min=1, help="Adam steps per stage (one bundle) of the optimum"),
               lr: float = typer.Option(0.1, min=0.0, help="Adam learning rate of the optimum, on stroke logits"),
               artifacts: Path = typer.Option(Path("artifacts"), help="folder holding prepared/"),
               renderer: Path = typer.Option(Path("models/renderer.pt"), help="trained neural renderer"),
               out: Optional[Path] = typer.Option(None, help="also write the table as JSON")):
    """Reference canvases on the test images (mean colour, mosaics, per-image optimum), to read agents against."""
    import torch

    from semguide_core import references as R
    from semguide_core.config import load_params
    from semguide_core.errors import ModelFileError
    from semguide_core.renderer import load_renderer
    from semguide_core.runtime import pick_device, write_json
    from semguide_core.tables import markdown
    try:
        p = load_params(params)
        device = pick_device(p.device)
        targets, masks = R.test_images(artifacts / "prepared")
        model = load_renderer(renderer, device) if optimum else None
        if model is not None and model.arch["canvas"] != targets.shape[-1]:
            raise ModelFileError(f"{renderer}: paints {model.arch['canvas']} px, the prepared test images are "
                                 f"{targets.shape[-1]} px")
    except SemguideError as err:
        _fail(err)
    torch.set_flush_denormal(True)  # as runtime.run_stage: float32 denormals slow the renderer down several times
    table = R.reference_table(targets.to(device), masks.to(device), model, p.agent.bundle * p.agent.episode_steps,
                              p.agent.bundle, steps, lr, max_images)
    typer.echo(f"references on {table['mean_colour']['images']} test images ({artifacts / 'prepared'})")
    typer.echo(markdown(R.as_frame(table)))
    if out is not None:
        write_json(out, table)


@app.command("check-params")
def check_params(path: Path = typer.Argument(Path("params.yaml"))):
    """Validate a params file: unknown keys, wrong types and out-of-range values are named."""
    from semguide_core.config import load_params
    try:
        load_params(path)
    except SemguideError as err:
        _fail(err)
    typer.echo(f"{path}: ok")


@app.command()
def profile(path: Path = typer.Argument(..., help="a profile YAML, e.g. profiles/paper.yaml")):
    """Print `-S key=value` arguments for `dvc exp run` from a profile: dvc exp run $(semguide profile P)."""
    from semguide_core.profiles import profile_args
    try:
        typer.echo(" ".join(profile_args(path)))
    except SemguideError as err:
        _fail(err)


if __name__ == "__main__":
    sys.exit(app())
