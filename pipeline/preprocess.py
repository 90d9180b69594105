"""Per-image preprocessing as plain functions: bytes in, model-ready tensors (or a reason) out.

Kept free of Beam so that it can be tested, profiled and benchmarked on its own; the pipeline's
DoFns are thin wrappers around `prepare_images`.

What the model will see (`render`):
  gray   the original project's rendering: the colour image's own L (the encoder's input is the
         target's L, the embedder sees its neutral gray), one record an image;
  manga  koala.manga's black-and-white page of the image (ink lines, white paper, screentone),
         `renderings` records an image, each its own seeded rendering: the encoder sees the
         rendering's L at 224 and the embedder the same rendering at 299, as the served model
         sees a user's page; the target stays the colour image's own L and ab.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from koala import colour, gray, images, manga, schema

RENDERS = (schema.GRAY, "manga")
MAX_RENDERINGS = 16


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  max_pixels: int = images.DEFAULT_MAX_PIXELS
  min_side: int = images.DEFAULT_MIN_SIDE
  gray_chroma_threshold: float = gray.DEFAULT_GRAY_CHROMA
  render: str = schema.GRAY        # one of RENDERS
  renderings: int = 1              # records an image with render="manga", 1..MAX_RENDERINGS

  def __post_init__(self):
    if self.render not in RENDERS:
      raise ValueError(f"--render must be one of {', '.join(RENDERS)}, got {self.render!r}")
    if not 1 <= self.renderings <= MAX_RENDERINGS:
      raise ValueError(f"--renderings_per_image must be between 1 and {MAX_RENDERINGS}, got "
                       f"{self.renderings}")
    if self.render == schema.GRAY and self.renderings != 1:
      raise ValueError("--renderings_per_image needs --render=manga: a gray rendering is one "
                       "per image")

  @property
  def rendering_name(self) -> str:
    """What the records' `rendering` field says: schema.GRAY or the renderer's versioned name."""
    return schema.GRAY if self.render == schema.GRAY else manga.RENDERING_NAME


@dataclasses.dataclass(frozen=True)
class PreparedImage:
  """One image, ready for the embedder and then the record writer."""
  source_path: str
  content_hash: str
  original_size: tuple[int, int]   # (height, width)
  l_u8: np.ndarray                 # (224, 224, 1) quantised L
  ab_u8: np.ndarray                # (224, 224, 2) quantised ab
  embedder_input: np.ndarray       # (299, 299) uint8: the neutral gray of the image's L, or
                                   # the rendering
  input_u8: np.ndarray | None = None   # (224, 224, 1) quantised L of the rendering; None: gray
  rendering: str = schema.GRAY
  rendering_seed: int = 0


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


def page_inputs(page: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """A uint8 gray page (H, W) -> (quantised L (224, 224, 1), embedder gray (299, 299)), made as
  the served graph makes them from a user's page (trainer.export.page.model_inputs): letterboxed
  with area averaging in gray levels, then L of each level."""
  small = images.letterbox(page, schema.IMAGE_SIZE)
  return (schema.quantize_l(colour.gray_to_l(small)[..., None]),
          images.letterbox(page, schema.EMBEDDER_SIZE))


def prepare_images(data: bytes, source_path: str, config: PrepareConfig = PrepareConfig(),
                   digest: str | None = None) -> list[PreparedImage]:
  """One image's records: one gray, or `config.renderings` manga renderings (same target).
  Raises `images.ImageError` (reject, with reason) or `SkipGray` (already gray)."""
  if config.render == schema.GRAY:
    return [prepare_image(data, source_path, config, digest)]
  rgb = images.decode_image(data, max_pixels=config.max_pixels, min_side=config.min_side,
                            reduce_to=manga.WORK_SIDE)
  target = _target(rgb, config, source_path, digest or content_hash(data))
  out = []
  for index in range(config.renderings):
    seed = manga.rendering_seed(target.content_hash, index) % 2 ** 63   # a record's int64
    input_u8, embedder_gray = page_inputs(manga.render_manga(rgb, seed=seed))
    out.append(dataclasses.replace(target, input_u8=input_u8, embedder_input=embedder_gray,
                                   rendering=config.rendering_name, rendering_seed=seed))
  return out


def _target(rgb: np.ndarray, config: PrepareConfig, source_path: str,
            digest: str) -> PreparedImage:
  """The colour image's own L / ab (the target) and its gray embedder input; SkipGray if gray."""
  h, w = rgb.shape[:2]
  lab = gray.lab_at(rgb, schema.IMAGE_SIZE)
  chroma = gray.image_chroma(lab[..., 1:], h, w)
  if chroma < config.gray_chroma_threshold:
    raise SkipGray(chroma)
  return PreparedImage(
      source_path=source_path,
      content_hash=digest,
      original_size=(h, w),
      l_u8=schema.quantize_l(lab[..., :1]),
      ab_u8=schema.quantize_ab(lab[..., 1:]),
      embedder_input=embedder_input(rgb))


def prepare_image(data: bytes, source_path: str, config: PrepareConfig = PrepareConfig(),
                  digest: str | None = None) -> PreparedImage:
  """The gray record of one image. Raises `images.ImageError` (reject, with reason) or
  `SkipGray` (already gray)."""
  rgb = images.decode_image(data, max_pixels=config.max_pixels, min_side=config.min_side,
                            reduce_to=schema.EMBEDDER_SIZE)
  return _target(rgb, config, source_path, digest or content_hash(data))
