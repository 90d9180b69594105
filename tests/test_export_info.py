"""What callers read about an export without running it: its description
(assets.extra/koala_export.json, trainer.export.info) and which signature a page's guidance
picks (trainer.export.signatures). Exports themselves are made in tests/test_serving_e2e.py and
tests/test_manga_serving.py, which read the description these functions write."""
import dataclasses
import json

from koala.embedder import EmbedderInfo
from trainer.export import info, signatures

FIRST_EXPORT = {   # the description as the first exports wrote it, before rendering and gap_closing
    "embedder": {"name": "inception_resnet_v2", "weights": "random", "identity": "keras:x",
                 "random_weights": True, "embedder_seed": 0},
    "embedder_identity": "keras:x", "colorizer_size": 224, "max_pixels": 50_000_000,
    "png_compression": 0, "job_dir": "jobs/run1", "signatures": ["serving_default"]}


def test_an_export_from_before_the_newer_fields_still_reads(tmp_path):
  (tmp_path / "assets.extra").mkdir()
  (tmp_path / info.PATH).write_text(json.dumps({**FIRST_EXPORT, "from_the_future": 1}))
  read = info.read(str(tmp_path))
  assert read.rendering is None and read.gap_closing is None
  assert read.colorizer_size == 224 and read.signatures == ["serving_default"]
  assert read.random_weights and read.embedder.embedder_seed == 0
  assert read.embedder.to_dict() == FIRST_EXPORT["embedder"]   # written back as it was read


def test_the_description_reads_back_as_written(tmp_path):
  written = dataclasses.replace(info.ExportInfo.from_dict(FIRST_EXPORT), gap_closing=2,
                                rendering={"rendering": "manga", "composition": "manga"})
  assert isinstance(written.embedder, EmbedderInfo)
  info.write(str(tmp_path), written)
  assert json.loads((tmp_path / info.PATH).read_text()) == written.to_dict()
  assert info.read(str(tmp_path)) == written
  assert not info.ExportInfo(embedder=None).random_weights
  assert info.ExportInfo.from_dict(info.ExportInfo().to_dict()) == info.ExportInfo()


def test_guidance_picks_the_signature_once_for_every_caller():
  assert signatures.signature_for(None, None) == signatures.SERVING_DEFAULT
  assert signatures.signature_for(b"", None) == signatures.COLORIZE_GUIDED
  assert signatures.signature_for(None, "cover.jpg") == signatures.COLORIZE_GUIDED
  assert signatures.signature_inputs(b"page") == (signatures.SERVING_DEFAULT,
                                                  {signatures.IMAGE_BYTES: b"page"})
  assert signatures.signature_inputs(b"page", hints=b"dots") == (signatures.COLORIZE_GUIDED, {
      signatures.IMAGE_BYTES: b"page", signatures.HINTS_BYTES: b"dots",
      signatures.REFERENCE_BYTES: b""})
