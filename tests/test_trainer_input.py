"""trainer.input: what the tf.data reader yields, and the records it refuses."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from koala import colour, schema
from pipeline import run as pipeline_run
from pipeline import sample_data
from tests import trainer_records
from tests.corpus import tiny_hub_module
from trainer import input as trainer_input
from trainer.model import EMBEDDING_INPUT, L_INPUT

COUNTS = {"train": 20, "val": 7, "test": 5}


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("records"))
  trainer_records.write_records(out, COUNTS, shards=3)
  return out


def raw_records(records_dir, split):
  files = trainer_input.list_shards(records_dir, split)
  return {r.source_path: r for r in map(schema.decode_example,
                                        (x.numpy() for x in tf.data.TFRecordDataset(files)))}


def test_eval_dataset_yields_every_record_once_in_model_units(records):
  info = trainer_input.check_records(records)
  assert info.embedder_id == trainer_records.EMBEDDER_ID and info.count("val") == 7
  ds = trainer_input.make_dataset(info, "val", 3, training=False, with_metadata=True)
  expected = raw_records(records, "val")
  seen = []
  for inputs, target, meta in ds:
    assert inputs[L_INPUT].shape[1:] == schema.L_SHAPE and target.shape[1:] == schema.AB_SHAPE
    for i, path in enumerate(meta[schema.SOURCE_PATH].numpy()):
      r = expected[path.decode()]
      np.testing.assert_allclose(inputs[L_INPUT][i], r.l, atol=1e-4)               # L in [0, 100]
      np.testing.assert_allclose(target[i], colour.normalize_ab(r.ab), atol=1e-6)  # ab / 128
      np.testing.assert_array_equal(inputs[EMBEDDING_INPUT][i], r.embedding)
      seen.append(path.decode())
  assert sorted(seen) == sorted(expected)
  assert trainer_input.steps_per_epoch(info, "val", 3, training=False) == 3


def test_train_dataset_shuffles_repeats_and_keeps_batches_whole(records):
  info = trainer_input.check_records(records)
  ds = trainer_input.make_dataset(info, "train", 8, training=True, shuffle_buffer=64, seed=1,
                                  with_metadata=True)
  batches = list(ds.take(6))   # 48 examples from a 20-example split: it repeats
  assert all(b[1].shape[0] == 8 for b in batches)
  order = [p.decode() for b in batches for p in b[2][schema.SOURCE_PATH].numpy()]
  assert set(order) == set(raw_records(records, "train"))
  assert order[:20] != sorted(order[:20])
  other = trainer_input.make_dataset(info, "train", 8, training=True, shuffle_buffer=64, seed=2,
                                     with_metadata=True)
  other_order = [p.decode() for b in other.take(2) for p in b[2][schema.SOURCE_PATH].numpy()]
  assert other_order != order[:16]
  assert trainer_input.steps_per_epoch(info, "train", 8, training=True) == 2


def test_cache_and_reduced_image_size(records, tmp_path):
  info = trainer_input.check_records(records)
  ds = trainer_input.make_dataset(info, "test", 5, training=False, image_size=56,
                                  cache=str(tmp_path / "cache"))
  first = [t.numpy() for _, t in ds]
  second = [t.numpy() for _, t in ds]
  assert first[0].shape == (5, 56, 56, 2)
  np.testing.assert_array_equal(first[0], second[0])
  assert os.listdir(tmp_path)   # the cache files exist


def test_gzip_shards_and_counting_without_manifest(tmp_path):
  trainer_records.write_records(str(tmp_path), {"train": 6, "val": 3}, shards=2, manifest=False,
                                gzip=True)
  info = trainer_input.check_records(str(tmp_path), splits=("train", "val"))
  assert info.manifest is None and info.count("train") == 6   # counted from the shards
  (inputs, target), = trainer_input.make_dataset(info, "val", 4, training=False)
  assert target.shape[0] == 3


def mixed_dir(tmp_path, **kwargs):
  """A good record set plus one extra train shard made differently."""
  out = str(tmp_path / "mixed")
  trainer_records.write_records(out, {"train": 4, "val": 2}, shards=1)
  l, ab = trainer_records.make_image(np.random.default_rng(0))
  bad = trainer_records.serialize(l, ab, np.zeros(schema.EMBEDDING_DIM, np.float32), "odd.png",
                                  **kwargs)
  return out, trainer_records.write_shard(f"{out}/train/train-99999-of-99999.tfrecord", [bad])


def test_refuses_records_from_another_embedder_naming_the_files(tmp_path):
  out, odd = mixed_dir(tmp_path, embedder_id="inception_resnet_v2:imagenet:0000000000000000")
  with pytest.raises(trainer_input.RecordsMismatchError) as e:
    trainer_input.check_records(out)
  msg = str(e.value)
  assert "embedder identity" in msg and odd in msg and "1 file(s)" in msg
  assert trainer_records.EMBEDDER_ID in msg and f"{out}/train/train-00000-of-00001.tfrecord" in msg


def test_refuses_records_of_another_schema_version_naming_the_files(tmp_path):
  out, odd = mixed_dir(tmp_path, schema_version=schema.SCHEMA_VERSION + 1)
  with pytest.raises(trainer_input.RecordsMismatchError, match="schema version") as e:
    trainer_input.check_records(out)
  assert odd in str(e.value)


def test_refuses_records_that_disagree_with_their_manifest(tmp_path):
  out = str(tmp_path / "recs")
  trainer_records.write_records(out, {"train": 2, "val": 2}, shards=1)
  with open(f"{out}/{schema.MANIFEST}") as f:
    manifest = json.load(f)
  manifest["embedder"]["identity"] = "hub:somewhere:0123"
  with open(f"{out}/{schema.MANIFEST}", "w") as f:
    json.dump(manifest, f)
  with pytest.raises(trainer_input.RecordsMismatchError, match="manifest.json"):
    trainer_input.check_records(out)


def test_refuses_a_mixed_batch_in_the_graph_too(tmp_path):
  """Past the up-front check (e.g. a shard added while training), each batch is checked again."""
  out, odd = mixed_dir(tmp_path, embedder_id="inception_resnet_v2:imagenet:0000000000000000")
  good = trainer_input.RecordsInfo(out, schema.SCHEMA_VERSION, trainer_records.EMBEDDER_ID,
                                   {"train": trainer_input.list_shards(out, "train")}, None)
  with pytest.raises(tf.errors.InvalidArgumentError, match="embedder"):
    for _ in trainer_input.make_dataset(good, "train", 5, training=False):
      pass


def test_missing_records_say_where_they_were_looked_for(tmp_path):
  with pytest.raises(FileNotFoundError, match="pipeline.run"):
    trainer_input.check_records(str(tmp_path))


def test_reads_records_written_by_the_real_beam_pipeline(tmp_path):
  """Images -> pipeline.run (Beam) -> trainer.input. The embedder is the pipeline tests' tiny
  hub module: Inception-ResNet-v2 would take ~45 s here for the same check."""
  src = str(tmp_path / "sample")
  sample_data.generate(src, count=5, pages=0, photos=False, size=(96, 128))
  out = str(tmp_path / "records")
  module = tiny_hub_module(str(tmp_path / "hub_module"))
  pipeline_run.run([f"--input={src}/colour", f"--output_dir={out}", f"--embedder=hub:{module}",
                    "--direct_running_mode=in_memory", "--direct_num_workers=1",
                    "--val_fraction=0.4", "--test_fraction=0.2"])
  info = trainer_input.check_records(out)
  assert info.embedder_id == info.manifest.embedder.identity
  total = 0
  for split in schema.SPLITS:
    if not info.files[split]:
      continue
    for inputs, target in trainer_input.make_dataset(info, split, 2, training=False):
      assert float(tf.reduce_max(tf.abs(target))) <= 1.0
      assert 0.0 <= float(tf.reduce_min(inputs[L_INPUT])) and float(tf.reduce_max(inputs[L_INPUT])) <= 100
      assert float(tf.reduce_max(tf.abs(inputs[EMBEDDING_INPUT]))) > 0
      total += int(target.shape[0])
  assert total == info.manifest.counts.total_written() == 5
