"""Turning an untrusted image file into the upright 8-bit RGB picture a model expects, or a clear error.

One decoder for uploads, ImageFolder datasets and the CLI, so every path refuses and converts the same way:

- refused before decoding: empty files, files over ``max_bytes``, anything Pillow does not recognise, and
  images declaring more than ``MAX_PIXELS`` pixels (a "decompression bomb": a few KB of PNG can declare
  30000×30000 pixels, 2.7 GB once decoded);
- refused while decoding: truncated or corrupt data;
- converted: EXIF orientation applied (photos shown upright), first frame of an animation, grayscale, palette,
  CMYK and 16-bit images to 8-bit RGB (16-bit scaled by 255/65535, not clipped), transparency composited
  on white, and very large legitimate photos reduced so the longer side is at most ``MAX_SIDE``.

Pillow is imported inside the functions, so ``gradcam_core`` itself still imports with only torch and numpy.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Largest image accepted, in pixels (width × height) declared by the file header: 64 MP holds any camera
#: photo up to ~8000×8000; above it we refuse before decoding a single pixel.
MAX_PIXELS = 64_000_000
#: Longer side of what we keep. Models see 224 px or less; the dashboard shows at most ~1000 px.
MAX_SIDE = 2048


class ImageLoadError(ValueError):
    """An image file that cannot be used, with what was wrong and what to do."""


def _describe(name: str | None) -> str:
    return f"'{name}'" if name else "the image"


def load_image(
    source: bytes | bytearray | str | os.PathLike,
    *,
    name: str | None = None,
    max_bytes: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_side: int = MAX_SIDE,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Decode ``source`` (file bytes or a path) to an upright RGB ``PIL.Image``; raise ``ImageLoadError``."""
    from PIL import Image

    data, path, label = _checked_source(source, name, max_bytes)
    stream = io.BytesIO(data) if data is not None else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        image = _open_header(stream, label, max_pixels)
        rgb = _to_rgb(_decode(image, label, max_side), background)
    finally:
        stream.close()
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.BILINEAR)
    return rgb


def _checked_source(source, name: str | None, max_bytes: int | None) -> tuple[bytes | None, Path | None, str]:
    """(bytes or None, path or None, the name errors use): the file exists, is not empty, not over ``max_bytes``."""
    path: Path | None = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise ImageLoadError(f"image file not found: {path}")
        size = path.stat().st_size
        data: bytes | None = None
    else:
        data = bytes(source)
        size = len(data)
    label = _describe(name)
    if size == 0:
        raise ImageLoadError(f"{label} is empty (0 bytes); choose a PNG or JPEG file with content")
    if max_bytes is not None and size > max_bytes:
        raise ImageLoadError(
            f"{label} is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit; resize or compress it"
        )
    return data, path, label


def _open_header(stream, label: str, max_pixels: int) -> Image.Image:
    """The image with only its header read; refuses unknown formats and sizes over ``max_pixels`` before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(stream)
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"{label} is not an image format we can read (its bytes are not PNG, JPEG, GIF, BMP, TIFF or "
            "WebP); check that the file is really an image and not renamed"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            f"{label} declares far more than the {max_pixels / 1e6:.0f} MP limit ({exc}), so it was refused "
            "before decoding (a typical decompression bomb); resize it first"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # e.g. a JPEG cut off inside its header
        raise ImageLoadError(
            f"{label} is truncated or corrupt: its header could not be read ({exc}); re-export or re-download it"
        ) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{label} declares an empty size {width}×{height}")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{label} declares {width}×{height} = {width * height / 1e6:.0f} megapixels, over the "
            f"{max_pixels / 1e6:.0f} MP limit, so it was refused before decoding (a file this small that "
            "claims this many pixels is a typical decompression bomb); resize it first"
        )
    return image


def _decode(image: Image.Image, label: str, max_side: int) -> Image.Image:
    """Decode the first frame (big JPEGs at a reduced scale), upright by its EXIF orientation."""
    from PIL import Image, ImageOps

    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
        if image.format == "JPEG" and max(image.size) > max_side:
            image.draft("RGB", (max_side, max_side))  # decode big JPEGs at a reduced scale: fast, less memory
        image.load()
        return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{label} declares too many pixels to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(
            f"{label} is truncated or corrupt and could not be decoded ({exc}); re-export or re-download it"
        ) from None


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: scale the full range to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() <= 65535 else float(array.max())
        eight = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(eight, mode="L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
        return Image.fromarray(np.rint(np.nan_to_num(scaled) * 255).astype(np.uint8), mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
