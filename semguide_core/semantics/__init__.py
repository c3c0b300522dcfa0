"""Semantic guidance models (Sec. 4.2, 4.3, 6.1, 6.2): DeepLabV3 masks, Psi (mask + box), the expert
classifier and its guided-backprop maps. What other stages and `semguide paint` call:

- `segmenter.load_segmenter(path, device)`: images [B, 3, H, W] -> foreground probability [B, 1, H, W]
- `psi.load_psi(path, device)`: images -> (S_I [B, 1, H, W] in [0, 1], bbox [B, 4] normalised x, y, w, h)
- `expert.load_expert(path, device)` and `expert.gbp_maps(expert, images, masks, bboxes)` -> G_I [B, 1, H, W]
- `boxes.mask_to_bbox(masks)`: the one mask -> bbox function

Nothing is re-exported here: importing a light submodule (boxes) must not import torchvision, which the
segmenter and the expert need and which costs about 2 s of every `semguide paint` start-up.
"""
