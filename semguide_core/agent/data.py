"""The images an agent trains on, held once in memory and referred to by index (the replay stores indexes).

A `Pool` gathers, per prepared image: the target, S_I and bbox (Psi's predictions for the semantic agent,
the ground truth otherwise), the GBP map G_I, and the instance map. An episode is (image idx, instance k):
for an image with several instances, k is drawn with probability proportional to the instance's pixel area
(Sec. 5) and S becomes S_I restricted to instance k, with that instance's box; k = 0 means the whole
foreground. Pools of two datasets can be merged and sampled in a ratio (the paper's 0.8:0.2 mix of
Virtual KITTI with Stanford Cars).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semguide_core import align
from semguide_core.agent.rewards import Context
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import DataError
from semguide_core.semantics.boxes import mask_to_bbox


@dataclass(frozen=True)
class Pool:
    images: torch.Tensor     # uint8 [N, 3, H, W]
    masks: torch.Tensor      # float16 [N, 1, H, W], S_I
    gbp: torch.Tensor        # float16 [N, 1, H, W], G_I
    bboxes: torch.Tensor     # float32 [N, 4]
    gt_masks: torch.Tensor   # uint8 [N, 1, H, W], ground-truth foreground (for the foreground L2 metric)
    parts: torch.Tensor      # uint8 [N, 1, H, W], the distinguishing part (sample-birds; for the part L2 metric)
    instances: torch.Tensor  # uint8 [N, H, W], 0 = background, k = instance k
    n_instances: np.ndarray  # [N]
    train: list              # one idx array per source dataset
    test: np.ndarray
    mix: float = 0.0         # probability of drawing an episode from the second source

    def __len__(self):
        return len(self.images)

    def context(self, idx: torch.Tensor, instance: torch.Tensor, device) -> Context:
        """The Context of episodes (idx, instance) as float tensors on `device`."""
        idx, instance = idx.long().cpu(), instance.long().cpu()
        masks = self.masks[idx].float()
        bboxes = self.bboxes[idx].clone()
        several = instance > 0
        if several.any():
            own = (self.instances[idx[several]] == instance[several, None, None]).float()[:, None]
            masks[several] = masks[several] * own
            bboxes[several] = mask_to_bbox(own[:, 0])
        return Context(targets=(self.images[idx].float() / 255).to(device), masks=masks.to(device),
                       gbp=self.gbp[idx].float().to(device), bboxes=bboxes.to(device))

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n training episodes (idx [n], instance [n]); source 2 with probability `mix`."""
        second = (torch.rand(n, generator=gen) < self.mix) if len(self.train) > 1 else torch.zeros(n, dtype=torch.bool)
        idx = torch.empty(n, dtype=torch.long)
        for s, chosen in enumerate([~second, second][:len(self.train)]):
            pick = torch.randint(len(self.train[s]), (int(chosen.sum()),), generator=gen)
            idx[chosen] = torch.as_tensor(self.train[s], dtype=torch.long)[pick]
        instance = torch.tensor([sample_instance(self.instances[i], int(self.n_instances[i]), gen) for i in idx])
        return idx, instance

    def merged(self, other: "Pool", mix: float) -> "Pool":
        """This pool and `other` as one, episodes drawn from `other` with probability `mix`."""
        if other.images.shape[1:] != self.images.shape[1:]:
            raise DataError(f"mixed datasets differ in canvas size: {tuple(other.images.shape[2:])} "
                            f"vs {tuple(self.images.shape[2:])}")
        n = len(self)
        cat = {name: torch.cat([getattr(self, name), getattr(other, name)])
               for name in ("images", "masks", "gbp", "bboxes", "gt_masks", "parts", "instances")}
        return Pool(**cat, n_instances=np.concatenate([self.n_instances, other.n_instances]),
                    train=[self.train[0], other.train[0] + n], test=self.test, mix=mix)

    def focus_ablation(self) -> "Pool":
        """Sec. 7.1: background set to zero, then cropped to the bbox (no bi-level, no alignment needed)."""
        full = torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(len(self), 4).clone()
        crop = lambda x: align.crop(x.float(), self.bboxes)  # noqa: E731
        images = crop(self.images.float() * self.masks.float()).round().clamp(0, 255).to(torch.uint8)
        return replace(self, images=images, masks=crop(self.masks).half(), gbp=crop(self.gbp).half(),
                       gt_masks=(crop(self.gt_masks) > 0.5).to(torch.uint8),
                       parts=(crop(self.parts) > 0.5).to(torch.uint8), bboxes=full,
                       instances=torch.zeros_like(self.instances), n_instances=np.zeros_like(self.n_instances))


def sample_instance(instances: torch.Tensor, n: int, gen: torch.Generator) -> int:
    """Instance k in 1..n with probability proportional to its pixel area; 0 when there are fewer than 2."""
    if n < 2:
        return 0
    areas = torch.bincount(instances.flatten().long(), minlength=n + 1)[1:n + 1].double()
    if areas.sum() == 0:
        return 0
    return int(torch.multinomial(areas, 1, generator=gen)) + 1


def load_pool(prepared_dir: str | Path, psi_dir: str | Path | None, gbp_dir: str | Path | None) -> Pool:
    """A pool from stage outputs. psi_dir None: ground-truth masks and boxes; gbp_dir None: G_I = 0."""
    data = load_prepared(prepared_dir)
    n = len(data)
    # copies (np.array): the prepared arrays are read-only memory maps, which tensors must not share
    gt = torch.from_numpy(np.array(data.masks))[:, None]
    bboxes = torch.tensor(data.index[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float32))
    masks = gt.half()
    if psi_dir is not None:
        masks = torch.from_numpy(_array(Path(psi_dir) / "masks.npy", (n, *data.images.shape[1:3])))[:, None].half()
        table = _table(Path(psi_dir) / "bboxes.csv", ["idx", "x", "y", "w", "h"], n)
        bboxes = torch.tensor(table[["x", "y", "w", "h"]].to_numpy(np.float32))
    gbp = torch.zeros_like(masks)
    if gbp_dir is not None:
        gbp = torch.from_numpy(_array(Path(gbp_dir) / "maps.npy", (n, *data.images.shape[1:3])))[:, None].half()
    if not torch.isfinite(bboxes).all() or (bboxes[:, 2:] <= 0).any():
        raise DataError(f"{psi_dir or prepared_dir}: bounding boxes must have positive width and height")
    return Pool(images=torch.from_numpy(np.array(data.images)).permute(0, 3, 1, 2).contiguous(),
                masks=masks, gbp=gbp, bboxes=bboxes, gt_masks=gt,
                parts=torch.from_numpy(np.array(data.parts))[:, None],
                instances=torch.from_numpy(np.array(data.instances)),
                n_instances=data.index["n_instances"].to_numpy(), train=[data.split("train")],
                test=data.split("test"))


def _array(path: Path, shape: tuple) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: not found")
    array = np.load(path)
    if array.shape != shape:
        raise DataError(f"{path}: shape {array.shape}, expected {shape} (one map per prepared image)")
    return np.ascontiguousarray(array, dtype=np.float16)


def _table(path: Path, columns: list[str], n: int) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: not found")
    table = pd.read_csv(path)
    if list(table.columns[:len(columns)]) != columns or len(table) != n:
        raise DataError(f"{path}: expected columns {', '.join(columns)} and {n} rows")
    return table.sort_values("idx").reset_index(drop=True)
