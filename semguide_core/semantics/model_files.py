"""Saving, loading and running the semantic models; file errors are one line naming the file.

A model file written here holds the keyword arguments of the model's builder and its state dict, so
`load_model` rebuilds the same architecture without the params that trained it (`semguide paint` needs
only the file). Weights files from elsewhere (torchvision's pretrained files, a user's ImageNet
weights) are plain state dicts: `load_weights_file`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from semguide_core.errors import ModelFileError
from semguide_core.runtime import load_state, load_torch, save_torch

# torchvision's pretrained models (ImageNet, COCO/VOC) expect inputs normalised with these
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def save_model(path: str | Path, model: torch.nn.Module, config: dict) -> None:
    """Write {config: builder kwargs, state_dict} atomically."""
    save_torch(path, {"config": config, "state_dict": model.state_dict()})


def load_model(path: str | Path, build: Callable[..., torch.nn.Module], what: str,
               device="cpu") -> torch.nn.Module:
    """Rebuild with build(**config), load the weights; return the model frozen, in eval mode, on `device`."""
    state = load_torch(path, what)
    if not isinstance(state, dict) or not {"config", "state_dict"} <= set(state):
        raise ModelFileError(f"{path}: not a {what} file (expected keys config, state_dict)")
    try:
        model = build(**state["config"])
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFileError(f"{path}: bad {what} config {state['config']!r} ({err})") from None
    load_state(model, state["state_dict"], path)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()


def load_weights_file(path: str | Path, module: torch.nn.Module, what: str, drop_prefixes=(),
                      keep_prefix: str = "") -> None:
    """Load a plain state dict into `module`.

    Keys starting with any of `drop_prefixes` are ignored (heads that are replaced); with `keep_prefix`
    only keys under it are kept, with the prefix removed. Missing, extra or misshapen keys are a
    one-line ModelFileError naming the file.
    """
    state = load_torch(path, what)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ModelFileError(f"{path}: not a state dict of tensors ({what})")
    state = {k[len(keep_prefix):]: v for k, v in state.items()
             if k.startswith(keep_prefix) and not k.startswith(tuple(drop_prefixes))}
    load_state(module, state, path)


@torch.no_grad()
def run_batched(model: torch.nn.Module, images: torch.Tensor, batch_size: int):
    """model(images) in batches on the model's device, without gradients, gathered on the CPU.

    Works for a model returning one tensor or a tuple of tensors.
    """
    device = next(model.parameters()).device
    outputs = [model(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    if isinstance(outputs[0], tuple):
        return tuple(torch.cat([o[k].cpu() for o in outputs]) for k in range(len(outputs[0])))
    return torch.cat([o.cpu() for o in outputs])
