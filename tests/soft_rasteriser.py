"""A tiny differentiable stand-in for the neural renderer, shared by the tests that optimise strokes."""
import torch

from semguide_core.strokes import curve_samples, disc_radius


class SoftRasteriser(torch.nn.Module):
    """A tiny differentiable renderer: the real rasteriser's discs along the curve with soft edges."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, a):
        points, z, w = curve_samples(a, 20)
        grid2 = 2 * self.side                                           # the rasteriser's supersampled grid
        centre = torch.arange(self.side) * 2 + 0.5                      # canvas pixels in grid coordinates
        p = points * (grid2 - 1)
        d2 = (centre - p[..., 0:1])[:, :, None, :] ** 2 + (centre - p[..., 1:2])[:, :, :, None] ** 2
        r = disc_radius(z, self.side)[..., None, None]
        inside = torch.sigmoid((r ** 2 - d2) / r)                       # about sigmoid(2 (r - distance))
        return (inside * w[..., None, None]).amax(dim=1)
