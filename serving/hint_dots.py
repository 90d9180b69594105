"""Colour dots -> the hint image that `colorize_guided` takes, and a preview with the dots on.

Why a module: the Streamlit page (a user's clicks) and the demo (dots picked from a page's true
colours) both turn a few dots into the same thing: an RGBA PNG the size of the page, transparent
except for filled discs of the dots' colours (trainer/export/guidance.py reads alpha > 0 as "hint
here"). A disc is as wide as 5 cells of the model's 224 square: the trainer's evaluation hint
patch (koala.guidance.EVAL_PATCH) and the 5 x 5 dots PaintsChainer draws, the size of dot the
model learned from. A smaller one (it was 1/200 of the page's side, about 2 cells) reached a
112-pixel model as a fraction of one pixel and moved the paper around it hardly at all (the
demo's model: mean chroma 6.5 around such a dot, 28-55 around a patch-sized one).

The hint image is drawn at most HINT_SIDE pixels on its longer side (the page's aspect kept):
the server stretches it over the page anyway and the model sees hints at 224, while decoding an
A4-sized RGBA PNG costs more than everything else guidance adds (docs/benchmarks.md).
"""
from __future__ import annotations

import dataclasses
import io

from PIL import Image, ImageDraw

from koala import guidance, schema

HINT_SIDE = 448          # pixels: twice the model's 224, so a dot's place is kept to half a cell


@dataclasses.dataclass(frozen=True)
class Dot:
  """A colour hint at page pixel (x, y)."""
  x: int
  y: int
  rgb: tuple[int, int, int]

  @classmethod
  def from_hex(cls, x: int, y: int, hex_colour: str) -> "Dot":
    h = hex_colour.lstrip("#")
    return cls(int(x), int(y), (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)))


def dot_radius(height: int, width: int) -> int:
  """Page pixels: half of EVAL_PATCH cells of the model's 224 square (1/90 of the longer side),
  at least 2."""
  return max(2, round(max(height, width) * guidance.EVAL_PATCH / 2 / schema.IMAGE_SIZE))


def _discs(draw: ImageDraw.ImageDraw, dots, radius: int, outline=None) -> None:
  for d in dots:
    draw.ellipse((d.x - radius, d.y - radius, d.x + radius, d.y + radius), fill=tuple(d.rgb),
                 outline=outline, width=max(1, radius // 3) if outline else 0)


def hint_png(height: int, width: int, dots, max_side: int = HINT_SIDE) -> bytes:
  """An RGBA PNG for a page of height x width (scaled down to max_side on its longer side): the
  dots as opaque discs, everything else transparent."""
  scale = min(1.0, max_side / max(height, width))
  h, w = max(1, round(height * scale)), max(1, round(width * scale))
  img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
  _discs(ImageDraw.Draw(img), [Dot(round((d.x + 0.5) * w / width - 0.5),
                                   round((d.y + 0.5) * h / height - 0.5), (*d.rgb, 255))
                               for d in dots],
         max(1, round(dot_radius(height, width) * scale)))
  buf = io.BytesIO()
  img.save(buf, "PNG")
  return buf.getvalue()


def with_dots(page: Image.Image, dots) -> Image.Image:
  """The page in RGB with each dot drawn on it, a little larger than the hint (about 1/70 of the
  longer side, so it shows on a preview a few hundred pixels wide) and ringed in black."""
  img = page.convert("RGB")
  radius = max(3, round(max(img.height, img.width) / 70))
  _discs(ImageDraw.Draw(img), dots, radius, outline=(0, 0, 0))
  return img
