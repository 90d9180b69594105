"""What an image file's bytes say before any pixel is decoded: a GIF's frames and a JPEG's EXIF
orientation. Plain Python over the bytes, the reference definition; the served graph reads the
same with TensorFlow ops (trainer/export/image.py) and tests/test_image_headers.py holds the two
equal, byte for byte, on good files and on mutated ones.

GIF frames. A GIF's header gives its logical screen, but TensorFlow's GIF decoder (giflib's
DGifSlurp) reads EVERY frame into memory and draws the first one on a canvas as large as the
largest frame, whatever the screen says: a 48 KB file with a 10 x 10 screen and an 8000 x 8000
frame decodes to 64 Mpx, and Pillow, which reads the first frame only, does not see a large
second frame at all. So a GIF is walked block by block (extensions and image descriptors, each
followed by its chain of data sub-blocks) and every image descriptor is listed; `koala.images`
refuses a frame outside the screen and counts all frames' pixels against the cap. The walk
stops at the trailer, at a byte that starts no block, or at the end of the data; a descriptor
cut short still counts (giflib allocates a frame's raster from its descriptor, before its data).

EXIF orientation. A camera stores a photo as its sensor saw it and writes how to turn it upright
in the Orientation tag (0x0112) of the EXIF block's first directory (IFD0). The rule, the same
for the pipeline and the served graph: the first APP1 segment that starts with "Exif\\0\\0",
among the JPEG's marker segments before its first scan (SOS); in it, a TIFF header (either byte
order) and IFD0; the first IFD0 entry with tag 0x0112 that lies wholly inside the segment; the
orientation is its value if it is a single SHORT from 1 to 8, else 1 (as stored). Only the first
JPEG_MARKERS markers are looked at (EXIF's APP1 comes right after the start of the image, or
after a JFIF APP0), so the graph's search is a few steps, whatever the file. Other formats
(PNG eXIf, WebP EXIF, XMP) are taken as stored: phones and cameras write orientation in JPEGs,
and one narrow rule is one the graph can read exactly.
"""
from __future__ import annotations

import dataclasses

GIF_SIGNATURE = b"GIF8"
GIF_SCREEN_END = 13                 # signature (6) + logical screen descriptor (7)
GIF_IMAGE, GIF_EXTENSION = 0x2C, 0x21
JPEG_SIGNATURE = b"\xff\xd8"
ORIENTATION_TAG = 0x0112
EXIF_PREFIX = b"Exif\x00\x00"
JPEG_MARKERS = 32                   # markers (fill bytes included) looked at for EXIF


@dataclasses.dataclass(frozen=True)
class Frame:
  """One GIF image descriptor: where the frame sits on the screen, and its size."""
  left: int
  top: int
  width: int
  height: int


def _byte(data: bytes, pos: int) -> int:
  return data[pos] if pos < len(data) else 0     # reads past the end see zeros


def _le16(data: bytes, pos: int) -> int:
  return _byte(data, pos) | _byte(data, pos + 1) << 8


def colour_table_bytes(flags: int) -> int:
  """The size of the colour table a GIF screen or image descriptor's flags byte announces."""
  return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def gif_frames(data: bytes) -> list[Frame]:
  """Every image descriptor of a GIF, in file order (see the module's docstring)."""
  pos = GIF_SCREEN_END + colour_table_bytes(_byte(data, 10))
  frames = []
  while pos < len(data):
    kind = data[pos]
    if kind == GIF_EXTENSION:
      pos += 2                                            # introducer, label
    elif kind == GIF_IMAGE:
      frames.append(Frame(*(_le16(data, pos + k) for k in (1, 3, 5, 7))))
      pos += 11 + colour_table_bytes(_byte(data, pos + 9))  # descriptor, colour table, LZW size
    else:
      break                                               # the trailer (0x3B) or junk
    while pos < len(data) and data[pos]:                  # data sub-blocks, up to a zero length
      pos += 1 + data[pos]
    pos += 1
  return frames


def gif_screen(data: bytes) -> tuple[int, int]:
  """(height, width) of a GIF's logical screen."""
  return _le16(data, 8), _le16(data, 6)


def jpeg_orientation(data: bytes) -> int:
  """The EXIF orientation (1-8) of a JPEG by the rule above; 1 for anything else."""
  if not data.startswith(JPEG_SIGNATURE):
    return 1
  pos = 2
  for _ in range(JPEG_MARKERS):
    if pos >= len(data) or data[pos] != 0xFF:
      break
    marker = _byte(data, pos + 1)
    if marker == 0xFF:                                    # a fill byte
      pos += 1
      continue
    if marker == 0x01 or 0xD0 <= marker <= 0xD8:          # markers without a length
      pos += 2
      continue
    if marker in (0xD9, 0xDA):                            # end of image, start of scan
      break
    length = _byte(data, pos + 2) << 8 | _byte(data, pos + 3)
    if length < 2:
      break
    if marker == 0xE1 and length >= 8 and data[pos + 4:pos + 10] == EXIF_PREFIX:
      return tiff_orientation(data, pos + 10, min(pos + 2 + length, len(data)))
    pos += 2 + length
  return 1


def tiff_orientation(data: bytes, tiff: int, end: int) -> int:
  """The orientation in the TIFF structure at data[tiff:end] (an EXIF block), or 1."""
  order = data[tiff:tiff + 2]
  if order not in (b"II", b"MM"):
    return 1

  def number(pos: int, size: int) -> int:
    return int.from_bytes(data[pos:pos + size], "little" if order == b"II" else "big")

  if tiff + 8 > end or number(tiff + 2, 2) != 42:
    return 1
  ifd = tiff + number(tiff + 4, 4)
  if ifd + 2 > end:
    return 1
  for i in range(number(ifd, 2)):
    entry = ifd + 2 + 12 * i
    if entry + 12 > end:
      return 1
    if number(entry, 2) == ORIENTATION_TAG:
      kind, count, value = number(entry + 2, 2), number(entry + 4, 4), number(entry + 8, 2)
      return value if kind == 3 and count == 1 and 1 <= value <= 8 else 1
  return 1
