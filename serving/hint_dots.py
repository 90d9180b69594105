"""Colour dots -> the hint image that `colorize_guided` takes, and a preview with the dots on.

Why a module: the Streamlit page (a user's clicks) and the demo (dots picked from a page's true
colours) both turn a few dots into the same thing: an RGBA PNG the size of the page, transparent
except for filled discs of the dots' colours (serving/tf_guidance.py reads alpha > 0 as "hint
here"). A disc of a few page pixels covers one or two cells of the model's 224 square, like the
5 x 5 dots PaintsChainer draws and the trainer's evaluation hints.
"""
from __future__ import annotations

import dataclasses
import io

from PIL import Image, ImageDraw


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


def hint_png(height: int, width: int, dots) -> bytes:
  """An RGBA PNG of the page's size: the dots as opaque discs, everything else transparent."""
  img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
  _discs(ImageDraw.Draw(img), [Dot(d.x, d.y, (*d.rgb, 255)) for d in dots],
         dot_radius(height, width))
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
