"""The records' manifest (koala.records_manifest) and the embedder's description it carries
(koala.embedder.EmbedderInfo): what is written reads back the same, and manifests written by
earlier pipelines still read. The pipeline's own manifests are checked in tests/test_pipeline.py."""
import json

import pytest

from koala import embedder, records_manifest, schema
from koala.embedder import EmbedderInfo
from koala.records_manifest import RecordCounts, RecordsManifest, RecordsRendering, SplitRule

# A manifest as the first pipelines wrote it: no "rendering", no seed in "embedder", one key
# this version no longer knows.
FIRST_MANIFEST = {
    "schema_version": 1, "image_size": 224, "embedder_size": 299, "embedding_dim": 1536,
    "counts": {"inputs": 9, "written": {"train": 5, "val": 2, "test": 0}, "rejected": 1,
               "skipped_gray": 1, "duplicates": 0},
    "embedder": {"name": "inception_resnet_v2", "weights": "random",
                 "identity": "inception_resnet_v2:random-seed4:0123456789abcdef",
                 "random_weights": True, "warning": embedder.RANDOM_WARNING},
    "split": {"salt": "koala-split-v1", "val_fraction": 0.3, "test_fraction": 0.0},
    "options": {"embedder_seed": 4, "input": "art/"},
    "from_the_past": {"anything": 1},
}


def test_a_manifest_reads_back_as_written(tmp_path):
  manifest = RecordsManifest(
      counts=RecordCounts(written={"train": 3, "val": 1, "test": 0}, inputs=5, rejected=1,
                          skipped_gray=0, duplicates=1),
      embedder=EmbedderInfo.for_flags("inception_resnet_v2", "random", 2, "keras:x"),
      rendering=RecordsRendering(kind="manga", name="manga-v1", per_image=2, input="a page",
                                 target="the art"),
      split=SplitRule(val_fraction=0.25, test_fraction=0.0), schema_version=1,
      image_size=224, embedder_size=299, embedding_dim=1536, options={"render": "manga"})
  records_manifest.write(str(tmp_path), manifest)
  assert records_manifest.read(str(tmp_path)) == manifest
  on_disk = json.loads((tmp_path / schema.MANIFEST).read_text())
  assert on_disk["rendering"]["name"] == "manga-v1" and on_disk["counts"]["inputs"] == 5
  assert on_disk["embedder"]["warning"] == embedder.RANDOM_WARNING
  assert "runs" not in on_disk


def test_a_manifest_from_the_first_pipelines_still_reads(tmp_path):
  (tmp_path / schema.MANIFEST).write_text(json.dumps(FIRST_MANIFEST))
  manifest = records_manifest.read(str(tmp_path))
  assert manifest.rendering is None and manifest.rendering_name == schema.GRAY
  assert manifest.embedder.embedder_seed == 4   # from "options", where it was then
  assert manifest.embedder.random_weights and manifest.counts.total_written() == 7
  assert manifest.split.salt == schema.DEFAULT_SPLIT_SALT
  written_back = manifest.to_dict()
  assert "from_the_past" not in written_back
  assert {k: v for k, v in written_back.items() if k != "embedder"} == {
      k: v for k, v in FIRST_MANIFEST.items() if k not in ("embedder", "from_the_past")}


def test_a_combined_manifest_keeps_only_what_it_has():
  """trainer.train's combined manifest: only "written" counts, and the runs it came from."""
  combined = RecordsManifest.from_dict({"counts": {"written": {"train": 4}},
                                        "runs": {"train": "a/", "val": "b/"}})
  assert combined.counts == RecordCounts(written={"train": 4})
  assert combined.embedder is None and combined.schema_version is None
  assert combined.to_dict() == {"counts": {"written": {"train": 4}}, "options": {},
                                "runs": {"train": "a/", "val": "b/"}}


def test_no_manifest_and_not_a_manifest(tmp_path):
  assert records_manifest.read(str(tmp_path)) is None
  (tmp_path / schema.MANIFEST).write_text("[1, 2]")
  with pytest.raises(ValueError, match="JSON object"):
    records_manifest.read(str(tmp_path))


def test_the_embedder_says_when_its_weights_are_random():
  keras_random = EmbedderInfo.for_flags("inception_resnet_v2", "random", 0, "keras:r")
  assert keras_random.random_weights and keras_random.warning == embedder.RANDOM_WARNING
  hub = EmbedderInfo.for_flags("hub:/models/m", "random", 0, "hub:/models/m:ab")
  assert hub.random_weights is False and "warning" not in hub.to_dict()
  assert EmbedderInfo.from_dict({**hub.to_dict(), "unknown": 1}) == hub
