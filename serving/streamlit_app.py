"""`streamlit run serving/streamlit_app.py`: try Koala on your own pages in a browser.

Upload pages (PNG, JPEG, WebP, BMP, GIF) or .cbz archives, pick a model (an exported SavedModel
folder, run in this process, or a TF Serving URL), and get the gray input and the colour output
side by side, with the PNG or the coloured .cbz to download.

With a guided model (`trainer.task --hints`), the user can steer the colours: click on a page to
place colour dots (pick the colour; undo, clear), and/or upload a reference image whose palette
is used for every page; then Colorize again. The dots become the hint image `colorize_guided`
takes (`serving.hint_dots`); the click component is streamlit-image-coordinates.

Why it is thin: the colouring itself is `serving.inference.load` (in-process SavedModel) or
`serving.client.RestColorizer` (TF Serving REST), and folders, archives and the colour-page skip
are `serving.pages`, the same code the command-line client and the batch tool run, so the page
cannot drift from them. What this file adds is the page, and turning every failure into a
sentence: a server that does not answer, a file that is not an image, a page too large, a model
folder that is not there. Nothing the user does should show a traceback.

Defaults come from the environment, for the tests and the demo: KOALA_MODEL_PATH (the SavedModel
folder; else demo_out/models/koala, what `make demo` exports), KOALA_SERVER (else
http://localhost:8501), KOALA_MODEL_NAME (else koala).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import sys
import tempfile

import streamlit as st

# `streamlit run` puts serving/ on sys.path, not the repository: make `serving.*` importable
# from a clone that was not pip-installed too.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from koala.images import DEFAULT_MAX_PIXELS as MAX_PIXELS  # noqa: E402  (the export's default cap)
from koala.images import FORMAT_NAMES, PAGE_EXTENSIONS  # noqa: E402
from koala import signatures  # noqa: E402

LOCAL = "Local SavedModel directory"
REST = "TF Serving URL"
PAGE_TYPES = [ext.lstrip(".") for ext in PAGE_EXTENSIONS] + ["cbz"]
IMAGE_TYPES = PAGE_TYPES[:-1]
DEFAULT_HINT_COLOUR = "#D03030"
HINTS = "koala_hints"            # session state: page key -> list of hint_dots.Dot
MAX_PREVIEW_PAGES = 8            # pages of a .cbz shown side by side (all are coloured)
PREVIEW_WIDTH = 420              # pixels
RESULTS = "koala_results"


@dataclasses.dataclass
class Output:
  """What became of one uploaded file."""
  name: str
  is_archive: bool
  inputs: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)    # (page, bytes)
  outputs: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)   # (page, PNG)
  download: bytes | None = None          # the coloured PNG or .cbz
  download_name: str = ""
  errors: list[str] = dataclasses.field(default_factory=list)
  pages_total: int = 0                   # pages in an archive (only some are previewed)


class UserError(Exception):
  """A failure the user can act on; the message is shown as it is."""


def default_model_path() -> str:
  return os.environ.get("KOALA_MODEL_PATH", os.path.join("demo_out", "models", "koala"))


def make_colorizer(source: str, model_path: str, server: str, model_name: str):
  """-> (colorize(bytes, hints=None, reference=None) -> PNG bytes, notes to show, whether the
  model takes guidance), after checking that the model is there."""
  from serving import client, inference
  if source == LOCAL:
    path = os.path.expanduser(model_path.strip())
    if not path:
      raise UserError("Enter the folder of an exported SavedModel (python -m trainer.export "
                      "writes models/koala/<version>/).")
    try:
      colorize = inference.load(path)
    except FileNotFoundError as e:
      raise UserError(str(e)) from None
    except Exception as e:   # a folder that is not a (loadable) SavedModel
      raise UserError(f"could not load a SavedModel from {path}: {type(e).__name__}: "
                      f"{_first_line(e)}") from None
    guided = signatures.COLORIZE_GUIDED in inference.load_model(path).signatures
    return colorize, export_notes(inference.resolve_version_dir(path)), guided
  else:
    if not server.strip():
      raise UserError("Enter the URL of a TF Serving REST endpoint, e.g. http://localhost:8501")
    colorize = client.RestColorizer(server.strip(), model_name.strip() or "koala", retries=2,
                                    timeout=120)
    try:
      versions = colorize.check()
      guided = signatures.COLORIZE_GUIDED in colorize.signatures()
    except client.ClientError as e:
      raise UserError(str(e)) from None
    return colorize, [f"Served by {server.strip()}, model {model_name or 'koala'}, version "
                      f"{versions}. If its embedder had random weights (the offline demo's), the "
                      "colours mean nothing for real manga."], guided


def export_notes(version_dir: str) -> list[str]:
  """What the export's provenance file says the user must know: above all, random weights."""
  import json
  try:
    with open(os.path.join(version_dir, "assets.extra", "koala_export.json")) as f:
      info = json.load(f)
  except (OSError, ValueError):
    return [f"{version_dir} has no readable assets.extra/koala_export.json: which embedder it "
            "holds is unknown."]
  embedder = info.get("embedder") or {}
  if embedder.get("random_weights"):
    return [f"The embedder inside {version_dir} has RANDOM weights (an offline demo or test "
            "model): it colours the generated demo scenes, but its colours mean nothing for "
            "real manga."]
  return []


def checked(colorize):
  """Refuses what is not an image, or is too large, before it costs a model call."""
  from koala import images

  def run(data: bytes, **guidance) -> bytes:
    try:
      height, width = images.image_size(data)
    except images.ImageError as e:
      raise UserError(f"not an image Koala can read: {_first_line(e)}") from None
    pixels = images.decoded_pixels(data, height, width)   # all of a GIF's frames count
    if pixels > MAX_PIXELS:
      frames = "" if pixels == height * width else " in all its GIF frames"
      raise UserError(f"page too large: {width} x {height}{frames} = {pixels / 1e6:.0f} Mpx; "
                      f"the limit is {MAX_PIXELS / 1e6:.0f} Mpx. Scale it down and try again.")
    try:
      return colorize(data, **guidance)
    except UserError:
      raise
    except Exception as e:   # the model's or the server's refusal, as one readable line
      raise UserError(_first_line(e)) from None
  return run


def _first_line(e: Exception) -> str:
  """The first line of an error, without Python object addresses (<_io.BytesIO at 0x...>)."""
  text = re.sub(r"<[\w.]+ object at 0x[0-9a-fA-F]+>", "the file", str(e).strip())
  return (text or type(e).__name__).splitlines()[0][:500]


class UploadGuidance:
  """serving.pages' guidance for uploads: hint images by upload folder, one reference."""

  def __init__(self, hints: dict[int, bytes], reference: bytes | None):
    self.hints = hints              # upload index -> hint PNG
    self.reference = reference
    self.in_dir = ""

  def __bool__(self) -> bool:
    return bool(self.hints) or self.reference is not None

  def for_page(self, source: str) -> dict:
    folder = os.path.relpath(source, self.in_dir).split(os.sep)[0]
    return {"hints": self.hints.get(int(folder)) if folder.isdigit() else None,
            "reference": self.reference}


def colorize_uploads(uploads: list[tuple[str, bytes]], colorize, *, skip_colour: bool = False,
                     guidance: UploadGuidance | None = None) -> list[Output]:
  """Colours every uploaded page and archive through serving.pages (as the client does)."""
  from serving import pages
  results = []
  with tempfile.TemporaryDirectory(prefix="koala-streamlit-") as tmp:
    in_dir, out_dir = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    for i, (name, data) in enumerate(uploads):
      # Each upload in its own folder: two uploads may share a name.
      folder = os.path.join(in_dir, f"{i:03d}")
      os.makedirs(folder)
      safe = os.path.basename(name) or f"upload{i}"
      with open(os.path.join(folder, safe), "wb") as f:
        f.write(data)
    jobs, problems = pages.find_jobs([in_dir], out_dir)
    if guidance is not None:
      guidance.in_dir = in_dir
    report = pages.run(jobs, checked(colorize), concurrency=1, skip_colour=skip_colour,
                       overwrite=True, progress=False, guidance=guidance)
    by_source = {job.source: job for job in jobs}
    for i, (name, data) in enumerate(uploads):
      source = os.path.join(in_dir, f"{i:03d}", os.path.basename(name) or f"upload{i}")
      job = by_source.get(source)
      result = Output(name=name, is_archive=name.lower().endswith(".cbz"))
      results.append(result)
      if job is None:
        result.errors.append(f"{name}: not a page ({', '.join(pages.IMAGE_EXTENSIONS)}) or a "
                             ".cbz archive")
        continue
      for label, reason in sorted(report.failed.items()):
        if label == source or label.startswith(source + "!"):
          page = label.split("!", 1)[1] if "!" in label else name
          named = page == name or reason.startswith(f"{page}: ")   # koala.archives names it
          result.errors.append(reason if named else f"{page}: {reason}")
      if job.is_archive:
        _collect_archive(job, result)
      else:
        _collect_page(job, data, result, report)
  return results


def _collect_page(job, data: bytes, result: Output, report) -> None:
  out = [p for p in report.done if os.path.splitext(p)[0] == os.path.splitext(job.output)[0]]
  if not out:
    return
  with open(out[0], "rb") as f:
    coloured = f.read()
  result.inputs = [(result.name, data)]
  result.outputs = [(result.name, coloured)]
  stem, ext = os.path.splitext(os.path.basename(result.name))
  kept = out[0] != job.output            # a colour page kept as it was (skip_colour)
  result.download = coloured
  result.download_name = f"{stem}_koala{ext if kept else '.png'}"


def _collect_archive(job, result: Output) -> None:
  """The first pages, before and after, through the guarded archive reader (koala.archives)."""
  from koala import archives
  if not os.path.exists(job.output):
    return
  with open(job.output, "rb") as f:
    result.download = f.read()
  result.download_name = os.path.splitext(os.path.basename(result.name))[0] + "_koala.cbz"
  shown = job.entries[:MAX_PREVIEW_PAGES]
  names = {m.name for m in archives.members(job.output)}
  out_names = {e: (os.path.splitext(e)[0] + ".png" if os.path.splitext(e)[0] + ".png" in names
                   else e) for e in shown}
  before = {e.name: e.data for e in archives.iter_entries(job.source, names=shown)}
  after = {e.name: e.data for e in archives.iter_entries(job.output, names=out_names.values())}
  for entry in shown:
    if before.get(entry) is not None and after.get(out_names[entry]) is not None:
      result.inputs.append((entry, before[entry]))
      result.outputs.append((entry, after[out_names[entry]]))
  result.pages_total = len(job.entries)


def _uploads_key(uploads, source, model_path, server, model_name, skip_colour,
                 guidance=()) -> str:
  h = hashlib.sha256()
  for name, data in uploads:
    h.update(name.encode())
    h.update(hashlib.sha256(data).digest())
  h.update(repr((source, model_path, server, model_name, skip_colour, guidance)).encode())
  return h.hexdigest()


def page_key(name: str, data: bytes) -> str:
  """Hint dots belong to one uploaded page: its name and content."""
  return f"{name}:{hashlib.sha256(data).hexdigest()[:16]}"


def dots_of(key: str) -> list:
  return st.session_state.setdefault(HINTS, {}).setdefault(key, [])


def _page_image(data: bytes):
  """The uploaded page as a PIL image, upright as the model colours it (EXIF orientation), so
  hint dots land where they are clicked; or None when it cannot be shown (the Colorize run
  reports why)."""
  from PIL import Image
  from koala import images
  try:
    height, width = images.image_size(data)
    if images.decoded_pixels(data, height, width) > MAX_PIXELS:
      return None
    img = Image.open(io.BytesIO(data))
    img.load()
    return images.upright(img, data)
  except Exception:
    return None


def hint_editor(uploads: list[tuple[str, bytes]], colour: str) -> None:
  """Click-to-place colour dots on one uploaded page at a time (undo, clear)."""
  from PIL import Image
  from streamlit_image_coordinates import streamlit_image_coordinates
  from serving import hint_dots
  singles = [(i, name, data) for i, (name, data) in enumerate(uploads)
             if not name.lower().endswith(".cbz")]
  if not singles:
    return
  st.subheader("Colour hints (optional)")
  labels = [f"{name}" for _, name, _ in singles]
  choice = 0 if len(singles) == 1 else st.selectbox(
      "Page to place hints on", range(len(singles)), format_func=lambda i: labels[i],
      key="hint_page")
  index, name, data = singles[choice]
  page = _page_image(data)
  if page is None:
    return
  key = page_key(name, data)
  dots = dots_of(key)
  canvas = f"hint_canvas_{index}"

  def on_click():
    value = st.session_state.get(canvas)
    if not value:
      return
    scale_x, scale_y = page.width / value["width"], page.height / value["height"]
    x = min(page.width - 1, int(value["x"] * scale_x))
    y = min(page.height - 1, int(value["y"] * scale_y))
    dots_of(key).append(hint_dots.Dot.from_hex(x, y, st.session_state.get("hint_colour",
                                                                           colour)))

  st.caption("Click on the page to place a dot of the hint colour (sidebar); the model spreads "
             "it over the region up to the lines. Then press Colorize.")
  preview = hint_dots.with_dots(page, dots)
  if preview.width > 2 * PREVIEW_WIDTH:   # an A4 page would be megabytes to the browser per click
    preview = preview.resize((2 * PREVIEW_WIDTH, round(preview.height * 2 * PREVIEW_WIDTH /
                                                       preview.width)), Image.Resampling.BOX)
  streamlit_image_coordinates(preview, width=PREVIEW_WIDTH, key=canvas, on_click=on_click,
                              cursor="crosshair", png_compression_level=1)
  left, middle, right = st.columns([2, 1, 1])
  left.write(f"{len(dots)} hint dot{'s' if len(dots) != 1 else ''} on {name}")
  middle.button("Undo last dot", key="undo_dot", disabled=not dots,
                on_click=lambda: dots_of(key).pop() if dots_of(key) else None)
  right.button("Clear dots", key="clear_dots", disabled=not dots,
               on_click=lambda: dots_of(key).clear())


def check_reference(reference: bytes | None) -> None:
  from koala import images
  if reference is None:
    return
  try:
    height, width = images.image_size(reference)
  except images.ImageError as e:
    raise UserError(f"the reference image is not an image Koala can read: {_first_line(e)}") \
        from None
  if images.decoded_pixels(reference, height, width) > MAX_PIXELS:
    raise UserError(f"the reference image is too large: {width} x {height}; the limit is "
                    f"{MAX_PIXELS / 1e6:.0f} Mpx.")


def upload_guidance(uploads, reference: bytes | None) -> UploadGuidance:
  """The placed dots of each uploaded page as hint images, and the reference."""
  from serving import hint_dots
  hints = {}
  for i, (name, data) in enumerate(uploads):
    dots = st.session_state.get(HINTS, {}).get(page_key(name, data))
    page = _page_image(data) if dots else None
    if page is not None:
      hints[i] = hint_dots.hint_png(page.height, page.width, dots)
  return UploadGuidance(hints, reference)


def show(results: list[Output]) -> None:
  for n, result in enumerate(results):
    st.subheader(result.name)
    for error in result.errors:
      st.error(error)
    if result.is_archive and result.outputs:
      total = result.pages_total
      if total > len(result.outputs):
        st.caption(f"Showing the first {len(result.outputs)} of {total} pages; the download "
                   "holds them all.")
    for (page, before), (_, after) in zip(result.inputs, result.outputs):
      left, right = st.columns(2)
      # PNG previews (JPEG would smear the line art being shown off), small enough that a
      # portrait page and its caption fit on a screen; the download is full size.
      left.image(before, caption=f"{page}: input", width=PREVIEW_WIDTH, output_format="PNG")
      right.image(after, caption=f"{page}: Koala's colour", width=PREVIEW_WIDTH,
                  output_format="PNG")
    if result.download is not None:
      st.download_button(
          "Download .cbz" if result.is_archive else "Download PNG", data=result.download,
          file_name=result.download_name,
          mime="application/vnd.comicbook+zip" if result.is_archive else "image/png",
          key=f"download-{n}", on_click="ignore")


def main() -> None:
  st.set_page_config(page_title="Koala manga colorizer", layout="wide")
  st.title("Koala: colour manga pages")
  with st.sidebar:
    st.header("Model")
    source = st.radio("Where the model runs", [LOCAL, REST], key="source")
    model_path = server = model_name = ""
    if source == LOCAL:
      model_path = st.text_input("SavedModel directory", value=default_model_path(),
                                 key="model_path",
                                 help="An export's base folder (the newest version is used) or "
                                      "one version folder. `make demo` exports demo_out/models/koala.")
    else:
      server = st.text_input("TF Serving URL", key="server",
                             value=os.environ.get("KOALA_SERVER", "http://localhost:8501"))
      model_name = st.text_input("Model name", key="model_name",
                                 value=os.environ.get("KOALA_MODEL_NAME", "koala"))
    skip_colour = st.checkbox("Keep pages that are already in colour", key="skip_colour")
    st.header("Guidance")
    st.caption("For a model trained with hints (trainer.task --hints).")
    hint_colour = st.color_picker("Hint colour", DEFAULT_HINT_COLOUR, key="hint_colour")
    reference_file = st.file_uploader("Reference image: its palette steers every page",
                                      type=IMAGE_TYPES, key="reference")
    reference = reference_file.getvalue() if reference_file is not None else None

  files = st.file_uploader(f"Pages ({FORMAT_NAMES.replace(' or', ',')}) or .cbz archives",
                           type=PAGE_TYPES, accept_multiple_files=True, key="uploads")
  uploads = [(f.name, f.getvalue()) for f in files or []]
  hint_editor(uploads, hint_colour)
  guidance = upload_guidance(uploads, reference)
  guidance_key = (sorted((i, hashlib.sha256(h).hexdigest()) for i, h in guidance.hints.items()),
                  reference and hashlib.sha256(reference).hexdigest())
  key = _uploads_key(uploads, source, model_path, server, model_name, skip_colour, guidance_key)
  if st.button("Colorize", type="primary", disabled=not uploads, key="colorize"):
    st.session_state.pop(RESULTS, None)
    try:
      with st.spinner(f"Colouring {len(uploads)} file(s)..."):
        colorize, notes, guided = make_colorizer(source, model_path, server, model_name)
        check_reference(reference)
        if guidance and not guided:
          raise UserError("This model takes no hints or reference image (it has no "
                          f"{signatures.COLORIZE_GUIDED} signature): train one with `python -m "
                          "trainer.task --hints` and export it, or clear the dots and the "
                          "reference.")
        results = colorize_uploads(uploads, colorize, skip_colour=skip_colour,
                                   guidance=guidance if guidance else None)
      st.session_state[RESULTS] = (key, notes, results)
    except UserError as e:
      st.error(str(e))
    except Exception as e:   # anything unforeseen still reads as a sentence
      st.error(f"Something went wrong: {type(e).__name__}: {_first_line(e)}")
  stored = st.session_state.get(RESULTS)
  if stored and stored[0] == key:
    for note in stored[1]:
      st.warning(note)
    show(stored[2])
  elif not uploads:
    st.info("Upload one or more gray pages or a .cbz archive, then press Colorize.")


main()
