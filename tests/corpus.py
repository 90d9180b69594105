"""Small image corpora that tests build on the spot: good images, and every kind of bad input a
folder of ten thousand scans will contain. Nothing here comes from ../shared."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from koala import schema
from pipeline import sample_data


def colour_scene(seed: int, height: int = 180, width: int = 240) -> np.ndarray:
  return sample_data.draw_scene(np.random.default_rng(seed), height, width)


def _save(path: str, img: Image.Image, **kwargs) -> str:
  img.save(path, **kwargs)
  return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(width: int, height: int) -> bytes:
  """A PNG whose IHDR claims width x height and that holds no pixel data: a decompression bomb."""
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def broken_crc_png(rgb: np.ndarray) -> bytes:
  """A valid PNG whose IDAT chunk's CRC is wrong."""
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format="PNG")
  data = bytearray(buf.getvalue())
  i = data.index(b"IDAT")
  length = struct.unpack(">I", data[i - 4:i])[0]
  crc_at = i + 4 + length
  data[crc_at:crc_at + 4] = bytes(b ^ 0xFF for b in data[crc_at:crc_at + 4])
  return bytes(data)


def exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
  """A JPEG stored sideways with EXIF Orientation = 6: viewers rotate it 90 degrees clockwise."""
  stored = np.ascontiguousarray(np.rot90(rgb, k=1))   # what the camera wrote
  exif = Image.Exif()
  exif[0x0112] = 6
  buf = io.BytesIO()
  Image.fromarray(stored).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
  return buf.getvalue()


def oriented_jpeg(upright: np.ndarray, orientation: int, endian: str = "<") -> bytes:
  """A JPEG stored so that EXIF `orientation` (1-8) turns it back into `upright`, with its EXIF
  block in either byte order ("<" Intel, ">" Motorola)."""
  t = Image.Transpose
  store = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE,
           6: t.ROTATE_90, 7: t.TRANSVERSE, 8: t.ROTATE_270}     # undone by the orientation
  img = Image.fromarray(upright)
  if orientation != 1:
    img = img.transpose(store[orientation])
  exif = Image.Exif()
  exif.endian = endian
  exif[0x010F] = "a camera"          # Make: an entry before the orientation
  exif[0x0112] = orientation
  buf = io.BytesIO()
  img.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
  return buf.getvalue()


def _lzw_blank(pixels: int, min_code_size: int = 2) -> bytes:
  """GIF LZW codes for `pixels` pixels of colour 0, as dense as LZW gets: each code is one
  longer run than the last, and once the table is full (4096 codes) every code is its longest
  run (4091 pixels in 12 bits), about 2,700 pixels a byte."""
  clear, end = 1 << min_code_size, (1 << min_code_size) + 1
  out, bits, held, width, free = bytearray(), 0, 0, min_code_size + 1, end + 1
  run = lambda code: 1 if code == 0 else code - end + 1      # pixels a code stands for

  def put(code):
    nonlocal bits, held
    bits |= code << held
    held += width
    while held >= 8:
      out.append(bits & 255)
      bits >>= 8
      held -= 8

  put(clear)
  put(0)
  left = pixels - 1
  while left > 0:
    longest = min(free, 4095)
    code = longest if run(longest) <= left else (0 if left == 1 else left + end - 1)
    put(code)
    left -= run(code)
    if free < 4096:                  # the decoder adds a table entry, and widens its codes
      free += 1
      if free == 1 << width and width < 12:
        width += 1
  put(end)
  return bytes(out) + (bytes([bits]) if held else b"")


def blank_gif(screen: tuple[int, int], frames: list[tuple[int, int, int, int]]) -> bytes:
  """A GIF with a (width, height) logical screen and blank frames (width, height, left, top):
  the bombs of issue 19, e.g. a 10 x 10 screen whose one frame is 8000 x 8000 in 26 KB."""
  body = b""
  for width, height, left, top in frames:
    data = _lzw_blank(width * height)
    blocks = b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255]
                      for i in range(0, len(data), 255))
    body += (b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0) + b"\x02" + blocks
             + b"\x00")
  return (b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\xff\xff\xff\x00\x00\x00"
          + body + b";")


def write_bad_corpus(folder: str) -> dict[str, str]:
  """Writes one file per case; returns {case: expected outcome} where the outcome is 'written',
  'rejected', 'gray' or 'duplicate'. Also returns good images of several formats."""
  os.makedirs(folder, exist_ok=True)
  p = lambda name: os.path.join(folder, name)
  expected = {}

  def put(name, data: bytes, outcome):
    with open(p(name), "wb") as f:
      f.write(data)
    expected[name] = outcome

  rgb = colour_scene(1)
  put("zero_bytes.jpg", b"", "rejected")
  good_jpeg = io.BytesIO()
  Image.fromarray(colour_scene(2)).save(good_jpeg, format="JPEG", quality=90)
  put("truncated.jpg", good_jpeg.getvalue()[: len(good_jpeg.getvalue()) // 2], "rejected")
  put("text_named.png", b"this is not an image, just text\n" * 20, "rejected")
  put("broken_crc.png", broken_crc_png(colour_scene(3)), "rejected")
  put("bomb_40000x40000.png", header_only_png(40000, 40000), "rejected")
  _save(p("one_pixel.png"), Image.new("RGB", (1, 1), (255, 0, 0)))
  expected["one_pixel.png"] = "rejected"
  frames = [Image.fromarray(colour_scene(s)).convert("P") for s in (4, 5)]
  frames[0].save(p("animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
  expected["animated.gif"] = "written"   # its first frame, as the served model reads it

  sixteen = (colour_scene(6).astype(np.uint16) * 257)
  import cv2
  cv2.imwrite(p("sixteen_bit.png"), cv2.cvtColor(sixteen, cv2.COLOR_RGB2BGR))
  expected["sixteen_bit.png"] = "written"
  _save(p("cmyk.jpg"), Image.fromarray(colour_scene(7)).convert("CMYK"), quality=95)
  expected["cmyk.jpg"] = "written"
  pal = Image.fromarray(colour_scene(8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
  pal.info["transparency"] = 0
  _save(p("palette_transparent.png"), pal, transparency=0)
  expected["palette_transparent.png"] = "written"
  put("exif_rotated.jpg", exif_rotated_jpeg(colour_scene(9, 160, 240)), "written")
  gray = np.repeat(colour_scene(10)[..., :1], 3, axis=2)
  _save(p("already_gray.png"), Image.fromarray(gray))
  expected["already_gray.png"] = "gray"

  _save(p("colour_original.png"), Image.fromarray(rgb))
  expected["colour_original.png"] = "written"
  os.makedirs(p("nested/deeper"), exist_ok=True)
  _save(p("nested/deeper/same_as_original.png"), Image.fromarray(rgb))   # byte-identical
  expected["nested/deeper/same_as_original.png"] = "duplicate"
  _save(p("nested/scene.webp"), Image.fromarray(colour_scene(11)), quality=95)
  expected["nested/scene.webp"] = "written"
  _save(p("scene.bmp"), Image.fromarray(colour_scene(12)))
  expected["scene.bmp"] = "written"
  _save(p("scene.tiff"), Image.fromarray(colour_scene(13)))
  expected["scene.tiff"] = "rejected"    # the served model cannot decode TIFF (koala.images)
  return expected


def tiny_hub_module(path):
  """A feature-vector SavedModel: images in [0, 1] -> 1536-d, as a TF-Hub module is called."""
  import tensorflow as tf
  proj = tf.constant(np.random.default_rng(0).normal(size=(3, schema.EMBEDDING_DIM)), tf.float32)

  class Module(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
    def __call__(self, x):
      return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), proj)

  tf.saved_model.save(Module(), path)
  return path


def zip_bomb(path: str, entry: str = "001.png", inflated: int = 3 * 2 ** 29,
             others: dict[str, bytes] | None = None) -> str:
  """A .cbz holding `others` and one entry of `inflated` zero bytes (1.5 GiB by default), written
  streaming (it never exists inflated, here or on disk): about 7 MB at zlib level 1."""
  import zipfile
  chunk = bytes(1 << 20)
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
    for name, data in (others or {}).items():
      z.writestr(name, data)
    with z.open(entry, "w", force_zip64=True) as f:
      left = inflated
      while left > 0:
        f.write(chunk[:min(left, len(chunk))])
        left -= len(chunk)
  return path


def lying_zip(entries: dict[str, bytes], liar: str, declared: int) -> bytes:
  """A zip whose central directory says `liar` inflates to `declared` bytes, whatever it holds:
  the declared size alone must not be trusted."""
  import zipfile
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in entries.items():
      z.writestr(name, data)
  raw = bytearray(buf.getvalue())
  name = liar.encode()
  at = raw.find(b"PK\x01\x02")
  while at >= 0:
    name_len = struct.unpack_from("<H", raw, at + 28)[0]
    if bytes(raw[at + 46: at + 46 + name_len]) == name:
      struct.pack_into("<I", raw, at + 24, declared)     # uncompressed size
      return bytes(raw)
    at = raw.find(b"PK\x01\x02", at + 46)
  raise ValueError(f"{liar} is not in the archive")
