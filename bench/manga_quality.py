"""The manga colorizer's quality on real art within a CPU budget: python bench/manga_quality.py

  1. manga records (pipeline.run --render=manga --renderings_per_image=2, RANDOM-weight embedder:
     this machine is offline, the embeddings carry no ImageNet semantics) from the colour
     images of ../shared/data's train list (10% held out for validation) and, into a second
     records folder, of its eval list (all in the test split), built in place by
     bench/trainer_records.py (pipeline.run --input_list: the files read in place, never
     copied). One whole source (--hold_out, default style2paints' references) is left out of
     both and made into a third folder: art of a source the model never saw;
  2. the guided model, trainer.task --hints --preset=Koala_cpu --max_minutes=M;
  3. trainer.evaluate on the eval records and on the held-out source (a manga job:
     trainer.manga_eval), the first --max_examples of each, with the targets, each met /
     MISSED: at 10 dots PSNR >= the flat fill's + 1 dB, ab error (1/4 scale) <= 0.85 x the flat
     fill's, colourfulness >= 70% of the truth's; at 0 dots a better PSNR than the page as it is
     and no worse an ab error;
  4. the real black-and-white pages of ../shared/data/manga through the exported job's
     colorize_guided signature, in process: bench/manga_regions.py's region coverage (a dot in
     each of a page's largest bare-paper regions; the share of each region within dE 15 of
     its dot, the ink kept dark).
Everything lands in <work_dir>/manga_quality_<time>/ (manga_quality.json, the evaluations'
plots and samples, regions.json). Skips cleanly where ../shared/data is absent. Tiny trial:
  python bench/manga_quality.py --max_minutes=1 --max_examples=8 --limit=24 --pages=3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, trainer_records  # noqa: E402

WARNING = ("NOTE: the embedder had RANDOM weights (offline machine): the embeddings carry no "
           "semantics, so the model's automatic colours come from its own encoder alone.")


def _records(args):
  sub = os.path.join(args.work_dir, "manga")
  flags = ("--render=manga", "--renderings_per_image=2", "--num_shards=4")
  hold = tuple(args.hold_out.split(",")) if args.hold_out else ()
  train_dir, _ = trainer_records.build_records(
      "train", args.limit, val_fraction=trainer_records.TRAIN_VAL_FRACTION, work_dir=sub,
      pipeline_args=flags, exclude=hold)
  small = args.limit and max(4, args.limit // 3)
  eval_dir, _ = trainer_records.build_records(
      "eval", small, test_fraction=1.0, work_dir=sub, pipeline_args=flags, exclude=hold)
  held_dir = hold and trainer_records.build_records(
      "train+eval", small, test_fraction=1.0, work_dir=sub, pipeline_args=flags, sources=hold)[0]
  return train_dir, eval_dir, held_dir


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--max_minutes", type=float, default=20.0, help="Training budget (minutes).")
  p.add_argument("--max_examples", type=int, default=60, help="Eval records scored.")
  p.add_argument("--limit", type=int, help="Use only the first N train images (a trial run).")
  p.add_argument("--pages", type=int, help="Only the first N real manga pages.")
  p.add_argument("--work_dir", default=trainer_records.DEFAULT_WORK_DIR)
  p.add_argument("--out", help="Default: <work_dir>/manga_quality_<time>.")
  p.add_argument("--skip_training", action="store_true", help="Reuse the job under --out.")
  p.add_argument("--hold_out", default="color/lllyasviel__style2paints",
                 help="Source folder(s) of ../shared/data, comma-separated, left out of training "
                      "and scored apart ('' for none).")
  args = p.parse_args(argv)
  common.shared_data()
  started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
  print(common.machine(), "| load", os.getloadavg(), "|", started, flush=True)
  train_dir, eval_dir, held_dir = _records(args)
  out = args.out or os.path.join(args.work_dir, f"manga_quality_{int(time.time())}")
  job = os.path.join(out, "job")
  t0 = time.perf_counter()
  if not args.skip_training:
    subprocess.run([sys.executable, "-m", "trainer.task", f"--records_dir={train_dir}",
                    f"--job_dir={job}", "--hints", "--preset=Koala_cpu",
                    f"--max_minutes={args.max_minutes}", "--verbose=2"],
                   check=True, cwd=common.REPO)
  train_minutes = (time.perf_counter() - t0) / 60
  from trainer import evaluate
  from trainer.export import build as export
  scored = {"eval": eval_dir, **({"held_out": held_dir} if held_dir else {})}
  results = {name: evaluate.main([f"--records_dir={d}", f"--train_records_dir={train_dir}",
                                  f"--job_dir={job}", f"--max_examples={args.max_examples}",
                                  "--samples=4",
                                  f"--output_dir={os.path.join(out, 'evaluation_' + name)}"])
             for name, d in scored.items()}
  export_path = export.export(job, os.path.join(out, "export"))
  print(f"real pages through {export_path} (colorize_guided, in process):", flush=True)
  from bench import manga_regions
  pages = manga_regions.run(export_path, args.pages, out)
  history = json.load(open(os.path.join(job, "history.json")))
  summary = {
      "started": started, "machine": common.machine(), "load_after": os.getloadavg(),
      "embedder_weights": "random", "train_records": train_dir, "eval_records": eval_dir,
      "held_out_records": held_dir, "held_out": args.hold_out,
      "training": {"preset": "Koala_cpu", "max_minutes": args.max_minutes,
                   "wall_minutes": train_minutes, "epochs": len(history.get("epochs", [])),
                   "last_epoch": (history.get("epochs") or [None])[-1]},
      "targets": {name: r["targets"] for name, r in results.items()},
      "pages": {k: v for k, v in pages.items() if k != "per_dot"},
      "config": vars(args)}
  with open(os.path.join(out, "manga_quality.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(out, "regions.json"), "w") as f:
    json.dump(pages, f, indent=2)
  print(f"\ntraining: {summary['training']}")
  print(f"real pages: {pages['pages']} pages, {pages['dots']} dots in bare-paper regions: on "
        f"average {pages['mean_region_covered']:.1%} of a region within dE 15 of its dot, "
        f"{pages['dots_covering_80']:.1%} of the dots cover >= 80 % of it; ink dark "
        f"{pages['ink_dark_share']:.2%}")
  from trainer import manga_eval
  for name, r in results.items():
    print(f"targets, {name}:")
    print(manga_eval.format_targets(r["targets"]))
  print(WARNING)
  print(f"wrote {out}/manga_quality.json, regions.json; evaluations in {out}/evaluation_*/")


if __name__ == "__main__":
  main()
