"""Image files: PNG/JPEG/BMP/TIFF, 8- or 16-bit, gray, RGB or palette."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from usfm_edge.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        image = Image.open(path)
        image.load()  # decode now, so a truncated file fails here and not later
    except Image.DecompressionBombError as exc:  # a size header meant to exhaust memory
        raise InputError(f"{path}: refused, too many pixels for an ultrasound frame ({exc}); "
                         "check the file") from None
    except PermissionError:
        raise InputError(f"{path}: no permission to read it; check the file's permissions") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable image ({str(exc).splitlines()[0]}); re-export or remove it") from None
    return image


def _from_float(path: Path, array: np.ndarray) -> np.ndarray:
    """A float image (TIFF mode F) as integers, by the range its values use: [0, 1] -> 16-bit,
    [0, 255] -> 8-bit, [0, 65535] -> 16-bit. Other ranges would have to be guessed: refused."""
    if not np.isfinite(array).all():
        raise InputError(f"{path}: float image with NaN or infinite values; fix or remove it")
    low, high = float(array.min()), float(array.max())
    for top, dtype in ((1.0, np.uint16), (255.0, np.uint8), (65535.0, np.uint16)):
        if low >= 0 and high <= top:
            scale = 65535.0 if top == 1.0 else 1.0
            return np.rint(array * scale).astype(dtype)
    raise InputError(f"{path}: float image with values in [{low:g}, {high:g}]; save it as 8- or 16-bit, or "
                     "scaled to [0, 1]")


def read_image(path: str | Path) -> np.ndarray:
    """(H, W) gray or (H, W, 3) RGB; uint8, or uint16 for 16-bit files. Palette images are
    expanded to their colours, alpha is dropped."""
    path = Path(path)
    image = _open(path)
    if image.mode == "F":
        return _from_float(path, np.asarray(image, dtype=np.float32))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        if array.dtype != np.uint16:
            array = np.clip(array, 0, 65535).astype(np.uint16)
        return array
    if image.mode == "L":
        return np.asarray(image)
    if image.mode == "LA":
        return np.asarray(image.getchannel("L"))
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def read_label_image(path: str | Path) -> np.ndarray:
    """(H, W) raw values of a mask file: palette indices stay indices (not colours)."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("P", "L", "I;16", "I", "1"):
        return np.asarray(image if image.mode != "1" else image.convert("L"))
    if image.mode in ("RGB", "RGBA", "LA"):
        array = np.asarray(image)
        channels = array[..., :3] if image.mode != "LA" else array[..., :1]
        if (channels == channels[..., :1]).all():  # a gray mask saved as RGB
            return channels[..., 0]
    raise InputError(
        f"{path}: mask in mode {image.mode} with colours; save masks as one-channel index images "
        "(0 background, 1..K-1 classes) or 0/255 binary"
    )
