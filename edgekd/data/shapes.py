"""`shapes`: a procedural 10-class dataset built into edgekd, deterministic by seed.

Each 32x32 RGB image holds one shape on a textured background. A per-sample difficulty in
[0, 1] shrinks the shape and lowers its contrast, and adds noise, clutter and occlusion, so
some images are easy and some hard: exactly what an early-exit network can profit from.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from edgekd.config import DataConfig
from edgekd.data.registry import DATASETS, RawSplits

CLASSES = [
    "circle", "square", "triangle", "cross", "ring", "diamond", "star", "hexagon", "bars", "arrow",
]
SPLIT_OFFSETS = {"train": 0, "test": 1}


def _polygon(cx: float, cy: float, r: float, n: int, rot: float, inner: float | None = None) -> list[tuple[float, float]]:
    """Regular polygon (or star when `inner` is given) centred on (cx, cy)."""
    points = []
    steps = n * 2 if inner else n
    for i in range(steps):
        radius = (inner if inner and i % 2 else 1.0) * r
        angle = rot + 2 * math.pi * i / steps
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw_shape(draw: ImageDraw.ImageDraw, label: int, cx: float, cy: float, r: float, rot: float, color: tuple) -> None:
    name = CLASSES[label]
    box = (cx - r, cy - r, cx + r, cy + r)
    if name == "circle":
        draw.ellipse(box, fill=color)
    elif name == "square":
        draw.polygon(_polygon(cx, cy, r, 4, rot + math.pi / 4), fill=color)
    elif name == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, rot), fill=color)
    elif name == "cross":
        w = max(1.0, r / 3)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=color)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=color)
    elif name == "ring":
        draw.ellipse(box, outline=color, width=max(1, int(r / 3)))
    elif name == "diamond":
        draw.polygon([(cx, cy - r), (cx + 0.6 * r, cy), (cx, cy + r), (cx - 0.6 * r, cy)], fill=color)
    elif name == "star":
        draw.polygon(_polygon(cx, cy, r, 5, rot, inner=0.45), fill=color)
    elif name == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, rot), fill=color)
    elif name == "bars":
        w = max(1.0, r / 4)
        for dy in (-2 * w * 1.5, 0, 2 * w * 1.5):
            draw.rectangle((cx - r, cy + dy - w / 2, cx + r, cy + dy + w / 2), fill=color)
    else:  # arrow
        w = max(1.0, r / 4)
        draw.rectangle((cx - r, cy - w, cx + 0.2 * r, cy + w), fill=color)
        draw.polygon([(cx + r, cy), (cx + 0.1 * r, cy - 0.7 * r), (cx + 0.1 * r, cy + 0.7 * r)], fill=color)


def render(label: int, difficulty: float, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One HxWx3 uint8 image of class `label` at the given difficulty."""
    background = rng.uniform(40, 215, size=3)
    fg_delta = (1.0 - 0.6 * difficulty) * rng.uniform(70, 110) * rng.choice([-1, 1], size=3)
    color = tuple(int(c) for c in np.clip(background + fg_delta, 0, 255))
    image = Image.new("RGB", (size, size), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    for _ in range(int(round(6 * difficulty * rng.uniform(0.5, 1.5)))):  # clutter: distractor strokes
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        stroke = tuple(int(c) for c in np.clip(background + rng.uniform(-90, 90, 3), 0, 255))
        draw.line((x0, y0, x1, y1), fill=stroke, width=int(rng.integers(1, 3)))
    r = size * (0.38 - 0.2 * difficulty) * rng.uniform(0.85, 1.15)
    cx, cy = rng.uniform(r, size - r, 2)
    _draw_shape(draw, label, cx, cy, r, rng.uniform(0, 2 * math.pi), color)
    if rng.random() < difficulty:  # occlusion: a background-coloured patch over part of the shape
        w, h = rng.uniform(0.25, 0.6, 2) * 2 * r
        ox, oy = cx + rng.uniform(-r, r) - w / 2, cy + rng.uniform(-r, r) - h / 2
        draw.rectangle((ox, oy, ox + w, oy + h), fill=tuple(int(c) for c in background))
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, 3 + 22 * difficulty, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


class ShapesDataset:
    """`n` images of the `split` ('train' or 'test'); image i depends only on (seed, split, i)."""

    classes = CLASSES

    def __init__(self, split: str, n: int, seed: int = 0, size: int = 32) -> None:
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"split must be one of {list(SPLIT_OFFSETS)}, got '{split}'")
        self.images = np.empty((n, size, size, 3), dtype=np.uint8)
        self.targets: list[int] = []
        self.difficulty = np.empty(n, dtype=np.float32)
        for i in range(n):
            rng = np.random.default_rng([seed, SPLIT_OFFSETS[split], i])
            label, difficulty = int(rng.integers(len(CLASSES))), float(rng.beta(1.0, 1.6))
            self.images[i] = render(label, difficulty, rng, size)
            self.targets.append(label)
            self.difficulty[i] = difficulty

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), self.targets[index]


@DATASETS.register("shapes")
def shapes(cfg: DataConfig) -> RawSplits:
    """Procedural 10-class shapes with easy and hard samples (sizes: data.train_size/test_size)."""
    train = ShapesDataset("train", cfg.train_size, seed=cfg.seed)
    test = ShapesDataset("test", cfg.test_size, seed=cfg.seed)
    return RawSplits(train=train, test=test, classes=CLASSES, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
