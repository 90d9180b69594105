"""Colour dots -> the hint image that `colorize_guided` takes, and a preview with the dots on.

Why a module: the Streamlit page (a user's clicks) and the demo (dots picked from a page's true
colours) both turn a few dots into the same thing: an RGBA PNG the size of the page, transparent
except for filled discs of the dots' colours (serving/tf_guidance.py reads alpha > 0 as "hint
here"). A disc of a few page pixels covers one or two cells of the model's 224 square, like the
5 x 5 dots PaintsChainer draws and the trainer's evaluation hints.

The hint image is drawn at most HINT_SIDE pixels on its longer side (the page's aspect kept):
the server stretches it over the page anyway and the model sees hints at 224, while decoding an
A4-sized RGBA PNG costs more than everything else guidance adds (docs/benchmarks.md).
"""
from __future__ import annotations

import dataclasses
import io

from PIL import Image, ImageDraw

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
  """Page pixels: about 1/200 of the longer side, so a dot covers a cell or two of the model's
  224 square at any page size, and at least 2."""
  return max(2, round(max(height, width) / 200))


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
  """The page in RGB with each dot drawn on it, larger than the hint (about 1/90 of the longer
  side, so it shows on a preview a few hundred pixels wide) and ringed in black."""
  img = page.convert("RGB")
  radius = max(3, round(max(img.height, img.width) / 90))
  _discs(ImageDraw.Draw(img), dots, radius, outline=(0, 0, 0))
  return img
