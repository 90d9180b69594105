"""koala.colour against scikit-image's reference implementation, on real photographs."""
import numpy as np
import pytest
from skimage import color as skcolor
from skimage import data

from koala import colour


@pytest.fixture(scope="module", params=["astronaut", "coffee", "chelsea"])
def photo(request):
  return getattr(data, request.param)()[..., :3]


def test_rgb_to_lab_matches_skimage(photo):
  ours = colour.rgb_to_lab(photo)
  ref = skcolor.rgb2lab(photo)
  assert ours.dtype == np.float32
  assert np.abs(ours - ref).max() < 1.0


def test_reference_formulas_match_skimage_closely(photo):
  assert np.abs(colour.reference_rgb_to_lab(photo) - skcolor.rgb2lab(photo)).max() < 0.01
  lab = skcolor.rgb2lab(photo)
  np.testing.assert_allclose(colour.reference_lab_to_rgb(lab), skcolor.lab2rgb(lab), atol=1e-4)


def test_fast_path_stays_within_half_a_unit_of_the_reference(photo):
  lab = colour.reference_rgb_to_lab(photo)
  assert np.abs(colour.rgb_to_lab(photo) - lab).max() < 0.5
  back = colour.lab_to_rgb(lab)
  assert np.abs(colour.reference_rgb_to_lab(back) - lab).max() < 0.5


def test_rgb_to_l_is_the_l_channel(photo):
  np.testing.assert_allclose(colour.rgb_to_l(photo), colour.reference_rgb_to_lab(photo)[..., 0],
                             atol=1e-3)


def test_lab_to_rgb_matches_skimage(photo):
  lab = skcolor.rgb2lab(photo)
  ours = colour.lab_to_rgb(lab)
  ref = skcolor.lab2rgb(lab)
  assert np.abs(skcolor.rgb2lab(ours) - skcolor.rgb2lab(ref)).max() < 1.0


def test_round_trip_recovers_the_photo(photo):
  back = colour.to_uint8(colour.lab_to_rgb(colour.rgb_to_lab(photo)))
  assert np.abs(back.astype(int) - photo.astype(int)).max() <= 1


def test_neutral_gray_has_the_same_lightness_and_no_chroma(photo):
  l = colour.rgb_to_l(photo)
  gray = colour.l_to_neutral_gray(l)
  lab = skcolor.rgb2lab(np.repeat(gray[..., None], 3, axis=-1))
  assert np.abs(lab[..., 0] - l).max() < 0.5
  assert np.abs(lab[..., 1:]).max() < 0.5
  np.testing.assert_allclose(colour.gray_to_l(gray), l, atol=0.05)
  np.testing.assert_allclose(colour.rgb_to_neutral_gray(photo), gray, atol=1e-3)


def test_uint8_table_equals_the_power_law(photo):
  np.testing.assert_allclose(colour.srgb_to_linear(photo),
                             colour.srgb_to_linear(photo.astype(np.float32) / 255.0), atol=1e-6)


def test_out_of_gamut_ab_is_clamped_not_wrapped():
  lab = np.array([[[50.0, 400.0, -400.0]]], np.float32)
  clamped = np.array([[[50.0, colour.AB_LIMIT, -colour.AB_LIMIT]]], np.float32)
  rgb = colour.lab_to_rgb(lab)
  assert np.all((rgb >= 0) & (rgb <= 1))
  np.testing.assert_array_equal(rgb, colour.lab_to_rgb(clamped))


def test_normalisations_are_inverse_and_in_range():
  l = np.array([0.0, 50.0, 100.0])
  np.testing.assert_allclose(colour.normalize_l(l), [-1, 0, 1])
  np.testing.assert_allclose(colour.denormalize_l(colour.normalize_l(l)), l, atol=1e-5)
  ab = np.array([-128.0, 0.0, 127.0])
  assert np.all(np.abs(colour.normalize_ab(ab)) <= 1)
  np.testing.assert_allclose(colour.denormalize_ab(colour.normalize_ab(ab)), ab, atol=1e-4)


def test_max_chroma_is_the_edge_of_the_gamut():
  l = np.array([5.0, 25.0, 50.0, 75.0, 95.0], np.float32)
  limit = colour.max_chroma(l)
  angle = np.arange(colour.GAMUT_HUES) * (2 * np.pi / colour.GAMUT_HUES)

  def linear_at(c):
    return colour.reference_lab_to_linear(np.stack(
        [np.broadcast_to(l[:, None], c.shape), c * np.cos(angle), c * np.sin(angle)], -1))
  inside, beyond = linear_at(limit), linear_at(limit + 0.2)
  assert ((inside >= 0) & (inside <= 1)).all()
  assert ((beyond < 0) | (beyond > 1)).any(-1)[limit < 120].all()
  assert colour.max_chroma(np.array([0.0, 100.0])).max() == 0   # ink and paper take no colour


def test_black_stays_black_and_white_stays_white_under_any_colour():
  """Every ab a network can predict (a whole-unit grid past the clamp): a black pixel is served
  black and a white one white, so no weights can tint line art or paper."""
  a, b = np.meshgrid(np.arange(-140, 141), np.arange(-140, 141))
  ab = np.stack([a, b], -1).astype(np.float32)
  assert colour.page_rgb(np.zeros(a.shape, np.uint8), ab).max() == 0
  assert colour.page_rgb(np.full(a.shape, 255, np.uint8), ab).min() == 255


def test_page_rgb_keeps_l_and_the_colours_inside_the_gamut():
  rng = np.random.default_rng(0)
  gray = rng.integers(0, 256, 5000).astype(np.uint8)
  ab = rng.uniform(-300, 300, (5000, 2)).astype(np.float32)
  ab[:2500] *= 0.05                              # mostly inside the gamut
  lab = colour.reference_rgb_to_lab(colour.page_rgb(gray, ab))
  l = colour.gray_to_l(gray)
  assert np.abs(lab[:, 0] - l).max() < 1.0       # L stays, whatever the colour
  mapped = colour.gamut_map_ab(ab, gray, colour.gray_level_max_chroma())
  kept = np.abs(mapped - ab).max(-1) < 1e-3
  assert kept[:2500].mean() > 0.5 and kept[2500:].mean() < 0.1
  assert np.abs(lab[kept, 1:] - ab[kept]).max() < 2.0
  # Out of the gamut, hue is kept and chroma gives way.
  hue = lambda x: np.arctan2(x[:, 1], x[:, 0])
  moved = ~kept & (colour.chroma(mapped) > 10)
  turn = np.angle(np.exp(1j * (hue(mapped[moved]) - hue(np.clip(ab[moved], -127, 127)))))
  assert np.abs(turn).max() < 1e-3
