"""An uploaded image file as TensorFlow ops: checked from its header, decoded, turned upright.

Why TF ops: TF Serving runs the SavedModel with no Python, so every check on what a client sends
must be a graph op, and must run BEFORE the decoder allocates anything. The page
(`image_bytes`), the hint image and the reference (`hints_bytes`, `reference_bytes`) all come
through `decode`, so the three obey one rule:

  * format: PNG, JPEG, WebP, BMP or GIF (`koala.images.FORMATS`); anything else, an animated
    WebP (TensorFlow's decoder corrupts the heap on one) and a PNG without its IEND chunk (libpng
    fills missing rows with black) are refused.
  * the pixel cap, on what the decoder will allocate: the header's width x height; for a GIF,
    also every frame, since TensorFlow's decoder reads all of them and draws on a canvas as
    large as the largest (`koala.headers` says why). A GIF frame outside the logical screen is
    refused; otherwise a GIF counts the larger of its screen and the sum of its frames.
  * EXIF orientation: a JPEG is turned upright by its EXIF Orientation tag, as the pipeline does
    (`koala.headers.jpeg_orientation`, the rule; `koala.images.decode_image`, the pipeline), so
    a phone's photo of a page is coloured the way up a viewer shows it, and a hint image,
    stretched over the upright page, lands where the user drew it.

Walking a GIF's blocks one step per loop iteration would cost ~30 us a step in TensorFlow's
executor: a crafted 1 MB GIF of one-byte sub-blocks has 500,000 steps (15 s). So the walk works
on whole arrays of byte positions, by doubling: log2(steps) rounds (`gif_frames`, `_visited`;
docs/serving.md gives the costs). The EXIF search is a short loop: its rule looks at a JPEG's
first JPEG_MARKERS markers only.

Every refusal is an InvalidArgument with a sentence, which TF Serving and the stand-in answer as
HTTP 400; `name` starts it ("hints_bytes: ..."), so a request with three images says which.
"""
from __future__ import annotations

import tensorflow as tf

from koala import headers, images

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAD = 1 << 10       # zero bytes after the data, so a field read past the end reads zeros
HEAD = 64           # header bytes the fixed-offset reads below look at


def _head(data) -> tf.Tensor:
  """The first HEAD bytes, padded with zeros to 2 * HEAD: a read past the end of a short file
  reads zeros, rather than failing with an error that quotes the file's bytes (which TensorFlow's
  Python wrapper cannot decode, a 500 instead of a 400)."""
  return tf.strings.join([tf.strings.substr(data, 0, HEAD), bytes(2 * HEAD)])


def _u8(data, pos: int, n: int) -> tf.Tensor:
  """n header bytes at pos as int64 (raises InvalidArgument if the data is shorter)."""
  return tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, n), tf.uint8), tf.int64)


def _le(data, pos: int, n: int) -> tf.Tensor:
  b = _u8(data, pos, n)
  return tf.reduce_sum(b * tf.constant([256 ** i for i in range(n)], tf.int64))


def _be(data, pos: int, n: int) -> tf.Tensor:
  b = _u8(data, pos, n)
  return tf.reduce_sum(b * tf.constant([256 ** (n - 1 - i) for i in range(n)], tf.int64))


def _signed32(v: tf.Tensor) -> tf.Tensor:
  return tf.where(v >= 2 ** 31, v - 2 ** 32, v)


def _webp_hw(data) -> tf.Tensor:
  chunk = tf.strings.substr(data, 12, 4)

  def vp8():    # lossy: 14-bit width and height at 26 and 28
    return tf.stack([_le(data, 28, 2) % 16384, _le(data, 26, 2) % 16384])

  def vp8l():   # lossless: 14 bits each, minus one, after the signature byte at 20
    bits = _le(data, 21, 4)
    return tf.stack([(bits // 16384) % 16384 + 1, bits % 16384 + 1])

  def vp8x():   # extended: 24-bit canvas size minus one at 24 and 27 (libwebp refuses a frame
    return tf.stack([_le(data, 27, 3) + 1, _le(data, 24, 3) + 1])   # of another size)

  return tf.case([(tf.equal(chunk, "VP8 "), vp8), (tf.equal(chunk, "VP8L"), vp8l),
                  (tf.equal(chunk, "VP8X"), vp8x)],
                 default=lambda: tf.constant([-1, -1], tf.int64))


def is_png(data) -> tf.Tensor:
  return tf.equal(tf.strings.substr(data, 0, 8), PNG_SIGNATURE)


def is_jpeg(data) -> tf.Tensor:
  return tf.equal(tf.strings.substr(data, 0, 2), headers.JPEG_SIGNATURE)


def is_gif(data) -> tf.Tensor:
  return tf.equal(tf.strings.substr(data, 0, 4), headers.GIF_SIGNATURE)


def header_hw(data: tf.Tensor) -> tf.Tensor:
  """(height, width) int64 read from the file header alone, as stored (before EXIF orientation);
  a GIF's logical screen; (-1, -1) for an unknown format."""
  data = tf.convert_to_tensor(data, tf.string)
  head = _head(data)
  is_bmp = tf.equal(tf.strings.substr(head, 0, 2), b"BM")
  is_webp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
                           tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"))
  return tf.case([
      (is_png(data), lambda: tf.stack([_be(head, 20, 4), _be(head, 16, 4)])),
      (is_jpeg(data), lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
      (is_bmp, lambda: tf.abs(tf.stack([_signed32(_le(head, 22, 4)),
                                        _signed32(_le(head, 18, 4))]))),
      (is_gif(data), lambda: tf.stack([_le(head, 8, 2), _le(head, 6, 2)])),
      (is_webp, lambda: _webp_hw(head)),
  ], default=lambda: tf.constant([-1, -1], tf.int64), exclusive=False)


def is_animated_webp(data: tf.Tensor) -> tf.Tensor:
  """An extended WebP (VP8X) whose flags byte has the animation bit (0x02)."""
  head = _head(data)
  vp8x = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
                        tf.equal(tf.strings.substr(head, 8, 8), b"WEBPVP8X"))
  return tf.logical_and(vp8x, tf.equal(tf.bitwise.bitwise_and(_u8(head, 20, 1)[0], 2), 2))


# --- walks over the bytes ----------------------------------------------------------------------

def _bytes(data) -> tuple[tf.Tensor, tf.Tensor]:
  """The data as int32 values with PAD zeros after it, and its length."""
  b = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
  return tf.pad(b, [[0, PAD]]), tf.size(b)


def _field(b: tf.Tensor, pos: tf.Tensor, size: int, little: bool | tf.Tensor = True) -> tf.Tensor:
  """The unsigned `size`-byte numbers at positions `pos` (any shape; clipped into b) as int64."""
  last = tf.shape(b, out_type=tf.int64)[0] - 1
  parts = [tf.cast(tf.gather(b, tf.minimum(tf.cast(pos, tf.int64) + k, last)), tf.int64)
           for k in range(size)]
  le = sum(p * 256 ** k for k, p in enumerate(parts))
  be = sum(p * 256 ** (size - 1 - k) for k, p in enumerate(parts))
  return tf.where(little, le, be) if isinstance(little, tf.Tensor) else (le if little else be)


def _visited(successor: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
  """bool (len,): the states a walk from `start` reaches, where `successor[s]` is the state
  after s and the walk ends in a state that is its own successor. By doubling: after k rounds
  `jump` is the 2^k-th successor and `seen` holds the walk's first 2^k states; a round that adds
  none means the walk has ended."""
  size = tf.shape(successor)[0]
  seen = tf.one_hot(start, size, dtype=tf.int32)

  def round_(seen, jump, _):
    more = tf.maximum(seen, tf.math.unsorted_segment_max(seen, jump, size))
    return more, tf.gather(jump, jump), tf.reduce_any(more > seen)

  seen, _, _ = tf.while_loop(lambda *s: s[2], round_, (seen, successor, tf.constant(True)))
  return seen > 0


def _colour_table(flags: tf.Tensor) -> tf.Tensor:
  return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(2, flags % 8), 0)


def gif_frames(data: tf.Tensor) -> tf.Tensor:
  """int64 (n, 4): (left, top, width, height) of every image descriptor of a GIF, in file order:
  `koala.headers.gif_frames` as graph ops, in two whole-array steps:

  1. where a chain of data sub-blocks that starts at position p ends (its zero-length
     terminator; N, the end, if it runs off the data), for every p at once: each sub-block's
     successor, squared until nothing moves (log2 of the longest chain, a gather a round);
  2. the blocks: every position holding an extension (0x21) or image (0x2C) introducer might
     start one, and the block after it starts right after its data's chain; `_visited` finds
     the ones the walk from the end of the header reaches."""
  b, n = _bytes(data)
  pos = tf.range(n + 1)
  here = b[:n + 1]
  chain = tf.where(tf.equal(here, 0), pos, tf.minimum(pos + 1 + here, n))

  def square(chain, _):
    further = tf.gather(chain, chain)
    return further, tf.reduce_any(further != chain)

  chain, _ = tf.while_loop(lambda _, moved: moved, square, (chain, tf.constant(True)))
  introducer = tf.logical_or(tf.equal(b[:n], headers.GIF_EXTENSION),
                             tf.equal(b[:n], headers.GIF_IMAGE))
  starts = tf.cast(tf.where(introducer)[:, 0], tf.int32)
  count = tf.size(starts)
  image = tf.equal(tf.gather(b, starts), headers.GIF_IMAGE)
  first_data = tf.where(image, starts + 11 + _colour_table(tf.gather(b, starts + 9)), starts + 2)
  ends = tf.gather(chain, tf.minimum(first_data, n))
  after = tf.where(ends < n, ends + 1, n)

  def block_at(p):   # the index in `starts` of a block at position p, or `count` (the end)
    i = tf.searchsorted(starts, p)
    found = tf.equal(tf.gather(tf.concat([starts, [n + 1]], 0), i), p)   # n + 1: no position
    return tf.where(found, i, count)

  successor = tf.concat([block_at(after), [count]], 0)
  start = block_at(tf.reshape(headers.GIF_SCREEN_END + _colour_table(b[10]), [1]))[0]
  seen = _visited(successor, start)[:count]
  at = tf.boolean_mask(starts, tf.logical_and(seen, image))
  return tf.stack([_field(b, at + k, 2) for k in (1, 3, 5, 7)], axis=1)


def jpeg_orientation(data: tf.Tensor) -> tf.Tensor:
  """int32 scalar: `koala.headers.jpeg_orientation` as graph ops (1 for anything not a JPEG)."""
  return tf.cond(is_jpeg(data), lambda: _jpeg_orientation(data), lambda: tf.constant(1))


def _read(data: tf.Tensor, pos: tf.Tensor, size: int) -> tf.Tensor:
  """int32 (size,): the bytes at pos, zeros past the end (pos may lie past it)."""
  n = tf.strings.length(data)
  got = tf.cast(tf.io.decode_raw(tf.strings.substr(data, tf.minimum(pos, n), size), tf.uint8),
                tf.int32)
  return tf.pad(got, [[0, size - tf.size(got)]])


def _jpeg_orientation(data: tf.Tensor) -> tf.Tensor:
  """A few steps, one marker each (JPEG_MARKERS at most), as `koala.headers.jpeg_orientation`."""
  n = tf.strings.length(data)

  def step(k, pos, exif, length):
    b = _read(data, pos, 10)
    marker, seg = b[1], b[2] * 256 + b[3]
    here = tf.logical_and(pos < n, tf.equal(b[0], 0xFF))
    fill = tf.equal(marker, 0xFF)
    standalone = tf.logical_or(tf.equal(marker, 0x01),
                               tf.logical_and(marker >= 0xD0, marker <= 0xD8))
    segment = tf.reduce_all(tf.stack([marker != 0xD9, marker != 0xDA, seg >= 2]))
    found = tf.reduce_all(tf.stack([here, tf.equal(marker, 0xE1), seg >= 8, pos + 10 <= n] + [
        tf.equal(b[4 + i], c) for i, c in enumerate(headers.EXIF_PREFIX)]))
    go = tf.logical_and(tf.logical_and(here, fill | standalone | segment), tf.logical_not(found))
    nxt = pos + tf.where(fill, 1, tf.where(standalone, 2, 2 + seg))
    return (tf.where(go, k + 1, headers.JPEG_MARKERS), nxt, tf.where(found, pos, exif),
            tf.where(found, seg, length))

  _, _, exif, length = tf.while_loop(lambda k, *_: k < headers.JPEG_MARKERS, step,
                                     (0, tf.constant(2), tf.constant(-1), tf.constant(0)))

  def tiff():
    end = tf.minimum(exif + 2 + length, n) - (exif + 10)
    segment = tf.io.decode_raw(tf.strings.substr(data, exif + 10, end), tf.uint8)
    b = tf.pad(tf.cast(segment, tf.int32), [[0, PAD]])
    return _tiff_orientation(b, tf.constant(0, tf.int64), tf.cast(end, tf.int64))
  return tf.cond(exif >= 0, tiff, lambda: tf.constant(1))


def _tiff_orientation(b: tf.Tensor, tiff: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
  """`koala.headers.tiff_orientation` as graph ops; positions are int64."""
  first, second = tf.gather(b, tiff), tf.gather(b, tiff + 1)
  little = tf.logical_and(tf.equal(first, ord("I")), tf.equal(second, ord("I")))
  big = tf.logical_and(tf.equal(first, ord("M")), tf.equal(second, ord("M")))
  ifd = tiff + _field(b, tiff + 4, 4, little)
  count = _field(b, ifd, 2, little)
  entries = tf.clip_by_value((end - ifd - 2) // 12, 0, count)   # those inside the segment
  entry = ifd + 2 + 12 * tf.range(entries, dtype=tf.int64)
  match = tf.where(tf.equal(_field(b, entry, 2, little), headers.ORIENTATION_TAG))[:, 0]
  # the first tag 0x0112 must lie inside the segment, or the rule gives 1 (as Python's loop
  # stops at the first entry outside it): entries past `entries` are never looked at
  at = ifd + 2 + 12 * tf.concat([match, [entries]], 0)[0]
  kind, number = _field(b, at + 2, 2, little), _field(b, at + 4, 4, little)
  value = _field(b, at + 8, 2, little)
  ok = tf.reduce_all(tf.stack([
      tf.logical_or(little, big), tiff + 8 <= end, tf.equal(_field(b, tiff + 2, 2, little), 42),
      ifd + 2 <= end, tf.size(match) > 0, tf.equal(kind, 3), tf.equal(number, 1),
      value >= 1, value <= 8]))
  return tf.where(ok, tf.cast(value, tf.int32), 1)


def upright(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
  """(H, W, C) stored as the EXIF orientation says -> upright, as Pillow's `exif_transpose`."""
  t = lambda: tf.transpose(image, [1, 0, 2])
  branches = [lambda: image, lambda: image[:, ::-1], lambda: image[::-1, ::-1],
              lambda: image[::-1], t, lambda: t()[:, ::-1], lambda: t()[::-1, ::-1],
              lambda: t()[::-1]]
  return tf.switch_case(tf.clip_by_value(orientation - 1, 0, 7), branches)


# --- the checks, and the decode ----------------------------------------------------------------

def decoded_pixels(data: tf.Tensor, hw: tf.Tensor, name: str) -> tf.Tensor:
  """The pixels decoding allocates: height x width; for a GIF, the larger of its screen and the
  sum of its frames, after an assertion that every frame lies on the screen."""
  def gif():
    frames = gif_frames(data)
    none = tf.zeros([1], tf.int64)
    right = tf.reduce_max(tf.concat([frames[:, 0] + frames[:, 2], none], 0))
    bottom = tf.reduce_max(tf.concat([frames[:, 1] + frames[:, 3], none], 0))
    inside = tf.debugging.Assert(
        tf.logical_and(right <= hw[1], bottom <= hw[0]),
        [f"{name}GIF frame outside its logical screen (TensorFlow would decode it at its own "
         "size); screen height, width:", hw, "frames (left, top, width, height):", frames],
        summarize=12)
    with tf.control_dependencies([inside]):
      return tf.maximum(hw[0] * hw[1], tf.reduce_sum(frames[:, 2] * frames[:, 3]))
  return tf.cond(is_gif(data), gif, lambda: hw[0] * hw[1])


def check_header(data: tf.Tensor, max_pixels: int, name: str = "") -> tf.Tensor:
  """(height, width) as stored, once the file has passed every check above; InvalidArgument
  (HTTP 400 in TF Serving) for non-images and pixel bombs. A `name` (e.g. "hints_bytes") starts
  each message, so a request with several images says which."""
  hw = header_hw(data)
  who = f"{name}: " if name else ""
  known = tf.debugging.Assert(
      tf.reduce_all(hw > 0),
      [f"{who}Not a supported image ({images.FORMAT_NAMES} expected); header dimensions:", hw])
  still = tf.debugging.Assert(
      tf.logical_not(is_animated_webp(data)),
      [f"{who}Not a supported image: animated WebP; send its first frame as PNG or still WebP"])
  tail = tf.strings.substr(tf.strings.join([bytes(8), data]), -8, 4)   # zeros before a short file
  whole = tf.debugging.Assert(
      tf.logical_or(tf.logical_not(is_png(data)), tf.equal(tail, b"IEND")),
      [f"{who}Truncated PNG: the file does not end with an IEND chunk"])
  with tf.control_dependencies([known, still, whole]):
    pixels = decoded_pixels(data, hw, who)
    capped = tf.debugging.Assert(
        pixels <= max_pixels,
        [f"{who}Image too large: height, width =", hw, "pixels to decode (a GIF's frames all "
         "count) =", pixels, "above the cap of", tf.constant(max_pixels, tf.int64), "pixels"])
  with tf.control_dependencies([capped]):
    return tf.identity(hw)


def decode(data: tf.Tensor, max_pixels: int, name: str = "") -> tf.Tensor:
  """Image file bytes -> uint8 (H, W, C), C = 1 to 4 as stored, upright; InvalidArgument that
  names the input for bad, truncated or huge files."""
  hw = check_header(data, max_pixels, name)
  with tf.control_dependencies([hw]):
    img = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
  img = upright(img, jpeg_orientation(data))
  img.set_shape([None, None, None])
  return img
