"""Per-image preprocessing as plain functions: bytes in, model-ready tensors (or a reason) out.

Kept free of Beam so that it can be tested, profiled and benchmarked on its own; the pipeline's
DoFns are thin wrappers around `prepare_image`.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from koala import colour, gray, images, schema


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  max_pixels: int = images.DEFAULT_MAX_PIXELS
  min_side: int = images.DEFAULT_MIN_SIDE
  gray_chroma_threshold: float = gray.DEFAULT_GRAY_CHROMA


@dataclasses.dataclass(frozen=True)
class PreparedImage:
  """One image, ready for the embedder and then the record writer."""
  source_path: str
  content_hash: str
  original_size: tuple[int, int]   # (height, width)
  l_u8: np.ndarray                 # (224, 224, 1) quantised L
  ab_u8: np.ndarray                # (224, 224, 2) quantised ab
  embedder_input: np.ndarray       # (299, 299) uint8 neutral gray of the image's L


class SkipGray(Exception):
  """The image is already grayscale: counted and listed, not an error, not a record."""

  def __init__(self, chroma: float):
    super().__init__(f"already grayscale: chroma p{gray.GRAY_PERCENTILE:g} = {chroma:.2f}")
    self.chroma = chroma


def content_hash(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def embedder_input(rgb: np.ndarray) -> np.ndarray:
  """(299, 299) uint8: the neutral-gray rendering of the image's L, letterboxed."""
  return colour.to_uint8(colour.rgb_to_neutral_gray(images.letterbox(rgb, schema.EMBEDDER_SIZE)))


def prepare_image(data: bytes, source_path: str, config: PrepareConfig = PrepareConfig(),
                  digest: str | None = None) -> PreparedImage:
  """Raises `images.ImageError` (reject, with reason) or `SkipGray` (already gray)."""
  rgb = images.decode_image(data, max_pixels=config.max_pixels, min_side=config.min_side,
                            reduce_to=schema.EMBEDDER_SIZE)
  h, w = rgb.shape[:2]
  lab = gray.lab_at(rgb, schema.IMAGE_SIZE)
  chroma = gray.image_chroma(lab[..., 1:], h, w)
  if chroma < config.gray_chroma_threshold:
    raise SkipGray(chroma)
  return PreparedImage(
      source_path=source_path,
      content_hash=digest or content_hash(data),
      original_size=(h, w),
      l_u8=schema.quantize_l(lab[..., :1]),
      ab_u8=schema.quantize_ab(lab[..., 1:]),
      embedder_input=embedder_input(rgb))
