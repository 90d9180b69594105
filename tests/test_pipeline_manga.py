"""pipeline.run --render=manga: records whose model input is a manga rendering of the colour art
(koala.manga) and whose target is the art's own L and ab; and the flags that must stop a job
before any work (a mistyped flag, a rendering option out of range)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import manga, schema
from pipeline import preprocess
from tests import corpus
from tests.test_pipeline import FAST, read_records, run_pipeline
from trainer import input as trainer_input
from trainer.model import L_INPUT

pytestmark = pytest.mark.slow   # real Beam runs

IMAGES = 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def art_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("art")
  for i in range(IMAGES):
    Image.fromarray(corpus.colour_scene(300 + i, 180, 240)).save(folder / f"art{i}.png")
  return str(folder)


@pytest.fixture(scope="module")
def gray_and_manga_runs(art_dir, tmp_path_factory):
  gray_out = str(tmp_path_factory.mktemp("gray"))
  manga_out = str(tmp_path_factory.mktemp("manga"))
  gray_manifest = run_pipeline(art_dir, gray_out, *FAST, "--val_fraction=0.3")
  manga_manifest = run_pipeline(art_dir, manga_out, *FAST, "--val_fraction=0.3",
                                "--render=manga", "--renderings_per_image=2")
  return (gray_out, gray_manifest), (manga_out, manga_manifest)


def by_hash(records):
  out = {}
  for r in records:
    out.setdefault(r[schema.CONTENT_HASH].decode(), []).append(r)
  return out


def test_manga_records_see_the_rendering_and_learn_the_art(gray_and_manga_runs):
  (gray_out, _), (manga_out, manifest) = gray_and_manga_runs
  gray, rendered = by_hash(read_records(gray_out)), by_hash(read_records(manga_out))
  assert sum(manifest["counts"]["written"].values()) == 2 * IMAGES
  assert manifest["rendering"]["kind"] == "manga"
  assert manifest["rendering"]["name"] == manga.RENDERING_NAME
  assert manifest["rendering"]["per_image"] == 2
  assert manifest["options"]["render"] == "manga"
  assert set(rendered) == set(gray)
  for digest, pair in rendered.items():
    (g,) = gray[digest]
    assert len(pair) == 2
    assert g[schema.RENDERING].decode() == schema.GRAY
    np.testing.assert_array_equal(g[schema.INPUT_L], g[schema.L])   # gray: the input is L
    for r in pair:
      assert r[schema.RENDERING].decode() == manga.RENDERING_NAME
      # The target is the colour image's own L and ab, as in the gray record.
      np.testing.assert_allclose(r[schema.L], g[schema.L], atol=100 / 255 + 1e-4)
      np.testing.assert_allclose(r[schema.AB], g[schema.AB], atol=1.0)
      # The input is a page: far from the art's L, with paper (L 100) and ink in it.
      assert np.abs(r[schema.INPUT_L] - r[schema.L]).mean() > 5
      assert (r[schema.INPUT_L] > 99).mean() > 0.2
      # The embedder saw the rendering, not the art.
      assert not np.allclose(r[schema.EMBEDDING], g[schema.EMBEDDING])
    a, b = pair
    assert a[schema.RENDERING_SEED] != b[schema.RENDERING_SEED]
    assert not np.array_equal(a[schema.INPUT_L], b[schema.INPUT_L])


def test_manga_input_is_the_rendering_as_the_served_graph_letterboxes_it(art_dir,
                                                                         gray_and_manga_runs):
  """Reproducible: the record's input is render_manga(image, seed) letterboxed to 224."""
  _, (manga_out, _) = gray_and_manga_runs
  record = read_records(manga_out)[0]
  path = record[schema.SOURCE_PATH].decode()
  rgb = np.asarray(Image.open(path).convert("RGB"))
  page = manga.render_manga(rgb, seed=int(record[schema.RENDERING_SEED]))
  l_u8, embedder_gray = preprocess.page_inputs(page)
  np.testing.assert_allclose(record[schema.INPUT_L], schema.dequantize_l(l_u8), atol=1e-4)
  assert embedder_gray.shape == (schema.EMBEDDER_SIZE, schema.EMBEDDER_SIZE)


def test_every_rendering_of_an_image_is_in_its_split(gray_and_manga_runs):
  _, (manga_out, _) = gray_and_manga_runs
  split_of = {}
  for split in schema.SPLITS:
    for r in read_records(manga_out, split):
      split_of.setdefault(r[schema.CONTENT_HASH].decode(), set()).add(split)
  assert all(len(s) == 1 for s in split_of.values())


def test_the_trainer_reads_the_rendering_and_refuses_a_mix(gray_and_manga_runs, tmp_path):
  (gray_out, _), (manga_out, _) = gray_and_manga_runs
  assert trainer_input.check_records(manga_out).rendering == manga.RENDERING_NAME
  assert trainer_input.check_records(gray_out).rendering == schema.GRAY
  info = trainer_input.check_records(manga_out)
  inputs, target, meta = next(iter(trainer_input.make_dataset(
      info, "train", 2, training=False, with_metadata=True)))
  assert not np.allclose(inputs[L_INPUT].numpy(), meta[schema.L].numpy())
  mixed = tmp_path / "mixed"
  shutil.copytree(gray_out, mixed)
  for f in tf.io.gfile.glob(schema.shard_pattern(manga_out, "train")):
    shutil.copy(f, mixed / "train" / ("train-manga-" + os.path.basename(f)))
  with pytest.raises(trainer_input.RecordsMismatchError, match="rendering"):
    trainer_input.check_records(str(mixed))


def test_records_without_rendering_fields_read_as_gray():
  """Records written before the rendering fields existed: the model input is their L."""
  rng = np.random.default_rng(0)
  l_u8 = rng.integers(0, 256, schema.L_SHAPE).astype(np.uint8)
  ab_u8 = rng.integers(0, 256, schema.AB_SHAPE).astype(np.uint8)
  serialized = schema.encode_example(
      l_u8=l_u8, ab_u8=ab_u8, embedding=np.zeros(schema.EMBEDDING_SHAPE),
      source_path="old.png", content_hash="0" * 64, original_size=(224, 224), embedder_id="e")
  example = tf.train.Example.FromString(serialized)
  for name in (schema.RENDERING, schema.RENDERING_SEED, schema.INPUT_L):
    if name in example.features.feature:
      del example.features.feature[name]
  old = example.SerializeToString()
  record = schema.decode_example(old)
  assert record.rendering == schema.GRAY and record.input_l is None
  np.testing.assert_array_equal(record.model_input, record.l)
  parsed = schema.parse_batch(tf.constant([old, old]))
  np.testing.assert_array_equal(parsed[schema.INPUT_L].numpy(), parsed[schema.L].numpy())
  assert parsed[schema.RENDERING].numpy().tolist() == [b"gray", b"gray"]


def run_module(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("module,flags,message", [
    ("pipeline.run", ["--rendr=manga"], "unknown flag --rendr=manga (did you mean --render?)"),
    ("serving.beam_colorize", ["--model=m", "--hint_dir=h"], "unknown flag --hint_dir=h"),
    ("pipeline.run", ["--render=sepia"], "--render must be one of gray, manga"),
    ("pipeline.run", ["--render=manga", "--renderings_per_image=0"],
     "--renderings_per_image must be between 1 and 16"),
])
def test_bad_flags_stop_the_job_before_any_work_in_one_sentence(art_dir, tmp_path, module, flags,
                                                                message):
  out = tmp_path / "out"
  done = run_module(module, f"--input={art_dir}", f"--output_dir={out}",
                    "--embedder_weights=random", *flags)
  assert done.returncode == 2, done.stderr
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and message in last, done.stderr
  assert not out.exists()
