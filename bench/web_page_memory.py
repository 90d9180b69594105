"""The Streamlit page under one visitor's uploads: what a session keeps, and the process's peak
memory, for a clean A4 page and for many-pixel pages in few bytes (issue 19, attack 4).

  python bench/web_page_memory.py [--keep_dir=DIR] [--pages=20]

What it runs: the page itself (serving/streamlit_app.py under Streamlit's AppTest, the page's
whole script with its session state), with the SPEC-size export (random weights,
bench/serving_latency.py's export_full_size), default caps, each case in a fresh process:
  * reference: one real manga page from ../shared/data/manga (skips cleanly where absent),
    scaled to A4 at 300 dpi (2480 x 3508, 8.7 Mpx);
  * attack: `--pages` uploads of a 4000 x 3000 screentone page (a 23 KB PNG; its colour
    version is tens of MB).
For each: the bytes of uploads, the bytes the session keeps (downloads and previews), and the
rise of the process's peak RSS (VmHWM, reset after the model is loaded and warm) over the run.
Targets: session <= the page's --max_session_mb (128 MB); attack peak rise <= 2 x the clean
page's (issue 19's target for inputs under 1 MB).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

A4 = (2480, 3508)


def status_mib(field: str) -> float:
  """VmHWM (peak RSS) or VmRSS of this process, in MiB."""
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) / 1024 for l in f if l.startswith(field + ":"))


def reset_peak() -> None:
  with open("/proc/self/clear_refs", "w") as f:   # "5": reset the peak RSS to the current RSS
    f.write("5")


def png(image) -> bytes:
  buf = io.BytesIO()
  image.save(buf, "PNG")
  return buf.getvalue()


def clean_a4() -> bytes:
  from PIL import Image
  folder = common.shared_data("manga")
  path = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                if f.lower().endswith((".jpg", ".png")))[0]
  return png(Image.open(path).convert("L").resize(A4, Image.Resampling.BOX))


def tone_page(height: int = 4000, width: int = 3000) -> bytes:
  import numpy as np
  from PIL import Image
  y, x = np.mgrid[:height, :width]
  tone = np.where((x // 4 + y // 4) % 2 == 0, 30, 250).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(tone).save(buf, "PNG", optimize=True)
  return buf.getvalue()


def held_bytes(results) -> int:
  return sum(r.held_bytes for r in results)


def probe(case: str, pages: int) -> dict:
  """In this process: the page, warmed on a small page, then the case's uploads."""
  from streamlit.testing.v1 import AppTest
  from PIL import Image
  at = AppTest.from_file(os.path.join(common.REPO, "serving", "streamlit_app.py"),
                         default_timeout=1800)
  at.run()
  warm = png(Image.new("L", (600, 800), 255))
  at.file_uploader(key="uploads").set_value([("warm.png", warm, "image/png")]).run()
  at.button(key="colorize").click().run()
  uploads = ([("a4.png", clean_a4(), "image/png")] if case == "clean" else
             [(f"tone{i}.png", tone_page(), "image/png") for i in range(pages)])
  reset_peak()
  start = status_mib("VmRSS")
  at.file_uploader(key="uploads").set_value(uploads).run()
  at.button(key="colorize").click().run()
  at.run()                                    # a rerun, as any click makes
  results = at.session_state["koala_results"][2]
  return {"uploads": sum(len(d) for _, d, _ in uploads), "held": held_bytes(results),
          "errors": len(at.error), "peak_rise_mib": status_mib("VmHWM") - start,
          "warm_rss_mib": start}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--keep_dir", default=None, help="keep the export here between runs")
  p.add_argument("--pages", type=int, default=20)
  p.add_argument("--probe", choices=["clean", "attack"], help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.probe:
    print(json.dumps(probe(args.probe, args.pages)))
    return 0
  common.shared_data("manga")
  from bench.serving_latency import export_full_size
  from serving.web_config import Caps
  work = args.keep_dir or tempfile.mkdtemp(prefix="koala-bench-web-")
  base = export_full_size(work)
  env = {k: v for k, v in os.environ.items() if not k.startswith("KOALA_")}
  env.update(KOALA_MODEL_PATH=base, KOALA_SHARED_DATA=common.SHARED_DATA)
  out = {}
  for case in ("clean", "attack"):
    run = subprocess.run([sys.executable, __file__, f"--probe={case}", f"--pages={args.pages}"],
                         cwd=common.REPO, env=env, capture_output=True, text=True, check=True)
    out[case] = json.loads(run.stdout.strip().splitlines()[-1])
  cap = Caps().session_bytes
  print(f"machine: {common.machine()}")
  for case, r in out.items():
    print(f"{case:6}: uploads {r['uploads'] / 1024:.0f} KiB, session keeps "
          f"{r['held'] / 2 ** 20:.1f} MiB ({r['errors']} messages), peak RSS +"
          f"{r['peak_rise_mib']:.0f} MiB over the warm page's {r['warm_rss_mib']:.0f} MiB")
  ratio = out["attack"]["peak_rise_mib"] / max(1.0, out["clean"]["peak_rise_mib"])
  print(f"session: {out['attack']['held'] / 2 ** 20:.1f} MiB of a {cap / 2 ** 20:.0f} MiB cap "
        f"({'met' if out['attack']['held'] <= cap else 'MISSED'}); attack peak rise / clean A4 "
        f"page's: {ratio:.2f} (target <= 2: {'met' if ratio <= 2 else 'MISSED'})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
