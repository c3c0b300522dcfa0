"""Reading image files: the one reader that `prepare` (datasets) and `semguide paint` (any image) share.

An image is decoded once, turned upright by its EXIF orientation, and converted from any mode (grey,
palette, 16-bit, float, with alpha) to RGB in [0, 1]; transparent pixels are put on white. A missing,
corrupt or non-image file is a one-line DataError naming it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from semguide_core.errors import DataError

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def open_image(path: str | Path, what: str = "image") -> Image.Image:
    """The decoded image, upright (EXIF orientation applied), any mode."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not an {what} file")
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        # Pillow's guard against files that decode to gigabytes; said plainly, with the way around it
        raise DataError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's limit for one image "
                        "(its guard against decompression bombs); downscale it first, e.g. to 4000 px on its "
                        "long side") from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError ... for broken files
        raise DataError(f"{path}: cannot read {what} ({type(err).__name__})") from None


def rgb_float(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode as float32 RGB [H, W, 3] in [0, 1]."""
    if image.mode in SIXTEEN_BIT_MODES:  # PIL's convert("RGB") clips these at 255: a white image
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3], upright (datasets: `prepare`). 8-bit RGB values pass unchanged."""
    return (rgb_float(open_image(path)) * 255).round().astype(np.uint8)


def load_image(path: str | Path, side: int) -> torch.Tensor:
    """An image file as float RGB [3, side, side] in [0, 1] (aspect not kept, as the agent was trained)."""
    rgb = rgb_float(open_image(path))
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    antialias = min(rgb.shape[:2]) > side
    resized = F.interpolate(tensor, size=(side, side), mode="bilinear", align_corners=False, antialias=antialias)
    return resized[0].clamp(0, 1)
