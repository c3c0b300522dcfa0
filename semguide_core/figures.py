"""PNG figures that can be looked at offline (dvc plots' HTML needs a CDN): one grid writer for all."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no screen on these machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from semguide_core.runtime import atomic_path  # noqa: E402


def to_image(x) -> np.ndarray:
    """A tensor / array as HxW or HxWx3 float in [0,1] (CHW tensors are transposed)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(1, 2, 0)
    return np.clip(x.squeeze(), 0, 1)


def save_grid(rows: list[list], path, col_titles: list[str] | None = None,
              row_titles: list[str] | None = None, cell_inches: float = 1.3) -> None:
    """Save a grid of images (rows of HxW / HxWx3 arrays or tensors) as a PNG; grey maps use 'gray'."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            image = to_image(image)
            axes[i, j].imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
            if i == 0 and col_titles:
                axes[i, j].set_title(col_titles[j], fontsize=7)
        if row_titles:
            axes[i, 0].text(-0.1, 0.5, row_titles[i], transform=axes[i, 0].transAxes, fontsize=7,
                            ha="right", va="center")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


@torch.no_grad()
def renderer_comparison(model, strokes: torch.Tensor, density: torch.Tensor, path) -> None:
    """Held-out strokes: the rasteriser's density above the neural renderer's, 8 per row pair."""
    neural = model.eval()(strokes)
    truth = density.float() / 255 if density.dtype == torch.uint8 else density
    rows = []
    for start in range(0, len(strokes), 8):
        rows += [list(truth[start:start + 8]), list(neural[start:start + 8])]
    save_grid(rows, path, row_titles=["raster", "neural"] * (len(rows) // 2))
