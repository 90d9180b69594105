"""Export a trained colorizer as a TF Serving SavedModel that carries the whole page path.

  python -m trainer.export --job_dir=DIR --export_dir=models/koala [--version=N]
                           [--max_pixels=N] [--png_compression=N] [--gap_closing=N]

writes models/koala/<version>/ (`trainer.export.build`); the package's docstring says what is
inside and where.
"""
from __future__ import annotations

import argparse
import logging
import sys

from koala import images, regions
from trainer.export import ExportError
from trainer.export.build import DEFAULT_PNG_COMPRESSION, export


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m trainer.export",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--job_dir", required=True, help="the training job's directory (local or gs://)")
  p.add_argument("--export_dir", required=True,
                 help="TF Serving's model base path, e.g. models/koala")
  p.add_argument("--version", type=int, default=None, help="default: one above the highest there")
  p.add_argument("--max_pixels", type=int, default=images.DEFAULT_MAX_PIXELS,
                 help="pages with more pixels are refused with a clear error (default %(default)s)")
  p.add_argument("--png_compression", type=int, default=DEFAULT_PNG_COMPRESSION,
                 choices=range(-1, 10),
                 help="zlib level of the output PNG, lossless at any level: 0 is the fastest, 1 "
                      "about a third of the bytes for ~0.1-0.2 s more per A4 page, -1 = zlib's "
                      "default (default %(default)s)")
  p.add_argument("--gap_closing", type=int, default=regions.DEFAULT_CLOSING,
                 help="manga jobs: fill pixels the ink lines grow by before a dot's region is "
                      "found; closes gaps in the lines of about twice that (a fill pixel is 2 "
                      "page pixels, 3 on an A4 page); 0 closes none (default %(default)s)")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  try:
    path = export(args.job_dir, args.export_dir, args.version, max_pixels=args.max_pixels,
                  png_compression=args.png_compression, gap_closing=args.gap_closing)
  except (ExportError, FileNotFoundError) as e:
    print(f"export failed: {e}", file=sys.stderr)
    return 2
  print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())

