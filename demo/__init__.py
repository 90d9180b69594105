"""The one-command demo: `make demo` (or `python -m demo`) runs the whole system offline.

Why a package of its own: the demo is the newcomer's first contact with Koala, so it drives the
very commands the README documents (sample data, Beam pipeline, trainer, export, the TF Serving
stand-in, the REST client) as subprocesses, shows progress for each, and ends with a before/after
report and a list of where everything is. Modules:

  config    the full demo's sizes and the small CI configuration (same code path)
  progress  one stage = one logged subprocess, with a live progress line
  report    the before/after PNG grid and the HTML page that shows it
  run       the stages in order, the server's lifetime, the final summary; `main()`
"""
