"""The embedded sample datasets, drawn procedurally and written in the real datasets' own layouts.

    semguide data synth --out data --seed 0

writes, deterministically from the seed:

- `sample-birds/` (CUB-200-2011 layout): one bird per image on a cluttered, textured background; its box
  covers 5% to 60% of the image, anywhere in it; a quarter of the birds are camouflaged (plumage taken
  from the background's colours). The 8 species differ only in three small features: eye colour, crown
  patch colour and beak length; body colour, wing bars, pose and size are drawn independently of the
  species. `part_masks/` (not part of CUB) marks those three features.
- `sample-cars/` (Stanford Cars devkit layout): one car per image, 6 body styles, bbox and class only;
  the true masks go to `sample-cars-truth/` beside it, outside the dataset, for scoring extracted masks.
- `sample-scenes/` (Virtual KITTI 2 layout): street scenes with 2 to 6 vehicles (cars, vans, trucks),
  5 scenes x 3 variations (clone, fog, sunset: the same geometry in different light) x frames,
  with class and instance segmentations.

Shapes are drawn at SUPERSAMPLE x the image size and the RGB is downsampled, so edges are anti-aliased;
label images take the centre sample of each block, so they stay hard labels.

The file is long (about 480 lines, 26 short functions) because the three datasets share their drawing
primitives (textures, clutter, vehicles, the supersampled canvas) and their writers; split by dataset,
each part would import most of the others.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageDraw
from tqdm import tqdm

from semguide_core.data.record import mask_pixel_box
from semguide_core.errors import DataError
from semguide_core.runtime import atomic_path

SUPERSAMPLE = 2
JPEG_QUALITY = 88
CAMOUFLAGE_RATE = 0.25


# ------------------------------------------------------------------------------------------- drawing
class Painter:
    """An RGB image and named label images, drawn with the same polygons (coordinates in output pixels)."""

    def __init__(self, background: np.ndarray, labels: dict[str, str]):
        self.height, self.width = background.shape[0] // SUPERSAMPLE, background.shape[1] // SUPERSAMPLE
        self.rgb = Image.fromarray(background)
        self.labels = {name: Image.new(mode, self.rgb.size, 0) for name, mode in labels.items()}

    def polygon(self, points: np.ndarray, colour, **labels) -> None:
        """Fill `points` [n, 2] with `colour` in the RGB image and with the given value in each label image."""
        xy = [tuple(p) for p in np.asarray(points, float) * SUPERSAMPLE]
        ImageDraw.Draw(self.rgb).polygon(xy, fill=tuple(int(c) for c in colour))
        for name, value in labels.items():
            ImageDraw.Draw(self.labels[name]).polygon(xy, fill=value)

    def finish(self, rng: np.random.Generator, noise: float = 4.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The RGB at the output size with a little sensor noise, and the label images at the output size."""
        rgb = np.asarray(self.rgb.resize((self.width, self.height), Image.Resampling.LANCZOS), float)
        rgb = np.clip(rgb + rng.normal(0.0, noise, rgb.shape), 0, 255).astype(np.uint8)
        centre = SUPERSAMPLE // 2
        labels = {name: np.asarray(image)[centre::SUPERSAMPLE, centre::SUPERSAMPLE]
                  for name, image in self.labels.items()}
        return rgb, labels


def ellipse(cx, cy, rx, ry, angle=0.0, n=28) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    points = np.stack([rx * np.cos(t), ry * np.sin(t)], 1)
    return rotate(points, angle) + [cx, cy]


def rectangle(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.asarray(points, float) @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def jitter(rng: np.random.Generator, colour, amount: float) -> np.ndarray:
    return np.clip(np.asarray(colour, float) + rng.normal(0, amount, 3), 0, 255)


def gradient(rng: np.random.Generator, width: int, height: int, top, bottom) -> np.ndarray:
    """A vertical colour gradient at the supersampled size."""
    t = np.linspace(0, 1, height * SUPERSAMPLE)[:, None, None]
    column = (1 - t) * np.asarray(top, float) + t * np.asarray(bottom, float)
    return np.repeat(column, width * SUPERSAMPLE, 1).astype(np.uint8)


def clutter(painter: Painter, rng: np.random.Generator, palette: np.ndarray, count: int) -> None:
    """Leaves, branches and blobs in the palette's colours, drawn into the RGB only."""
    w, h = painter.width, painter.height
    for _ in range(count):
        colour = jitter(rng, palette[rng.integers(len(palette))], 18)
        kind = rng.random()
        if kind < 0.5:    # leaf
            size = rng.uniform(0.02, 0.07) * w
            painter.polygon(ellipse(rng.uniform(0, w), rng.uniform(0, h), size, size * rng.uniform(0.3, 0.6),
                                    rng.uniform(0, 180)), colour)
        elif kind < 0.75:  # branch
            start, end = rng.uniform(0, 1, 2) * [w, h], rng.uniform(0, 1, 2) * [w, h]
            normal = rotate([(end - start) / (np.linalg.norm(end - start) + 1e-6)], 90)[0] * rng.uniform(1, 3)
            painter.polygon(np.array([start - normal, end - normal, end + normal, start + normal]),
                            jitter(rng, (90, 65, 40), 20))
        else:              # soft blob of the surroundings
            size = rng.uniform(0.1, 0.3) * w
            painter.polygon(ellipse(rng.uniform(0, w), rng.uniform(0, h), size, size * rng.uniform(0.4, 1.0),
                                    rng.uniform(0, 180)), colour)


def place(rng: np.random.Generator, shapes: list[np.ndarray], width: int, height: int,
          box_fraction: tuple[float, float]) -> tuple[float, np.ndarray]:
    """Scale and offset for an object drawn in unit coordinates: its box covers a log-uniform fraction of
    the image in `box_fraction` (less when the object would not fit) and lies anywhere inside the image."""
    points = np.concatenate(shapes)
    low, high = points.min(0), points.max(0)
    extent = high - low
    fraction = math.exp(rng.uniform(math.log(box_fraction[0]), math.log(box_fraction[1])))
    scale = min(math.sqrt(fraction * width * height / (extent[0] * extent[1])),
                0.97 * width / extent[0], 0.97 * height / extent[1])
    offset = rng.uniform(-low * scale, [width, height] - high * scale)
    return scale, offset


def save_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=JPEG_QUALITY)


def save_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path, optimize=True)


def is_train(ordinal: int, per_class: float, train_fraction: float) -> bool:
    """The first `train_fraction` of each class's images are train, the rest test (at least one of each
    where the class has two images or more)."""
    n_train = min(max(1, round(per_class * train_fraction)), max(1, math.ceil(per_class) - 1))
    return ordinal < n_train


# --------------------------------------------------------------------------------------------- birds
EYES = {"Red": (215, 25, 25), "Yellow": (250, 220, 0)}
CROWNS = {"Orange": (255, 125, 0), "Blue": (35, 85, 235)}
BEAKS = {"Short": 0.66, "Long": 0.86}  # x of the beak tip, in body lengths
BIRD_SPECIES = [(eye, crown, beak) for eye in EYES for crown in CROWNS for beak in BEAKS]
PLUMAGE = [(120, 85, 55), (95, 95, 100), (150, 130, 90), (70, 80, 60), (180, 160, 120), (60, 60, 70),
           (140, 70, 50), (200, 190, 170)]
HABITATS = [  # sky-or-far colour, near colour, clutter colours
    [(150, 190, 225), (70, 110, 60), (40, 90, 40), (90, 140, 60), (110, 90, 60)],      # woodland
    [(200, 210, 215), (150, 140, 100), (170, 150, 90), (120, 110, 80), (200, 180, 120)],  # dry grass
    [(120, 170, 200), (60, 100, 120), (40, 80, 100), (90, 130, 140), (160, 170, 170)],  # water's edge
    [(225, 225, 230), (180, 185, 190), (140, 140, 150), (90, 80, 70), (210, 210, 215)],  # snow
    [(100, 120, 80), (50, 70, 40), (30, 60, 30), (70, 100, 40), (120, 100, 50)],        # dense foliage
]


def bird_shapes(species: tuple[str, str, str], wing_bars: int) -> list[tuple[str, np.ndarray]]:
    """The bird in unit coordinates (body length ~1, facing +x, y down), back to front.
    Each shape is (role, polygon); roles pick the colour and whether it is part of the species' features."""
    tip = BEAKS[species[2]]
    shapes = [
        ("tail", np.array([[-0.32, -0.06], [-0.86, -0.24], [-0.92, -0.1], [-0.32, 0.08]])),
        ("leg", rectangle(-0.02, 0.18, 0.02, 0.42)), ("leg", rectangle(0.09, 0.16, 0.13, 0.40)),
        ("body", ellipse(0, 0, 0.42, 0.25, -10)),
        ("wing", ellipse(-0.1, -0.03, 0.32, 0.14, -12)),
    ]
    shapes += [("bar", ellipse(-0.02 - 0.12 * k, -0.03, 0.025, 0.12, -12)) for k in range(wing_bars)]
    shapes += [
        ("head", ellipse(0.38, -0.26, 0.17, 0.17)),
        ("crown", ellipse(0.37, -0.37, 0.11, 0.055)),
        ("eye_ring", ellipse(0.46, -0.28, 0.055, 0.055, n=16)),
        ("eye", ellipse(0.46, -0.28, 0.036, 0.036, n=16)),
        ("beak", np.array([[0.52, -0.31], [0.52, -0.21], [tip, -0.25 + 0.02 * (tip - 0.66)]])),
    ]
    return shapes


def draw_bird(rng: np.random.Generator, label: int, width: int, height: int):
    """One sample-birds image: RGB, foreground mask and part mask (bool), all [height, width]."""
    species = BIRD_SPECIES[label]
    habitat = np.array(HABITATS[rng.integers(len(HABITATS))], float)
    painter = Painter(gradient(rng, width, height, jitter(rng, habitat[0], 12), jitter(rng, habitat[1], 12)),
                      {"mask": "L", "part": "L"})
    clutter(painter, rng, habitat[1:], int(rng.integers(15, 40)))
    if rng.random() < CAMOUFLAGE_RATE:  # plumage from the surroundings
        body = jitter(rng, habitat[rng.integers(1, len(habitat))], 10)
        wing = jitter(rng, body * 0.85, 8)
    else:
        body = jitter(rng, PLUMAGE[rng.integers(len(PLUMAGE))], 15)
        wing = jitter(rng, PLUMAGE[rng.integers(len(PLUMAGE))], 15)
    colours = {"tail": wing, "leg": (50, 40, 35), "body": body, "wing": wing, "bar": (235, 235, 225),
               "head": body, "crown": CROWNS[species[1]], "eye_ring": (20, 20, 20), "eye": EYES[species[0]],
               "beak": (55, 45, 35)}
    shapes = bird_shapes(species, wing_bars=int(rng.integers(0, 3)))
    flip = -1 if rng.random() < 0.5 else 1
    angle = rng.uniform(-25, 25)
    posed = [(role, rotate(points * [flip, 1], angle)) for role, points in shapes]
    scale, offset = place(rng, [points for _, points in posed], width, height, (0.05, 0.6))
    if rng.random() < 0.6:  # a perch under the feet
        feet = max(points[:, 1].max() for role, points in posed if role == "leg") * scale + offset[1]
        painter.polygon(rectangle(0, feet - 1, width, feet + rng.uniform(2, 5)), jitter(rng, (95, 70, 45), 15))
    for role, points in posed:
        part = 255 if role in ("crown", "eye_ring", "eye", "beak") else 0
        painter.polygon(points * scale + offset, colours[role], mask=255, part=part)
    rgb, labels = painter.finish(rng)
    return rgb, labels["mask"] > 0, labels["part"] > 0


def write_birds(root: Path, seed: int, count: int, train_fraction: float = 0.75) -> None:
    """sample-birds in the CUB-200-2011 layout (with segmentations/ inside it, and part_masks/)."""
    names = [f"{i + 1:03d}.{eye}_eyed_{crown}_crowned_{beak}_billed_Finch"
             for i, (eye, crown, beak) in enumerate(BIRD_SPECIES)]
    lines = {key: [] for key in ("images", "image_class_labels", "bounding_boxes", "train_test_split")}
    with atomic_path(root) as tmp:
        for image_id in tqdm(range(1, count + 1), desc="sample-birds", unit="img"):
            rng = np.random.default_rng([seed, 1, image_id])
            label = (image_id - 1) % len(names)
            width, height = int(rng.integers(144, 193)), int(rng.integers(136, 177))
            rgb, mask, part = draw_bird(rng, label, width, height)
            species = names[label].split(".", 1)[1]
            relative = f"{names[label]}/{species}_{image_id:04d}_{image_id}"
            save_jpeg(tmp / "images" / f"{relative}.jpg", rgb)
            save_png(tmp / "segmentations" / f"{relative}.png", mask.astype(np.uint8) * 255)
            save_png(tmp / "part_masks" / f"{relative}.png", part.astype(np.uint8) * 255)
            lines["images"].append(f"{image_id} {relative}.jpg")
            lines["image_class_labels"].append(f"{image_id} {label + 1}")
            lines["bounding_boxes"].append(f"{image_id} " + " ".join(f"{v:.1f}" for v in mask_pixel_box(mask)))
            train = is_train((image_id - 1) // len(names), count / len(names), train_fraction)
            lines["train_test_split"].append(f"{image_id} {int(train)}")
        (tmp / "classes.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
        for key, rows in lines.items():
            (tmp / f"{key}.txt").write_text("\n".join(rows) + "\n")


# ---------------------------------------------------------------------------------------------- cars
CAR_STYLES = {  # cabin polygon and body-top height, in car lengths (facing +x, ground at y = 0)
    "Sedan": ([[-0.38, -0.30], [-0.22, -0.48], [0.12, -0.48], [0.28, -0.30]], -0.30),
    "Hatchback": ([[-0.47, -0.30], [-0.43, -0.50], [0.10, -0.50], [0.28, -0.30]], -0.30),
    "Coupe": ([[-0.30, -0.28], [-0.12, -0.42], [0.06, -0.42], [0.30, -0.28]], -0.28),
    "SUV": ([[-0.48, -0.36], [-0.46, -0.62], [0.16, -0.62], [0.30, -0.36]], -0.36),
    "Pickup": ([[-0.06, -0.32], [-0.02, -0.54], [0.17, -0.54], [0.30, -0.32]], -0.32),
    "Minivan": ([[-0.48, -0.33], [-0.45, -0.63], [0.04, -0.63], [0.40, -0.33]], -0.33),
}
PAINT = [(200, 30, 30), (30, 60, 170), (235, 235, 235), (25, 25, 30), (165, 170, 175), (40, 120, 60),
         (230, 200, 40), (120, 30, 40)]


def car_shapes(style: str) -> list[tuple[str, np.ndarray]]:
    cabin, top = CAR_STYLES[style]
    cabin = np.array(cabin)
    window = cabin.mean(0) + (cabin - cabin.mean(0)) * [0.86, 0.72] + [0, 0.01]
    shapes = [("body", np.array([[-0.5, -0.08], [-0.5, top + 0.03], [-0.46, top], [0.42, top],
                                 [0.5, top + 0.07], [0.5, -0.08]])),
              ("body", cabin), ("window", window),
              ("light", rectangle(0.46, top + 0.03, 0.5, top + 0.07)),
              ("tail", rectangle(-0.5, top + 0.02, -0.47, top + 0.07))]
    for x in (-0.32, 0.32):
        shapes += [("tyre", ellipse(x, -0.09, 0.1, 0.1, n=20)), ("hub", ellipse(x, -0.09, 0.05, 0.05, n=14))]
    return shapes


def draw_car(rng: np.random.Generator, style: str, width: int, height: int):
    """One sample-cars image: RGB and the true foreground mask (bool)."""
    horizon = rng.uniform(0.3, 0.6) * height
    sky = jitter(rng, (165, 195, 225), 20)
    ground = jitter(rng, [(110, 110, 115), (95, 120, 70), (150, 140, 120)][rng.integers(3)], 10)
    background = gradient(rng, width, height, sky, sky * 0.9)
    background[int(horizon * SUPERSAMPLE):] = ground.astype(np.uint8)
    painter = Painter(background, {"mask": "L"})
    for _ in range(int(rng.integers(3, 9))):  # buildings and trees along the horizon
        x, w, h = rng.uniform(0, width), rng.uniform(0.1, 0.3) * width, rng.uniform(0.1, 0.35) * height
        if rng.random() < 0.5:
            painter.polygon(rectangle(x, horizon - h, x + w, horizon), jitter(rng, (150, 140, 135), 30))
        else:
            painter.polygon(ellipse(x, horizon - h / 2, w / 2, h / 2), jitter(rng, (60, 110, 55), 20))
    paint = (jitter(rng, ground, 8) if rng.random() < CAMOUFLAGE_RATE / 2
             else jitter(rng, PAINT[rng.integers(len(PAINT))], 12))
    colours = {"body": paint, "window": (50, 65, 80), "light": (240, 235, 200), "tail": (200, 20, 20),
               "tyre": (20, 20, 20), "hub": (150, 150, 155)}
    flip = -1 if rng.random() < 0.5 else 1
    posed = [(role, points * [flip, 1]) for role, points in car_shapes(style)]
    scale, offset = place(rng, [p for _, p in posed], width, height, (0.15, 0.7))
    painter.polygon(ellipse(offset[0], offset[1] - 0.01 * scale, 0.55 * scale, 0.04 * scale), ground * 0.5)
    for role, points in posed:
        painter.polygon(points * scale + offset, colours[role], mask=255)
    rgb, labels = painter.finish(rng)
    return rgb, labels["mask"] > 0


def write_cars(root: Path, truth: Path, seed: int, count: int, train_fraction: float = 0.6) -> None:
    """sample-cars in the Stanford Cars devkit layout; the true masks in `truth` (outside the dataset)."""
    styles = list(CAR_STYLES)
    class_names = np.array([f"Synthmotor {style} 2012" for style in styles], dtype=object)[None]
    annotations = {"train": [], "test": []}
    with atomic_path(root) as tmp, atomic_path(truth) as tmp_truth:
        for n in tqdm(range(count), desc="sample-cars", unit="img"):
            rng = np.random.default_rng([seed, 2, n])
            label = n % len(styles)
            split = "train" if is_train(n // len(styles), count / len(styles), train_fraction) else "test"
            width, height = int(rng.integers(168, 209)), int(rng.integers(128, 153))
            rgb, mask = draw_car(rng, styles[label], width, height)
            fname = f"{len(annotations[split]) + 1:05d}.jpg"
            save_jpeg(tmp / f"cars_{split}" / fname, rgb)
            save_png(tmp_truth / f"cars_{split}" / fname.replace(".jpg", ".png"), mask.astype(np.uint8) * 255)
            x, y, w, h = mask_pixel_box(mask)  # MATLAB convention: 1-based, inclusive
            annotations[split].append((x + 1, y + 1, x + w, y + h, label + 1, fname))
        (tmp / "devkit").mkdir()
        # as published: the devkit's test annotations have no class; the labelled file came later
        unlabelled = [(x1, y1, x2, y2, fname) for x1, y1, x2, y2, _, fname in annotations["test"]]
        for path, rows in [("devkit/cars_train_annos.mat", annotations["train"]),
                           ("devkit/cars_test_annos.mat", unlabelled),
                           ("cars_test_annos_withlabels.mat", annotations["test"])]:
            save_mat(tmp / path, {"annotations": devkit_annotations(rows)})
        save_mat(tmp / "devkit" / "cars_meta.mat", {"class_names": class_names})


def save_mat(path: Path, variables: dict) -> None:
    """scipy.io.savemat, with the timestamp of the 116-byte text header replaced so the bytes are reproducible."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables)
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by semguide_core.data.synth".ljust(116)
    path.write_bytes(bytes(data))


def devkit_annotations(rows: list[tuple]) -> np.ndarray:
    """A 1 x n MATLAB struct array with the devkit's fields (`class` left out when the rows lack it)."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    if rows and len(rows[0]) == 5:
        fields.remove("class")
    table = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        table[0, i] = tuple(row)
    return table


# -------------------------------------------------------------------------------------------- scenes
VKITTI_COLOURS = {  # Virtual KITTI 2 colors.txt
    "Terrain": (210, 0, 200), "Sky": (90, 200, 255), "Tree": (0, 199, 0), "Vegetation": (90, 240, 0),
    "Building": (140, 140, 140), "Road": (100, 60, 100), "GuardRail": (250, 100, 255),
    "TrafficSign": (255, 255, 0), "TrafficLight": (200, 200, 0), "Pole": (255, 130, 0), "Misc": (80, 80, 80),
    "Truck": (160, 60, 60), "Car": (255, 127, 80), "Van": (0, 139, 139), "Undefined": (0, 0, 0),
}
SCENES = ["Scene01", "Scene02", "Scene06", "Scene18", "Scene20"]
VARIATIONS = ["clone", "fog", "sunset"]
VEHICLE_TYPES = {"Car": (0.6, 1.5, 0.75), "Van": (0.25, 1.6, 1.0), "Truck": (0.15, 2.0, 1.15)}  # p, width, height
SCENE_SIZE = (384, 128)


def scene_layout(rng: np.random.Generator) -> dict:
    """The fixed background of one scene: horizon, vanishing point, buildings, trees, poles."""
    width, height = SCENE_SIZE
    horizon = rng.uniform(0.38, 0.5) * height
    things = []
    for _ in range(int(rng.integers(6, 12))):
        x, w = rng.uniform(-0.05, 1.0) * width, rng.uniform(0.05, 0.2) * width
        h = rng.uniform(0.15, 0.4) * height
        if rng.random() < 0.6:
            things.append(("Building", rectangle(x, horizon - h, x + w, horizon + 2),
                           jitter(rng, (150, 140, 130), 30)))
        else:
            things.append(("Tree", ellipse(x, horizon - h / 2, w / 2, h / 2), jitter(rng, (50, 105, 45), 15)))
    for _ in range(int(rng.integers(1, 4))):
        x = rng.uniform(0, width)
        things.append(("Pole", rectangle(x, horizon - 0.3 * height, x + 2, horizon + 0.25 * height), (70, 70, 70)))
    return {"horizon": horizon, "vanish": rng.uniform(0.35, 0.65) * width, "things": things,
            "sky": jitter(rng, (150, 190, 230), 15), "terrain": jitter(rng, (90, 120, 60), 12),
            "road": jitter(rng, (90, 90, 95), 8)}


def place_vehicles(rng: np.random.Generator, layout: dict, count: int) -> list[tuple[str, float, float]]:
    """(type, bottom y, centre x) of `count` vehicles on the road, far ones first (drawn first)."""
    width, height = SCENE_SIZE
    types = list(VEHICLE_TYPES)
    weights = [VEHICLE_TYPES[t][0] for t in types]
    vehicles = []
    for _ in range(count):
        depth = rng.uniform(0.12, 1.0)
        bottom = layout["horizon"] + depth * (height - layout["horizon"])
        half_road = depth * 0.75 * width
        vehicles.append((types[rng.choice(len(types), p=weights)], bottom,
                         layout["vanish"] + rng.uniform(-0.85, 0.85) * half_road))
    return sorted(vehicles, key=lambda v: v[1])


def draw_scene(rng: np.random.Generator, layout: dict, vehicles: list, variation: str = "clone"):
    """One frame: RGB, class colours [H, W, 3] and instance ids [H, W] (track j -> j + 1)."""
    width, height = SCENE_SIZE
    horizon, vanish = layout["horizon"], layout["vanish"]
    background = gradient(rng, width, height, layout["sky"], layout["sky"] * 0.85)
    painter = Painter(background, {"classes": "RGB", "instance": "L"})
    painter.polygon(rectangle(0, 0, width, horizon + 1), layout["sky"], classes=VKITTI_COLOURS["Sky"])
    painter.polygon(rectangle(0, horizon, width, height), layout["terrain"], classes=VKITTI_COLOURS["Terrain"])
    painter.polygon(np.array([[vanish - 4, horizon], [vanish + 4, horizon], [vanish + 0.8 * width, height],
                              [vanish - 0.8 * width, height]]), layout["road"], classes=VKITTI_COLOURS["Road"])
    for name, points, colour in layout["things"]:
        painter.polygon(points, colour, classes=VKITTI_COLOURS[name])
    for track, (kind, bottom, centre) in enumerate(vehicles):
        _, relative_width, relative_height = VEHICLE_TYPES[kind]
        w = relative_width * (bottom - horizon) * 0.35
        h = relative_height * w
        paint = jitter(rng, PAINT[rng.integers(len(PAINT))], 12)
        label = {"classes": VKITTI_COLOURS[kind], "instance": track + 1}
        x0, x1, top = centre - w / 2, centre + w / 2, bottom - h
        painter.polygon(rectangle(x0 + 0.05 * w, bottom - 0.15 * h, x0 + 0.25 * w, bottom), (20, 20, 20), **label)
        painter.polygon(rectangle(x1 - 0.25 * w, bottom - 0.15 * h, x1 - 0.05 * w, bottom), (20, 20, 20), **label)
        painter.polygon(rectangle(x0, top + 0.25 * h, x1, bottom - 0.1 * h), paint, **label)
        painter.polygon(np.array([[x0 + 0.1 * w, top + 0.25 * h], [x0 + 0.18 * w, top], [x1 - 0.18 * w, top],
                                  [x1 - 0.1 * w, top + 0.25 * h]]), paint * 0.9, **label)
        painter.polygon(rectangle(x0 + 0.2 * w, top + 0.05 * h, x1 - 0.2 * w, top + 0.25 * h), (45, 55, 70))
        for x in (x0 + 0.04 * w, x1 - 0.16 * w):
            painter.polygon(rectangle(x, top + 0.4 * h, x + 0.12 * w, top + 0.5 * h), (210, 25, 25))
    rgb, labels = painter.finish(rng, noise=3.0)
    return relight(rgb, variation, horizon), labels["classes"], labels["instance"]


def relight(rgb: np.ndarray, variation: str, horizon: float) -> np.ndarray:
    """The same frame in another light: fog fades towards grey, most near the horizon; sunset is warm and dark."""
    if variation == "fog":
        distance = np.abs(np.arange(rgb.shape[0]) - horizon) / rgb.shape[0]
        t = 0.6 * np.clip(1.0 - distance, 0.3, 1.0)[:, None, None]
        return ((1 - t) * rgb + t * np.array([200, 200, 205])).astype(np.uint8)
    if variation == "sunset":
        return np.clip(rgb * np.array([0.95, 0.7, 0.5]), 0, 255).astype(np.uint8)
    return rgb


def write_scenes(root: Path, seed: int, count: int) -> None:
    """sample-scenes in the Virtual KITTI 2 layout: count / 15 frames per scene and variation."""
    frames = max(1, count // (len(SCENES) * len(VARIATIONS)))
    palette = np.random.default_rng([seed, 3]).integers(0, 256, 768).astype(np.uint8)
    palette[:3] = 0
    with atomic_path(root) as tmp:
        for s, scene in enumerate(tqdm(SCENES, desc="sample-scenes", unit="scene")):
            layout = scene_layout(np.random.default_rng([seed, 3, s]))
            for f in range(frames):
                rng = np.random.default_rng([seed, 3, s, f])
                vehicles = _visible_vehicles(rng, layout)
                for variation in VARIATIONS:
                    rgb, classes, instances = draw_scene(np.random.default_rng([seed, 3, s, f, 1]), layout,
                                                         vehicles, variation)
                    frames_dir = tmp / scene / variation / "frames"
                    save_jpeg(frames_dir / "rgb" / "Camera_0" / f"rgb_{f:05d}.jpg", rgb)
                    save_png(frames_dir / "classSegmentation" / "Camera_0" / f"classgt_{f:05d}.png", classes)
                    ids = Image.fromarray(instances, mode="L").convert("P")
                    ids.putpalette(palette)
                    ids_path = frames_dir / "instanceSegmentation" / "Camera_0" / f"instancegt_{f:05d}.png"
                    ids_path.parent.mkdir(parents=True, exist_ok=True)
                    ids.save(ids_path, optimize=True)
            for variation in VARIATIONS:
                (tmp / scene / variation / "colors.txt").write_text(
                    "Category r g b\n" + "".join(f"{k} {r} {g} {b}\n" for k, (r, g, b) in VKITTI_COLOURS.items()))


def _visible_vehicles(rng: np.random.Generator, layout: dict, min_pixels: int = 30) -> list:
    """2 to 6 vehicles, re-drawn until each shows at least `min_pixels` pixels (none hidden by nearer ones)."""
    while True:
        vehicles = place_vehicles(rng, layout, int(rng.integers(2, 7)))
        _, _, instances = draw_scene(rng, layout, vehicles)
        counts = np.bincount(instances.ravel(), minlength=len(vehicles) + 1)[1:]
        if (counts >= min_pixels).all():
            return vehicles


# ----------------------------------------------------------------------------------------------- CLI
def synth(data_dir: str | Path = "data", seed: int = 0, birds: int = 320, cars: int = 150,
          scenes: int = 60) -> None:
    """Write sample-birds, sample-cars (+ sample-cars-truth) and sample-scenes under `data_dir`."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"{data_dir}: exists and is not a folder")
    write_birds(data_dir / "sample-birds", seed, birds)
    write_cars(data_dir / "sample-cars", data_dir / "sample-cars-truth", seed, cars)
    write_scenes(data_dir / "sample-scenes", seed, scenes)
