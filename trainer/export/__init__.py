"""The served graph: a trained colorizer exported as a TF Serving SavedModel that carries the
whole page path, from image file bytes to the coloured page's PNG, as graph ops.

  python -m trainer.export --job_dir=DIR --export_dir=models/koala [--version=N]

Why a package of its own: TF Serving runs a SavedModel with no Python, so everything a served
page goes through (decoding and its caps, geometry, the colour table, the fills, the user's
guidance) must be TensorFlow ops traced into the export. Those ops are what the export is made
of, and serving/ only runs the result, so they live here, above the trainer (whose model and
artifacts they read) and below serving (which calls the signatures they define).

In the order a page goes through them:

  __main__.py    the command line
  build.py       export(): the version folder, written whole, and its description
  embedder.py    the embedder that made the training records, rebuilt and checked
  module.py      KoalaServing, the tf.Module: the networks traced once, the signatures
  signatures.py  the signatures' and tensors' names, and which signature a page's guidance picks
  image.py       file bytes -> pixels: format, the pixel cap before decoding, EXIF orientation
  page.py        gray, letterbox, the networks' inputs; a gray job's colour table; the PNG
  guidance.py    a hint image -> hint planes, a reference image -> its palette
  regions.py     a manga page's regions and the colours a user's dots give them
  fill.py        a manga job's composition: flat colours under the page, stopped at the lines
  info.py        the export's description (assets.extra/koala_export.json): one reader, one writer

Importing the package imports no TensorFlow (the REST client reads `signatures` without it).
"""


class ExportError(RuntimeError):
  """The export cannot be made; the message says why and what to do."""
