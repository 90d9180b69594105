"""Robust decoding of image files and the one letterbox geometry used everywhere.

Decoding uses Pillow, which reads the header before the pixels (so a 40000 x 40000 "bomb" is
refused without allocating it) and knows palettes, CMYK and 16-bit files.
Resizing uses OpenCV's area interpolation for downscaling, so screentone makes no moire.

One decoder contract for training and serving: the exported SavedModel decodes with TensorFlow's
graph decoder (TF Serving runs no Python), so `FORMATS` lists what that decoder reads, and the
pipeline accepts exactly those, so every file that can be served can be trained on and the other
way round. An animation gives its first frame in both; a JPEG is turned upright by its EXIF
orientation in both (`upright`); the pixel cap counts what either decoder will allocate, all of
a GIF's frames included (`check_pixels`). Refused by both, with the reason: TIFF (TensorFlow has
no TIFF decoder; convert to PNG, losslessly), animated WebP (TensorFlow's decoder cannot read it,
and in TF 2.20-2.21 it corrupts the process's memory trying) and a GIF frame outside its logical
screen (`check_gif`).

Letterbox, not crop: the image is scaled to fit a size x size square, keeping its aspect ratio,
and centred on white padding. Cropping would throw away the margins of a page that serving must
still colour; white is the paper colour of manga. The same geometry (`letterbox_box`) is used by
the pipeline (224 and 299), by serving (to cut the predicted ab back out) and by its TF twin.
"""
from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image

from koala import headers

# Pillow's format name -> the file extensions the page finders take. MPO (a camera's
# multi-picture JPEG) is a JPEG to TensorFlow: both read its first picture.
FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "MPO": (), "WEBP": (".webp",),
           "BMP": (".bmp",), "GIF": (".gif",)}
SUPPORTED_FORMATS = tuple(FORMATS)
PAGE_EXTENSIONS = tuple(ext for exts in FORMATS.values() for ext in exts)
FORMAT_NAMES = "PNG, JPEG, WebP, BMP or GIF"   # for messages
DEFAULT_MAX_PIXELS = 50_000_000   # A4 at 600 dpi is 35 Mpx.
DEFAULT_MIN_SIDE = 32
PAD_VALUE = 255                   # white paper


class ImageError(ValueError):
  """A file that cannot become a training or serving image; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class Box:
  """Where the scaled image sits inside the letterboxed square."""
  top: int
  left: int
  height: int
  width: int


def letterbox_box(height: int, width: int, size: int) -> Box:
  scale = size / max(height, width)
  h = min(size, max(1, int(round(height * scale))))
  w = min(size, max(1, int(round(width * scale))))
  return Box(top=(size - h) // 2, left=(size - w) // 2, height=h, width=w)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Area interpolation when shrinking (no moire), bilinear when enlarging."""
  if (height, width) == image.shape[:2]:
    return image
  shrinking = height * width < image.shape[0] * image.shape[1]
  out = cv2.resize(image, (width, height),
                   interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
  return out.reshape((height, width) + image.shape[2:])


def letterbox(image: np.ndarray, size: int, pad_value=PAD_VALUE) -> np.ndarray:
  """(H, W[, C]) -> (size, size[, C]): fit, keep aspect, centre on `pad_value`."""
  box = letterbox_box(image.shape[0], image.shape[1], size)
  out = np.full((size, size) + image.shape[2:], pad_value, dtype=image.dtype)
  out[box.top:box.top + box.height, box.left:box.left + box.width] = resize(
      image, box.height, box.width)
  return out


def unletterbox(square: np.ndarray, height: int, width: int) -> np.ndarray:
  """The inverse: cut the image's box out of a letterboxed square (no resizing)."""
  box = letterbox_box(height, width, square.shape[0])
  return square[box.top:box.top + box.height, box.left:box.left + box.width]


def _to_rgb_array(img: Image.Image) -> np.ndarray:
  """Any Pillow mode -> (H, W, 3) uint8 sRGB; alpha is composited on white."""
  if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
    a = np.asarray(img)
    if img.mode == "F":
      a = np.clip(a, 0.0, 1.0) * 255.0 if a.max() <= 1.0 else np.clip(a, 0, 255)
    else:   # 16-bit gray
      a = a.astype(np.float64) / 257.0
    g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)
  if img.mode == "P" or img.mode == "PA":
    img = img.convert("RGBA")
  if img.mode in ("LA", "La", "RGBa"):
    img = img.convert("RGBA")
  if img.mode == "RGBA":
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img)
  if img.mode != "RGB":
    img = img.convert("RGB")   # L, 1, CMYK, YCbCr, LAB, ...
  return np.asarray(img, dtype=np.uint8)


def image_size(data: bytes) -> tuple[int, int]:
  """(height, width) from the header alone, as stored (before EXIF orientation); ImageError for
  what is not an image, and for a GIF frame outside the logical screen (`check_gif`)."""
  try:
    with Image.open(io.BytesIO(data)) as img:
      size = img.height, img.width
  except Image.DecompressionBombError as e:
    raise ImageError(f"too many pixels: {e}") from None
  except Exception as e:
    raise ImageError(f"not a readable image: {e}") from None
  check_gif(data)
  return size


def check_gif(data: bytes) -> None:
  """ImageError for a GIF with a frame outside its logical screen. TensorFlow's decoder (the
  served model's) draws the first frame on a canvas as large as the largest frame, Pillow on
  the screen grown to the first frame: refused, the two decoders cannot disagree about a page's
  size. The served graph refuses the same (`trainer.export.image`)."""
  if not data.startswith(headers.GIF_SIGNATURE):
    return
  height, width = headers.gif_screen(data)
  for i, f in enumerate(headers.gif_frames(data)):
    if f.left + f.width > width or f.top + f.height > height:
      raise ImageError(f"GIF frame {i + 1} ({f.width}x{f.height} at {f.left},{f.top}) lies "
                       f"outside its logical screen ({width}x{height})")


def decoded_pixels(data: bytes, height: int, width: int) -> int:
  """The pixels decoding this file allocates, the figure every pixel cap is checked on:
  height x width, and for a GIF the larger of that and the sum of all its frames (TensorFlow's
  decoder reads every frame, so a GIF's later frames cost memory too)."""
  if not data.startswith(headers.GIF_SIGNATURE):
    return height * width
  return max(height * width, sum(f.width * f.height for f in headers.gif_frames(data)))


def check_pixels(data: bytes, max_pixels: int) -> tuple[int, int]:
  """`image_size`, and ImageError when decoding the file would take more than max_pixels
  (`decoded_pixels`): the pre-check the web page, the client and the pipeline make, the rule the
  served graph applies."""
  height, width = image_size(data)
  pixels = decoded_pixels(data, height, width)
  if pixels > max_pixels:
    frames = "" if pixels == height * width else " (all its GIF frames)"
    raise ImageError(f"too many pixels: {width}x{height}{frames} = {pixels} > cap {max_pixels}")
  return height, width


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_side: int = DEFAULT_MIN_SIDE, reduce_to: int | None = None) -> np.ndarray:
  """Image file bytes -> (H, W, 3) uint8 sRGB, upright; raises `ImageError` with the reason.

  The pixel cap is checked on the header, before any pixel is decoded. With `reduce_to`, a JPEG
  may be decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg's own downscaling, as
  Pillow's thumbnail does) as long as it still letterboxes to `reduce_to` without enlarging:
  a 1600-px manga page then decodes several times faster for the pipeline's 224/299 tensors.
  """
  if not data:
    raise ImageError("empty file")
  try:
    img = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:
    raise ImageError(f"too many pixels (header): {e}") from None
  except Exception as e:
    raise ImageError(f"not a readable image: {type(e).__name__}: {e}") from None
  with img:
    if img.format not in SUPPORTED_FORMATS:
      raise ImageError(f"unsupported format {img.format}; supported: {FORMAT_NAMES}, the formats "
                       "the served model decodes (convert others to PNG)")
    if img.format == "WEBP" and getattr(img, "is_animated", False):
      raise ImageError("unsupported format: animated WebP (TensorFlow, and so the served model, "
                       "cannot decode it); save its first frame as PNG or still WebP")
    w, h = img.size
    check_pixels(data, max_pixels)
    if min(w, h) < min_side:
      raise ImageError(f"too small: {w}x{h}, the shorter side must be at least {min_side}")
    try:
      if img.format == "PNG":   # Pillow skips IDAT checksums on load; verify() checks them all.
        img.verify()
        img = Image.open(io.BytesIO(data))
      if reduce_to and img.format == "JPEG":
        box = letterbox_box(h, w, reduce_to)
        img.draft(img.mode, (box.width, box.height))
      img.load()   # an animation's first frame
      return _to_rgb_array(upright(img, data))
    except Exception as e:
      raise ImageError(f"corrupt image data: {type(e).__name__}: {e}") from None


# EXIF orientation -> Pillow's transpose that turns the stored image upright (ImageOps' table)
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}


def upright(img: Image.Image, data: bytes) -> Image.Image:
  """A decoded image turned upright by its file's EXIF orientation, by the one rule the served
  graph reads too (`koala.headers.jpeg_orientation`: a JPEG's EXIF; Pillow's own
  `exif_transpose` would also read PNG, WebP and XMP metadata, which the graph does not)."""
  method = TRANSPOSE.get(headers.jpeg_orientation(data))
  return img.transpose(method) if method is not None else img


def encode_png(rgb: np.ndarray) -> bytes:
  """uint8 gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) -> PNG bytes (alpha kept)."""
  if rgb.ndim == 3:
    rgb = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[-1] == 4 else cv2.COLOR_RGB2BGR)
  ok, buf = cv2.imencode(".png", rgb)
  if not ok:
    raise ImageError("PNG encoding failed")
  return buf.tobytes()
