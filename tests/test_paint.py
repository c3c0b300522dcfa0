"""paint: Eq. 16, instances, the painting loop, exports (SVG round trip), image input and bad files."""
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from soft_rasteriser import SoftRasteriser

from semguide_core import exports
from semguide_core import painting as P
from semguide_core import strokes as S
from semguide_core.agent import env
from semguide_core.agent.rewards import Context
from semguide_core.config import AgentParams
from semguide_core.errors import DataError, SemguideError
from semguide_core.bench import bench_painting
from semguide_core.images import load_image
from semguide_core.metrics import psnr
from semguide_core.paint import paint_files
from semguide_core.runtime import run_stage

TINY_ACTOR = AgentParams(actor_width=4, actor_blocks=[1], actor_hidden=8)  # an untrained actor that paints fast


class RandomAgent:
    """Stands in for a trained agent: seeded random bundles, records what it was shown."""

    def __init__(self, kind="semantic", bundle=5, n_background=2, steps=4, layered=False):
        self.kind, self.bundle, self.n_background, self.steps = kind, bundle, n_background, steps
        self.layered = layered  # False: Eq. 3-4 as printed, which the tests below check by hand
        self.semantic_inputs = kind == "semantic"
        self.generator = torch.Generator().manual_seed(0)
        self.seen_steps, self.seen_masks, self.seen_object_steps = [], [], []

    def act(self, canvas, target, mask, gbp, bbox, step, object_steps=None):
        self.seen_steps.append(step)
        self.seen_masks.append(mask.clone())
        self.seen_object_steps.append(object_steps.tolist())
        return self.strokes(canvas)

    def strokes(self, canvas):
        return torch.rand(len(canvas), self.bundle, S.STROKE_SIZE, generator=self.generator)


class CoveringAgent(RandomAgent):
    """Invisible background strokes, then three opaque grey foreground strokes that cover the whole image."""

    def strokes(self, canvas):
        rows = [[0.0, y, 0.5, 0.5, 1.0, y, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5] for y in (0.15, 0.5, 0.85)]
        bundle = torch.tensor([[0.0] * 13] * 2 + rows)
        return bundle.expand(len(canvas), -1, -1)


def two_instances(side=16):
    """Instance 1: rows 0-3, cols 0-3 (16 px); instance 2: rows 8-13, cols 8-13 (36 px)."""
    masks = torch.zeros(1, 2, side, side)
    masks[0, 0, :4, :4] = 1
    masks[0, 1, 8:14, 8:14] = 1
    return masks


# ---------------------------------------------------------------------------------------------- Eq. 16
def test_eq16_picks_the_instance_with_the_largest_remaining_error():
    instances = two_instances()
    target = torch.zeros(1, 3, 16, 16)
    target[0, :, :4, :4] = 1.0        # instance 1: error 1 on 16 px x 3 channels -> ||.||_F = sqrt(48)
    target[0, 0, 8:14, 8:14] = 0.5    # instance 2: error 0.5 on 36 px x 1 channel -> sqrt(9) = 3
    canvas = torch.zeros_like(target)
    assert P.choose_instance(target, canvas, instances).tolist() == [0]
    canvas[0, :, :4, :4] = 0.5        # instance 1 half painted: sqrt(48 * 0.25) = sqrt(12) ~ 3.46 > 3
    assert P.choose_instance(target, canvas, instances).tolist() == [0]
    canvas[0, :, :4, :4] = 0.7        # sqrt(48 * 0.09) = sqrt(4.32) ~ 2.08 < 3: instance 2 now
    assert P.choose_instance(target, canvas, instances).tolist() == [1]
    # error outside every instance does not count
    canvas[0, :, 4:8, 4:8] = 1.0
    assert P.choose_instance(target, canvas, instances).tolist() == [1]


def test_each_instance_is_painted_coarse_to_fine_from_the_first_bundle_it_gets():
    # the foreground strokes paint the chosen instance right (grey on grey) and erase the other one (Eq. 4
    # colours only inside S_u), so Eq. 16 alternates: instance 1 (the larger, listed first), then 2, then 1 ...
    scene = P.make_scene(torch.full((1, 3, 16, 16), 0.5), two_instances().amax(1, keepdim=True),
                         torch.zeros(1, 1, 16, 16), 0.0, 8)
    agent = CoveringAgent("semantic", steps=8)
    painting = P.paint(agent, scene, n_strokes=30)
    assert painting.region[0, 2::5].tolist() == [1, 2, 1, 2, 1, 2]
    assert agent.seen_steps == [0, 1, 2, 3, 4, 5]
    # each instance's own count of bundles: what its foreground strokes' grid follows (placement.place)
    assert agent.seen_object_steps == [[0], [0], [1], [1], [2], [2]]


def test_instances_are_connected_components_largest_first_small_ones_dropped():
    soft = torch.zeros(16, 16)
    soft[:4, :4] = 0.9        # 16 px
    soft[8:14, 8:14] = 0.8    # 36 px
    soft[15, 0] = 0.9         # a 1 px speck
    soft[0, 10] = 0.3         # below the 0.5 threshold
    masks = P.instance_masks(soft, min_area=2 / 256, max_instances=8)
    assert masks.shape == (2, 16, 16)
    assert masks[0].sum() == 36 and masks[0, 8, 8] == 1
    assert masks[1].sum() == 16 and masks[1, 0, 0] == 1
    assert P.instance_masks(soft, 2 / 256, max_instances=1).shape == (1, 16, 16)
    assert P.instance_masks(torch.zeros(16, 16), 0.0, 8).shape == (0, 16, 16)


# ------------------------------------------------------------------------------------------ painting loop
def scene_with_two_instances(side=16):
    soft = torch.zeros(1, 1, side, side)
    soft[0, 0, :4, :4] = 1
    soft[0, 0, 8:14, 8:14] = 1
    target = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    return P.make_scene(target, soft, torch.zeros_like(soft), min_area=0.0, max_instances=8)


def test_refine_lowers_the_error_keeps_each_stroke_in_its_region_and_paints_with_the_rasteriser():
    scene = scene_with_two_instances()
    painting = P.paint(RandomAgent("semantic"), scene, n_strokes=20)
    painting.strokes[0, 0, 8:10] = 0                                    # a stroke the agent left invisible
    refined = P.refine(painting, scene, SoftRasteriser(16), steps=40, lr=0.05)
    assert psnr(scene.target, refined.canvas) > psnr(scene.target, painting.canvas) + 1
    assert torch.equal(refined.region, painting.region) and refined.strokes.shape == painting.strokes.shape
    assert refined.strokes[0, 0, 8:10].tolist() == [0.0, 0.0]
    assert torch.equal(refined.canvas, P.render(refined.strokes, refined.region, scene.regions, False))
    unrefined = P.refine(painting, scene, SoftRasteriser(16), steps=0)
    assert torch.allclose(unrefined.strokes[0, 1:], painting.strokes[0, 1:], atol=1e-4)  # N = 0: as painted


def test_refine_in_groups_gives_each_image_what_refining_it_alone_gives():
    """Five images refine in groups of P.REFINE_GROUP (4 + 1); each image's strokes depend on it alone."""
    soft = torch.zeros(5, 1, 16, 16)
    soft[:, 0, 4:12, 4:12] = 1
    target = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    scene = lambda i: P.make_scene(target[i], soft[i], torch.zeros_like(soft[i]), 0.0, 8)  # noqa: E731
    painted = P.paint(RandomAgent("semantic"), scene(slice(0, 5)), 10)
    together = P.refine(painted, scene(slice(0, 5)), SoftRasteriser(16), steps=5, lr=0.05)
    for i in (0, 3, 4):
        alone = P.refine(painted.select(i), scene(slice(i, i + 1)), SoftRasteriser(16), steps=5, lr=0.05)
        assert torch.allclose(alone.strokes[0], together.strokes[i], atol=1e-5)
    assert not torch.allclose(together.strokes, painted.strokes, atol=1e-3)  # the steps did move them


@pytest.mark.parametrize("layered", [False, True])
def test_semantic_loop_masks_strokes_by_region_and_follows_eq16(layered):
    scene = scene_with_two_instances()
    agent = RandomAgent("semantic", bundle=5, n_background=2, steps=3, layered=layered)
    painting = P.paint(agent, scene, n_strokes=23, frame_counts=(10, 20, 23))
    assert painting.strokes.shape == (1, 23, 13)           # the last bundle cut to 3 strokes
    region = painting.region[0].view(-1).tolist()
    assert region[:5][:2] == [0, 0] and set(region[2:5]) <= {1, 2}   # background first, then one instance
    assert agent.seen_steps == [0, 1, 2, 2, 2]             # the step input stops at T - 1
    assert sorted(painting.frames) == [10, 20, 23]
    # the shown mask is S restricted to the chosen instance (one of the two boxes, never both)
    for mask in agent.seen_masks:
        assert mask.sum() in (16.0, 36.0)
    # replaying the recorded strokes reproduces the painting exactly
    replay = P.render(painting.strokes, painting.region, scene.regions, layered)
    assert torch.allclose(replay, painting.canvas, atol=1e-6)
    # a foreground stroke never puts colour outside the instances: the outside only gets background colour
    fg_only = P.render(painting.strokes * 1, painting.region.clamp(min=1), scene.regions, layered)
    outside = scene.regions[0, 0].bool()
    assert fg_only[0][:, outside].abs().max() == 0
    # layered, each layer is painted by its own strokes alone: the instances' pixels are what the foreground
    # strokes paint there; as printed, background strokes erase them (they are darker than that)
    foreground_alone = painting.strokes.clone()
    foreground_alone[..., 8:10] *= painting.foreground[..., None]    # background strokes made invisible
    fg_painted = P.render(foreground_alone, painting.region, scene.regions, layered)
    inside = ~outside
    differs = (painting.canvas[0][:, inside] - fg_painted[0][:, inside]).abs().max()
    assert (differs < 1e-6) if layered else (differs > 0.05)


def test_training_episodes_paint_as_the_training_transition_with_the_inputs_trained_on():
    """paint_episodes (validation curves, final metrics, Fig. 5) is the one loop: the agent is shown the
    episode's soft S_I and bbox, and the canvas is what training's transition (Eq. 3-4) makes of the strokes."""
    side, bundle, n_background, steps = 16, 5, 2, 3
    soft = torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(1))
    ctx = Context(torch.rand(2, 3, side, side), soft, torch.rand(2, 1, side, side), torch.tensor([[0.1, 0.2, 0.5, 0.4]] * 2))
    agent = RandomAgent("semantic", bundle, n_background, steps)
    shown = []
    agent.act = lambda *inputs, act=agent.act: shown.append(inputs[2:5]) or act(*inputs)
    painting = P.paint_episodes(agent, ctx, frame_counts=(5,))
    assert painting.strokes.shape == (2, steps * bundle, 13) and sorted(painting.frames) == [5]
    for mask, gbp, bbox in shown:  # not restricted to a thresholded component, nor a box of its own
        assert torch.equal(mask, soft) and torch.equal(gbp, ctx.gbp) and torch.equal(bbox, ctx.bboxes)
    canvas = torch.zeros_like(ctx.targets)
    for t in range(steps):
        canvas = env.paint_bundle(canvas, painting.strokes[:, t * bundle:(t + 1) * bundle],
                                  lambda a: S.rasterise(a, side), n_background, env.stroke_mask(soft))
        if t == 0:
            assert torch.equal(canvas, painting.frames[5])
    assert torch.equal(canvas, painting.canvas)
    with pytest.raises(ValueError, match="boxes"):  # a box per scene cannot serve its patches
        P.paint(agent, P.episode_scene(ctx), 10, divide=2)


def test_baseline_strokes_are_unmasked_and_image_without_instance_gets_no_foreground_colour():
    soft = torch.zeros(1, 1, 16, 16)
    scene = P.make_scene(torch.rand(1, 3, 16, 16), soft, soft, 0.0, 8)
    base = P.paint(RandomAgent("baseline"), scene, n_strokes=10)
    assert (base.region == P.UNMASKED).all() and not base.foreground.any()
    sem = P.paint(RandomAgent("semantic"), scene, n_strokes=10)
    # no instance: foreground strokes are recorded but made invisible (opacity 0)
    assert (sem.strokes[0, sem.foreground[0], 8:10] == 0).all()


def test_divided_painting_strokes_are_in_whole_image_coordinates():
    # a stroke in patch (row 1, col 0) of a 2 x 2 division covers the same pixels rendered whole
    patch_stroke = torch.tensor([[[0.2, 0.3, 0.5, 0.5, 0.8, 0.6, 0.1, 0.1, 1, 1, 1, 1, 1]]]).repeat(4, 1, 1)
    whole = P.to_whole_image(patch_stroke, divide=2)[2:3, 0]   # patch 2 = row 1, col 0
    assert torch.allclose(whole[0, [0, 1, 4, 5]], torch.tensor([0.1, 0.65, 0.4, 0.8]))
    assert torch.allclose(whole[0, 6:8], torch.tensor([0.05, 0.05]))
    big = S.rasterise(whole, 64)[0]
    small = S.rasterise(patch_stroke[0], 32)[0]
    iou = ((big[32:, :32] > 0.5) & (small > 0.5)).sum() / ((big[32:, :32] > 0.5) | (small > 0.5)).sum()
    assert iou > 0.8 and big[:32].sum() == 0


def test_paint_divided_paints_whole_then_patches_at_the_larger_side():
    scene = scene_with_two_instances()
    big_target = torch.rand(1, 3, 32, 32)
    painting = P.paint_divided(RandomAgent("semantic"), scene, big_target, n_strokes=5, divide=2)
    assert painting.canvas.shape == (1, 3, 32, 32)
    assert painting.strokes.shape == (1, 5 + 5 * 4, 13)
    replay = P.render(painting.strokes, painting.region, scene.upsampled(big_target).regions, False)
    assert torch.allclose(replay, painting.canvas, atol=1e-5)


# ---------------------------------------------------------------------------------------------- exports
@pytest.mark.parametrize("kind, layered", [("baseline", False), ("semantic", False), ("semantic", True)])
def test_svg_round_trip_matches_the_rasterised_painting(kind, layered):
    scene = scene_with_two_instances(side=32)
    painting = P.paint(RandomAgent(kind, layered=layered), scene, n_strokes=15)
    svg = exports.to_svg(painting.strokes[0], painting.region[0], scene.regions[0], layered)
    rendered = exports.render_svg(svg)
    assert rendered.shape == (3, 32, 32)
    assert psnr(rendered[None], painting.canvas) > 30
    # and it is not trivially close: an empty SVG is far from the painting
    empty = exports.render_svg(exports.to_svg(painting.strokes[0, :0], painting.region[0, :0], scene.regions[0],
                                              layered))
    assert psnr(empty[None], painting.canvas) < 20


def test_svg_of_one_opaque_stroke_covers_what_the_rasteriser_covers():
    a = torch.tensor([[0.1, 0.2, 0.5, 0.9, 0.9, 0.7, 0.2, 0.4, 1.0, 0.5, 0.2, 0.6, 1.0]])
    density = S.rasterise(a, 32)
    canvas = S.composite(torch.zeros(1, 3, 32, 32), density, a[:, 10:13])[0]
    rendered = exports.render_svg(exports.to_svg(a, torch.tensor([P.UNMASKED]), torch.ones(1, 32, 32), False))
    assert psnr(rendered[None], canvas[None]) > 30


def density_sampled(a: torch.Tensor, side: int, n: int = 8) -> torch.Tensor:
    """The strokes' densities [N, side, side] sampled n x n per pixel, at the geometry the SVG writes
    (disc centres and radii in canvas units): a finer stand-in for exact coverage than the rasteriser's 2 x 2."""
    points, z, w = S.curve_samples(a)
    centres = (points * (side * S.SUPERSAMPLE - 1) + 0.5) / S.SUPERSAMPLE
    radii = S.disc_radius(z, side) / S.SUPERSAMPLE
    g = (torch.arange(side * n) + 0.5) / n
    inside = ((g - centres[..., 0:1]) ** 2)[:, :, None, :] + ((g - centres[..., 1:2]) ** 2)[:, :, :, None] \
        <= (radii ** 2)[..., None, None]                                              # [N, discs, y, x]
    last = (torch.arange(1, inside.shape[1] + 1)[None, :, None, None] * inside).amax(1)
    value = torch.where(last > 0, w.gather(1, (last - 1).clamp(min=0).flatten(1)).view_as(last), 0.0)
    return value.view(len(a), side, n, side, n).mean((2, 4))


def test_svg_describes_thin_strokes_more_exactly_than_the_png():
    """The SVG vs PNG gap on thin strokes is the PNG's 2 x 2 sampling, not the SVG: against the strokes
    sampled 8 x 8, the SVG (exact coverage) is closer than the rasteriser's canvas."""
    a = torch.rand(12, 13, generator=torch.Generator().manual_seed(3))
    a[:, 6:8] *= 0.1  # thin: every pixel of the stroke is near an edge
    a[:, 8:10] = 1.0
    side, region = 24, torch.full((12,), P.UNMASKED)
    reference, png = (S.composite_all(torch.zeros(1, 3, side, side), density[None], a[None, :, 10:13])
                      for density in (density_sampled(a, side), S.rasterise(a, side)))
    svg = exports.render_svg(exports.to_svg(a, region, torch.ones(1, side, side), False))[None]
    # measured: the SVG 36.6-37.9 dB from the 8 x 8 sampling, the PNG 27.7-29.8 dB (seeds 0-3)
    assert psnr(svg, reference) > 34 and psnr(svg, reference) > psnr(png, reference) + 6


def test_strokes_record_has_13_numbers_flag_and_instance():
    record = exports.strokes_record(torch.rand(3, 13), torch.tensor([0, 2, P.UNMASKED]), 64, "semantic", "x.png")
    json.dumps(record)
    strokes = record["strokes"]
    assert [len(s["a"]) for s in strokes] == [13, 13, 13]
    assert [s["foreground"] for s in strokes] == [False, True, False]
    assert [s["instance"] for s in strokes] == [None, 2, None]
    assert [s["masked"] for s in strokes] == [True, True, False]


def test_gif_has_one_frame_per_bundle(tmp_path):
    frames = [torch.full((3, 8, 8), v) for v in (0.0, 0.5, 1.0)]
    exports.save_gif(frames, tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 3


# ------------------------------------------------------------------------------------------ image input
def test_load_image_converts_grey_rgba_16bit_and_tiny(tmp_path):
    Image.fromarray(np.full((10, 20), 128, np.uint8), "L").save(tmp_path / "grey.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent -> white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((6, 6), 65535 // 4, np.uint16)).save(tmp_path / "deep.png")
    Image.new("RGB", (1, 1), (0, 255, 0)).save(tmp_path / "dot.png")

    grey = load_image(tmp_path / "grey.png", 16)
    assert grey.shape == (3, 16, 16) and torch.allclose(grey, torch.full_like(grey, 128 / 255), atol=1e-3)
    rgba = load_image(tmp_path / "rgba.png", 8)
    assert torch.allclose(rgba[:, 0, 0], torch.tensor([1.0, 0, 0])) and torch.allclose(rgba[:, 7, 0], torch.ones(3))
    deep = load_image(tmp_path / "deep.png", 8)
    assert abs(float(deep.mean()) - 0.25) < 0.01
    dot = load_image(tmp_path / "dot.png", 8)
    assert torch.allclose(dot, torch.tensor([0.0, 1, 0])[:, None, None].expand(3, 8, 8))


def test_load_image_bad_files_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 20), (10, 20, 30)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    for name in ("notes.txt", "cut.png", "missing.png"):
        with pytest.raises(DataError, match=name) as err:
            load_image(tmp_path / name, 8)
        assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="is a directory, not an image file"):
        load_image(tmp_path, 8)


def test_image_over_pillows_pixel_limit_is_said_plainly(tmp_path, monkeypatch):
    from PIL import Image as PILImage
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # as a 200 M pixel photograph meets the real one
    with pytest.raises(DataError, match="big.png: more than 2,000 pixels, Pillow's limit for one image .*downscale"):
        load_image(tmp_path / "big.png", 8)


def test_many_strokes_warn_with_an_estimate_before_painting(tmp_path, capsys):
    write_baseline_agent(tmp_path / "models")
    (tmp_path / "params.yaml").write_text("canvas: 16\ndevice: cpu\n")
    with pytest.raises(SemguideError):  # the warning comes before any image is read
        paint_files([tmp_path / "missing.png"], agent="baseline", strokes=100_000, out=tmp_path / "out",
                    models=tmp_path / "no-models", params_file=tmp_path / "params.yaml")
    err = capsys.readouterr().err
    assert "warning: 100000 strokes per image: about 17 min and a 1,300 MB SVG per image" in err


# ------------------------------------------------------------------------------------- `semguide paint`
def write_baseline_agent(models):
    from semguide_core.agent.inference import PaintingAgent, agent_file
    from semguide_core.agent.networks import Actor, actor_arch

    arch = actor_arch(TINY_ACTOR, False, n_background=5)
    agent = PaintingAgent("baseline", "baseline", 5, 2, False, Actor(**arch))
    models.mkdir()
    torch.save(agent_file(agent, arch, 16), models / "agent_baseline.pt")


def run_paint(tmp_path, capsys, models, images, divide=1, strokes=10, refine=0, batch_size=16):
    """paint_files as the CLI runs it: a SemguideError becomes one `error:` line and exit status 1."""
    (tmp_path / "params.yaml").write_text(f"canvas: 16\ndevice: cpu\npaint:\n  batch_size: {batch_size}\n")
    with pytest.raises(SystemExit) as status, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["semguide"])  # run_stage parses the command line: pytest's is not ours
        run_stage(lambda: sys.exit(paint_files(images, agent="baseline", strokes=strokes, out=tmp_path / "out",
                                               divide=divide, models=models, params_file=tmp_path / "params.yaml",
                                               refine=refine)))
    return status.value.code, capsys.readouterr()


@pytest.mark.slow
def test_paint_files_skips_bad_files_and_paints_the_rest(tmp_path, capsys):
    write_baseline_agent(tmp_path / "models")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "good.jpg")
    Image.new("RGB", (1, 1), (0, 0, 255)).save(tmp_path / "tiny.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "good.jpg").read_bytes()[:100])
    images = [tmp_path / n for n in ("notes.txt", "good.jpg", "cut.png", "tiny.png")]
    code, output = run_paint(tmp_path, capsys, tmp_path / "models", images)
    assert code == 1
    errors = [line[line.index("error:"):] for line in output.err.splitlines() if "error:" in line]
    assert len(errors) == 2 and "notes.txt" in errors[0] and "cut.png" in errors[1]
    for name in ("good", "tiny"):  # a 1x1 image is a flat colour: painted like any other
        for suffix in ("png", "gif", "json", "svg"):
            assert (tmp_path / "out" / f"{name}.{suffix}").is_file()
    record = json.loads((tmp_path / "out" / "good.json").read_text())
    assert len(record["strokes"]) == 10 and record["svg_psnr_db"] > 30
    assert "compositing" not in record  # no masked stroke: nothing to say
    assert not (tmp_path / "out" / "notes.png").exists()


@pytest.mark.slow
def test_paint_files_paints_in_batches_what_it_paints_one_at_a_time(tmp_path, capsys):
    write_baseline_agent(tmp_path / "models")
    ramp = np.linspace(0, 255, 24, dtype=np.uint8)
    rows, cols = np.tile(ramp, (24, 1)), np.tile(ramp[:, None], (1, 24))
    Image.fromarray(np.stack([rows, cols, 255 - rows], -1)).save(tmp_path / "ramp.png")
    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp_path / "red.png")
    (tmp_path / "bad.png").write_text("not an image")
    images = [tmp_path / n for n in ("ramp.png", "bad.png", "red.png", "ramp.png")]
    strokes = {}
    for batch_size in (1, 3):
        code, output = run_paint(tmp_path, capsys, tmp_path / "models", images, batch_size=batch_size)
        assert code == 1 and output.err.count("error:") == 1 and "bad.png" in output.err
        records = {n: json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in ("ramp", "red", "ramp_2")}
        strokes[batch_size] = {n: np.array([r["a"] for r in record["strokes"]]) for n, record in records.items()}
        shutil.rmtree(tmp_path / "out")
    for name, one_at_a_time in strokes[1].items():  # the same strokes, to the JSON's 5 digits and conv rounding
        assert one_at_a_time.shape == (10, 13) and np.allclose(strokes[3][name], one_at_a_time, atol=2e-5), name
    assert np.array_equal(strokes[1]["ramp"], strokes[1]["ramp_2"])


@pytest.mark.slow
def test_paint_files_missing_model_is_one_line_error(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    code, output = run_paint(tmp_path, capsys, tmp_path / "no_models", [tmp_path / "a.png"])
    assert code == 1
    assert output.err.strip().count("\n") == 0 and "agent_baseline.pt" in output.err
    assert not (tmp_path / "out").exists()


def test_paint_files_refuses_a_mismatched_agent_file_or_output_path_before_painting(tmp_path, capsys):
    write_baseline_agent(tmp_path / "models")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "out").write_text("a file where the output folder should be")
    code, output = run_paint(tmp_path, capsys, tmp_path / "models", [tmp_path / "a.png"])
    assert code == 1 and output.err.strip() == f"error: --out {tmp_path / 'out'}: exists and is not a folder"
    (tmp_path / "out").unlink()
    for divide, refine in ((1, -1), (2, 5)):
        code, output = run_paint(tmp_path, capsys, tmp_path / "models", [tmp_path / "a.png"], divide, refine=refine)
        assert code == 1 and output.err.strip().startswith(f"error: --refine {refine}: must be >= 0, and 0 with --divide")
    (tmp_path / "models/agent_baseline.pt").rename(tmp_path / "models/agent_semantic.pt")
    with pytest.raises(SemguideError, match="agent_semantic.pt: holds the 'baseline' agent, not 'semantic'"):
        paint_files([tmp_path / "a.png"], agent="semantic", out=tmp_path / "out", models=tmp_path / "models",
                    params_file=tmp_path / "params.yaml")
    (tmp_path / "models/agent_semantic.pt").rename(tmp_path / "models/agent_baseline.pt")
    (tmp_path / "params.yaml").write_text("canvas: 32\ndevice: cpu\n")
    with pytest.raises(SemguideError, match="agent_baseline.pt: trained at canvas 16, params say canvas = 32"):
        paint_files([tmp_path / "a.png"], agent="baseline", out=tmp_path / "out", models=tmp_path / "models",
                    params_file=tmp_path / "params.yaml")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_paint_files_refine_reports_the_agents_and_the_refined_psnr(tmp_path, capsys):
    from semguide_core.renderer import NeuralRenderer, renderer_file
    write_baseline_agent(tmp_path / "models")
    torch.save(renderer_file(NeuralRenderer(16, [8], 4, upsample_blocks=1)), tmp_path / "models" / "renderer.pt")
    Image.new("RGB", (16, 16), (20, 200, 30)).save(tmp_path / "a.png")
    code, output = run_paint(tmp_path, capsys, tmp_path / "models", [tmp_path / "a.png"], strokes=5, refine=3)
    assert code == 0, output.err
    assert "refined by 3 steps" in output.out
    record = json.loads((tmp_path / "out" / "a.json").read_text())
    assert record["refine_steps"] == 3 and record["svg_psnr_db"] > 30


@pytest.mark.slow
def test_paint_files_divide_writes_the_larger_painting(tmp_path, capsys):
    write_baseline_agent(tmp_path / "models")
    Image.new("RGB", (50, 50), (20, 200, 30)).save(tmp_path / "big.png")
    code, output = run_paint(tmp_path, capsys, tmp_path / "models", [tmp_path / "big.png"], divide=2, strokes=5)
    assert code == 0, output.err
    with Image.open(tmp_path / "out" / "big.png") as image:
        assert image.size == (32, 32)
    assert len(json.loads((tmp_path / "out" / "big.json").read_text())["strokes"]) == 5 + 4 * 5


@pytest.mark.slow
def test_paint_files_semantic_agent_runs_psi_and_the_expert(tmp_path, capsys):
    from semguide_core.agent.inference import PaintingAgent, agent_file
    from semguide_core.agent.networks import Actor, actor_arch
    from semguide_core.semantics.expert import Expert
    from semguide_core.semantics.model_files import save_model
    from semguide_core.semantics.psi import Psi

    models = tmp_path / "models"
    models.mkdir()
    arch = actor_arch(TINY_ACTOR, True, n_background=2)
    torch.save(agent_file(PaintingAgent("semantic", "semantic", 2, 4, True, Actor(**arch), "layered"), arch, 16),
               models / "agent_semantic.pt")
    save_model(models / "psi.pt", Psi([8, 16]), {"widths": [8, 16]})
    expert = {"n_classes": 3, "width_mult": 0.25, "depth_mult": 0.25, "resolution": 32}
    save_model(models / "expert.pt", Expert(**expert), expert)
    Image.new("RGB", (30, 20), (200, 100, 0)).save(tmp_path / "a.png")
    (tmp_path / "params.yaml").write_text("canvas: 16\ndevice: cpu\n")
    status = paint_files([tmp_path / "a.png"], agent="semantic", strokes=10, out=tmp_path / "out", models=models,
                         params_file=tmp_path / "params.yaml")
    assert status == 0
    record = json.loads((tmp_path / "out" / "a.json").read_text())
    assert [s["foreground"] for s in record["strokes"]] == [False, False, True, True, True] * 2
    assert all(s["masked"] for s in record["strokes"])
    assert record["compositing"] == "layered"  # the agent file's rule


def test_benchmark_reports_milliseconds_per_side():
    from semguide_core.config import Params

    result = bench_painting(Params(), sides=(16, 32), strokes=5)
    assert list(result) == [16, 32] and all(ms > 0 for ms in result.values())


def test_learning_to_paint_equivalent_is_the_published_architecture():
    """The side-by-side benchmark times Learning to Paint's own networks (REFERENCE.md): a ResNet-18 actor
    on 9 channels giving 5 x 13 numbers in [0, 1], and the 10-512-1024-2048-4096 renderer at 128 px."""
    from semguide_core.bench import bench_learning_to_paint, learning_to_paint_actor
    from semguide_core.config import RendererParams
    from semguide_core.renderer import build_renderer

    actor = learning_to_paint_actor()
    out = actor(torch.rand(2, 9, 128, 128))
    assert out.shape == (2, 65) and 0 <= out.min() and out.max() <= 1
    assert 11.0e6 < sum(p.numel() for p in actor.parameters()) < 11.3e6          # ResNet-18's 11.2 M
    fc = [m.out_features for m in build_renderer(RendererParams(), 128).fc if isinstance(m, torch.nn.Linear)]
    assert fc == [512, 1024, 2048, 4096]
    assert bench_learning_to_paint(16, 2, steps=1) > 0


def test_startup_benchmark_times_imports_and_model_loading_in_fresh_processes(tmp_path):
    from semguide_core.bench import bench_startup

    write_baseline_agent(tmp_path / "models")
    (tmp_path / "params.yaml").write_text("canvas: 16\ndevice: cpu\n")
    rows = bench_startup(tmp_path / "models", tmp_path / "params.yaml", agents=("baseline",), repeats=1)
    assert [row["agent"] for row in rows] == ["baseline"]
    row = rows[0]
    assert 0 < row["imports_s"] and 0 < row["loading_s"] and row["imports_s"] + row["loading_s"] < row["process_s"]
