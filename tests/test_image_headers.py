"""koala.headers (the Python rule) against trainer.export.image (the same rule as graph ops): a
GIF's frames and a JPEG's EXIF orientation, equal on good files, on crafted edge cases, and on a few
hundred mutants of each, so the pipeline and the served model cannot read one file two ways."""
import io
import random
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import headers, images
from trainer.export import image as tf_image, page as tf_page
from tests import corpus

graph_frames = tf.function(tf_image.gif_frames, input_signature=[tf.TensorSpec([], tf.string)])
graph_orientation = tf.function(tf_image.jpeg_orientation,
                                input_signature=[tf.TensorSpec([], tf.string)])


def frames_both(data: bytes) -> list[tuple]:
  ours = [(f.left, f.top, f.width, f.height) for f in headers.gif_frames(data)]
  assert [tuple(f) for f in graph_frames(data).numpy().tolist()] == ours, data[:64]
  return ours


def orientation_both(data: bytes) -> int:
  ours = headers.jpeg_orientation(data)
  assert int(graph_orientation(data)) == ours, data[:64]
  return ours


def mutants(seed: bytes, count: int, rng: random.Random):
  """Byte flips, cuts and insertions, anywhere in the file, a few at a time."""
  for _ in range(count):
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
      kind, at = rng.random(), rng.randrange(len(data) + 1)
      if kind < 0.6 and at < len(data):
        data[at] = rng.choice([0, 1, 0x21, 0x2C, 0x3B, 0xFF, 0xE1, rng.randrange(256)])
      elif kind < 0.8:
        del data[at:]
      else:
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    yield bytes(data)


def pillow_gif(**kw) -> bytes:
  rng = np.random.default_rng(0)
  frames = [Image.fromarray(rng.integers(0, 4, (40, 60), np.uint8) * 60).convert("P")
            for _ in range(3)]
  frames[2] = frames[1].copy()
  frames[2].paste(0, (10, 10, 20, 30))          # Pillow writes only the changed rectangle
  buf = io.BytesIO()
  frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0,
                 comment=b"a comment extension", **kw)
  return buf.getvalue()


def test_gif_frames_of_real_and_crafted_gifs():
  made = pillow_gif()
  frames = frames_both(made)
  assert len(frames) == 3 and frames[0] == (0, 0, 60, 40) and frames[2][2:] != (60, 40)
  assert len(frames_both(pillow_gif(interlace=True))) == 3
  bomb = corpus.blank_gif((10, 10), [(10, 10, 0, 0), (8000, 8000, 0, 0)])
  assert frames_both(bomb) == [(0, 0, 10, 10), (0, 0, 8000, 8000)]
  trailer = bomb.rindex(b";")
  assert frames_both(bomb[:trailer] + b"junk" + bomb[trailer:]) == frames_both(bomb)
  cut = bomb.index(b"\x2c", 20)                  # the second frame's descriptor, cut short: it
  assert frames_both(bomb[:cut + 6]) == [(0, 0, 10, 10), (0, 0, 0x40, 0)]  # as far as it is read
  assert frames_both(b"GIF89a") == [] and frames_both(b"") == []


def test_gif_frames_of_mutants():
  rng = random.Random(19)
  seeds = [pillow_gif(), corpus.blank_gif((30, 20), [(30, 20, 0, 0), (5, 5, 3, 4)])]
  counts = [len(frames_both(m)) for seed in seeds for m in mutants(seed, 300, rng)]
  assert len(set(counts)) > 2                    # the mutants do reach different walks


def exif_jpeg(entries: bytes, count: int, endian: str = "<", before: bytes = b"",
              ifd_offset: int = 8) -> bytes:
  """A tiny JPEG whose APP1 Exif block holds `count` and the raw IFD0 `entries`."""
  order = b"II" if endian == "<" else b"MM"
  tiff = order + struct.pack(endian + "HI", 42, ifd_offset) + struct.pack(endian + "H", count)
  app1 = b"Exif\x00\x00" + tiff + entries
  plain = corpus.oriented_jpeg(np.zeros((8, 8, 3), np.uint8), 1)
  plain = plain[:2] + plain[plain.index(b"\xff\xdb"):]                   # no APP segments
  return plain[:2] + before + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain[2:]


def entry(tag: int, kind: int, count: int, value: int, endian: str = "<") -> bytes:
  return struct.pack(endian + "HHIHH", tag, kind, count, value, 0)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_jpeg_orientation_rule(endian):
  for o in range(1, 9):
    assert orientation_both(corpus.oriented_jpeg(np.zeros((8, 12, 3), np.uint8), o, endian)) == o
  six = entry(0x0112, 3, 1, 6, endian)
  make = struct.pack(endian + "HHII", 0x010F, 2, 4, 0)
  assert orientation_both(exif_jpeg(make + six, 2, endian)) == 6
  for wrong in (entry(0x0112, 4, 1, 6, endian),   # a LONG, not a SHORT
                entry(0x0112, 3, 2, 6, endian),   # two values
                entry(0x0112, 3, 1, 9, endian)):  # no such orientation
    assert orientation_both(exif_jpeg(wrong, 1, endian)) == 1
  assert orientation_both(exif_jpeg(six, 2, endian)[:-1]) == 6          # a missing second entry
  assert orientation_both(exif_jpeg(six, 1, endian, ifd_offset=4000)) == 1   # IFD0 outside
  app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
  assert orientation_both(exif_jpeg(six, 1, endian, before=app0 + b"\xff\xff")) == 6
  first = exif_jpeg(entry(0x0112, 3, 1, 3, endian), 1, endian)
  assert orientation_both(first[:2] + first[2:first.index(b"\xff\xdb")] + exif_jpeg(
      six, 1, endian)[2:]) == 3                                        # the first Exif block wins
  # only the first JPEG_MARKERS markers are looked at
  comments = lambda k: b"\xff\xfe\x00\x03x" * k
  assert orientation_both(exif_jpeg(six, 1, endian, before=comments(30))) == 6
  assert orientation_both(exif_jpeg(six, 1, endian,
                                    before=comments(headers.JPEG_MARKERS))) == 1


def test_jpeg_orientation_of_mutants():
  rng = random.Random(6)
  seeds = [corpus.oriented_jpeg(corpus.colour_scene(3, 16, 24), o, e)
           for o, e in ((6, "<"), (8, ">"), (3, "<"))]
  found = [orientation_both(m) for seed in seeds for m in mutants(seed[:400], 200, rng)]
  assert {1, 3, 6, 8} <= set(found)


def test_only_a_jpegs_exif_orientation_counts():
  """A PNG with an eXIf orientation is taken as stored by both paths (Pillow's own
  exif_transpose would turn it, the graph cannot read it: one rule for both)."""
  stored = corpus.colour_scene(4, 40, 70)
  exif = Image.Exif()
  exif[0x0112] = 6
  buf = io.BytesIO()
  Image.fromarray(stored).save(buf, "PNG", exif=exif.tobytes())
  assert images.decode_image(buf.getvalue()).shape == stored.shape
  assert tf_page.decode_gray(tf.constant(buf.getvalue()), 10 ** 6).shape == stored.shape[:2]
