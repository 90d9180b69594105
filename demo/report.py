"""The demo's before/after report: one PNG grid (gray page | Koala's colour, and with a guided
model also | with a few hints, dots drawn on | with a reference palette; then | the truth, the
page's colour original, when there is one) and an HTML page.

Why the truth next to them: the pages are manga renderings of generated scenes, so a person can
see what the model could not know from the page (a cell of white paper may be a yellow sun or a
cream wall) and that the dots, on bare paper in colours the automatic result lacks there, put
colour where it would otherwise stay white.

Why both: the PNG is what the README shows and what fits in a chat message; the HTML page adds
what a picture cannot carry honestly: the full-size pages, the scores next to the two baselines
(gray and mean colour, docs/SPEC.md), the training curves and which embedder made it all. When the
embedder had random weights, both say so in red, because the colours then come from the
local encoder alone and mean nothing for real manga.
"""
from __future__ import annotations

import dataclasses
import html
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

THUMB_HEIGHT = 320
PAIRS_PER_ROW = 2
GAP = 16
BACKGROUND = (250, 250, 247)
INK = (20, 20, 20)
WARNING_RED = (190, 20, 20)
METRICS = (("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"), ("auc", "AuC", "{:.3f}"),
           ("colorfulness", "colourfulness", "{:.1f}"), ("mse", "MSE (ab/128)", "{:.4f}"),
           ("keras_accuracy", "Keras 'accuracy'", "{:.3f}"))


@dataclasses.dataclass
class Page:
  name: str
  gray_path: str
  colour_path: str | None          # None: the page failed; `error` says why
  error: str | None = None
  hinted_path: str | None = None   # coloured with a few hint dots (guided model)
  dots: list = dataclasses.field(default_factory=list)   # serving.hint_dots.Dot, page pixels
  reference_path: str | None = None   # coloured with a reference image's palette
  guided: bool = False             # the guided panels are shown (a placeholder if one failed)
  truth_path: str | None = None    # the page's colour original, shown last when given


@dataclasses.dataclass
class ReportInfo:
  title: str
  random_embedder: bool
  embedder_text: str               # e.g. the embedder identity, or the manifest's warning
  config_text: str                 # one line: data and training sizes
  metrics: dict | None = None      # trainer.evaluate's metrics.json, when it ran
  links: dict[str, str] = dataclasses.field(default_factory=dict)   # label -> path
  commands: list[str] = dataclasses.field(default_factory=list)


def _font(size: int) -> ImageFont.ImageFont:
  try:
    return ImageFont.load_default(size=size)
  except TypeError:   # Pillow without FreeType: the fixed bitmap font
    return ImageFont.load_default()


def _thumb(path: str, height: int = THUMB_HEIGHT, dots=()) -> Image.Image:
  with Image.open(path) as img:
    img = img.convert("RGB")
    if dots:
      from serving import hint_dots
      img = hint_dots.with_dots(img, dots)
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.Resampling.BOX)   # area: no moire from screentone


def _placeholder(width: int, height: int, text: str) -> Image.Image:
  img = Image.new("RGB", (width, height), (235, 225, 225))
  ImageDraw.Draw(img).multiline_text((10, 10), _wrap(text, 30), fill=WARNING_RED, font=_font(14))
  return img


def _wrap(text: str, width: int) -> str:
  import textwrap
  return "\n".join(textwrap.wrap(text, width)[:12])


def _pair(page: Page) -> Image.Image:
  """gray | colour (| with hints | with a reference), with their captions above."""
  gray = _thumb(page.gray_path)
  panels = [(f"{page.name}: manga page", gray)]

  def panel(caption, path, error="no output", dots=()):
    panels.append((caption, _thumb(path, dots=dots) if path else
                   _placeholder(gray.width, gray.height, f"failed: {error}")))
  panel("automatic" if page.guided else "Koala's colour", page.colour_path,
        page.error or "no output")
  if page.guided:
    panel(f"with {len(page.dots)} dots on paper", page.hinted_path, dots=page.dots)
    panel("reference palette", page.reference_path)
  if page.truth_path:
    panel("truth (colour original)", page.truth_path)
  caption_h = 26
  pair = Image.new("RGB", (sum(p.width for _, p in panels) + 4 * (len(panels) - 1),
                           gray.height + caption_h), BACKGROUND)
  draw = ImageDraw.Draw(pair)
  font = _font(15)
  x = 0
  for caption, img in panels:
    pair.paste(img, (x, caption_h))
    draw.text((x + 2, 4), caption, fill=INK, font=font)
    x += img.width + 4
  return pair


def predictors(metrics: dict) -> dict:
  """{name: scores} of metrics.json: the plain evaluation's "predictors", or for the guided
  evaluation (`rows` by hint count, `baselines` beside them) the automatic row (0 hints) with
  the gray and mean-colour baselines, so the report shows the same comparison either way."""
  if "predictors" in metrics:
    return metrics["predictors"]
  rows = [r for r in metrics.get("rows", []) if r.get("hints") == 0]
  found = dict(rows[0]["predictors"]) if rows else {}
  found = {k: v for k, v in found.items() if k == "model"}
  for name in ("gray", "mean_colour"):
    if name in metrics.get("baselines", {}):
      found[name] = metrics["baselines"][name]
  return found


def metrics_line(metrics: dict | None) -> str:
  """One line for the picture: the model against the gray baseline and the truth."""
  if not metrics:
    return ""
  p = predictors(metrics)
  def fmt(name, key, spec):
    value = p.get(name, {}).get(key)
    return "-" if value is None else spec.format(value)
  return (f"{metrics['split']} split ({metrics['examples']} image{'s' if metrics['examples'] != 1 else ''}): PSNR {fmt('model', 'psnr', '{:.1f}')} dB "
          f"(gray baseline {fmt('gray', 'psnr', '{:.1f}')}), colourfulness "
          f"{fmt('model', 'colorfulness', '{:.1f}')} (truth {metrics['ground_truth_colorfulness']:.1f})")


def render_grid(pages: list[Page], info: ReportInfo) -> Image.Image:
  """The report picture: a header (title, embedder, sizes, scores), then the page pairs."""
  if not pages:
    raise ValueError("no pages to put in the report")
  pairs = [_pair(p) for p in pages]
  # Five panels a page are a row's worth already.
  per_row = 1 if any(p.guided and p.truth_path for p in pages) else PAIRS_PER_ROW
  rows = [pairs[i:i + per_row] for i in range(0, len(pairs), per_row)]
  row_sizes = [(sum(p.width for p in r) + GAP * (len(r) - 1), max(p.height for p in r))
               for r in rows]
  width = max(max(w for w, _ in row_sizes) + 2 * GAP, 900)
  # Text scales with the picture, so it stays legible where the README shows it shrunk.
  body, small = _font(max(15, width // 75)), _font(max(13, width // 88))
  text_width = width - 2 * GAP
  header = [(info.title, _font(max(24, width // 47)), INK)]
  if info.random_embedder:
    warning = ("Embedder: RANDOM WEIGHTS (offline demo). These colours come from a small model "
               "trained for minutes on generated scenes; they show that the system runs end to "
               "end, not what Koala does on real manga.")
    header += [(l, body, WARNING_RED) for l in _fit(warning, body, text_width)]
  else:
    header += [(l, body, INK) for l in _fit(f"Embedder: {info.embedder_text}", body, text_width)]
  header += [(l, small, INK) for l in _fit(info.config_text, small, text_width)]
  line = metrics_line(info.metrics)
  if line:
    header += [(l, small, INK) for l in _fit(line, small, text_width)]
  header_h = GAP + sum(_line_height(f) for _, f, _ in header) + GAP
  height = header_h + sum(h for _, h in row_sizes) + GAP * (len(rows) + 1)
  canvas = Image.new("RGB", (width, height), BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  y = GAP
  for text, font, fill in header:
    draw.text((GAP, y), text, fill=fill, font=font)
    y += _line_height(font)
  y = header_h
  draw.line([(GAP, y - GAP // 2), (width - GAP, y - GAP // 2)], fill=(200, 200, 200), width=1)
  for row, (row_w, row_h) in zip(rows, row_sizes):
    x = (width - row_w) // 2
    for pair in row:
      canvas.paste(pair, (x, y))
      x += pair.width + GAP
    y += row_h + GAP
  return canvas


def _fit(text: str, font, max_width: int) -> list[str]:
  """Greedy word wrap by the rendered width."""
  lines, current = [], ""
  for word in text.split():
    candidate = f"{current} {word}".strip()
    if current and font.getlength(candidate) > max_width:
      lines.append(current)
      current = word
    else:
      current = candidate
  return lines + ([current] if current else [])


def _line_height(font) -> int:
  box = font.getbbox("Ag")
  return int((box[3] - box[1]) * 1.6) + 2


def write_report(pages: list[Page], info: ReportInfo, report_dir: str) -> tuple[str, str]:
  """Writes <report_dir>/demo_report.png and index.html; returns their paths."""
  os.makedirs(report_dir, exist_ok=True)
  png = os.path.join(report_dir, "demo_report.png")
  render_grid(pages, info).save(png, optimize=True)
  page = os.path.join(report_dir, "index.html")
  with open(page, "w", encoding="utf-8") as f:
    f.write(render_html(pages, info, report_dir))
  return png, page


def _rel(path: str, start: str) -> str:
  return html.escape(os.path.relpath(path, start).replace(os.sep, "/"), quote=True)


def _metrics_table(metrics: dict) -> str:
  head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in METRICS)
  rows = []
  names = {"model": "Koala (this run)", "gray": "gray baseline (ab = 0)",
           "mean_colour": "mean colour baseline"}
  for name, values in predictors(metrics).items():
    cells = "".join(
        f"<td>{'-' if values.get(k) is None else html.escape(spec.format(values[k]))}</td>"
        for k, _, spec in METRICS)
    rows.append(f"<tr><th>{html.escape(names.get(name, name))}</th>{cells}</tr>")
  truth = f"{metrics['ground_truth_colorfulness']:.1f}"
  rows.append(f"<tr><th>ground truth</th><td></td><td></td><td></td><td>{truth}</td><td></td><td></td></tr>")
  return (f"<p>{html.escape(metrics['split'])} split of the records, {metrics['examples']} images "
          f"(<code>python -m trainer.evaluate</code>): PSNR and SSIM on sRGB, AuC of the ab error "
          f"(0..150), colourfulness (Hasler &amp; S&uuml;sstrunk); higher is better for all but "
          f"MSE.</p><table><tr><th></th>{head}</tr>{''.join(rows)}</table>")


def render_html(pages: list[Page], info: ReportInfo, report_dir: str) -> str:
  warning = ""
  if info.random_embedder:
    warning = ('<p class="warning"><b>The embedder ran with RANDOM weights</b> (offline demo). '
               "The colours below come from a small model trained for minutes on generated "
               "scenes: they show that every part of the system runs, not what Koala does on real "
               "manga. Run the pipeline with <code>--embedder_weights=imagenet</code> (online) or "
               f"a weights file for real results.<br><small>{html.escape(info.embedder_text)}"
               "</small></p>")
  else:
    warning = f"<p>Embedder: {html.escape(info.embedder_text)}</p>"
  rows = []
  for p in pages:
    out = (f'<a href="{_rel(p.colour_path, report_dir)}">colour</a>' if p.colour_path
           else f'<span class="warning">failed: {html.escape(p.error or "no output")}</span>')
    guided = "".join(
        f'<td><a href="{_rel(path, report_dir)}">{label}</a></td>' if path
        else '<td class="warning">failed</td>'
        for label, path in ((f"{len(p.dots)} hint dots", p.hinted_path),
                            ("reference palette", p.reference_path))) if p.guided else ""
    if any(q.truth_path for q in pages):
      guided += (f'<td><a href="{_rel(p.truth_path, report_dir)}">truth</a></td>' if p.truth_path
                 else "<td></td>")
    rows.append(f'<tr><td>{html.escape(p.name)}</td>'
                f'<td><a href="{_rel(p.gray_path, report_dir)}">gray</a></td><td>{out}</td>'
                f'{guided}</tr>')
  links = "".join(f'<li><a href="{_rel(path, report_dir)}">{html.escape(label)}</a></li>'
                  for label, path in info.links.items() if path and os.path.exists(path))
  commands = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in info.commands)
  metrics = _metrics_table(info.metrics) if info.metrics else ""
  guided_heads = ("<th>with a few hints</th><th>with a reference</th>"
                  if any(p.guided for p in pages) else "")
  guided_heads += "<th>truth</th>" if any(p.truth_path for p in pages) else ""
  return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(info.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1700px; }}
.warning {{ color: #b01010; }}
p.warning {{ border: 2px solid #b01010; padding: .6em 1em; background: #fff4f4; }}
img.grid {{ max-width: 100%; border: 1px solid #ccc; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: .25em .7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
code {{ font-size: 90%; }}
</style></head><body>
<h1>{html.escape(info.title)}</h1>
{warning}
<p>{html.escape(info.config_text)}</p>
<p><img class="grid" src="demo_report.png" alt="manga pages and their colorized versions, side by side"></p>
<h2>Pages (full size)</h2>
<table><tr><th>page</th><th>input</th><th>output</th>{guided_heads}</tr>{''.join(rows)}</table>
{'<h2>Scores</h2>' + metrics if metrics else ''}
<h2>Files</h2><ul>{links}</ul>
<h2>What ran</h2><ol>{commands}</ol>
</body></html>
"""


def mean_chroma(path: str) -> float:
  """Mean CIE LAB chroma of an image file: about 0 for a gray page, tens for a coloured one.
  The demo's summary and its test use it to tell a coloured output from a gray one."""
  from koala import colour
  with Image.open(path) as img:
    lab = colour.rgb_to_lab(np.asarray(img.convert("RGB")))
  return float(np.mean(colour.chroma(lab[..., 1:])))
