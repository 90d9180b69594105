"""What the Streamlit page may run and how much a visitor may ask of it: the operator decides,
never the visitor (issue 19).

Why: whoever can open a web page can type into it. A SavedModel is a program (TensorFlow's
SECURITY.md: its ops may read and write files), so a folder typed by a visitor runs the
visitor's code on the host; a server URL typed by a visitor makes the host send requests
wherever the visitor likes. So in its default, *shared* mode the page offers only what its
operator listed when starting it, as lists to pick from, and no text a visitor types reaches
`tf.saved_model.load` or an HTTP request:

  * exports run in the page's process: one fixed export (`--model`, KOALA_MODEL_PATH) and/or
    every export found under one root (`--models_root`, KOALA_MODELS_ROOT: the root's
    sub-folders holding saved_model.pb or numbered versions, listed by folder name). With
    nothing listed at all, demo_out/models/koala, what `make demo` writes;
  * TF Serving: server URLs (`--server`, repeatable; KOALA_SERVER, comma-separated) times model
    names (`--model_name`, repeatable; KOALA_MODEL_NAME, comma-separated; default koala). No
    server is offered unless one is listed.

`--local` (KOALA_LOCAL=1) is the single-user mode of someone running the page for themself:
free fields for a folder and a URL, as the page had before. It is refused, and the page stays
shared, unless Streamlit listens on a loopback address (server.address; the repository's
.streamlit/config.toml says 127.0.0.1; Streamlit's own default is every interface).

Caps (`Caps`), against one visitor exhausting the host: files per run, pages per .cbz, pixels
per run, and bytes of results held per session; and one model run at a time per process
(`serving.web_runs`). Streamlit's own (server.maxUploadSize, ...) are in .streamlit/config.toml.

Options go after `--` of `streamlit run` and win over the environment:

  streamlit run serving/streamlit_app.py -- --models_root=/srv/koala --max_files=10
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import sys
from typing import Mapping

from serving.exports import resolve_version_dir

DEMO_EXPORT = os.path.join("demo_out", "models", "koala")
DEFAULT_MODEL_NAME = "koala"
TRUE = ("1", "true", "yes", "on")


class ConfigError(ValueError):
  """The operator's configuration is wrong; the message says which option and why."""


@dataclasses.dataclass(frozen=True)
class Caps:
  files_per_run: int = 20
  pages_per_cbz: int = 200
  pixels_per_run: int = 100_000_000
  session_bytes: int = 128 * 2 ** 20        # results (downloads, previews) held per session


@dataclasses.dataclass(frozen=True)
class WebConfig:
  exports: dict[str, str]                  # label -> export path, in the order offered
  servers: tuple[str, ...]                 # TF Serving base URLs, checked
  model_names: tuple[str, ...]
  local: bool                              # free paths and URLs (single-user, loopback only)
  caps: Caps = Caps()
  notes: tuple[str, ...] = ()              # for the operator's log (e.g. --local refused)

  @property
  def targets(self) -> dict[str, tuple[str, str]]:
    """label -> (server URL, model name), for every listed server and model name."""
    return {f"{name} on {server}": (server, name)
            for server in self.servers for name in self.model_names}


_logged: set[str] = set()


def log_once(message: str) -> None:
  """To the page's log (stderr), once per process: the script itself reruns on every click."""
  if message not in _logged:
    _logged.add(message)
    print(f"koala page: {message}", file=sys.stderr)


def is_loopback(address: str | None) -> bool:
  """Whether Streamlit's server.address keeps the page on this machine. Unset or empty means
  every interface (Streamlit's default)."""
  if not address:
    return False
  if address.strip().lower() == "localhost":
    return True
  try:
    return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
  except ValueError:
    return False


def exports_under(root: str) -> dict[str, str]:
  """Folder name -> path for each export directly under root (the root too, if it is one)."""
  found = {}
  candidates = [(os.path.basename(os.path.normpath(root)), root)]
  if os.path.isdir(root):
    candidates += [(name, os.path.join(root, name)) for name in sorted(os.listdir(root))
                   if os.path.isdir(os.path.join(root, name)) and not name.isdigit()]
  for name, path in candidates:
    try:
      resolve_version_dir(path)
    except (OSError, ValueError):
      continue
    found[_unique(name, found)] = path
  return found


def _unique(label: str, taken) -> str:
  n, out = 2, label
  while out in taken:
    out, n = f"{label} ({n})", n + 1
  return out


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    raise ConfigError(f"{self.prog}: {message}")


def _listed(value: str | None) -> list[str]:
  return [v.strip() for v in (value or "").split(",") if v.strip()]


def _positive(kind):
  def parse(text: str):
    value = kind(text)
    if value <= 0:
      raise ValueError(text)
    return value
  parse.__name__ = f"positive {kind.__name__}"
  return parse


def parser() -> argparse.ArgumentParser:
  p = _Parser(prog="streamlit run serving/streamlit_app.py --", add_help=False,
              description="Operator configuration of the Koala page (see serving/web_config.py).")
  p.add_argument("--model", help="one export (a base folder or a version folder) to offer")
  p.add_argument("--models_root", help="offer every export found directly under this folder")
  p.add_argument("--server", action="append", help="a TF Serving URL to offer (repeatable)")
  p.add_argument("--model_name", action="append", help="a served model name (repeatable)")
  p.add_argument("--local", action="store_true", default=None,
                 help="single-user mode: free folder and URL fields (loopback address only)")
  p.add_argument("--max_files", type=_positive(int), help="files per run")
  p.add_argument("--max_cbz_pages", type=_positive(int), help="pages per .cbz")
  p.add_argument("--max_run_mpx", type=_positive(float), help="megapixels per run")
  p.add_argument("--max_session_mb", type=_positive(float),
                 help="MB of results held per session")
  return p


def _env_number(environ, name: str, kind):
  text = environ.get(name)
  if text in (None, ""):
    return None
  try:
    return _positive(kind)(text)
  except ValueError:
    raise ConfigError(f"{name}={text!r}: expected a positive number") from None


def from_operator(argv: list[str], environ: Mapping[str, str],
                  address: str | None) -> WebConfig:
  """The page's configuration from the command line after `--` (first) and the environment;
  `address` is Streamlit's server.address. ConfigError for a wrong option or URL."""
  from serving.client import check_server_url
  args = parser().parse_args(argv)
  model = args.model or environ.get("KOALA_MODEL_PATH") or None
  root = args.models_root or environ.get("KOALA_MODELS_ROOT") or None
  servers = []
  for url in args.server or _listed(environ.get("KOALA_SERVER")):
    try:
      servers.append(check_server_url(url))
    except ValueError as e:
      raise ConfigError(f"--server / KOALA_SERVER: {e}") from None
  exports = {}
  if model or not (root or servers):      # nothing listed at all: what `make demo` exports
    path = model or DEMO_EXPORT
    exports[os.path.basename(os.path.normpath(path)) or path] = path
  if root:
    for name, path in exports_under(root).items():
      exports[_unique(name, exports)] = path
  names = args.model_name or _listed(environ.get("KOALA_MODEL_NAME")) or [DEFAULT_MODEL_NAME]
  local = args.local or environ.get("KOALA_LOCAL", "").strip().lower() in TRUE
  notes = []
  if local and not is_loopback(address):
    where = address or "every interface"
    notes.append(f"--local / KOALA_LOCAL refused: the page listens on {where}, not on a "
                 "loopback address; it runs shared (listed models only)")
    local = False
  return WebConfig(exports=exports, servers=tuple(servers), model_names=tuple(names),
                   local=local, caps=_caps(args, environ), notes=tuple(notes))


def _caps(args, environ) -> Caps:
  """Each cap from its option, else its environment variable, else the default."""
  def pick(option, name, kind):
    return option or _env_number(environ, name, kind)
  defaults = Caps()
  mpx = pick(args.max_run_mpx, "KOALA_MAX_RUN_MPX", float)
  mb = pick(args.max_session_mb, "KOALA_MAX_SESSION_MB", float)
  return Caps(
      files_per_run=pick(args.max_files, "KOALA_MAX_FILES", int) or defaults.files_per_run,
      pages_per_cbz=pick(args.max_cbz_pages, "KOALA_MAX_CBZ_PAGES", int)
      or defaults.pages_per_cbz,
      pixels_per_run=int(mpx * 1e6) if mpx else defaults.pixels_per_run,
      session_bytes=int(mb * 2 ** 20) if mb else defaults.session_bytes)
