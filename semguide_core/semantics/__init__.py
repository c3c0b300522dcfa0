"""Semantic guidance models (Sec. 4.2, 4.3, 6.1, 6.2): DeepLabV3 masks, Psi (mask + box), the expert
classifier and its guided-backprop maps. What other stages and `semguide paint` call:

- `load_segmenter(path, device)`: images [B, 3, H, W] -> foreground probability [B, 1, H, W]
- `load_psi(path, device)`: images -> (S_I [B, 1, H, W] in [0, 1], bbox [B, 4] normalised x, y, w, h)
- `load_expert(path, device)` and `gbp_maps(expert, images, masks, bboxes) -> G_I [B, 1, H, W] in [0, 1]`
"""
from semguide_core.semantics.expert import gbp_maps, load_expert
from semguide_core.semantics.psi import load_psi
from semguide_core.semantics.segmenter import load_segmenter

__all__ = ["gbp_maps", "load_expert", "load_psi", "load_segmenter"]
