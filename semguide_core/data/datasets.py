"""The names the `dataset` param accepts, each a folder under the data dir read by one layout's loader."""
from __future__ import annotations

from pathlib import Path

from semguide_core.data import cars, cub, vkitti
from semguide_core.data.record import Record
from semguide_core.errors import ConfigError, DataError

# name -> (layout, folder under the data dir)
DATASETS = {
    "sample-birds": ("cub", "sample-birds"),
    "sample-cars": ("cars", "sample-cars"),
    "sample-scenes": ("vkitti", "sample-scenes"),
    "cub": ("cub", "CUB_200_2011"),
    "cars": ("cars", "stanford_cars"),
    "vkitti": ("vkitti", "vkitti2"),
}


def list_records(name: str, data_dir: str | Path, test_fraction: float) -> list[Record]:
    """All records of dataset `name`; `test_fraction` makes the split of layouts without an official one."""
    if name not in DATASETS:
        raise ConfigError(f"dataset = {name!r}: unknown (known: {', '.join(DATASETS)})")
    layout, folder = DATASETS[name]
    root = Path(data_dir) / folder
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder for {name!r} not found (run `dvc pull`, or see docs/data.md)")
    if layout == "vkitti":
        return vkitti.load(root, test_fraction)
    return {"cub": cub.load, "cars": cars.load}[layout](root)
