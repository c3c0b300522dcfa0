"""The stroke of Eq. 1 and its rasteriser: ranges, geometry, thickness, opacity, colour, compositing."""
import pytest
import torch

from semguide_core.strokes import colour, composite, control_points, paint, random_strokes, rasterise

CANVAS = 32


def stroke(x0=0.2, y0=0.5, x2=0.8, y2=0.5, z0=0.05, z2=0.05, w0=1.0, w2=1.0, rgb=(1.0, 0.5, 0.0), bend=0.5):
    """A straight horizontal stroke by default (the middle control point halfway between the ends)."""
    return torch.tensor([[x0, y0, bend, bend, x2, y2, z0, z2, w0, w2, *rgb]])


def pixel(p: float) -> int:
    """Canvas pixel holding the normalised coordinate p (grid coordinate p * (2 * CANVAS - 1), halved)."""
    return int(p * (2 * CANVAS - 1) / 2)


def test_shapes_and_range():
    a = random_strokes(20, torch.Generator().manual_seed(1))
    d = rasterise(a, CANVAS)
    assert d.shape == (20, CANVAS, CANVAS)
    assert d.min() >= 0 and d.max() <= 1
    assert (d.flatten(1).max(dim=1).values > 0).all()  # every stroke leaves a mark


def test_middle_control_point_is_relative_to_the_ends():
    p = control_points(torch.tensor([[0.2, 0.4, 0.5, 0.25, 0.6, 0.8]]))[0]
    assert torch.allclose(p[1], torch.tensor([0.4, 0.5]))


def test_covers_endpoints_and_nothing_far_from_the_curve():
    d = rasterise(stroke(), CANVAS)[0]
    row = pixel(0.5)
    assert d[row, pixel(0.2)] > 0.5 and d[row, pixel(0.8)] > 0.5 and d[row, pixel(0.5)] > 0.5
    radius = 1 + 0.05 * CANVAS / 2  # grid pixels: well under 2 canvas pixels
    far = torch.ones_like(d, dtype=torch.bool)
    far[row - 3:row + 4, pixel(0.2) - 3:pixel(0.8) + 4] = False
    assert radius < 2 and d[far].max() == 0


def test_thickness_grows_with_z():
    areas = [rasterise(stroke(z0=z, z2=z), CANVAS).sum().item() for z in (0.0, 0.1, 0.3, 0.6)]
    assert areas == sorted(areas) and areas[-1] > 3 * areas[0]
    tapering = rasterise(stroke(z0=0.0, z2=0.4), CANVAS)[0]
    assert tapering[:, pixel(0.75)].sum() > tapering[:, pixel(0.25)].sum()


def test_density_follows_w():
    flat = rasterise(stroke(w0=0.5, w2=0.5, z0=0.2, z2=0.2), CANVAS)[0]
    assert flat.max().item() == pytest.approx(0.5)
    ramp = rasterise(stroke(w0=0.0, w2=1.0, z0=0.2, z2=0.2), CANVAS)[0]
    row = pixel(0.5)
    assert ramp[row, pixel(0.25)] < ramp[row, pixel(0.5)] < ramp[row, pixel(0.75)]


def test_coloured_map_is_density_times_rgb():
    a = stroke(rgb=(0.9, 0.3, 0.1))
    d = rasterise(a, CANVAS)
    c = colour(d, a[:, 10:13])
    for k, v in enumerate((0.9, 0.3, 0.1)):
        assert torch.allclose(c[0, k], d[0] * v)


def test_batch_equals_one_by_one():
    a = random_strokes(7, torch.Generator().manual_seed(2))
    batched = rasterise(a, CANVAS)
    single = torch.cat([rasterise(a[i:i + 1], CANVAS) for i in range(len(a))])
    assert torch.equal(batched, single)


def whole_grid_rasterise(a, canvas):
    """The rasteriser's definition, drawn on the whole supersampled grid (the published label generator)."""
    from semguide_core.strokes import SUPERSAMPLE, curve_samples, disc_radius
    side = canvas * SUPERSAMPLE
    points, z, w = curve_samples(a)
    points = points * (side - 1)
    grid = torch.arange(side, dtype=a.dtype)
    dx2 = (grid - points[..., 0:1]) ** 2
    room = disc_radius(z, canvas)[..., None] ** 2 - (grid - points[..., 1:2]) ** 2
    image = a.new_zeros(len(a), side, side)
    for i in range(points.shape[1]):  # later discs overwrite earlier ones
        image = torch.where(dx2[:, i, None, :] <= room[:, i, :, None], w[:, i, None, None], image)
    return torch.nn.functional.avg_pool2d(image[:, None], SUPERSAMPLE)[:, 0]


@pytest.mark.parametrize("canvas", [16, 64, 128])
def test_windowed_rasteriser_equals_drawing_on_the_whole_grid(canvas):
    gen = torch.Generator().manual_seed(canvas)
    a = torch.rand(1000 if canvas < 128 else 300, 13, generator=gen)
    a[:200, 6:8] *= 0.02                      # hairlines
    a[200:260, 6:8] = 1.0                     # the thickest strokes: windows as large as the grid
    a[260:300, :6] = a[260:300, :6].round()   # ends on the border and corners
    assert torch.equal(rasterise(a, canvas), whole_grid_rasterise(a, canvas))


def test_composite_by_hand():
    canvas = torch.full((1, 3, 2, 2), 0.5)
    density = torch.tensor([[[0.0, 0.4], [1.0, 0.4]]])
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    out = composite(canvas, density, torch.tensor([[1.0, 0.0, 0.5]]), mask)
    expected_red = torch.tensor([[0.5, 0.5 * 0.6 + 0.4], [1.0, 0.5 * 0.6]])
    expected_blue = torch.tensor([[0.5, 0.5 * 0.6 + 0.2], [0.5, 0.5 * 0.6]])
    assert torch.allclose(out[0, 0], expected_red) and torch.allclose(out[0, 2], expected_blue)
    assert torch.allclose(out[0, 1], torch.tensor([[0.5, 0.3], [0.0, 0.3]]))


def test_paint_composites_in_order():
    red = stroke(z0=0.3, z2=0.3, rgb=(1.0, 0.0, 0.0))
    blue = stroke(z0=0.3, z2=0.3, rgb=(0.0, 0.0, 1.0))
    canvas = torch.zeros(1, 3, CANVAS, CANVAS)
    out = paint(canvas, torch.stack([red, blue], dim=1))  # blue last: on top
    centre = out[0, :, pixel(0.5), pixel(0.5)]
    assert torch.allclose(centre, torch.tensor([0.0, 0.0, 1.0]))
