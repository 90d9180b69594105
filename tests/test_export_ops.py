"""trainer.export.page (the SavedModel's decode, gray, letterbox and colour table) against the NumPy
path that made the training records (koala.images, koala.colour, pipeline.preprocess)."""
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import colour, images
from trainer.export import image as tf_image, page as tf_page


def encode(array, fmt, mode=None, **kw):
  buf = io.BytesIO()
  Image.fromarray(array, mode).save(buf, fmt, **kw)
  return buf.getvalue()


@pytest.fixture(scope="module")
def page():
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:173, 0:121]
  gray = ((np.sin(xx / 3.0) * np.cos(yy / 2.0) > 0) * 180 + 40).astype(np.uint8)
  rgb = np.stack([gray, np.roll(gray, 5, 0), rng.integers(0, 256, gray.shape, np.uint8)], -1)
  return gray, rgb


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("JPEG", {}), ("BMP", {}), ("GIF", {}),
                                    ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80})])
def test_header_dimensions_of_every_format(page, fmt, kw):
  data = encode(page[1], fmt, **kw)
  assert list(tf_image.header_hw(tf.constant(data)).numpy()) == [173, 121]


def test_extended_webp_header_with_alpha(page):
  rgba = np.dstack([page[1], np.full(page[0].shape, 128, np.uint8)])
  data = encode(rgba, "WEBP", quality=80)
  assert data[12:16] == b"VP8X"
  assert list(tf_image.header_hw(tf.constant(data)).numpy()) == [173, 121]


def png_claiming(height, width):
  """A PNG header with the given dimensions and no pixel data behind it."""
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  chunk = b"IHDR" + ihdr
  end = b"IEND"
  return (tf_image.PNG_SIGNATURE + struct.pack(">I", 13) + chunk
          + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", 0) + end
          + struct.pack(">I", zlib.crc32(end)))


def test_pixel_cap_refuses_before_decoding():
  with pytest.raises(tf.errors.InvalidArgumentError, match="Image too large"):
    tf_page.decode_gray(tf.constant(png_claiming(60000, 60000)), 50_000_000)


def test_non_images_and_truncated_files_are_invalid_arguments(page):
  with pytest.raises(tf.errors.InvalidArgumentError, match="Not a supported image"):
    tf_page.decode_gray(tf.constant(b"%PDF-1.4 not an image at all"), 10**8)
  with pytest.raises(tf.errors.InvalidArgumentError):
    whole = encode(page[1], "PNG")
    tf_page.decode_gray(tf.constant(whole[:len(whole) // 2]), 10**8)
  with pytest.raises(tf.errors.InvalidArgumentError):
    whole = encode(page[1], "JPEG")
    tf_page.decode_gray(tf.constant(whole[:len(whole) // 2]), 10**8)
  # a few bytes that are not UTF-8: a header read past their end used to fail with an error
  # quoting them, which TensorFlow's Python wrapper could not decode (UnicodeDecodeError, a 500)
  for short in (b"GI\xff", b"RIFF\xff\xfe", b"BM\xff", b"\x89PNG\r\n\x1a\n", b""):
    with pytest.raises(tf.errors.InvalidArgumentError, match="Not a supported image"):
      tf_page.decode_gray(tf.constant(short), 10**8)


@pytest.mark.parametrize("kind", ["L", "LA", "RGB", "RGBA", "gray-as-RGB"])
def test_decode_gray_matches_the_numpy_path(page, kind):
  gray, rgb = page
  alpha = np.linspace(0, 255, gray.size).reshape(gray.shape).astype(np.uint8)
  arrays = {"L": gray, "LA": np.dstack([gray, alpha]), "RGB": rgb,
            "RGBA": np.dstack([rgb, alpha]), "gray-as-RGB": np.dstack([gray] * 3)}
  data = encode(arrays[kind], "PNG")
  ours = tf_page.decode_gray(tf.constant(data), 10**8).numpy()
  ref_rgb = images.decode_image(data)
  ref = colour.to_uint8(colour.l_to_neutral_gray(colour.rgb_to_l(ref_rgb)))
  assert ours.shape == gray.shape
  assert np.abs(ours.astype(int) - ref).max() <= 1


@pytest.mark.parametrize("shape", [(173, 121), (2339, 1654), (300, 300), (40, 90), (100, 7)])
@pytest.mark.parametrize("size", [224, 299, 56])
def test_letterbox_matches_koala_images(shape, size):
  rng = np.random.default_rng(1)
  gray = rng.integers(0, 256, shape).astype(np.uint8)
  gray[: shape[0] // 2] = 30     # some flat area as well as noise
  top, left, h, w = (int(v) for v in tf_page.letterbox_box(shape[0], shape[1], size))
  box = images.letterbox_box(shape[0], shape[1], size)
  assert (top, left, h, w) == (box.top, box.left, box.height, box.width)
  ours = tf_page.letterbox_u8(tf.constant(gray), size).numpy().astype(int)
  ref = images.letterbox(gray, size).astype(int)
  diff = np.abs(ours - ref)
  assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())


def test_colour_table_is_koala_colour_page_rgb():
  table = tf_page.lab_rgb_table()
  rng = np.random.default_rng(2)
  g = rng.integers(0, 256, 20000)
  a, b = rng.integers(-128, 128, 20000), rng.integers(-128, 128, 20000)
  got = table[(g * 256 + a + 128) * 256 + b + 128]
  np.testing.assert_array_equal(got, colour.page_rgb(g.astype(np.uint8), np.stack([a, b], -1)))
  white = table[(255 * 256 + 128 + 40) * 256 + 128 - 40]
  black = table[(0 * 256 + 128 + 40) * 256 + 128]
  assert white.min() >= 254 and black.max() <= 1


def test_paper_colour_table_is_koala_colour_paper_colour():
  """A manga job's flat colours (its table, looked up by rounded ab) are paper_colour's, and
  manga_page_rgb is the page times them."""
  table = colour.paper_colour_table()
  rng = np.random.default_rng(3)
  ab = rng.uniform(-128, 127, (20000, 2)).astype(np.float32)
  got = table[colour.paper_colour_index(ab)]
  np.testing.assert_array_equal(got, colour.paper_colour(np.floor(ab + 0.5)))
  g = rng.integers(0, 256, 20000).astype(np.uint8)
  np.testing.assert_array_equal(colour.to_uint8(got * (g[:, None] / np.float32(255.0))),
                                colour.manga_page_rgb(g, ab))
  skin_on_paper = table[colour.paper_colour_index(np.array([15.0, 20.0]))]
  assert (skin_on_paper < 1).any() and skin_on_paper.min() > 150 / 255


def colour_page(gray: np.ndarray, ab_square: np.ndarray) -> np.ndarray:
  """A gray job's served page from the model's letterboxed ab, in process."""
  g = tf.constant(gray)
  return tf_page.colour_page(g, tf_page.ab_box(g, tf.constant(ab_square)),
                             tf.constant(tf_page.lab_rgb_table())).numpy()


def test_colour_page_is_the_numpy_page_for_out_of_gamut_ab():
  """The served colours are koala.colour.page_rgb's, also where the predicted ab lies far outside
  the gamut (the NumPy reference path clipped RGB there, and the two paths disagreed)."""
  rng = np.random.default_rng(3)
  gray = rng.integers(0, 256, (230, 170)).astype(np.uint8)
  gray[:, :60] = 20                                # dark: a small gamut
  ab = np.repeat(np.repeat(rng.uniform(-127, 127, (8, 8, 2)), 7, 0), 7, 1).astype(np.float32)
  rgb = colour_page(gray, ab)
  box = images.letterbox_box(*gray.shape, 56)
  inside = ab[box.top:box.top + box.height, box.left:box.left + box.width]
  upsampled = cv2.resize(inside, gray.shape[::-1], interpolation=cv2.INTER_LINEAR)
  ref = colour.page_rgb(gray, upsampled)
  assert (rgb != ref).any(-1).mean() < 0.001     # ab within float noise of a .5 rounding edge
  clipped = colour.to_uint8(colour.lab_to_rgb(np.dstack([colour.gray_to_l(gray), upsampled])))
  assert np.abs(clipped.astype(int) - ref).max() > 40    # the gamut is what this test is about
  # The page keeps its L exactly (to rounding) under any colour.
  assert np.abs(colour.reference_rgb_to_lab(rgb)[..., 0] - colour.gray_to_l(gray)).max() < 1.0


def test_colour_page_keeps_full_resolution_l_and_places_ab():
  gray = np.full((90, 60), 128, np.uint8)
  gray[::7] = 0                                   # line art
  ab = np.zeros((56, 56, 2), np.float32)
  ab[..., 0], ab[..., 1] = 30.0, -20.0            # one flat colour
  rgb = colour_page(gray, ab)
  lab = colour.rgb_to_lab(rgb)
  assert rgb.shape == (90, 60, 3)
  assert np.abs(lab[..., 0] - colour.gray_to_l(gray)).max() < 2.0
  mid = lab[gray == 128]
  assert np.abs(mid[:, 1:].mean(0) - [30.0, -20.0]).max() < 2.0
