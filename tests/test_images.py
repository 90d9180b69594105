"""Decoding every kind of bad input, and the one letterbox geometry."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from koala import images
from tests import corpus


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("corpus"))
  return folder, corpus.write_bad_corpus(folder)


def read(folder, name):
  with open(os.path.join(folder, name), "rb") as f:
    return f.read()


@pytest.mark.parametrize("name, reason", [
    ("zero_bytes.jpg", "empty file"),
    ("truncated.jpg", "truncated"),
    ("text_named.png", "not a readable image"),
    ("broken_crc.png", "checksum"),
    ("bomb_40000x40000.png", "too many pixels"),
    ("one_pixel.png", "too small"),
    ("scene.tiff", "unsupported format TIFF"),
])
def test_bad_files_are_refused_with_a_reason(bad_corpus, name, reason):
  folder, _ = bad_corpus
  with pytest.raises(images.ImageError, match=reason):
    images.decode_image(read(folder, name))


def test_pixel_cap_is_checked_on_the_header_before_decoding(bad_corpus):
  folder, _ = bad_corpus
  data = read(folder, "colour_original.png")
  with pytest.raises(images.ImageError, match="too many pixels: 240x180"):
    images.decode_image(data, max_pixels=1000)
  assert images.image_size(corpus.header_only_png(40000, 123)) == (123, 40000)


@pytest.mark.parametrize("name", ["sixteen_bit.png", "cmyk.jpg", "palette_transparent.png",
                                  "nested/scene.webp", "scene.bmp", "animated.gif", "colour_original.png"])
def test_odd_but_valid_files_decode_to_rgb(bad_corpus, name):
  folder, _ = bad_corpus
  rgb = images.decode_image(read(folder, name))
  assert rgb.dtype == np.uint8 and rgb.shape == (180, 240, 3)


def test_sixteen_bit_png_keeps_its_colours(bad_corpus):
  folder, _ = bad_corpus
  np.testing.assert_array_equal(images.decode_image(read(folder, "sixteen_bit.png")),
                                corpus.colour_scene(6))


def test_exif_orientation_is_applied():
  upright = corpus.colour_scene(9, 160, 240)
  rgb = images.decode_image(corpus.exif_rotated_jpeg(upright))
  assert rgb.shape == upright.shape
  assert np.abs(rgb.astype(int) - upright.astype(int)).mean() < 4


def test_alpha_is_composited_on_white():
  rgba = np.zeros((40, 40, 4), np.uint8)
  rgba[..., 0] = 255
  rgba[:20, :, 3] = 255       # top half opaque red, bottom half transparent
  buf = io.BytesIO()
  Image.fromarray(rgba).save(buf, format="PNG")
  rgb = images.decode_image(buf.getvalue())
  assert tuple(rgb[5, 5]) == (255, 0, 0)
  assert tuple(rgb[35, 5]) == (255, 255, 255)


def test_gray_and_sixteen_bit_gray_become_three_equal_channels():
  for arr, mode in ((np.full((40, 50), 100, np.uint8), None),
                    (np.full((40, 50), 100 * 257, np.uint16), "I;16")):
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    rgb = images.decode_image(buf.getvalue())
    assert rgb.shape == (40, 50, 3) and np.all(rgb == 100)


@pytest.mark.parametrize("h, w", [(100, 300), (300, 100), (224, 224), (1000, 999), (33, 40)])
def test_letterbox_fits_centres_and_inverts(h, w):
  img = np.zeros((h, w, 3), np.uint8)
  out = images.letterbox(img, 224)
  assert out.shape == (224, 224, 3)
  box = images.letterbox_box(h, w, 224)
  assert max(box.height, box.width) == 224
  assert abs(box.height / box.width - h / w) < 0.05
  assert np.all(out[box.top:box.top + box.height, box.left:box.left + box.width] == 0)
  assert (out == images.PAD_VALUE).sum() == (224 * 224 - box.height * box.width) * 3
  assert images.unletterbox(out, h, w).shape == (box.height, box.width, 3)


def test_downscaling_screentone_uses_area_interpolation():
  """A 1-pixel checkerboard screentone shrunk 4x must come out flat mid-gray, not moire."""
  tone = (np.indices((400, 400)).sum(axis=0) % 2 * 255).astype(np.uint8)
  small = images.resize(tone, 100, 100)
  assert np.abs(small.astype(int) - 128).max() <= 1


def test_large_jpeg_may_decode_reduced_but_never_below_the_target():
  big = np.kron(corpus.colour_scene(20, 150, 200), np.ones((8, 8, 1), np.uint8))   # 1200 x 1600
  buf = io.BytesIO()
  Image.fromarray(big).save(buf, format="JPEG", quality=92)
  full = images.decode_image(buf.getvalue())
  reduced = images.decode_image(buf.getvalue(), reduce_to=299)
  assert full.shape == (1200, 1600, 3)
  assert reduced.shape[1] >= 299 and reduced.shape[1] < 1600
  a, b = images.letterbox(full, 224), images.letterbox(reduced, 224)
  assert np.abs(a.astype(int) - b.astype(int)).mean() < 3
