"""serving.beam_colorize, the batch job: real Beam runs (the offline FnApiRunner) with RunInference
over a real exported SavedModel, on one made tree of pages; a rerun after outputs are removed;
the same job on the Cloud Storage emulator; the Dataflow job graph; and the pages against what
serving.client gets from a real stand-in server on the same export.

The export is an untrained narrow colorizer with a tiny embedder (tests/serving_support.py):
what is under test is the job around the model, so which colours come out does not matter, only
that every page is the model's own answer.
"""
import io
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np
import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions
from PIL import Image

from koala import colour, schema
from serving import beam_colorize as colorize, beam_pages, client, page_names
from tests import serving_support as support
from tests import storage
from tests.test_cloud import BUCKET, assert_dataflow_job, emulator  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow   # real Beam runs of the batch job

CBZ_PAGES = ["001.png", "002.jpg", "003.png"]


@pytest.fixture(scope="module")
def export(untrained_export):
  return untrained_export


def _jpeg(gray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(gray).save(buf, "JPEG", quality=95)
  return buf.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  """A folder tree; a .cbz of three pages (and ComicInfo.xml); a colour page; a file that is
  not an image; a .cbz that is not a zip; a PNG cut short (its header reads, so only the model
  finds out)."""
  root = tmp_path_factory.mktemp("library")
  (root / "vol1" / "ch1").mkdir(parents=True)
  (root / "p1.png").write_bytes(support.png_bytes(support.task_page(90, 70, seed=0)[0]))
  (root / "vol1" / "ch1" / "p2.jpg").write_bytes(_jpeg(support.task_page(80, 60, seed=1)[0]))
  rgb = np.zeros((60, 50, 3), np.uint8)
  rgb[..., 0], rgb[..., 2] = 200, 40
  (root / "vol1" / "colour.png").write_bytes(support.png_bytes(rgb))
  (root / "vol1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
  (root / "vol1" / "bad.cbz").write_bytes(b"PK but not a zip at all")
  whole = support.png_bytes(support.task_page(70, 50, seed=5)[0])
  (root / "vol1" / "ch1" / "truncated.png").write_bytes(whole[:len(whole) // 2])
  with zipfile.ZipFile(root / "book.cbz", "w") as z:
    z.writestr("ComicInfo.xml", "<ComicInfo><Title>t</Title></ComicInfo>")
    z.writestr("003.png", support.png_bytes(support.task_page(64, 48, seed=4)[0]))
    z.writestr("001.png", support.png_bytes(support.task_page(60, 40, seed=2)[0]))
    z.writestr("002.jpg", _jpeg(support.task_page(70, 50, seed=3)[0]))
  return root


def run_job(model, input_, output, *extra):
  result = colorize.run([f"--model={model}", f"--input={input_}", f"--output_dir={output}",
                         "--min_batch_size=4", "--max_batch_size=4", *extra])
  counters = {}    # a counter that several steps increment is reported once per step
  for r in result.metrics().query()["counters"]:
    if r.key.metric.namespace == beam_pages.NAMESPACE:
      counters[r.key.metric.name] = counters.get(r.key.metric.name, 0) + r.committed
  return counters


def manifest_counts(out) -> dict:
  return json.loads((out / schema.MANIFEST).read_text())["counts"]


@pytest.fixture(scope="module")
def first_run(export, tree, tmp_path_factory):
  out = tmp_path_factory.mktemp("coloured")
  counters = run_job(export, tree, out)
  return out, counters


def pixels(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_pages_keep_the_tree_their_size_and_their_lightness(first_run, tree):
  out, _ = first_run
  for rel, size in (("p1.png", (70, 90)), ("vol1/ch1/p2.png", (60, 80))):
    page = Image.open(out / rel)
    assert page.format == "PNG" and page.size == size
  gray = support.task_page(90, 70, seed=0)[0]
  lab = colour.rgb_to_lab(pixels((out / "p1.png").read_bytes()))
  assert np.abs(lab[..., 0] - colour.gray_to_l(gray)).max() <= 2.0
  # Already in colour: copied unchanged, not recoloured.
  assert (out / "vol1" / "colour.png").read_bytes() == (tree / "vol1" / "colour.png").read_bytes()
  assert not (out / "vol1" / "broken.png").exists()
  assert not (out / "vol1" / "ch1" / "truncated.png").exists()


def test_the_cbz_comes_back_coloured_with_each_page_under_its_own_name(first_run):
  out, _ = first_run
  with zipfile.ZipFile(out / "book.cbz") as z:
    assert z.namelist() == ["ComicInfo.xml", "003.png", "001.png", "002.png"]
    assert b"<Title>t</Title>" in z.read("ComicInfo.xml")
    assert pixels(z.read("002.png")).shape == (70, 50, 3)
    assert all(z.read(n)[:8] == b"\x89PNG\r\n\x1a\n" for n in ("001.png", "002.png", "003.png"))


def test_rejects_have_reasons_and_the_counts_add_up(first_run, tree):
  out, counters = first_run
  rejected = {json.loads(l)["path"]: json.loads(l)["reason"]
              for l in (out / schema.REJECTED).read_text().splitlines()}
  assert sorted(rejected) == [str(tree / "vol1" / "bad.cbz"), str(tree / "vol1" / "broken.png"),
                              str(tree / "vol1" / "ch1" / "truncated.png")]
  assert rejected[str(tree / "vol1" / "broken.png")].startswith("not a usable image")
  assert "not a readable .cbz (zip) archive" in rejected[str(tree / "vol1" / "bad.cbz")]
  assert rejected[str(tree / "vol1" / "ch1" / "truncated.png")].startswith(
      "the model refused the image")
  counts = manifest_counts(out)
  assert counts == {"inputs": 9, "coloured": 5, "kept_colour": 1, "skipped_done": 0,
                    "rejected": 3}
  assert counts["inputs"] == sum(counts[k] for k in ("coloured", "kept_colour", "skipped_done",
                                                     "rejected"))
  assert {k: counters.get(k, 0) for k in counts} == counts
  manifest = json.loads((out / schema.MANIFEST).read_text())
  assert manifest["archives_written"] == 1
  assert manifest["model"]["version_dir"].endswith("/1") and "warning" in manifest


def test_a_rerun_redoes_exactly_the_removed_outputs(export, tree, first_run, tmp_path):
  out = tmp_path / "coloured"
  shutil.copytree(first_run[0], out)
  (out / "p1.png").unlink()
  (out / "book.cbz").unlink()
  before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
  counters = run_job(export, tree, out)
  assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png") if p in before} == before
  assert (out / "p1.png").read_bytes() == (first_run[0] / "p1.png").read_bytes()
  with zipfile.ZipFile(out / "book.cbz") as z:
    assert sorted(z.namelist()) == ["001.png", "002.png", "003.png", "ComicInfo.xml"]
  counts = manifest_counts(out)
  assert counts == {"inputs": 9, "coloured": 4, "kept_colour": 0, "skipped_done": 2,
                    "rejected": 3}
  assert {k: counters.get(k, 0) for k in counts} == counts


def test_pages_are_pixel_for_pixel_what_the_client_gets(untrained_server, tree, first_run,
                                                       tmp_path):
  code = client.main([str(tree), f"--server={untrained_server.url}", "--model=koala",
                      f"--output_dir={tmp_path}", "--skip_colour_pages", "--no_progress"])
  assert code == 1                                       # the bad files
  out = first_run[0]
  for rel in ("p1.png", "vol1/ch1/p2.png", "vol1/colour.png"):
    np.testing.assert_array_equal(pixels((out / rel).read_bytes()),
                                  pixels((tmp_path / rel).read_bytes()))
  with zipfile.ZipFile(out / "book.cbz") as ours, zipfile.ZipFile(tmp_path / "book.cbz") as theirs:
    for name in ("001.png", "002.png", "003.png"):
      np.testing.assert_array_equal(pixels(ours.read(name)), pixels(theirs.read(name)))


def test_an_output_inside_the_input_tree_is_refused(tree):
  with pytest.raises(ValueError, match="inside the folder that --input reads"):
    colorize.run(["--model=unused", f"--input={tree}", f"--output_dir={tree}/coloured"])


@pytest.fixture(scope="module")
def gcs_library(emulator, export, tree):  # noqa: F811
  """The same tree and the export, uploaded to the emulator; a newer version folder without a
  saved_model.pb is there too, and must be passed over."""
  storage.upload_dir(str(tree), f"gs://{BUCKET}/library", emulator)
  storage.upload_dir(export, f"gs://{BUCKET}/models/koala", emulator)
  emulator.bucket(BUCKET).blob("models/koala/7/README").upload_from_string("half an upload")
  return f"gs://{BUCKET}/library", f"gs://{BUCKET}/models/koala"


def test_the_job_reads_and_writes_gs_on_the_emulator(emulator, gcs_library, tmp_path,  # noqa: F811
                                                     monkeypatch):
  library, model = gcs_library
  out = f"gs://{BUCKET}/coloured"
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
  (tmp_path / "tmp").mkdir()
  run_job(model, f"{library}/**", out, "--no_auth")
  assert os.listdir(tmp_path / "tmp") == []       # the model's local copy is removed once loaded
  local = tmp_path / "coloured"
  storage.download_dir(out, str(local), emulator)
  assert manifest_counts(local) == {"inputs": 9, "coloured": 5, "kept_colour": 1,
                                    "skipped_done": 0, "rejected": 3}
  assert json.loads((local / schema.MANIFEST).read_text())["model"]["version_dir"] == f"{model}/1"
  assert Image.open(local / "vol1" / "ch1" / "p2.png").size == (60, 80)
  with zipfile.ZipFile(local / "book.cbz") as z:
    assert sorted(z.namelist()) == ["001.png", "002.png", "003.png", "ComicInfo.xml"]
  rejected = [json.loads(l)["path"] for l in (local / schema.REJECTED).read_text().splitlines()]
  assert sorted(rejected) == [f"{library}/vol1/bad.cbz", f"{library}/vol1/broken.png",
                              f"{library}/vol1/ch1/truncated.png"]


def test_dataflow_job_graph_is_built_without_submitting(gcs_library):
  """With the worker image and docs/cloud.md's L4 GPU worker flags."""
  library, model = gcs_library
  image = "us-central1-docker.pkg.dev/koala-test/koala/pipeline-worker:0.1.0"
  gpu = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver;use_nvidia_mps"
  result = colorize.run([
      f"--model={model}", f"--input={library}", f"--output_dir=gs://{BUCKET}/df_coloured",
      "--runner=DataflowRunner", "--project=koala-test", "--region=us-central1",
      f"--temp_location=gs://{BUCKET}/tmp", f"--sdk_container_image={image}",
      f"--dataflow_service_options={gpu}", "--machine_type=g2-standard-8",
      "--dry_run=True", "--no_auth"])
  assert_dataflow_job(result, image, (
      "MatchFiles", "Expand", "SpreadPages", "Triage", "Colorize", "Sort", "WriteColouredPages",
      "WriteKeptPages", "GroupByArchive", "WriteArchives", "WriteRejected", "WriteManifest"))
  # A dry run fills in the job's steps, not its worker environment: the flags were taken as given.
  assert result.job.options.view_as(GoogleCloudOptions).dataflow_service_options == [gpu]
  assert result.job.options.view_as(WorkerOptions).machine_type == "g2-standard-8"


# --- shared folders: names that collide, links that lead out, names that escape -------------

def test_names_that_would_share_an_output_stop_the_job_before_it_starts(tmp_path):
  """As the client: 001.png and 001.jpg, x.png and x.PNG each get one output name, so the job
  stops before launch (before the model is even looked for), naming both of each pair."""
  tree = tmp_path / "in"
  tree.mkdir()
  for i, name in enumerate(["001.png", "001.jpg", "x.png", "x.PNG", "y.png"]):
    (tree / name).write_bytes(support.png_bytes(support.task_page(40, 30, seed=i)[0]))
  with pytest.raises(page_names.NameClash) as refused:
    colorize.run(["--model=unused", f"--input={tree}", f"--output_dir={tmp_path / 'out'}"])
  assert f"{tree}/001.jpg and {tree}/001.png (both 001.png)" in str(refused.value)
  assert f"{tree}/x.PNG and {tree}/x.png (both x.png)" in str(refused.value)
  assert not (tmp_path / "out").exists()


def test_links_out_and_cbz_entries_of_one_name_are_rejected_on_every_run(export, tmp_path):
  """A link to a page outside the input folder is rejected, not read; a .cbz whose 001.png and
  001.jpg would share a name in the coloured archive, and one holding 001.png twice, are
  rejected naming both; the rerun rejects them again (none is ever taken as done)."""
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  (elsewhere / "page.png").write_bytes(support.png_bytes(support.task_page(40, 30, seed=9)[0]))
  tree = tmp_path / "in"
  tree.mkdir()
  page = support.png_bytes(support.task_page(40, 30, seed=1)[0])
  (tree / "own.png").write_bytes(page)
  (tree / "leaves.png").symlink_to(elsewhere / "page.png")
  with zipfile.ZipFile(tree / "clash.cbz", "w") as z:
    z.writestr("001.png", page)
    z.writestr("001.jpg", _jpeg(support.task_page(40, 30, seed=2)[0]))
  with zipfile.ZipFile(tree / "twice.cbz", "w") as z, pytest.warns(UserWarning):
    z.writestr("001.png", page)
    z.writestr("001.png", page)
  out = tmp_path / "out"
  for done in (0, 1):
    counters = run_job(export, tree, out)
    rejected = {json.loads(l)["path"]: json.loads(l)["reason"]
                for l in (out / schema.REJECTED).read_text().splitlines()}
    assert sorted(rejected) == [str(tree / n) for n in ("clash.cbz", "leaves.png", "twice.cbz")]
    assert rejected[str(tree / "leaves.png")].startswith(
        f"a symbolic link to {elsewhere / 'page.png'}, outside the input folder")
    assert "001.png and 001.jpg (both 001.png)" in rejected[str(tree / "clash.cbz")]
    assert "two entries named '001.png' and '001.png'" in rejected[str(tree / "twice.cbz")]
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith((".json", ".jsonl"))) \
        == ["own.png"]
    assert manifest_counts(out) == {"inputs": 4, "coloured": 1 - done, "kept_colour": 0,
                                    "skipped_done": done, "rejected": 3}
    assert counters.get(colorize.REJECTED) == 3


def test_object_names_that_escape_their_folder_are_refused(tmp_path):
  """Cloud Storage object names are free strings, 'library/a/../../x.png' among them (the
  emulator refuses to store such names, so the rule is checked on the names): the job rejects
  such an input rather than write <output_dir>/../x.png, and a model copy refuses such a file
  rather than write outside its folder."""
  reason = colorize.not_read("gs://b/library/a/../../x.png", "a/../../x.png", "gs://b/library")
  assert reason.startswith("a/../../x.png: '..' in the path, refused")
  assert colorize.not_read("gs://b/library/a/x.png", "a/x.png", "gs://b/library") is None
  for rel in ("../x", "a/../../x", "/etc/x"):
    with pytest.raises(ValueError, match="refused"):
      storage.local_path(str(tmp_path), rel, f"gs://b/models/1/{rel}")
  assert storage.local_path(str(tmp_path), "variables/v.index", "gs://b/m") == \
      str(tmp_path / "variables" / "v.index")
