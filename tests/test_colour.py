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


def whole_unit_ab_grid(limit: int = 140) -> np.ndarray:
  a, b = np.meshgrid(np.arange(-limit, limit + 1), np.arange(-limit, limit + 1))
  return np.stack([a, b], -1).astype(np.float32)


def test_manga_composition_puts_any_colour_on_paper_and_keeps_ink_ink():
  """The manga page rule for every ab a network can predict: black stays black, paper with no
  colour stays white, paper under a colour takes that colour (any colour of chroma <= 30, which
  skin, sky and hair tones are, exactly to within rounding), and no pixel gets lighter than the
  page, so ink lines and lettering stay as dark as they are."""
  ab = whole_unit_ab_grid()
  shape = ab.shape[:2]
  assert colour.manga_page_rgb(np.zeros(shape, np.uint8), ab).max() == 0
  assert (colour.manga_page_rgb(np.full(shape, 255, np.uint8), np.zeros_like(ab)) == 255).all()
  on_paper = colour.reference_rgb_to_lab(colour.manga_page_rgb(np.full(shape, 255, np.uint8), ab))
  c = colour.chroma(ab)
  modest = c <= 30
  assert np.abs(on_paper[..., 1:] - ab)[modest].max() < 2.5
  assert (colour.chroma(on_paper[..., 1:])[c >= 10] >= 9).all()   # every colour reaches paper
  for level in (0, 10, 40, 128, 200, 255):
    page = np.full(shape, level, np.uint8)
    served = colour.manga_page_rgb(page, ab)
    y_page = colour.relative_luminance(page[..., None].repeat(3, -1))
    assert (colour.relative_luminance(served) <= y_page + 1e-3).all()   # never lighter


def test_manga_composition_keeps_screentone_as_texture_under_the_colour():
  """Multiply: a screen's black dots stay black, the paper between them takes the colour."""
  screen = np.full((8, 8), 255, np.uint8)
  screen[::2, ::2] = 0
  served = colour.manga_page_rgb(screen, np.broadcast_to(np.float32([15, 20]), (8, 8, 2)))
  assert served[screen == 0].max() == 0
  skin = colour.reference_rgb_to_lab(served[screen == 255])
  assert np.abs(skin[:, 1:] - [15, 20]).max() < 2.5 and (skin[:, 0] < 95).all()


def test_compositions_by_name_and_rendering():
  gray, ab = np.array([255], np.uint8), np.array([[15.0, 20.0]], np.float32)
  assert colour.compose_page(gray, ab, colour.COMPOSE_KEEP_L).tolist() == [[255, 255, 255]]
  assert colour.compose_page(gray, ab, colour.COMPOSE_MANGA).tolist() == (
      colour.manga_page_rgb(gray, ab).tolist())
  assert colour.composition_for("gray") == colour.COMPOSE_KEEP_L
  assert colour.composition_for("manga-v1") == colour.COMPOSE_MANGA
  with pytest.raises(ValueError, match="unknown composition"):
    colour.compose_page(gray, ab, "overlay")
