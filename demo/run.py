"""python -m demo [--small] [--output_dir=demo_out] [--embedder_weights=random]

The whole system on generated sample data, offline, in one command (`make demo`):

  sample data -> Beam pipeline -> short training run (the guided model) -> evaluation -> export
  -> the TF Serving stand-in on a free loopback port -> colorize the gray pages through the REST
  client -> again with a few hint dots (client --hints) and with a reference palette (client
  --reference) -> before/after report (PNG grid + HTML) -> stop the server

The sample pages are manga pages (white paper, ink, screentone) of scenes the model never saw,
and the model is trained on manga renderings of the other scenes (pipeline.run --render=manga).
The hint dots stand in for a user's clicks: `demo.hints` puts them on each page's largest paper
areas, in colours the automatic result does not have there, so the report shows whether a dot
colours the paper around it. The report ends with each page's colour original (the truth).

Why subprocesses: every stage is the documented command a user would type (each is printed),
so the demo proves the commands, not a private shortcut, and each stage's noisy output goes to
its own log under <output_dir>/logs. Only the report is drawn in this process, which therefore
never imports TensorFlow. The server is always stopped, also when a stage fails or on Ctrl-C.

--small is the CI configuration (demo/config.py): the same stages on fewer, smaller things.
The output folder belongs to the demo: it is emptied first, and a folder the demo did not make
is refused rather than emptied.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from demo import config as demo_config
from demo import hints as demo_hints
from demo import progress, report
from koala import records_manifest
from koala.embedder import EmbedderInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = ".koala-demo"
MODEL_NAME = "koala"
READY = re.compile(r"Exporting HTTP/REST API at:(\S+):(\d+)")


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where the demo puts everything, under one output folder."""
  root: str
  sample: str
  colour: str
  gray_pages: str
  page_truth: str
  hints: str
  coloured_hints: str
  coloured_reference: str
  records: str
  job: str
  models: str
  coloured: str
  report: str
  logs: str

  @classmethod
  def under(cls, root: str) -> "Layout":
    root = os.path.abspath(root)
    j = lambda *p: os.path.join(root, *p)
    return cls(root=root, sample=j("sample"), colour=j("sample", "colour"),
               gray_pages=j("sample", "gray_pages"), page_truth=j("sample", "page_truth"),
               hints=j("hints"), coloured_hints=j("colour_pages_hints"),
               coloured_reference=j("colour_pages_reference"), records=j("records"), job=j("job"),
               models=j("models", MODEL_NAME), coloured=j("colour_pages"), report=j("report"),
               logs=j("logs"))


def prepare_output(root: str) -> None:
  """Empties the demo's own output folder; refuses one with files the demo did not make."""
  if os.path.isdir(root) and os.listdir(root):
    if not os.path.exists(os.path.join(root, MARKER)):
      raise SystemExit(f"refusing to empty {root}: it holds files and was not made by the demo "
                       f"(no {MARKER} file). Remove it yourself, or pass another --output_dir "
                       f"(make demo OUT=other_folder).")
    shutil.rmtree(root)
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, MARKER), "w") as f:
    f.write("made by `python -m demo`; emptied by its next run\n")


class ServerProcess:
  """`python -m serving.server` on a free loopback port (the OS picks it), logging to a file."""

  def __init__(self, base_path: str, log_path: str, *, cwd: str = ROOT):
    self.log_path = log_path
    self.cmd = [sys.executable, "-m", "serving.server", f"--model_base_path={base_path}",
                f"--model_name={MODEL_NAME}", "--rest_api_port=0", "--host=127.0.0.1"]
    self._log = open(log_path, "a")
    self._log.write(f"$ {progress.printable_command(self.cmd)}\n")
    self._log.flush()
    self.proc = subprocess.Popen(self.cmd, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=progress._child_env(None))
    self.url: str | None = None

  def wait_ready(self, timeout: float = 300.0) -> str:
    """Waits for the line tensorflow_model_server prints when it listens; returns the URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      with open(self.log_path, errors="replace") as f:
        match = READY.search(f.read())
      if match:
        self.url = f"http://{match.group(1)}:{match.group(2)}"
        return self.url
      if self.proc.poll() is not None:
        raise progress.StageFailed(
            f"the model server exited with status {self.proc.returncode} before listening.\n"
            f"--- last lines of {self.log_path} ---\n{progress.tail(self.log_path)}")
      time.sleep(0.2)
    raise progress.StageFailed(f"the model server did not listen within {timeout:.0f} s; "
                               f"see {self.log_path}")

  def stop(self, timeout: float = 30.0) -> int:
    """SIGTERM (the server finishes requests in flight and exits 0), SIGKILL if it hangs."""
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
      try:
        self.proc.wait(timeout)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self._log.close()
    return self.proc.returncode


def _read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _training_status(job: str, epochs: int):
  def status() -> str:
    history = _read_json(os.path.join(job, "history.json")) or {}
    done = history.get("epochs", [])
    if not done:
      return "first epoch (loading records, building the model)"
    last = done[-1]
    return (f"epoch {last['epoch'] + 1}/{epochs} done, loss {last.get('loss', float('nan')):.4f}, "
            f"val_loss {last.get('val_loss', float('nan')):.4f}")
  return status


def _pages_status(out_dir: str, total: int, log_path: str):
  def status() -> str:
    done = sum(f.endswith(".png") for f in os.listdir(out_dir)) if os.path.isdir(out_dir) else 0
    return f"{done}/{total} pages coloured  {progress.last_line(log_path)[-60:]}"
  return status


def _shown(path: str) -> str:
  """A path as the user should type it: relative to the current folder when inside it."""
  rel = os.path.relpath(path)
  return path if rel.startswith("..") else rel


def _stage_count(cfg: demo_config.DemoConfig) -> int:
  return 8 + bool(cfg.evaluate) + bool(cfg.hints)


def reference_image(colour_dir: str) -> str:
  """The reference for every page: the first generated scene (a "chapter cover" in the same
  style; the pages themselves are not in the colour set)."""
  return os.path.join(colour_dir, sorted(n for n in os.listdir(colour_dir)
                                         if n.startswith("scene_"))[0])


def run_demo(cfg: demo_config.DemoConfig, output_dir: str, stream=None) -> dict:
  """Runs every stage; returns a summary dict (paths, timings, embedder). Raises StageFailed."""
  started = time.monotonic()
  out = Layout.under(output_dir)
  prepare_output(out.root)
  prog = progress.Progress(_stage_count(cfg), out.logs, stream)
  py = sys.executable
  prog.say(f"Koala demo ({cfg.name} configuration), everything under {_shown(out.root)}/")
  if cfg.embedder_weights == "random":
    prog.say("Offline demo: the Inception-ResNet-v2 embedder gets RANDOM weights, so the colours "
             "show that the system runs, not how well it colours real manga.")
  prog.say("")

  with prog.stage("sample data: procedural scenes + manga pages", "sample_data") as st:
    cmd = [py, "-m", "pipeline.sample_data", f"--output_dir={out.sample}",
           f"--count={cfg.scenes}", f"--pages={cfg.pages}"]
    prog.run(st, cmd + ([] if cfg.photos else ["--no_photos"]), cwd=ROOT)

  with prog.stage(f"Beam pipeline: images -> {cfg.renderings_per_image} manga rendering(s) each "
                  "-> TFRecords with embeddings", "pipeline") as st:
    prog.run(st, [py, "-m", "pipeline.run", f"--input={out.colour}", f"--output_dir={out.records}",
                  f"--embedder_weights={cfg.embedder_weights}", f"--val_fraction={cfg.held_out}",
                  f"--test_fraction={cfg.held_out}", "--render=manga",
                  f"--renderings_per_image={cfg.renderings_per_image}"], cwd=ROOT)
  manifest = records_manifest.read(out.records) or records_manifest.RecordsManifest()
  embedder = manifest.embedder or EmbedderInfo()
  written = manifest.counts.written
  prog.say(f"    records: {written}; embedder {embedder.identity}")

  guided = " guided" if cfg.hints else ""
  with prog.stage(f"training: {cfg.epochs} epochs x {cfg.steps_per_epoch} steps "
                  f"(narrow{guided} model, width {cfg.width}, {cfg.image_size} px chroma)",
                  "train") as st:
    st.status = _training_status(out.job, cfg.epochs)
    prog.run(st, [py, "-m", "trainer.task", f"--records_dir={out.records}", f"--job_dir={out.job}",
                  f"--epochs={cfg.epochs}", f"--steps_per_epoch={cfg.steps_per_epoch}",
                  f"--batch_size={cfg.batch_size}", f"--learning_rate={cfg.learning_rate}",
                  f"--width={cfg.width}", f"--image_size={cfg.image_size}", "--cache"]
             + (["--hints"] if cfg.hints else []), cwd=ROOT)

  metrics = None
  if cfg.evaluate:
    with prog.stage("evaluation on the test split, next to the gray and mean-colour baselines",
                    "evaluate") as st:
      prog.run(st, [py, "-m", "trainer.evaluate", f"--records_dir={out.records}",
                    f"--job_dir={out.job}"]
               + ([f"--hints={cfg.eval_hints}"] if cfg.hints else [])
               + ([] if cfg.eval_flat_fill else ["--no_levin"]), cwd=ROOT)
    metrics = _read_json(os.path.join(out.job, "evaluation", "test", "metrics.json"))

  with prog.stage("export: TF Serving SavedModel (embedder inside)", "export") as st:
    prog.run(st, [py, "-m", "trainer.export", f"--job_dir={out.job}",
                  f"--export_dir={out.models}"], cwd=ROOT)

  server = None
  try:
    with prog.stage("start the model server (TF Serving REST stand-in, loopback)", "server") as st:
      server = ServerProcess(out.models, st.log_path)
      prog.say(f"    $ {progress.printable_command(server.cmd)}")
      url = server.wait_ready()
      prog.say(f"    listening at {url}")

    gray_pages = sorted(f for f in os.listdir(out.gray_pages) if f.endswith(".png"))
    with prog.stage(f"colorize {len(gray_pages)} manga pages through the REST client",
                    "client") as st:
      st.status = _pages_status(out.coloured, len(gray_pages), st.log_path)
      prog.run(st, [py, "-m", "serving.client", f"--server={url}", f"--model={MODEL_NAME}",
                    out.gray_pages, f"--output_dir={out.coloured}"], cwd=ROOT)

    dots = {}
    if cfg.hints:
      with prog.stage(f"colorize again with {cfg.hint_dots} hint dots per page (client --hints) "
                      "and with a reference palette (client --reference)", "guided") as st:
        dots = demo_hints.write_hint_images(out.gray_pages, out.page_truth, out.hints,
                                            cfg.hint_dots)
        prog.say(f"    hint images: {_shown(out.hints)}/ (dots on each page's largest paper "
                 f"areas, in the colour original's colours there)")
        client = [py, "-m", "serving.client", f"--server={url}", f"--model={MODEL_NAME}",
                  out.gray_pages]
        prog.run(st, client + [f"--output_dir={out.coloured_hints}", f"--hints={out.hints}"],
                 cwd=ROOT)
        prog.run(st, client + [f"--output_dir={out.coloured_reference}",
                               f"--reference={reference_image(out.colour)}"], cwd=ROOT)

    with prog.stage("before/after report (PNG grid + HTML)") as st:
      pages = []
      for name in gray_pages:
        stem = os.path.splitext(name)[0]
        colour_path = os.path.join(out.coloured, stem + ".png")
        ok = os.path.exists(colour_path)
        guided_out = lambda folder: (os.path.join(folder, stem + ".png")
                                     if os.path.exists(os.path.join(folder, stem + ".png"))
                                     else None)
        pages.append(report.Page(stem, os.path.join(out.gray_pages, name),
                                 colour_path if ok else None, None if ok else "no output",
                                 hinted_path=guided_out(out.coloured_hints),
                                 dots=dots.get(stem, []),
                                 reference_path=guided_out(out.coloured_reference),
                                 guided=cfg.hints,
                                 truth_path=guided_out(out.page_truth)))
      info = report.ReportInfo(
          title="Koala demo: manga pages in, colour pages out",
          random_embedder=bool(embedder.random_weights),
          embedder_text=embedder.warning or str(embedder.identity),
          config_text=(f"{cfg.name} demo: trained on {written.get('train', '?')} generated images "
                       f"for {cfg.epochs} x {cfg.steps_per_epoch} steps (narrow model, width "
                       f"{cfg.width}, chroma at {cfg.image_size} px, put on each page's "
                       f"full-size lightness); served by the REST stand-in"),
          metrics=metrics,
          links={"training curves": os.path.join(out.job, "training_curves.png"),
                 "evaluation samples (gray | model | mean colour | truth)":
                     os.path.join(out.job, "evaluation", "test", "samples.png"),
                 "evaluation metrics.json": os.path.join(out.job, "evaluation", "test",
                                                          "metrics.json"),
                 "records manifest.json": records_manifest.path(out.records),
                 "logs": out.logs},
          commands=_commands_run(out.logs))
      png, html_page = report.write_report(pages, info, out.report)
  finally:
    if server is not None:
      with prog.stage("stop the model server"):
        code = server.stop()
        prog.say(f"    server exited with status {code}")

  summary = {
      "config": cfg.name,
      "output_dir": out.root,
      "seconds": time.monotonic() - started,
      "timings": prog.timings,
      "random_weights": bool(embedder.random_weights),
      "embedder": embedder.to_dict(),
      "report_png": png,
      "report_html": html_page,
      "coloured_pages": [p.colour_path for p in pages if p.colour_path],
      "failed_pages": [p.name for p in pages if not p.colour_path],
      "export_dir": out.models,
      "server_exit": code,
      "guided": cfg.hints,
  }
  _print_summary(prog, out, summary, written, metrics)
  return summary


def _commands_run(log_dir: str) -> list[str]:
  """The commands as the logs recorded them, in order (for the report's "what ran")."""
  lines = []
  for name in sorted(os.listdir(log_dir)):
    with open(os.path.join(log_dir, name), errors="replace") as f:
      lines += [l[2:].strip() for l in f if l.startswith("$ ")]
  return lines


def _print_summary(prog, out: Layout, summary: dict, written: dict, metrics: dict | None) -> None:
  s = _shown
  prog.say("")
  minutes, seconds = divmod(int(round(summary["seconds"])), 60)
  prog.say(f"Demo finished in {minutes} min {seconds:02d} s. Where everything is:")
  rows = [
      ("sample data", f"{s(out.colour)}/ (colour), {s(out.gray_pages)}/ (gray pages)"),
      ("records", f"{s(out.records)}/ (train {written.get('train')}, val {written.get('val')}, "
                  f"test {written.get('test')}; manifest.json)"),
      ("training job", f"{s(out.job)}/ (history.json, training_curves.png, model/)"),
  ]
  if metrics:
    rows.append(("evaluation", f"{s(os.path.join(out.job, 'evaluation', 'test'))}/ "
                               f"(metrics.json, samples.png)"))
  rows += [
      ("SavedModel", f"{s(out.models)}/ (serve it: python -m serving.server "
                     f"--model_base_path={s(out.models)} --model_name={MODEL_NAME})"),
      ("coloured pages", f"{s(out.coloured)}/ ({len(summary['coloured_pages'])} pages"
                         + (f", FAILED: {', '.join(summary['failed_pages'])}"
                            if summary["failed_pages"] else "") + ")"),
  ]
  if summary.get("guided"):
    rows.append(("with guidance", f"{s(out.coloured_hints)}/ (hints from {s(out.hints)}/), "
                                  f"{s(out.coloured_reference)}/ (reference palette)"))
  rows += [
      ("report", f"{s(summary['report_png'])}  and  {s(summary['report_html'])}"),
      ("logs", f"{s(out.logs)}/"),
  ]
  for label, where in rows:
    prog.say(f"  {label:<15} {where}")
  line = report.metrics_line(metrics)
  if line:
    prog.say(f"  scores          {line}")
  prog.say("")
  if summary["random_weights"]:
    prog.say("NOTE: the embedder ran with RANDOM weights (offline). The colours come from a small "
             "model trained for minutes on generated scenes; for real manga, run the pipeline with "
             "--embedder_weights=imagenet (online) or a weights file, and train for real.")
  else:
    prog.say(f"Embedder: {summary['embedder'].get('identity')} (not random).")
  prog.say(f"Try your own pages: KOALA_MODEL_PATH={s(out.models)} "
           "streamlit run serving/streamlit_app.py")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--small", action="store_true", help="the CI configuration: fewer, smaller things")
  p.add_argument("--output_dir", default="demo_out")
  p.add_argument("--embedder_weights", default=None,
                 help="the pipeline's --embedder_weights (default: random, offline)")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  cfg = demo_config.SMALL if args.small else demo_config.FULL
  if args.embedder_weights:
    cfg = dataclasses.replace(cfg, embedder_weights=args.embedder_weights)
  try:
    run_demo(cfg, args.output_dir)
  except progress.StageFailed as e:
    print(f"\ndemo failed: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("\ndemo interrupted; the model server was stopped", file=sys.stderr)
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())
