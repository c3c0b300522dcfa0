"""Guided backpropagation (Springenberg et al. 2015) through every activation a model uses.

Plain guided backprop is defined for ReLU: on the way back, a ReLU passes only positive gradients. An
EfficientNet has almost no ReLU: it uses SiLU (and a sigmoid gate in each squeeze-excitation block), so
a ReLU-only implementation silently degrades to the plain gradient there. Here every elementwise
activation module is swapped for a guided one whose backward pass is

    grad_input = max(0, grad_output * f'(x))

i.e. the gradient leaving each activation is its ordinary local gradient with the negatives zeroed (for
ReLU this is the classic rule). The swap replaces modules instead of registering backward hooks, because
torchvision builds its activations with `inplace=True`, which backward hooks cannot handle; the guided
copy runs them out of place. The caller's model is left untouched.

The expert's GBP map G_I (crop, predicted class, normalisation, paste back) is built from these pieces
in `expert.gbp_maps`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

# Elementwise activations torchvision models use; each is replaced by its guided version.
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.ELU, nn.Sigmoid, nn.Tanh,
               nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish)


class _GuidedFunction(torch.autograd.Function):
    """y = f(x); backward: max(0, grad_y * f'(x)), with f' from autograd so any f works."""

    @staticmethod
    def forward(ctx, x, fn):
        ctx.fn = fn
        ctx.save_for_backward(x)
        return fn(x)

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            (grad_x,) = torch.autograd.grad(ctx.fn(x), x, grad_y)
        return grad_x.clamp(min=0), None


class GuidedActivation(nn.Module):
    """Wraps an activation module: same forward (out of place), guided backward."""

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.activation = copy.deepcopy(activation)
        if hasattr(self.activation, "inplace"):
            self.activation.inplace = False  # an in-place op would overwrite the x saved for backward

    def forward(self, x):
        return _GuidedFunction.apply(x, self.activation)


def make_guided(model: nn.Module) -> nn.Module:
    """A copy of `model` (in eval mode) with every activation in ACTIVATIONS made guided."""
    guided = copy.deepcopy(model).eval()
    for module in list(guided.modules()):
        for name, child in module.named_children():
            if isinstance(child, ACTIVATIONS):
                setattr(module, name, GuidedActivation(child))
    for p in guided.parameters():
        p.requires_grad_(False)
    return guided


def guided_gradients(guided: nn.Module, x: torch.Tensor, classes: torch.Tensor | None = None):
    """d logit[class] / d x through a guided model, for the given or else the predicted class.

    Returns (gradients like x, classes [N]).
    """
    x = x.detach().requires_grad_()
    logits = guided(x)
    if classes is None:
        classes = logits.argmax(1)
    (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x)
    return grad, classes


def normalise_maps(maps: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Divide each map [N, H, W] by its `percentile`-th value and clip to [0, 1]; all-zero stays zero."""
    scale = torch.quantile(maps.flatten(1), percentile / 100.0, dim=1)
    scale = torch.where(scale > 0, scale, maps.flatten(1).amax(1)).clamp(min=1e-12)
    return (maps / scale[:, None, None]).clamp(0.0, 1.0)


def mass_shares(maps: torch.Tensor, objects: torch.Tensor, parts: torch.Tensor) -> dict:
    """Where a set of maps [N, 1, H, W] put their mass, pooled over the images:

    - foreground_mass_share: map mass inside the object masks / all map mass;
    - part_mass_share / part_area_share: mass on the parts / mass on the objects, against the parts'
      pixels / the objects' pixels (a map spread evenly over the object gives a ratio of 1);
    - part_ratio: part_mass_share / part_area_share. Part entries are None when no image has a part.
    """
    objects, parts = objects.float(), parts.float() * objects.float()
    on_object = (maps * objects).sum()
    scores = {"foreground_mass_share": (on_object / maps.sum().clamp(min=1e-12)).item(),
              "part_mass_share": None, "part_area_share": None, "part_ratio": None}
    if parts.sum() > 0:
        mass = ((maps * parts).sum() / on_object.clamp(min=1e-12)).item()
        area = (parts.sum() / objects.sum()).item()
        scores |= {"part_mass_share": mass, "part_area_share": area, "part_ratio": mass / area}
    return scores
