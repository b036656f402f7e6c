"""Procedural shapes (64x64 RGB, 8 classes), drawn with numpy from a seeded generator.

Each image is one shape with random position, size, rotation and colours on a
noisy gradient background with small distractor blobs. Shape edges are
anti-aliased from a signed distance (positive inside), so no two images are alike.
"""

from __future__ import annotations

import numpy as np

from pipeline.core.datasets.base import DATASETS, Dataset, DatasetSplits

SIZE = 64
CLASSES = ("circle", "ring", "square", "triangle", "cross", "ellipse", "stripes", "star")
TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 75
CALIBRATION_SAMPLES = 200
DISTRACTORS = 3
CHUNK = 500  # images rendered at once


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


def _uniform(rng: np.random.Generator, low: float | np.ndarray, high: float | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(np.float32)


def _coordinates(rng: np.random.Generator, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to a random centre, rotated by a random angle, shaped (len(r), SIZE, SIZE)."""
    grid = np.arange(SIZE, dtype=np.float32) + 0.5
    cx = _uniform(rng, r + 1, SIZE - r - 1, r.shape)[:, None, None]
    cy = _uniform(rng, r + 1, SIZE - r - 1, r.shape)[:, None, None]
    theta = _uniform(rng, 0, 2 * np.pi, r.shape)[:, None, None]
    dx, dy = grid[None, None, :] - cx, grid[None, :, None] - cy
    return np.cos(theta) * dx + np.sin(theta) * dy, np.cos(theta) * dy - np.sin(theta) * dx


def _background(rng: np.random.Generator, count: int) -> np.ndarray:
    """A random colour with a linear gradient in a random direction, (count, SIZE, SIZE, 3)."""
    colour = _uniform(rng, 0, 1, (count, 1, 1, 3))
    direction = _uniform(rng, 0, 2 * np.pi, (count, 1, 1, 1))
    ramp = np.linspace(-0.5, 0.5, SIZE, dtype=np.float32)
    gradient = np.cos(direction) * ramp[None, None, :, None] + np.sin(direction) * ramp[None, :, None, None]
    image = gradient * _uniform(rng, -0.3, 0.3, (count, 1, 1, 3))
    image += colour
    return image


def _paint(image: np.ndarray, inside: np.ndarray, colour: np.ndarray) -> None:
    """Blend `colour` into `image` in place where `inside` > 0, with a one-pixel anti-aliased edge."""
    layer = colour - image
    layer *= np.clip(0.5 + inside, 0, 1)[..., None]
    image += layer


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images (len(labels), SIZE, SIZE, 3) float32 in [0, 1] for integer class `labels`."""
    count = len(labels)
    image = _background(rng, count)
    # the shape's colour differs from the background's mean by 0.3-0.7 in every channel (cyclically)
    colour = np.mod(image.mean(axis=(1, 2), keepdims=True) + _uniform(rng, 0.3, 0.7, (count, 1, 1, 3)), 1.0)
    for _ in range(DISTRACTORS):  # small blobs of random colour anywhere, under the shape
        blob_r = _uniform(rng, 1.5, 3.5, (count,))
        bu, bv = _coordinates(rng, blob_r)
        _paint(image, blob_r[:, None, None] - np.hypot(bu, bv), _uniform(rng, 0, 1, (count, 1, 1, 3)))
    r = _uniform(rng, 10, 22, (count,))
    u, v = _coordinates(rng, r)
    shape = _uniform(rng, 0, 1, (count, 1, 1))
    inside = np.empty((count, SIZE, SIZE), dtype=np.float32)
    for label in range(len(CLASSES)):
        chosen = labels == label
        inside[chosen] = _inside(label, u[chosen], v[chosen], r[chosen, None, None], shape[chosen])
    _paint(image, inside, colour)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= _uniform(rng, 0.02, 0.08, (count, 1, 1, 1))
    image += noise
    return np.clip(image, 0, 1, out=image)


def _split(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class in random order, rendered in chunks to bound memory."""
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES), dtype=np.int64), per_class))
    x = np.empty((len(labels), SIZE, SIZE, 3), dtype=np.float32)
    for start in range(0, len(labels), CHUNK):
        x[start : start + CHUNK] = render(labels[start : start + CHUNK], rng)
    return x, labels


def shapes_splits(seed: int = 0) -> DatasetSplits:
    """Class-balanced train (4800) and test (600) splits; calibration is the first 200 of train. NHWC."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _split(rng, TRAIN_PER_CLASS)
    x_test, y_test = _split(rng, TEST_PER_CLASS)
    train = Dataset("shapes", x_train, y_train, "NHWC", CLASSES)
    calibration = train.take(CALIBRATION_SAMPLES)
    test = Dataset("shapes", x_test, y_test, "NHWC", CLASSES)
    return DatasetSplits(train=train, calibration=calibration, test=test)


DATASETS.register("shapes", shapes_splits)
