"""The one typed loader for params.yaml.

Every hyperparameter of the pipeline is named here, once, with its default, its type and its allowed
range. `load_params()` reads params.yaml, rejects unknown keys, wrong types and out-of-range values with a
one-line `ConfigError` naming the key and the value, and returns a frozen `Params` tree that stages read
(`params.renderer.steps`, `params.eta`, ...).

The paper's reward weights (eta, nu, kappa) live at the top level so that `dvc exp run -S eta=3` works.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from semguide_core.errors import ConfigError


def param(default, *, lo=None, hi=None, choices=None, doc: str = ""):
    """A dataclass field with a checked range: lo <= value <= hi, or value in choices."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: list(default) if isinstance(default, list) else dict(default),
                     metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class StrokesParams:
    """Stage `strokes`: random 13-parameter Bezier strokes rasterised as renderer training data."""
    n_train: int = param(60000, lo=1, doc="training strokes")
    n_val: int = param(2000, lo=1, doc="held-out strokes")
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class RendererParams:
    """Stage `train_renderer`: the neural renderer Phi (FC expansion, then conv + pixel-shuffle)."""
    fc_widths: list = param([256, 512, 1024], lo=1, doc="hidden widths of the fully connected expansion")
    conv_width: int = param(32, lo=1, doc="channels of the conv + pixel-shuffle blocks")
    upsample_blocks: int = param(2, lo=1, hi=5, doc="each doubles the side; the FC output is canvas / 2**blocks")
    loss: str = param("bce", choices=["bce", "mse"], doc="bce: BCE on logits (trains reliably); mse: as published")
    batch_size: int = param(64, lo=1)
    steps: int = param(6000, lo=1)
    lr: float = param(1e-3, lo=0.0)
    lr_decay_at: list = param([0.6, 0.85], lo=0.0, hi=1.0, doc="fractions of `steps` where lr is divided by 10")
    checkpoint_every: int = param(500, lo=1)
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class PrepareParams:
    """Stage `prepare`: read `dataset` through its loader, resize to the canvas."""
    data_dir: str = param("data", doc="root holding the datasets (tracked by data.dvc)")
    max_images: int = param(0, lo=0, doc="0 = all")


@dataclass(frozen=True)
class Params:
    """The whole params.yaml."""
    eta: float = param(2.0, lo=0.0, doc="foreground reward weight (Eq. 19)")
    nu: float = param(10.0, lo=0.0, doc="focus reward weight (Eq. 19)")
    kappa: float = param(0.0, lo=0.0, doc="focus-only ablation weight (Sec. 7.1); 0 = baseline")
    canvas: int = param(64, lo=16, hi=1024, doc="canvas side in pixels (the paper: 128)")
    device: str = param("auto", choices=["auto", "cpu", "cuda"])
    dataset: str = param("sample-birds", doc="which dataset `prepare` reads (see semguide_core.data)")
    strokes: StrokesParams = field(default_factory=StrokesParams)
    renderer: RendererParams = field(default_factory=RendererParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)


# ----------------------------------------------------------------------------------------------- loader
def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and check params.yaml; raise ConfigError naming the first bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return build(Params, raw, where=str(path))


def build(cls, raw, where: str, prefix: str = ""):
    """Turn a mapping into the dataclass `cls`, checking keys, types and ranges."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {prefix}{key} (known: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name not in raw:
            continue
        key, value, kind = prefix + name, raw[name], hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = build(kind, value, where, key + ".")
        else:
            values[name] = _checked(key, value, kind, f.metadata, where)
    return cls(**values)


def _checked(key, value, kind, meta, where):
    bad = f"{where}: {key} = {value!r}"
    origin = typing.get_origin(kind) or kind
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{bad}: must be a list")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{bad}: must be a number")
        value = float(value)
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{bad}: must be an integer")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{bad}: must be true or false")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{bad}: must be a string")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    for item in value if origin is list else [value]:  # a list's range applies to each item
        if choices is not None and item not in choices:
            raise ConfigError(f"{bad}: must be one of {', '.join(map(str, choices))}")
        if not isinstance(item, (int, float)) and (lo is not None or hi is not None):
            raise ConfigError(f"{bad}: must hold numbers")
        if lo is not None and item < lo:
            raise ConfigError(f"{bad}: must be >= {lo}")
        if hi is not None and item > hi:
            raise ConfigError(f"{bad}: must be <= {hi}")
    return value


def defaults_as_yaml() -> str:
    """params.yaml with every default, for `semguide params --defaults`."""
    return yaml.safe_dump(dataclasses.asdict(Params()), sort_keys=False)
