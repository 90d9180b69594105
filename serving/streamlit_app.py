"""`streamlit run serving/streamlit_app.py`: try Koala on your own pages in a browser.

Upload pages (PNG, JPEG, WebP, BMP, GIF) or .cbz archives, pick a model (an export run in this
process, or a model on a TF Serving server), and get the gray input and the colour output side
by side, with the PNG or the coloured .cbz to download.

With a guided model (`trainer.task --hints`), the user can steer the colours: click on a page to
place colour dots (pick the colour; undo, clear), and/or upload a reference image whose palette
is used for every page; then Colorize again. The dots become the hint image `colorize_guided`
takes (`serving.hint_dots`); the click component is streamlit-image-coordinates.

Which models a visitor may pick is the operator's choice (`serving.web_config`: environment
variables KOALA_MODEL_PATH, KOALA_MODELS_ROOT, KOALA_SERVER, KOALA_MODEL_NAME, KOALA_LOCAL, or
options after `--`): by default the page is shared, offers lists, and no text a visitor types
reaches `tf.saved_model.load` or an HTTP request. `--local` gives the free fields back to
someone running the page for themself on a loopback address.

Why it is thin: the colouring is `serving.inference.load` (in-process SavedModel) or
`serving.client.RestColorizer` (TF Serving REST), and folders, archives and the colour-page skip
are `serving.pages`, the code the command-line client and the batch tool run; one press of
Colorize, within the operator's caps, is `serving.web_runs`. What this file adds is the page,
and turning every failure into a sentence. Nothing the user does should show a traceback.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import sys

import streamlit as st

# `streamlit run` puts serving/ on sys.path, not the repository: make `serving.*` importable
# from a clone that was not pip-installed too.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from koala.images import DEFAULT_MAX_PIXELS as MAX_PIXELS  # noqa: E402  (the export's default cap)
from koala.images import FORMAT_NAMES, PAGE_EXTENSIONS  # noqa: E402
from trainer.export import signatures  # noqa: E402
from serving import web_config, web_runs  # noqa: E402
from serving.web_runs import PREVIEW_WIDTH, UserError, first_line  # noqa: E402

LOCAL = "Local SavedModel directory"
REST = "TF Serving URL"
PAGE_TYPES = [ext.lstrip(".") for ext in PAGE_EXTENSIONS] + ["cbz"]
IMAGE_TYPES = PAGE_TYPES[:-1]
DEFAULT_HINT_COLOUR = "#D03030"
HINTS = "koala_hints"            # session state: page key -> list of hint_dots.Dot
RESULTS = "koala_results"
DEFAULT_SERVER = "http://localhost:8501"   # the local mode's suggestion


@dataclasses.dataclass(frozen=True)
class Choice:
  """The model a run uses: where it runs, and what to call it on the page."""
  source: str                   # LOCAL or REST
  shown: str                    # the name the page shows (a label in shared mode)
  path: str = ""                # LOCAL: the export
  server: str = ""              # REST
  model_name: str = ""


def operator_config() -> web_config.WebConfig:
  """The operator's configuration: options after `--` of `streamlit run` (sys.argv holds them
  only when this file is the script being run), then the environment."""
  argv = sys.argv[1:] if os.path.abspath(sys.argv[0]) == os.path.abspath(__file__) else []
  try:
    config = web_config.from_operator(argv, os.environ, st.get_option("server.address"))
  except web_config.ConfigError as e:
    web_config.log_once(f"configuration error: {e}")
    st.error(f"This page is not set up correctly: {e}")
    st.stop()
  for note in config.notes:
    web_config.log_once(note)
  return config


def model_sidebar(config: web_config.WebConfig) -> Choice:
  """The sidebar's model picker: lists of what the operator allowed (shared), or free fields
  (local mode). Widget values from the session are used only if they are in the lists."""
  if config.local:
    source = st.radio("Where the model runs", [LOCAL, REST], key="source")
    if source == LOCAL:
      path = st.text_input("SavedModel directory", value=next(iter(config.exports.values()), ""),
                           key="model_path",
                           help="An export's base folder (the newest version is used) or one "
                                "version folder. `make demo` exports demo_out/models/koala.")
      return Choice(LOCAL, path.strip(), path=os.path.expanduser(path.strip()))
    server = st.text_input("TF Serving URL", key="server",
                           value=(config.servers or (DEFAULT_SERVER,))[0]).strip()
    name = st.text_input("Model name", key="model_name",
                         value=config.model_names[0]).strip() or "koala"
    return Choice(REST, f"{name} on {server}", server=server, model_name=name)
  sources = [LOCAL] * bool(config.exports) + [REST] * bool(config.targets)
  if not sources:
    st.error("No model is set up for this page: its operator lists none.")
    st.stop()
  allowed = {"source": sources, "model_choice": list(config.exports),
             "server_choice": list(config.targets)}
  for key, values in allowed.items():   # a session may hold anything under a widget's key
    if key in st.session_state and st.session_state[key] not in values:
      del st.session_state[key]
  source = st.radio("Where the model runs", sources, key="source") if len(sources) > 1 \
      else sources[0]
  if source == LOCAL:
    label = st.selectbox("Model", list(config.exports), key="model_choice")
    return Choice(LOCAL, label, path=config.exports[label])
  label = st.selectbox("Model on a TF Serving server", list(config.targets), key="server_choice")
  server, name = config.targets[label]
  return Choice(REST, label, server=server, model_name=name)


def make_colorizer(choice: Choice, local: bool):
  """-> (colorize(bytes, hints=None, reference=None) -> PNG bytes, notes to show, whether the
  model takes guidance), after checking that the model is there. In shared mode, messages name
  the model by its label, and the operator's folders only in the log."""
  from serving import client, exports, inference
  if choice.source == LOCAL:
    if not choice.path:
      raise UserError("Enter the folder of an exported SavedModel (python -m trainer.export "
                      "writes models/koala/<version>/).")
    try:
      colorize = inference.load(choice.path)
    except FileNotFoundError as e:
      if local:
        raise UserError(str(e)) from None
      print(f"koala page: model {choice.shown!r}: {e}", file=sys.stderr)
      raise UserError(f"The model {choice.shown!r} is not available: no SavedModel in its "
                      "folder yet (the page's log names the folder).") from None
    except Exception as e:   # a folder that is not a (loadable) SavedModel
      raise UserError(f"could not load the SavedModel {choice.shown}: {type(e).__name__}: "
                      f"{first_line(e)}") from None
    guided = signatures.COLORIZE_GUIDED in exports.load_model(choice.path).signatures
    version_dir = exports.resolve_version_dir(choice.path)
    return colorize, export_notes(version_dir, version_dir if local else choice.shown), guided
  try:
    colorize = client.RestColorizer(choice.server, choice.model_name, retries=2, timeout=120)
    versions = colorize.check()
    guided = signatures.COLORIZE_GUIDED in colorize.signatures()
  except client.ClientError as e:
    raise UserError(str(e)) from None
  return colorize, [f"Served by {choice.server}, model {choice.model_name}, version {versions}. "
                    "If its embedder had random weights (the offline demo's), the colours mean "
                    "nothing for real manga."], guided


def export_notes(version_dir: str, shown: str) -> list[str]:
  """What the export's provenance file says the user must know: above all, random weights."""
  from trainer.export import info as export_info
  try:
    info = export_info.read(version_dir)
  except (OSError, ValueError):
    return [f"{shown} has no readable {export_info.PATH}: which embedder it holds is unknown."]
  if info.random_weights:
    return [f"The embedder inside {shown} has RANDOM weights (an offline demo or test model): "
            "it colours the generated demo scenes, but its colours mean nothing for real "
            "manga."]
  return []


def _uploads_key(uploads, choice: Choice, skip_colour, guidance=()) -> str:
  h = hashlib.sha256()
  for name, data in uploads:
    h.update(name.encode())
    h.update(hashlib.sha256(data).digest())
  h.update(repr((choice, skip_colour, guidance)).encode())
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
    raise UserError(f"the reference image is not an image Koala can read: {first_line(e)}") \
        from None
  if images.decoded_pixels(reference, height, width) > MAX_PIXELS:
    raise UserError(f"the reference image is too large: {width} x {height}; the limit is "
                    f"{MAX_PIXELS / 1e6:.0f} Mpx.")


def upload_guidance(uploads, reference: bytes | None) -> web_runs.UploadGuidance:
  """The placed dots of each uploaded page as hint images, and the reference."""
  from serving import hint_dots
  hints = {}
  for i, (name, data) in enumerate(uploads):
    dots = st.session_state.get(HINTS, {}).get(page_key(name, data))
    page = _page_image(data) if dots else None
    if page is not None:
      hints[i] = hint_dots.hint_png(page.height, page.width, dots)
  return web_runs.UploadGuidance(hints, reference)


def show(results: list[web_runs.Output]) -> None:
  for n, result in enumerate(results):
    st.subheader(result.name)
    for error in result.errors:
      st.error(error)
    if result.is_archive and result.previews:
      total = result.pages_total
      if total > len(result.previews):
        st.caption(f"Showing the first {len(result.previews)} of {total} pages; the download "
                   "holds them all.")
    for page, before, after in result.previews:
      left, right = st.columns(2)
      # Previews made at most PREVIEW_WIDTH wide (serving.web_runs), PNG: JPEG would smear the
      # line art being shown off; the download is full size.
      left.image(before, caption=f"{page}: input", width=PREVIEW_WIDTH, output_format="PNG")
      right.image(after, caption=f"{page}: Koala's colour", width=PREVIEW_WIDTH,
                  output_format="PNG")
    if result.download is not None:
      st.download_button(
          "Download .cbz" if result.is_archive else "Download PNG", data=result.download,
          file_name=result.download_name,
          mime="application/vnd.comicbook+zip" if result.is_archive else "image/png",
          key=f"download-{n}", on_click="ignore")


def colorize_run(config, choice: Choice, uploads, guidance, skip_colour: bool, reference):
  """One press of Colorize: wait for this process's turn, then load and run, with progress."""
  status = st.empty()

  def waiting(others: int) -> None:
    status.info(f"Another run is colouring pages on this server; yours starts when it ends "
                f"({others} other{'s' if others != 1 else ''} waiting too).")
  with web_runs.RUNS.turn(waiting):
    status.empty()
    with st.spinner(f"Colouring {len(uploads)} file(s)..."):
      colorize, notes, guided = make_colorizer(choice, config.local)
      check_reference(reference)
      if guidance and not guided:
        raise UserError("This model takes no hints or reference image (it has no "
                        f"{signatures.COLORIZE_GUIDED} signature): train one with `python -m "
                        "trainer.task --hints` and export it, or clear the dots and the "
                        "reference.")
      bar = st.progress(0.0, text="Colouring...")
      results = web_runs.colorize_uploads(
          uploads, colorize, config.caps, skip_colour=skip_colour,
          guidance=guidance if guidance else None,
          on_page=lambda done, total: bar.progress(done / total,
                                                   text=f"Coloured {done} of {total} pages"))
  return notes, results


def main() -> None:
  st.set_page_config(page_title="Koala manga colorizer", layout="wide")
  st.title("Koala: colour manga pages")
  config = operator_config()
  with st.sidebar:
    st.header("Model")
    choice = model_sidebar(config)
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
  key = _uploads_key(uploads, choice, skip_colour, guidance_key)
  if st.button("Colorize", type="primary", disabled=not uploads, key="colorize"):
    st.session_state.pop(RESULTS, None)
    try:
      notes, results = colorize_run(config, choice, uploads, guidance, skip_colour, reference)
      st.session_state[RESULTS] = (key, notes, results)
    except UserError as e:
      st.error(str(e))
    except Exception as e:   # anything unforeseen still reads as a sentence
      st.error(f"Something went wrong: {type(e).__name__}: {first_line(e)}")
  stored = st.session_state.get(RESULTS)
  if stored and stored[0] == key:
    for note in stored[1]:
      st.warning(note)
    show(stored[2])
  else:
    st.session_state.pop(RESULTS, None)    # results of other uploads: not kept in memory
    if not uploads:
      st.info("Upload one or more gray pages or a .cbz archive, then press Colorize.")


main()
