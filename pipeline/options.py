"""The pipeline's own command-line options, next to Beam's (runner, workers, Dataflow, ...)."""
from __future__ import annotations

import difflib

from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options import PipelineOptions

from koala import embedder, gray, images, schema
from pipeline import preprocess


class KoalaOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--input", default=None,
                        help="Glob of input images, local or gs://; '**' recurses, e.g. "
                             "'photos/**' or 'gs://bucket/art/**/*.png'. A folder means folder/**.")
    parser.add_argument("--input_list", default=None,
                        help="pipeline.run only, instead of --input: a text file (local or gs://) "
                             "naming the input images, one path or URI a line, each read as "
                             "named (a catalogue's manifest, a split list).")
    parser.add_argument("--output_dir", required=True,
                        help="Where records (pipeline.run) or coloured pages "
                             "(serving.beam_colorize), manifest.json and the reject lists go "
                             "(local or gs://).")
    parser.add_argument("--embedder", default=embedder.KERAS_NAME,
                        help=f"'{embedder.KERAS_NAME}' (Keras) or 'hub:<handle or SavedModel path>'.")
    parser.add_argument("--embedder_weights", default=embedder.IMAGENET,
                        help="'imagenet' (downloads once), a local or gs:// weights file, or "
                             "'random' (tests and offline demos only).")
    parser.add_argument("--embedder_seed", type=int, default=embedder.DEFAULT_SEED,
                        help="Seed for --embedder_weights=random, so reruns agree.")
    parser.add_argument("--min_batch_size", type=int, default=16,
                        help="Smallest batch the embedder sees, but for the last of a bundle. "
                             "Equal min and max keep one shape, so the model traces once.")
    parser.add_argument("--max_batch_size", type=int, default=16,
                        help="Largest batch the embedder (pipeline.run) or the SavedModel "
                             "(serving.beam_colorize) sees (RunInference's BatchElements); "
                             "raise both on GPU workers, e.g. 128.")
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--test_fraction", type=float, default=0.1)
    parser.add_argument("--split_salt", default=schema.DEFAULT_SPLIT_SALT,
                        help="Salt of the content-hash draw that assigns train/val/test "
                             "(recorded in manifest.json); change it only to reshuffle.")
    parser.add_argument("--gray_chroma_threshold", type=float,
                        default=gray.DEFAULT_GRAY_CHROMA,
                        help="Images whose 99th-percentile chroma (LAB units) is below this are "
                             "skipped as already gray. 0 keeps everything.")
    parser.add_argument("--min_side", type=int, default=images.DEFAULT_MIN_SIDE)
    parser.add_argument("--max_pixels", type=int, default=images.DEFAULT_MAX_PIXELS,
                        help="Refuse images whose header claims more pixels (checked before decoding).")
    parser.add_argument("--num_shards", type=int, default=0,
                        help="Shards per split; 0 lets the runner decide.")
    parser.add_argument("--compression", choices=("none", "gzip"), default="none")
    parser.add_argument("--render", default=schema.GRAY,
                        help="What the model will see: 'gray' (the colour image's own L, the "
                             "original project's rendering) or 'manga' (koala.manga: ink lines, "
                             "white paper, screentone; the target stays the colour image's L "
                             "and ab).")
    parser.add_argument("--renderings_per_image", type=int, default=1,
                        help="With --render=manga: this many differently seeded renderings of "
                             f"each image, 1 to {preprocess.MAX_RENDERINGS} (all in the image's "
                             "split).")


class ColorizeOptions(PipelineOptions):
  """serving.beam_colorize's own flags; --input, --output_dir and the batch sizes are
  KoalaOptions' (Beam parses every options class together, so a flag is defined once)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--model", default=None,
                        help="serving.beam_colorize: an export folder (trainer.export), local or "
                             "gs://; its highest numbered version is used, as TF Serving does.")
    parser.add_argument("--colorize_colour_pages", action="store_true",
                        help="serving.beam_colorize: colour pages that are already in colour too "
                             "(by default they are copied unchanged, as serving.client "
                             "--skip_colour_pages does).")
    parser.add_argument("--hints_dir", default=None,
                        help="serving.beam_colorize, guided exports only: a folder (local or "
                             "gs://) of hint images, one per page matched by file stem as "
                             "serving.client --hints does (RGBA: pixels with alpha > 0 are colour "
                             "hints).")
    parser.add_argument("--reference", default=None,
                        help="serving.beam_colorize, guided exports only: one image (local or "
                             "gs://) whose palette steers every page, as serving.client "
                             "--reference.")


def _all_options_parser():
  """Beam's parser with every direct PipelineOptions subclass's arguments (Beam's and ours), as
  Beam's own `PipelineOptions.get_all_options` builds it; the parser class is Beam's private
  one, and tests/test_pipeline.py catches a Beam upgrade that changes it."""
  parser = beam_options._BeamArgumentParser(allow_abbrev=False)
  for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  return parser


def unknown_flags(argv, parser=None) -> list[str]:
  """The arguments that no PipelineOptions class defines. Beam only logs "Unparseable
  argument" for these and runs on with the defaults, so a typo such as --rendr=manga would
  silently make gray records."""
  return (parser or _all_options_parser()).parse_known_args(list(argv))[1]


def refuse_unknown_flags(argv, prog: str) -> None:
  """Raises ValueError, one sentence naming the first unknown flag, before any work is done."""
  parser = _all_options_parser()
  unknown = unknown_flags(argv, parser)
  if not unknown:
    return
  name = unknown[0].split("=", 1)[0]
  known = [o for action in parser._actions for o in action.option_strings]
  close = difflib.get_close_matches(name, known, n=1)
  hint = f" (did you mean {close[0]}?)" if close else ""
  raise ValueError(f"unknown flag {unknown[0]}{hint}: neither {prog} nor Beam defines it")
