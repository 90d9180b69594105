"""trainer.evaluate on a manga job (trainer.manga_eval): manga records made on the spot (no Beam)
from the hint-task art, an untrained narrow guided model, and what must hold for any weights:
every metric for every predictor and dot count, the ceilings and baselines in their places, and
the refusal of records of the other rendering, both ways."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from koala import colour, gray, manga, schema
from koala.embedder import EmbedderInfo
from pipeline import preprocess
from tests import trainer_records
from trainer import artifacts, evaluate, manga_eval, metrics
from trainer import input as trainer_input
from trainer.model import build_colorizer, build_guided_colorizer

pytestmark = pytest.mark.slow   # evaluations with hints and the flat fill

SIZE = 56
METRICS = ("psnr", "psnr_quarter", "ab_error_quarter", "ssim", "colorfulness",
           "paper_colour_share")


def write_manga_records(out_dir: str, counts: dict, seed: int = 0) -> None:
  """Manga records of hint-task art, as pipeline.run --render=manga writes them."""
  rng = np.random.default_rng(seed)
  for split, n in counts.items():
    records = []
    for i in range(n):
      art = trainer_records.hint_task_art(rng, 200, 240)   # letterboxed: a box to crop to
      lab = gray.lab_at(art, schema.IMAGE_SIZE)
      render_seed = int(rng.integers(2 ** 31))
      input_u8, _ = preprocess.page_inputs(manga.render_manga(art, seed=render_seed))
      name = f"manga_art/{split}/{i}.png"
      records.append(schema.encode_example(
          l_u8=schema.quantize_l(lab[..., :1]), ab_u8=schema.quantize_ab(lab[..., 1:]),
          embedding=np.zeros(schema.EMBEDDING_DIM, np.float32), source_path=name,
          content_hash=hashlib.sha256(name.encode()).hexdigest()[:32],
          original_size=art.shape[:2], embedder_id=trainer_records.EMBEDDER_ID,
          input_u8=input_u8, rendering=manga.RENDERING_NAME, rendering_seed=render_seed))
    trainer_records.write_shard(f"{out_dir}/{split}/{split}-00000-of-00001.tfrecord", records)
  doc = {"schema_version": schema.SCHEMA_VERSION, "counts": {"written": dict(counts)},
         "embedder": {"name": "inception_resnet_v2", "weights": "random",
                      "identity": trainer_records.EMBEDDER_ID, "random_weights": True},
         "options": {"embedder_seed": 7}, "rendering": {"name": manga.RENDERING_NAME}}
  with open(os.path.join(out_dir, schema.MANIFEST), "w") as f:
    json.dump(doc, f)


@pytest.fixture(scope="module")
def manga_records(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("manga_records"))
  write_manga_records(out, {"train": 6, "test": 4})
  return out


def _job(root, model, rendering):
  job = str(root)
  embedder = EmbedderInfo.for_flags("inception_resnet_v2", "random", 7, trainer_records.EMBEDDER_ID)
  artifacts.save_trained(model, artifacts.TrainedModelInfo(embedder, rendering),
                         artifacts.model_dir(job))
  return job


@pytest.fixture(scope="module")
def guided_job(tmp_path_factory):
  return _job(tmp_path_factory.mktemp("manga_job"), build_guided_colorizer(SIZE, width=0.25),
              manga.RENDERING_NAME)


@pytest.fixture(scope="module")
def evaluated(manga_records, guided_job):
  """-> (results, what main printed)."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    results = evaluate.main([f"--records_dir={manga_records}", f"--job_dir={guided_job}",
                             "--hints=0,10,100", "--samples=2"])
  return results, out.getvalue()


def test_every_metric_for_every_predictor_and_count_and_the_outputs(evaluated, guided_job):
  results, out = evaluated
  assert results["examples"] == 4 and results["hint_counts"] == [0, 10, 100]
  assert results["rendering"] == manga.RENDERING_NAME
  assert [r["hints"] for r in results["rows"]] == [0, 10, 100]
  for row in results["rows"]:
    assert set(row["predictors"]) == set(manga_eval.DOTTED)
    for p in row["predictors"].values():
      assert all(isinstance(p[k], float) and np.isfinite(p[k]) for k in METRICS), p
  assert set(results["baselines"]) == set(manga_eval.FIXED)
  for p in results["baselines"].values():
    assert all(p[k] is not None for k in METRICS), p
  out_dir = f"{guided_job}/evaluation/test"
  for name in ("metrics.json", "samples.png", "psnr_vs_dots.png"):
    assert os.path.getsize(os.path.join(out_dir, name)) > 0
  grid = np.asarray(Image.open(os.path.join(out_dir, "samples.png")))
  assert grid.shape == (2 * 224, 5 * 224, 3)   # page | model 0 | model 10 + dots | fill | truth
  assert "flat_fill 10 dots" in out and "manga_ceiling" in out and "targets:" in out


SERVED_ROWS = {"model", "model_fill", "model_flat"}


def test_ceilings_and_baselines_behave_for_any_weights(evaluated):
  results, _ = evaluated
  b = results["baselines"]
  assert b["keep_l_ceiling"]["paper_colour_share"] < 0.01       # no colour on paper, ever
  assert b["manga_ceiling"]["paper_colour_share"] > 0.3         # the art is coloured everywhere
  assert b["page"]["paper_colour_share"] == 0.0
  assert b["page"]["colorfulness"] == pytest.approx(0.0, abs=1e-6)
  assert b["manga_ceiling"]["psnr"] >= b["page"]["psnr"]
  assert b["manga_ceiling"]["ab_error_quarter"] < b["page"]["ab_error_quarter"]
  fill = {r["hints"]: r["predictors"]["flat_fill"] for r in results["rows"]}
  assert fill[100]["ab_error_quarter"] < fill[0]["ab_error_quarter"]
  assert fill[0]["paper_colour_share"] == 0.0                   # no dots: the page unchanged
  assert fill[0]["psnr"] == pytest.approx(b["page"]["psnr"], abs=1e-6)
  names = {t["target"] for t in results["targets"]}
  assert len(names) == 5 and all(isinstance(t["met"], bool) for t in results["targets"])


def test_a_guided_job_defaults_to_the_dot_list_and_an_unguided_one_to_zero(
    manga_records, guided_job, tmp_path):
  results = evaluate.main([f"--records_dir={manga_records}", f"--job_dir={guided_job}",
                           "--no_levin", "--max_examples=2", f"--output_dir={tmp_path / 'a'}"])
  assert results["hint_counts"] == list(manga_eval.GUIDED_HINTS)
  assert all(set(r["predictors"]) == SERVED_ROWS for r in results["rows"])
  job = _job(tmp_path / "auto", build_colorizer(SIZE, width=0.25), manga.RENDERING_NAME)
  results = evaluate.main([f"--records_dir={manga_records}", f"--job_dir={job}",
                           "--max_examples=2", "--samples=1"])
  assert results["hint_counts"] == [0] and not results["guided"]
  assert set(results["rows"][0]["predictors"]) == SERVED_ROWS
  assert os.path.exists(f"{job}/evaluation/test/psnr_vs_dots.png")


def _refused(argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    evaluate.main(argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "rendering" in err and "trained on" in err
  return err


def test_records_of_the_other_rendering_are_refused_both_ways(manga_records, guided_job,
                                                              tmp_path, capsys):
  gray_records = str(tmp_path / "gray_records")
  trainer_records.write_hint_task_records(gray_records, {"train": 2, "test": 2})
  err = _refused([f"--records_dir={gray_records}", f"--job_dir={guided_job}"], capsys)
  assert "'gray'" in err and manga.RENDERING_NAME in err
  gray_job = _job(tmp_path / "gray_job", build_guided_colorizer(SIZE, width=0.25), "gray")
  _refused([f"--records_dir={manga_records}", f"--job_dir={gray_job}", "--hints=0"], capsys)
  with pytest.raises(trainer_input.RecordsMismatchError):
    evaluate.check_rendering(trainer_input.check_records(gray_records),
                             artifacts.read_trained_info(guided_job), guided_job)


def test_reading_distance_metrics():
  """A 50% dot screen against the flat gray it stands for: far apart pixel by pixel, close at
  1/4 scale; the paper share counts only paper pixels that took colour."""
  screen = np.zeros((64, 64, 3), np.uint8)
  screen[::2, ::2] = screen[1::2, 1::2] = 255
  flat = np.full_like(screen, 128)
  assert metrics.psnr(flat, screen) < 7 and metrics.psnr_quarter(flat, screen) > 40
  assert metrics.ab_error_quarter(flat, screen) < 1.0
  page = np.full((4, 4), 255, np.uint8)
  page[0] = 0
  red = np.tile(np.uint8([200, 40, 40]), (4, 4, 1))
  assert metrics.paper_colour_counts(page, red) == (12, 12)
  assert metrics.paper_colour_counts(page, np.repeat(page[..., None], 3, -1)) == (0, 12)
  assert manga_eval.page_of(colour.gray_to_l(page)[..., None]).tolist() == page.tolist()
