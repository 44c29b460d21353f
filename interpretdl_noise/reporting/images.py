"""Thumbnails for the report: validate the user's images and encode the shown ones as PNG data URIs.

Accepted ``images`` (training samples in dataset order, ``N`` of them):

- an array of shape (N, H, W), (N, H, W, 1|3) or (N, 1|3, H, W), dtype uint8 (0..255) or float in [0, 1];
- an array of shape (N, D): feature vectors, drawn as a small line plot instead of a picture;
- any indexable dataset (``len()`` and ``[i]``) whose items are such an image, or a tuple / list that
  starts with one (``(image, label)`` as paddle and torchvision datasets return). Only the shown items
  are read.

PNG encoding uses Pillow (a dependency of matplotlib). Thumbnails keep the image's own pixels
(scaled down to at most ``max_side`` pixels, never up); the page enlarges small ones with
``image-rendering: pixelated``, so an 8 x 8 digit costs about 100 bytes.
"""
from __future__ import annotations

import base64
import io
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["ImageSource", "as_image_source", "encode_png", "to_uint8_image"]

_DTYPE_HINT = "uint8 (0..255) or float in [0, 1]"
_SHAPE_HINT = "(N, H, W), (N, H, W, 1|3), (N, 1|3, H, W), or (N, D) feature vectors"


def _as_array(item: Any) -> np.ndarray:
    """An item (numpy array, paddle / torch tensor, PIL image, nested list) as an ndarray."""
    if hasattr(item, "numpy") and callable(item.numpy):  # paddle.Tensor, torch.Tensor
        item = item.numpy()
    return np.asarray(item)


def _check_dtype(arr: np.ndarray, what: str) -> None:
    if arr.dtype == np.uint8:
        return
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what} has dtype {arr.dtype}; images must be {_DTYPE_HINT}")
    if arr.size:
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{what} contains NaN or inf; float images must lie in [0, 1]")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{what} has values in [{lo:.4g}, {hi:.4g}]; float images must lie in [0, 1] "
                             "(divide uint8-range floats by 255, or pass uint8)")


def _layout(shape: Sequence[int], what: str) -> str:
    """'hw', 'hwc' or 'chw' for one image's shape (without the N axis); ValueError otherwise."""
    if len(shape) == 2:
        return "hw"
    if len(shape) == 3:
        if shape[-1] in (1, 3):  # channel-last first: (H, W, 3) is the common array layout
            return "hwc"
        if shape[0] in (1, 3):
            return "chw"
    raise ValueError(f"{what} has shape {tuple(shape)}; each image must be (H, W), (H, W, 1|3) or (1|3, H, W) "
                     f"(the whole array {_SHAPE_HINT})")


def to_uint8_image(image: Any, *, what: str = "image") -> np.ndarray:
    """One image as uint8 of shape (H, W) (grey) or (H, W, 3) (RGB).

    Raises
    ------
    ValueError
        Unsupported shape or dtype, or float values outside [0, 1].
    """
    arr = _as_array(image)
    layout = _layout(arr.shape, what)
    _check_dtype(arr, what)
    if layout == "chw":
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        arr = np.rint(np.asarray(arr, dtype=np.float64) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(arr)


def encode_png(image: np.ndarray, *, max_side: int = 64) -> str:
    """A uint8 (H, W) or (H, W, 3) image as a ``data:image/png;base64,...`` URI, at most ``max_side`` px."""
    from PIL import Image

    pil = Image.fromarray(image, mode="L" if image.ndim == 2 else "RGB")
    if max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class ImageSource:
    """Validated access to the user's images: ``kind`` is ``'image'`` or ``'features'``.

    ``item(i)`` returns row ``i`` (dataset index ``i``): a uint8 image for ``'image'``, a float64 (D,)
    vector for ``'features'``.
    """

    def __init__(self, images: Any, n_samples: int):
        if isinstance(images, (str, bytes)):
            raise ValueError("images must be an array or an indexable dataset, not a string (load the .npy "
                             "file with numpy.load first, or use the command line's --images)")
        self._is_array = isinstance(images, np.ndarray) or not hasattr(images, "__getitem__")
        if self._is_array:
            images = _as_array(images)
            if images.ndim == 0:
                raise ValueError(f"images must be an array of shape {_SHAPE_HINT}; got a scalar")
        try:
            count = len(images)
        except TypeError as exc:
            raise ValueError(f"images must be an array of shape {_SHAPE_HINT} or a dataset with len(); "
                             f"got {type(images).__name__}") from exc
        if count != n_samples:
            raise ValueError(f"images has {count} items but the recording has N={n_samples} samples; pass the "
                             "training samples in dataset order, one per recorded sample")
        self._images = images
        self.n = n_samples
        if self._is_array:
            if images.ndim == 2:
                self.kind = "features"
                if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
                    raise ValueError(f"feature vectors have dtype {images.dtype}; expected numbers")
            elif images.ndim in (3, 4):
                self.kind = "image"
                _layout(images.shape[1:], "images")
                _check_dtype(images, "images")
            else:
                raise ValueError(f"images has shape {images.shape}; expected {_SHAPE_HINT}")
        else:
            first = self._raw(0) if n_samples else np.zeros((1, 1), np.uint8)
            self.kind = "features" if first.ndim == 1 else "image"

    def _raw(self, i: int) -> np.ndarray:
        item = self._images[int(i)]
        if not self._is_array and isinstance(item, (tuple, list)) and len(item) and not np.isscalar(item[0]):
            item = item[0]  # (image, label, ...) from a dataset
        return _as_array(item)

    def item(self, i: int):
        raw = self._raw(i)
        what = f"images[{int(i)}]"
        if self.kind == "features":
            if raw.ndim != 1:
                raise ValueError(f"{what} has shape {raw.shape}; the first item was a feature vector (D,)")
            if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
                raise ValueError(f"{what} has dtype {raw.dtype}; expected numbers")
            return raw.astype(np.float64)
        return to_uint8_image(raw, what=what)


def as_image_source(images: Any, n_samples: int) -> Optional[ImageSource]:
    """``None`` for no images, else a validated :class:`ImageSource` (ValueError on bad input)."""
    return None if images is None else ImageSource(images, n_samples)
