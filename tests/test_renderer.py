"""The neural renderer: it learns the rasteriser, loads back, and its stages run end to end with dvc."""
import json
import subprocess
import sys
import time

import pytest
import torch
from conftest import stage_command

from semguide_core.errors import ModelFileError
from semguide_core.renderer import LOGIT_BOUND, NeuralRenderer, evaluate, load_renderer, loss_fn, renderer_file
from semguide_core.strokes import random_strokes, rasterise

CANVAS = 16


def tiny_renderer():
    return NeuralRenderer(CANVAS, fc_widths=[64, 128], conv_width=8, upsample_blocks=2)


def test_output_shape_and_range():
    out = tiny_renderer()(torch.rand(5, 13))
    assert out.shape == (5, CANVAS, CANVAS) and out.min() >= 0 and out.max() <= 1


def test_canvas_must_divide_into_upsampling_blocks():
    with pytest.raises(ValueError, match="not divisible"):
        NeuralRenderer(20, [8], 4, upsample_blocks=3)


def test_overfits_a_small_batch():
    torch.manual_seed(0)
    strokes = random_strokes(8, torch.Generator().manual_seed(0))
    target = rasterise(strokes, CANVAS)
    model = tiny_renderer()
    before = evaluate(model, strokes, target)["mse"]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = loss_fn(model, strokes, target, "bce")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate(model, strokes, target)
    assert after["mse"] < 0.1 * before and after["psnr"] > 20


def renderer_with_logit_bias(bias: float) -> NeuralRenderer:
    """A tiny renderer whose raw logits sit near `bias` everywhere (the bias of its last conv)."""
    torch.manual_seed(0)
    model = tiny_renderer()
    last_conv = [m for m in model.up if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.bias.fill_(bias)
    return model


def no_denormals(x: torch.Tensor) -> bool:
    return not ((x != 0) & (x.abs() < torch.finfo(torch.float32).tiny)).any()


def test_logits_are_bounded():
    # Trained with BCE, the logits of empty pixels went down to about -6,000: the density underflowed to 0
    # and its gradient through float32 denormals (very slow on a CPU) to 0.
    model = renderer_with_logit_bias(-1e4)
    strokes = torch.rand(4, 13, requires_grad=True)
    logits = model.logits(strokes)
    assert logits.min() >= -LOGIT_BOUND and logits.max() <= LOGIT_BOUND
    density = torch.sigmoid(logits)
    assert density.min() >= torch.sigmoid(torch.tensor(-LOGIT_BOUND)) > 0
    density.sum().backward()
    assert torch.isfinite(strokes.grad).all() and no_denormals(strokes.grad)


def test_a_nearly_saturated_stroke_keeps_a_normal_gradient():
    # At a raw logit of -90 an unbounded sigmoid is exactly 0 in float32, and so is its gradient.
    strokes = torch.rand(4, 13, requires_grad=True)
    renderer_with_logit_bias(-90.0)(strokes).sum().backward()
    assert torch.isfinite(strokes.grad).all() and strokes.grad.abs().max() > 0 and no_denormals(strokes.grad)


def test_load_round_trip_and_frozen(tmp_path):
    model = tiny_renderer()
    torch.save(renderer_file(model), tmp_path / "r.pt")
    loaded = load_renderer(tmp_path / "r.pt")
    a = torch.rand(3, 13)
    assert torch.allclose(loaded(a), model.eval()(a))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_missing_or_mismatched_file_names_it(tmp_path):
    with pytest.raises(ModelFileError, match="nope.pt: renderer not found"):
        load_renderer(tmp_path / "nope.pt")
    saved = renderer_file(tiny_renderer())
    saved["arch"]["conv_width"] = 4  # weights no longer fit the architecture
    torch.save(saved, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="bad.pt: weights do not match NeuralRenderer"):
        load_renderer(tmp_path / "bad.pt")


TINY = {"canvas": 16, "strokes": {"n_train": 256, "n_val": 32},
        "renderer": {"fc_widths": [32, 64], "conv_width": 4, "upsample_blocks": 2, "steps": 40,
                     "checkpoint_every": 20, "batch_size": 16}}


@pytest.mark.slow
def test_stages_run_end_to_end_with_dvc(repo_copy):
    repo = repo_copy()
    repo.set_params(TINY)
    repo.run("dvc", "repro", "train_renderer")
    metrics = json.loads((repo.root / "metrics/renderer.json").read_text())
    assert metrics["n_heldout"] == 32 and metrics["steps"] == 40 and 0 < metrics["heldout_mse"] < 1
    assert (repo.root / "figures/renderer_strokes.png").stat().st_size > 1000
    assert load_renderer(repo.root / "models/renderer.pt")(torch.rand(2, 13)).shape == (2, 16, 16)
    assert not (repo.root / "checkpoints/train_renderer.pt").exists()  # cleared once training finished


@pytest.mark.slow
def test_metrics_are_the_same_next_to_a_busy_process(repo_copy):
    # `dvc repro -f` must reproduce the committed metrics whatever else runs on the machine: training is
    # counted in steps, never in seconds, and its arithmetic does not depend on how threads are scheduled.
    repo = repo_copy()
    repo.set_params(TINY)
    repo.run("python", *stage_command("strokes"))
    repo.run("python", *stage_command("train_renderer"))
    alone = (repo.root / "metrics/renderer.json").read_text()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        repo.run("python", *stage_command("train_renderer"))
    finally:
        busy.kill()
        busy.wait()
    assert (repo.root / "metrics/renderer.json").read_text() == alone


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint(repo_copy):
    repo = repo_copy()
    repo.set_params({**TINY, "renderer": {**TINY["renderer"], "steps": 400}})
    repo.run("dvc", "repro", "strokes")
    checkpoint = repo.root / "checkpoints/train_renderer.pt"
    proc = subprocess.Popen([sys.executable, *stage_command("train_renderer")], cwd=repo.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    saved_step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < saved_step < 400 and not (repo.root / "models/renderer.pt").exists()
    result = repo.run("python", *stage_command("train_renderer"))
    assert f"{saved_step}/400" in result.stderr  # the progress bar starts at the saved step
    assert json.loads((repo.root / "metrics/renderer.json").read_text())["steps"] == 400


@pytest.mark.slow
def test_bad_params_stop_with_one_line_and_no_output(repo_copy):
    repo = repo_copy()
    original = (repo.root / "params.yaml").read_text()
    for bad, message in [({"strokes": {"n_train": -5}}, "strokes.n_train = -5: must be >= 1"),
                         ({"canvas": 0}, "canvas = 0: must be >= 16"),
                         ({"strokes": {"colour": 1}}, "unknown key strokes.colour")]:
        (repo.root / "params.yaml").write_text(original)
        repo.set_params(bad)
        result = repo.run("python", *stage_command("strokes"), check=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and message in lines[0]
        assert not (repo.root / "artifacts").exists()
