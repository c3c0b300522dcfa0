"""The brush stroke of Eq. 1 and its real (non-neural) rasteriser.

A stroke is 13 numbers in [0,1]: (x0, y0, x1, y1, x2, y2, z0, z2, w0, w2, r, g, b).
(x0, y0) and (x2, y2) are the ends of a quadratic Bezier curve; the middle control point is relative to
them, as in the published code: x1' = x0 + (x2 - x0) * x1 (same for y), so it stays inside the box of the
ends. z is the thickness and w the opacity, both interpolated linearly from the start to the end.

The rasteriser follows the published label generator: on a grid twice the canvas size the curve is sampled
at 100 points; at each point a filled disc of radius 1 + z * canvas / 2 (grid pixels) is drawn with value
w, later discs overwriting earlier ones; the grid is then averaged down to the canvas. It is batched and
vectorised in torch, and is both the ground truth for the neural renderer and the renderer of final output.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

STROKE_SIZE = 13
SHAPE_SIZE = 10  # the first 10 numbers: position, thickness, opacity (what the neural renderer sees)
CURVE_SAMPLES = 100
SUPERSAMPLE = 2


def control_points(a: torch.Tensor) -> torch.Tensor:
    """Absolute control points P0, P1, P2 as [N, 3, 2] (x, y) in [0,1] from strokes a [N, >=6]."""
    p0, p2 = a[:, 0:2], a[:, 4:6]
    p1 = p0 + (p2 - p0) * a[:, 2:4]
    return torch.stack([p0, p1, p2], dim=1)


def curve_samples(a: torch.Tensor, n: int = CURVE_SAMPLES):
    """Points, thickness and opacity along the curve at t = i/n, i < n: ([N,n,2], [N,n], [N,n])."""
    t = torch.arange(n, dtype=a.dtype, device=a.device) / n
    p = control_points(a)
    b0, b1, b2 = (1 - t) ** 2, 2 * t * (1 - t), t ** 2
    points = b0[None, :, None] * p[:, None, 0] + b1[None, :, None] * p[:, None, 1] + b2[None, :, None] * p[:, None, 2]
    z = a[:, 6:7] + (a[:, 7:8] - a[:, 6:7]) * t
    w = a[:, 8:9] + (a[:, 9:10] - a[:, 8:9]) * t
    return points, z, w


def disc_radius(z: torch.Tensor, canvas: int) -> torch.Tensor:
    """Disc radius in pixels of the supersampled grid for thickness z in [0,1]."""
    return 1 + z * canvas / 2


@torch.no_grad()  # the real rasteriser is not differentiable; the neural renderer is
def rasterise(a: torch.Tensor, canvas: int) -> torch.Tensor:
    """Density maps Phi[a] in [0,1], [N, canvas, canvas], for strokes a [N, >=10] (colour is ignored).

    Work follows the strokes' area, not the canvas: each stroke gets a window, the smallest square of whole
    2 x 2 blocks of the grid that holds all its discs, and each disc is compared only with the pixels of
    its own box inside that window. A pixel takes the opacity of the last disc that covers it (the largest
    disc index, one `scatter_reduce` with amax), which is what drawing the discs in order does. Every
    comparison is the same float expression as on the whole grid, so the result is exactly that of drawing
    on the whole grid (tested). Strokes are sorted by window size and drawn in chunks sharing one window
    side and one box side.
    """
    if a.ndim != 2 or a.shape[1] < SHAPE_SIZE:
        raise ValueError(f"strokes must be [N, >= {SHAPE_SIZE}], got {tuple(a.shape)}")
    out = a.new_zeros(len(a), canvas, canvas)
    if not len(a):
        return out
    side = canvas * SUPERSAMPLE
    points, z, w = curve_samples(a)
    points = points * (side - 1)  # pixel centres of the grid sit at integers 0 .. side-1
    radius = disc_radius(z, canvas)[..., None]
    # each stroke's window: from the even grid line at or below its discs' lowest edge, a whole number of
    # 2 x 2 blocks wide, kept inside the grid
    low = ((points - radius).amin(1).floor().clamp(0, side - 2) / 2).floor() * 2    # [N, 2] (x, y)
    high = (points + radius).amax(1).ceil().clamp(0, side - 1)
    window = (((high - low).amax(1) + 1) / 2).ceil() * 2                            # [N], even
    # each disc's box: the grid pixels from the one at or below its lowest edge to the one at its highest
    box_low = (points - radius).floor()                                              # [N, n, 2]
    box = ((points + radius).floor() - box_low + 1).amax(2).amax(1)                  # [N], per stroke
    order = torch.argsort(window)
    windows = [int(v) for v in window[order].tolist()]  # plain ints: the grouping below is Python
    boxes = [int(v) for v in box[order].tolist()]
    budget = 2 ** 21  # disc-pixel comparisons (and window pixels) per chunk: stays in cache
    first = 0
    while first < len(a):
        # the next strokes whose windows are at most a quarter wider than the first's, within the budget
        count, chunk_box = 1, boxes[first]
        while first + count < len(a) and windows[first + count] <= windows[first] * 1.25 + 2:
            wider = max(chunk_box, boxes[first + count])
            if (count + 1) * max(windows[first + count] ** 2, CURVE_SAMPLES * wider ** 2) > budget:
                break
            count, chunk_box = count + 1, wider
        chunk = order[first:first + count]
        size = min(side, windows[first + count - 1])
        origin = torch.minimum(low[chunk], torch.tensor(float(side - size)))  # stays even: side, size even
        out[chunk] = _draw_discs(points[chunk], radius[chunk, :, 0] ** 2, w[chunk], box_low[chunk],
                                 chunk_box if 2 * chunk_box ** 2 < size ** 2 else size, origin, size, canvas)
        first += count
    return out


def _draw_discs(points, radius2, w, box_low, box: int, origin, size: int, canvas: int) -> torch.Tensor:
    """The discs of M strokes, each disc compared with a box x box square of its stroke's window (`size`
    grid pixels at `origin` [M, 2]), down-sampled and placed on the canvas: [M, canvas, canvas]."""
    m, n = w.shape
    # the box, moved into the window: every pixel of the disc inside the window stays in it
    start = torch.maximum(torch.minimum(box_low, (origin + (size - box))[:, None]), origin[:, None])  # [M, n, 2]
    steps = torch.arange(box, dtype=points.dtype, device=points.device)
    gx, gy = start[..., 0:1] + steps, start[..., 1:2] + steps  # [M, n, box]: whole numbers, exact in float
    # a grid pixel (y, x) is inside disc i when dx2_i[x] <= radius2_i - dy2_i[y]
    inside = ((gx - points[..., 0:1]) ** 2)[:, :, None, :] <= \
        (radius2[..., None] - (gy - points[..., 1:2]) ** 2)[:, :, :, None]           # [M, n, box, box]
    index = torch.arange(1, n + 1, dtype=torch.int16, device=points.device)[None, :, None, None]
    label = torch.where(inside, index, torch.zeros((), dtype=torch.int16, device=points.device))
    if box == size:  # every box is the window: the last covering disc is a max over the discs
        last = label.amax(1).view(m, -1).long()
    else:
        local = (start - origin[:, None]).long()
        corner = local[..., 1] * size + local[..., 0]                                 # [M, n]
        steps = torch.arange(box, device=points.device)
        at = (corner[..., None] + (steps[:, None] * size + steps).flatten()).view(m, -1)  # window pixels
        last = label.new_zeros(m, size * size).scatter_reduce_(1, at, label.view(m, -1), "amax").long()
    image = torch.where(last > 0, w.gather(1, (last - 1).clamp(min=0)), 0.0)  # the last covering disc's w
    small = F.avg_pool2d(image.view(m, 1, size, size), SUPERSAMPLE)[:, 0]     # [M, size / 2, size / 2]
    half = size // SUPERSAMPLE
    cells = torch.arange(half, device=points.device)
    x0, y0 = (origin / SUPERSAMPLE).long().unbind(1)
    flat = ((y0[:, None] + cells)[:, :, None] * canvas + (x0[:, None] + cells)[:, None, :]).flatten(1)
    out = points.new_zeros(m, canvas * canvas)
    return out.scatter_(1, flat, small.flatten(1)).view(-1, canvas, canvas)


def colour(density: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Coloured stroke map Phi^c: density [N,H,W] times colour rgb [N,3] -> [N,3,H,W]."""
    return density[:, None] * rgb[:, :, None, None]


def composite(canvas: torch.Tensor, density: torch.Tensor, rgb: torch.Tensor,
              mask: torch.Tensor | None = None, layered: bool = False) -> torch.Tensor:
    """One stroke onto canvas [N,3,H,W]: C * (1 - Phi) + Phi^c (Huang et al.), or with a layer mask M
    ([N,1,H,W] or [N,H,W], in [0,1]; 1 - S_I for a background stroke, S_I for a foreground one):

    - paper, Eq. 3-4 as printed: C * (1 - Phi) + Phi^c * M. The stroke erases the canvas under its whole
      density and colours it only inside M: a background stroke crossing the object blacks it out, a
      foreground stroke leaves a black halo around S_I.
    - layered (agent.compositing, a departure measured in docs/agent.md): C * (1 - M Phi) + M Phi^c, the
      same stroke with its density limited to M, so each layer paints only its own pixels.
    """
    if mask is not None:
        mask = mask[:, 0] if mask.ndim == 4 else mask
        if layered:
            density = density * mask
        else:
            return canvas * (1 - density[:, None]) + colour(density, rgb) * mask[:, None]
    return canvas * (1 - density[:, None]) + colour(density, rgb)


def paint(canvas: torch.Tensor, strokes: torch.Tensor, masks: torch.Tensor | None = None,
          density_fn=None, layered: bool = False) -> torch.Tensor:
    """Composite strokes [N,K,13] onto canvas [N,3,H,W] in order k = 0..K-1: the one painting loop of
    training rollouts, the actor's loss, `semguide paint`, `--refine` and the reference canvases.

    masks: optional [N,K,H,W], each stroke's layer mask (Eq. 3-4); layered: how they composite (`composite`).
    density_fn: strokes [M,13] -> Phi [M,H,W]; the real rasteriser when None, else e.g. the neural
    renderer (`agent.env`), through which gradients flow.
    """
    n, k, _ = strokes.shape
    side = canvas.shape[-1]
    density = (density_fn or (lambda a: rasterise(a, side)))(strokes.reshape(n * k, -1))
    return composite_all(canvas, density.view(n, k, *canvas.shape[-2:]), strokes[..., 10:13], masks, layered)


def composite_all(canvas: torch.Tensor, density: torch.Tensor, rgb: torch.Tensor,
                  masks: torch.Tensor | None = None, layered: bool = False) -> torch.Tensor:
    """`composite` of K strokes in order, from densities [N,K,H,W], colours [N,K,3], masks [N,K,H,W] or None."""
    for i in range(density.shape[1]):
        canvas = composite(canvas, density[:, i], rgb[:, i], None if masks is None else masks[:, i], layered)
    return canvas


def random_strokes(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n strokes with every parameter uniform in [0,1], as the published renderer training uses."""
    return torch.rand(n, STROKE_SIZE, generator=generator)


def stroke_set(n: int, canvas: int, generator: torch.Generator, batch: int = 1024) -> dict:
    """n random strokes and their rasterised densities (uint8, to keep the set small on disk)."""
    strokes = random_strokes(n, generator)
    density = torch.empty(n, canvas, canvas, dtype=torch.uint8)
    with tqdm(total=n, desc=f"rasterise {n} strokes", unit="stroke") as bar:
        for start in range(0, n, batch):
            part = strokes[start:start + batch]
            density[start:start + batch] = (rasterise(part, canvas) * 255).round().to(torch.uint8)
            bar.update(len(part))
    return {"strokes": strokes, "density": density}
