"""Procedural shapes (64x64 RGB, 8 classes), drawn with numpy from a seeded generator.

Each image is one shape with random position, size, rotation and colours on a
noisy gradient background with small distractor blobs. Shape edges are
anti-aliased from a signed distance (positive inside), so no two images are alike.
"""

from __future__ import annotations

import numpy as np

from pipeline.datasets.base import DATASETS, Dataset, DatasetSplits

SIZE = 64
CLASSES = ("circle", "ring", "square", "triangle", "cross", "ellipse", "stripes", "star")
TRAIN_PER_CLASS = 300
TEST_PER_CLASS = 75
CALIBRATION_SAMPLES = 200
DISTRACTORS = 3


def _inside(label: int, u: np.ndarray, v: np.ndarray, r: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Signed distance-like field (pixels, > 0 inside) of class `label` in rotated coordinates (u, v)."""
    rho = np.hypot(u, v)
    if label == 0:  # circle
        return r - rho
    if label == 1:  # ring, inner radius 45-65% of the outer
        return np.minimum(r - rho, rho - r * (0.45 + 0.2 * shape))
    if label == 2:  # square
        return 0.85 * r - np.maximum(np.abs(u), np.abs(v))
    if label == 3:  # equilateral triangle: three half-planes at the apothem
        angles = np.pi / 2 + 2 * np.pi / 3 * np.arange(3)
        sides = [0.55 * r - (u * np.cos(a) + v * np.sin(a)) for a in angles]
        return np.minimum(np.minimum(sides[0], sides[1]), sides[2])
    if label == 4:  # cross, arms 25-40% of the radius wide
        half = r * (0.125 + 0.075 * shape)
        return np.maximum(np.minimum(r - np.abs(u), half - np.abs(v)), np.minimum(r - np.abs(v), half - np.abs(u)))
    if label == 5:  # ellipse, minor axis 35-55% of the major
        minor = r * (0.35 + 0.2 * shape)
        return minor * (1.0 - np.hypot(u / r, v / minor))
    if label == 6:  # 3-5 stripes across a square patch
        period = r * (0.4 + 0.2 * shape)
        wave = np.abs(np.mod(v / period, 1.0) - 0.5)
        return np.minimum(0.8 * r - np.maximum(np.abs(u), np.abs(v)), (wave - 0.25) * period)
    # star: five points, inner radius 40-55% of the outer
    inner = 0.4 + 0.15 * shape
    edge = r * (inner + (1.0 - inner) * (0.5 + 0.5 * np.cos(5.0 * np.arctan2(v, u))) ** 2)
    return edge - rho


def _coordinates(rng: np.random.Generator, count: int, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to a random centre, rotated by a random angle, shaped (count, SIZE, SIZE)."""
    grid = np.arange(SIZE, dtype=np.float32) + 0.5
    cx = rng.uniform(r + 1, SIZE - r - 1)[:, None, None]
    cy = rng.uniform(r + 1, SIZE - r - 1)[:, None, None]
    theta = rng.uniform(0, 2 * np.pi, count)[:, None, None]
    dx, dy = grid[None, None, :] - cx, grid[None, :, None] - cy
    return np.cos(theta) * dx + np.sin(theta) * dy, np.cos(theta) * dy - np.sin(theta) * dx


def _background(rng: np.random.Generator, count: int) -> np.ndarray:
    """A random colour with a linear gradient in a random direction, (count, SIZE, SIZE, 3)."""
    colour = rng.uniform(0, 1, (count, 1, 1, 3))
    direction = rng.uniform(0, 2 * np.pi, count)[:, None, None, None]
    ramp = np.linspace(-0.5, 0.5, SIZE, dtype=np.float32)
    gradient = np.cos(direction) * ramp[None, None, :, None] + np.sin(direction) * ramp[None, :, None, None]
    return colour + rng.uniform(-0.3, 0.3, (count, 1, 1, 3)) * gradient


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images (len(labels), SIZE, SIZE, 3) float32 in [0, 1] for integer class `labels`."""
    count = len(labels)
    background = _background(rng, count)
    # the shape's colour differs from the background's mean by 0.3-0.7 in every channel (cyclically)
    colour = np.mod(background.mean(axis=(1, 2), keepdims=True) + rng.uniform(0.3, 0.7, (count, 1, 1, 3)), 1.0)
    r = rng.uniform(10, 22, count)
    u, v = _coordinates(rng, count, r)
    shape = rng.uniform(0, 1, count)[:, None, None]
    mask = np.zeros((count, SIZE, SIZE), dtype=np.float32)
    for label in range(len(CLASSES)):
        chosen = labels == label
        mask[chosen] = np.clip(0.5 + _inside(label, u[chosen], v[chosen], r[chosen, None, None], shape[chosen]), 0, 1)
    for _ in range(DISTRACTORS):  # small blobs of random colour anywhere, possibly over the shape
        blob_r = rng.uniform(1.5, 3.5, count)
        bu, bv = _coordinates(rng, count, blob_r)
        blob = np.clip(0.5 + blob_r[:, None, None] - np.hypot(bu, bv), 0, 1)[..., None]
        background = background * (1 - blob) + rng.uniform(0, 1, (count, 1, 1, 3)) * blob
    image = background * (1 - mask[..., None]) + colour * mask[..., None]
    image += rng.normal(0, 1, image.shape) * rng.uniform(0.02, 0.08, (count, 1, 1, 1))
    return np.clip(image, 0, 1).astype(np.float32)


def _split(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES), dtype=np.int64), per_class))
    return render(labels, rng), labels


def shapes_splits(seed: int = 0) -> DatasetSplits:
    """Class-balanced train (2400) and test (600) splits; calibration is the first 200 of train. NHWC."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _split(rng, TRAIN_PER_CLASS)
    x_test, y_test = _split(rng, TEST_PER_CLASS)
    train = Dataset("shapes", x_train, y_train, "NHWC", CLASSES)
    calibration = train.take(CALIBRATION_SAMPLES)
    test = Dataset("shapes", x_test, y_test, "NHWC", CLASSES)
    return DatasetSplits(train=train, calibration=calibration, test=test)


DATASETS.register("shapes", shapes_splits)
