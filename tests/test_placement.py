"""The actor's placement rule (agent/placement.py) and its cell-relative strokes, on hand-built residuals."""
import pytest
import torch

from semguide_core.agent.networks import Actor, cell_strokes, cell_views
from semguide_core.agent.placement import Placement, grid_cells, place, roi_mean

SIDE = 16
FULL = torch.tensor([[0.0, 0.0, 1.0, 1.0]])


def test_grid_cells_of_the_image_and_of_a_box():
    cells = grid_cells(FULL, 2)[0]
    assert cells.tolist() == [[0.25, 0.25, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5],
                              [0.25, 0.75, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]]
    box = grid_cells(torch.tensor([[0.5, 0.25, 0.5, 0.25]]), 2)[0]
    assert box[0].tolist() == pytest.approx([0.625, 0.3125, 0.25, 0.125])
    assert box[3].tolist() == pytest.approx([0.875, 0.4375, 0.25, 0.125])


def test_roi_mean_averages_each_cell():
    maps = torch.zeros(1, 1, SIDE, SIDE)
    maps[..., :8, 8:] = 1.0       # top-right quadrant
    means = roi_mean(maps, grid_cells(FULL, 2), samples=4)[0, :, 0]
    assert means.tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0])


def residual_target(cells: dict) -> torch.Tensor:
    """A target whose residual against a black canvas is `value` in cell (row, col) of a 4 x 4 grid."""
    target = torch.zeros(1, 3, SIDE, SIDE)
    for (row, col), value in cells.items():
        target[..., 4 * row:4 * row + 4, 4 * col:4 * col + 4] = value
    return target


def test_baseline_strokes_go_to_the_cells_with_the_largest_residual_coarse_then_fine():
    rule = Placement(bundle=2, n_background=2, grids=(2, 4), grid_steps=(1,))
    target = residual_target({(1, 2): 0.5, (3, 0): 0.9})
    canvas = torch.zeros_like(target)
    coarse = place(rule, canvas, target, None, FULL, torch.tensor([0]))[0]
    # step 0, 2 x 2 grid: bottom-left quadrant (holds 0.9), then top-right (0.5)
    assert coarse.tolist() == [[0.25, 0.75, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5]]
    fine = place(rule, canvas, target, None, FULL, torch.tensor([3]))[0]
    assert fine.tolist() == [[0.125, 0.875, 0.25, 0.25], [0.625, 0.375, 0.25, 0.25]]
    # once a cell is painted right, its residual is gone and the next stroke goes elsewhere
    painted = residual_target({(3, 0): 0.9})
    assert place(rule, painted, target, None, FULL, torch.tensor([3]))[0, 0].tolist() == [0.625, 0.375, 0.25, 0.25]


def test_mean_residual_ranks_what_a_flat_stroke_can_fix_above_texture():
    canvas = torch.full((1, 3, SIDE, SIDE), 0.5)
    target = canvas.clone()
    target[..., :8, :8] = (torch.arange(8)[:, None] + torch.arange(8)).remainder(2).float()  # texture: mean 0.5
    target[..., 8:, 8:] = 0.8                                                                 # flat, off by 0.3
    flat, texture = [0.75, 0.75, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5]
    for rank_by, first in (("mean_residual", flat), ("residual_energy", texture)):
        rule = Placement(bundle=1, n_background=1, grids=(2,), grid_steps=(), rank_by=rank_by)
        assert place(rule, canvas, target, None, FULL, torch.tensor([0]))[0, 0].tolist() == first


def test_a_grid_with_fewer_cells_than_strokes_repeats_the_largest():
    rule = Placement(bundle=5, n_background=5, grids=(2,), grid_steps=())
    target = residual_target({(0, 0): 0.4, (0, 3): 0.3, (3, 0): 0.2, (3, 3): 0.1})
    cells = place(rule, torch.zeros_like(target), target, None, FULL, torch.tensor([0]))[0]
    assert cells[:, :2].tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75], [0.25, 0.25]]


def test_bilevel_foreground_cells_lie_in_the_bbox_background_cells_outside_the_mask():
    rule = Placement(bundle=3, n_background=1, grids=(2,), grid_steps=())
    target = torch.full((1, 3, SIDE, SIDE), 0.5)   # residual everywhere ...
    target[..., 8:, 8:] = 1.0                       # ... largest on the object in the bottom-right quadrant
    mask = torch.zeros(1, 1, SIDE, SIDE)
    mask[..., 8:, 8:] = 1
    bbox = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    cells = place(rule, torch.zeros_like(target), target, mask, bbox, torch.tensor([0]))[0]
    background, foreground = cells[0], cells[1:]
    assert background[:2].tolist() != [0.75, 0.75]  # outside the mask despite the larger residual there
    assert ((foreground[:, :2] > 0.5) & (foreground[:, :2] < 1.0)).all()  # centres inside the bbox
    assert foreground[:, 2:].tolist() == [[0.25, 0.25]] * 2                # the bbox's 2 x 2 cells


def test_foreground_strokes_follow_their_objects_grid_the_background_the_painting_step():
    rule = Placement(bundle=2, n_background=1, grids=(2, 4), grid_steps=(1,))
    target = torch.ones(1, 3, SIDE, SIDE)
    mask = torch.zeros(1, 1, SIDE, SIDE)
    mask[..., 8:, 8:] = 1
    bbox = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    canvas = torch.zeros_like(target)
    late = place(rule, canvas, target, mask, bbox, torch.tensor([3]))[0]
    assert late[:, 2:].tolist() == [[0.25, 0.25], [0.125, 0.125]]   # the image's 4 x 4 cells, the bbox's 4 x 4
    # an object first painted at step 3 (a second instance, Eq. 16) starts on its box's 2 x 2 grid
    first = place(rule, canvas, target, mask, bbox, torch.tensor([3]), torch.tensor([0]))[0]
    assert first[:, 2:].tolist() == [[0.25, 0.25], [0.25, 0.25]]


def test_cell_strokes_stay_near_their_cell_and_scale_with_it():
    cells = torch.tensor([[[0.25, 0.75, 0.5, 0.5], [0.5, 0.5, 0.0625, 0.0625]]])
    middle = cell_strokes(torch.full((1, 2, 13), 0.5), cells, reach=1.0, thickness=2.0)[0]
    assert middle[:, [0, 1]].tolist() == middle[:, [4, 5]].tolist() == cells[0, :, :2].tolist()
    extreme = cell_strokes(torch.ones(1, 2, 13), cells, reach=1.0, thickness=2.0)[0]
    assert extreme[1, [0, 1]].tolist() == pytest.approx([0.5625, 0.5625])  # one cell away from the centre
    assert extreme[0, 0].item() == 0.75 and extreme[0, 1].item() == 1.0     # clipped to the image
    assert extreme[:, 6].tolist() == pytest.approx([1.0, 0.25])              # 2 * 2 * 0.0625, coarse: capped


def test_actor_reads_each_stroke_at_its_cell():
    torch.manual_seed(0)
    actor = Actor(in_channels=3, bundle=2, width=4, blocks=[1], hidden=8, reach=1.0, thickness=1.0,
                  n_background=2, grids=[2], grid_steps=[], rank_by="mean_residual").eval()
    obs = torch.rand(1, 3, SIDE, SIDE)
    cells = grid_cells(FULL, 2)[:, :2]
    swapped = cells.flip(1)
    a, b = actor(obs, cells)[0], actor(obs, swapped)[0]
    assert not torch.allclose(a, b)
    assert ((a[:, 0] - cells[0, :, 0]).abs() <= 0.5).all()  # ends within one cell (0.5) of the centre


def test_cell_view_samples_the_area_the_stroke_reaches_at_the_cell_scale():
    columns = torch.arange(8.0).expand(1, 1, 8, 8)                 # pixel value = its column
    cell = torch.tensor([[[0.5, 0.5, 0.25, 0.25]]])                  # a 2 x 2 pixel cell in the middle
    # reach 1: the view spans columns 2..5; 2 x 2 sub-cells average columns 2-3 and 4-5, on both rows
    assert cell_views(columns, cell, side=2, reach=1.0)[0, 0].tolist() == pytest.approx([2.5, 4.5, 2.5, 4.5])
    small = torch.tensor([[[0.5, 0.5, 0.125, 0.125]]])               # a one-pixel cell sees its 2 x 2 pixels
    assert cell_views(columns, small, side=2, reach=1.0)[0, 0].tolist() == pytest.approx([3.0, 4.0, 3.0, 4.0])


def test_actor_with_a_cell_view_reads_the_pixels_of_its_cell():
    torch.manual_seed(0)
    actor = Actor(in_channels=3, bundle=1, width=4, blocks=[1], hidden=8, reach=1.0, thickness=1.0,
                  n_background=1, grids=[2], grid_steps=[], rank_by="mean_residual", view=2,
                  view_channels=[0, 1, 2]).eval()
    first = actor.heads[0][0]
    assert first.in_features == 2 * 4 + 1 + 3 * 2 * 2               # features, image features, slot, view
    with torch.no_grad():
        first.weight[:, :2 * 4 + 1] = 0                              # the head now hears only the view
    obs = torch.rand(1, 3, SIDE, SIDE)
    cell = grid_cells(FULL, 4)[:, :1]                                # the top-left 4 x 4 pixels
    inside, outside = obs.clone(), obs.clone()
    inside[..., 1:3, 1:3] += 0.5
    outside[..., 12:, 12:] += 0.5
    assert not torch.allclose(actor(obs, cell), actor(inside, cell))
    assert torch.equal(actor(obs, cell), actor(outside, cell))
