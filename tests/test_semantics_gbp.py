"""Guided backprop: hand-computed gradients, every activation guided, SiLU differs from the plain gradient."""
import torch
from torch import nn

from semguide_core.semantics.expert import Expert, gbp_maps
from semguide_core.semantics.guided_backprop import (ACTIVATIONS, GuidedActivation, guided_gradients,
                                                     make_guided, mass_shares, normalise_maps)


def _linear(weight, bias=None):
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    layer.weight.data = torch.tensor(weight, dtype=torch.float32)
    if bias is not None:
        layer.bias.data = torch.tensor(bias, dtype=torch.float32)
    return layer


def test_relu_network_by_hand():
    # h = W1 x = (1, 2, 3) > 0; dy/da = W2 = (1, -1, 2); guided zeroes the -1: W1^T (1, 0, 2) = (3, 2);
    # the plain gradient is W1^T (1, -1, 2) = (3, 1).
    net = nn.Sequential(_linear([[1, 0], [0, 1], [1, 1]]), nn.ReLU(inplace=True), _linear([[1, -1, 2]]))
    x = torch.tensor([[1.0, 2.0]])
    grad, cls = guided_gradients(make_guided(net), x, torch.tensor([0]))
    assert torch.allclose(grad, torch.tensor([[3.0, 2.0]]))
    x.requires_grad_()
    net(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[3.0, 1.0]]))


def _silu_grad(x):
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def test_every_activation_zeroes_negative_gradients():
    """Two activations (ReLU, then SiLU): the guided gradient equals the chain rule written out with
    max(0, .) applied to the gradient leaving each activation."""
    torch.manual_seed(0)
    l1, l2, l3 = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)
    net = nn.Sequential(l1, nn.ReLU(), l2, nn.SiLU(inplace=True), l3)
    x = torch.randn(2, 4)
    grad, cls = guided_gradients(make_guided(net), x)
    with torch.no_grad():
        h1 = l1(x)
        h2 = l2(torch.relu(h1))
        logits = l3(torch.nn.functional.silu(h2))
        assert torch.equal(cls, logits.argmax(1))
        g = l3.weight[cls]                                   # d logit / d silu output
        g = (g * _silu_grad(h2)).clamp(min=0)                # through SiLU, negatives zeroed
        g = (g @ l2.weight * (h1 > 0)).clamp(min=0)          # through ReLU, negatives zeroed
        expected = g @ l1.weight
    assert torch.allclose(grad, expected, atol=1e-6)


def test_silu_guided_differs_from_plain_gradient():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(8, 16), nn.SiLU(inplace=True), nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 4))
    x = torch.randn(3, 8)
    guided, cls = guided_gradients(make_guided(net), x)
    x.requires_grad_()
    net(x).gather(1, cls[:, None]).sum().backward()
    assert not torch.allclose(guided, x.grad, atol=1e-4)


def test_make_guided_swaps_every_efficientnet_activation_and_leaves_the_model_alone():
    expert = Expert(n_classes=5, width_mult=0.25, depth_mult=0.25)
    n_activations = sum(isinstance(m, ACTIVATIONS) for m in expert.modules())
    guided = make_guided(expert)
    assert sum(isinstance(m, GuidedActivation) for m in guided.modules()) == n_activations > 10
    assert not any(isinstance(m, ACTIVATIONS) and not isinstance(p, GuidedActivation)
                   for p in guided.modules() for m in p.children())
    assert not any(isinstance(m, GuidedActivation) for m in expert.modules())
    x = torch.rand(2, 3, 32, 32)
    grad, cls = guided_gradients(guided, x)
    x.requires_grad_()
    expert.eval()(x).gather(1, cls[:, None]).sum().backward()
    assert grad.shape == x.shape  # gradients at initialisation are tiny: compare their shapes, not sizes
    assert not torch.allclose(grad / grad.abs().max(), x.grad / x.grad.abs().max(), atol=1e-2)


def test_normalise_maps_by_percentile():
    maps = torch.arange(100, dtype=torch.float32).view(1, 10, 10)  # 99th percentile = 98.01
    out = normalise_maps(maps, 99.0)
    assert out.min() == 0 and out.max() == 1
    assert torch.isclose(out[0, 5, 0], torch.tensor(50 / 98.01))
    assert normalise_maps(torch.zeros(2, 4, 4)).abs().sum() == 0


def test_gbp_maps_stay_in_the_box_and_in_range():
    expert = Expert(n_classes=3, width_mult=0.25, depth_mult=0.25, resolution=32)
    images = torch.rand(2, 3, 32, 32)
    masks = torch.ones(2, 1, 32, 32)
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.0, 0.5, 1.0, 0.5]])
    maps = gbp_maps(expert, images, masks, boxes)
    assert maps.shape == (2, 1, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0
    assert maps[0, 0, :8].abs().sum() == 0 and maps[0, 0, :, 24:].abs().sum() == 0  # outside box 0
    assert maps[1, 0, :16].abs().sum() == 0
    assert torch.equal(gbp_maps(make_guided(expert), images, masks, boxes), maps)
    masks[:, :, :, :16] = 0  # the left half masked out: no map mass there (but at the bilinear seam)
    assert gbp_maps(expert, images, masks, boxes)[:, :, :, :15].abs().max() == 0


def test_mass_shares_by_hand():
    objects = torch.zeros(1, 1, 4, 4)
    objects[..., :2, :] = 1                 # 8 object pixels
    parts = torch.zeros(1, 1, 4, 4)
    parts[..., 0, :2] = 1                   # 2 of them are the part: area share 1/4
    maps = torch.zeros(1, 1, 4, 4)
    maps[..., 0, 0] = 3.0                   # on the part
    maps[..., 1, 3] = 1.0                   # on the object, off the part
    maps[..., 3, 3] = 4.0                   # background
    scores = mass_shares(maps, objects, parts)
    assert scores["foreground_mass_share"] == 0.5
    assert scores["part_mass_share"] == 0.75 and scores["part_area_share"] == 0.25
    assert scores["part_ratio"] == 3.0
    assert mass_shares(maps, objects, torch.zeros_like(parts))["part_ratio"] is None
