"""Turn an uploaded or drawn image into one model input, the way the evaluation data was made."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_UPLOAD_BYTES = 10 * 2**20
MAX_SIDE = 4096
MAX_ASPECT = 2.0  # longer side / shorter side
INK_THRESHOLD = 0.2


class ImageInputError(ValueError):
    """An upload that cannot become a model input; the message says why and what would work."""


@dataclass(frozen=True)
class InputSpec:
    """One sample of the model input: height, width, channels, and the batch layout (NHWC or NCHW)."""

    height: int
    width: int
    channels: int
    layout: str

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> InputSpec:
        signature = (manifest.get("input_signature") or [{}])[0]
        shape, layout = list(signature.get("shape") or []), signature.get("layout", "NHWC")
        if len(shape) != 4 or layout not in ("NHWC", "NCHW"):
            raise ImageInputError(f"This model takes input {shape} ({layout}), not an image; pick a sample instead.")
        _, a, b, c = shape
        height, width, channels = (a, b, c) if layout == "NHWC" else (b, c, a)
        return cls(int(height), int(width), int(channels), layout)

    def describe(self) -> str:
        return f"{self.width}x{self.height} {'grayscale' if self.channels == 1 else 'RGB'}"

    def to_batch(self, hwc: np.ndarray) -> np.ndarray:
        """(H, W, C) in [0, 1] -> a batch of one in this layout, float32."""
        x = hwc.astype(np.float32)[None]
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x)

    def to_hwc(self, sample: np.ndarray) -> np.ndarray:
        """One sample in this layout -> (H, W, C), for display or another layout."""
        return sample.transpose(1, 2, 0) if self.layout == "NCHW" else sample


def decode(data: bytes, spec: InputSpec) -> Any:
    """Bytes -> a PIL image, or ImageInputError naming the problem (not an image, too small or large, odd aspect)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageInputError("The file is empty. Upload a PNG or JPEG image of one digit.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageInputError(f"The file is {len(data) / 2**20:.1f} MiB; upload an image under {MAX_UPLOAD_BYTES // 2**20} MiB.")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageInputError(f"This file is not an image this app can read ({type(exc).__name__}). "
                              "Upload a PNG, JPEG, BMP or GIF image.") from None
    width, height = image.size
    if width < spec.width or height < spec.height:
        raise ImageInputError(f"The image is {width}x{height} pixels, smaller than the model input "
                              f"({spec.width}x{spec.height}); upload a larger image.")
    if max(width, height) > MAX_SIDE:
        raise ImageInputError(f"The image is {width}x{height} pixels; upload one at most {MAX_SIDE} pixels on a side.")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageInputError(f"The image is {width}x{height} pixels (aspect {max(width, height) / min(width, height):.1f}:1); "
                              f"the model expects a roughly square picture (at most {MAX_ASPECT:g}:1). Crop it around the digit.")
    return image


def _center_ink(gray: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Bright ink on dark, cropped to the ink, padded square and box-averaged to the input size, max scaled to 1.

    The same recipe as the 8x8 digits (32x32 bitmaps counted in 4x4 blocks): strokes fill the frame.
    """
    from PIL import Image

    if np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])) > 0.5:
        gray = 1.0 - gray  # dark ink on a light background
    rows, cols = np.nonzero(gray > INK_THRESHOLD)
    if len(rows) == 0:
        raise ImageInputError("The image is blank: no stroke stands out from the background. Draw or upload a digit.")
    ink = gray[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    side = max(ink.shape)  # no margin: the digits fill the frame (full height, width to aspect)
    square = np.zeros((side, side), np.float32)
    top, left = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
    square[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    small = np.asarray(Image.fromarray(square).resize((spec.width, spec.height), Image.Resampling.BOX))
    return np.clip(small / max(float(small.max()), 1e-6), 0.0, 1.0)[..., None]


def prepare(image: Any, spec: InputSpec) -> np.ndarray:
    """A PIL image -> one model input batch (grayscale: digit-style centring; RGB: resized), in [0, 1]."""
    from PIL import Image

    if spec.channels == 1:
        gray = np.asarray(image.convert("L"), np.float32) / 255.0
        return spec.to_batch(_center_ink(gray, spec))
    if spec.channels != 3:
        raise ImageInputError(f"The model takes {spec.channels}-channel input; only grayscale or RGB images can be used.")
    rgb = image.convert("RGB").resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    return spec.to_batch(np.asarray(rgb, np.float32) / 255.0)


def from_canvas(rgba: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A drawing (RGBA, strokes opaque on a transparent or black background) -> one model input batch."""
    from PIL import Image

    alpha = rgba[..., 3].astype(np.float32) / 255.0
    if alpha.min() < 1.0:  # transparent background: the strokes are where alpha is
        return prepare(Image.fromarray((alpha * 255).astype(np.uint8)), spec)
    return prepare(Image.fromarray(np.ascontiguousarray(rgba[..., :3], dtype=np.uint8)), spec)


def display(sample: np.ndarray, spec: InputSpec, size: int = 128) -> np.ndarray:
    """One sample in the model's layout -> an upscaled (nearest) uint8 picture for st.image."""
    hwc = np.clip(spec.to_hwc(sample), 0.0, 1.0)
    scale = max(1, size // max(spec.height, spec.width))
    big = np.repeat(np.repeat(hwc, scale, axis=0), scale, axis=1)
    return ((big[..., 0] if spec.channels == 1 else big) * 255.0).astype(np.uint8)
