"""Colour pages through a TF Serving REST endpoint (real TF Serving or our stand-in alike).

  python -m serving.client --server=http://localhost:8501 --model=koala INPUT... \
      --output_dir=DIR [--concurrency=N] [--skip_colour_pages] [--overwrite] \
      [--hints=DIR] [--reference=IMAGE]

INPUT is any mix of page files, folders (recursive; the tree is kept under DIR) and .cbz
archives (a coloured .cbz comes out). It speaks only TF Serving's documented REST API (model
status, then :predict with {"instances": [{"b64": ...}]}), so nothing here depends on
serving/server.py.

Why the retries: TF Serving answers 503 UNAVAILABLE when its batching queue is full and 429
RESOURCE_EXHAUSTED under quota, and both mean "later", so the client backs off exponentially
(with jitter) and tries again; any other error is a property of the page and is reported.
Exit status: 0 all done, 1 some pages failed, 2 nothing could be done (server unreachable,
model unknown, no inputs).

What it will not do, because the Streamlit page runs it on a visitor's behalf (issue 19): follow
a redirect (a 307 would re-send the page to wherever the `Location` points, an internal port
included), let a model name or a `?` in the server URL change the request's path, or put the
remote answer's body in its error message (`ClientError` says the status and a fixed sentence;
the body is kept in `.detail`, which this command line prints for its own user and the web page
never shows).

Guidance (a model exported from `trainer.task --hints`): --hints DIR holds one hint image per
page, matched by file stem (DIR/p003.png steers p003.jpg; RGBA, opaque pixels are colour hints,
any size, stretched over the page); --reference IMAGE steers every page with one image's palette,
e.g. a chapter's colour cover. Either sends the pages to the `colorize_guided` signature; a page
with no hint file gets no hints. A bad hint file fails its page only; a bad reference, or a model
without `colorize_guided`, stops before the first page.
"""
from __future__ import annotations

import argparse
import base64
import random
import sys
import threading
import time
import urllib.parse

import requests

from serving import pages
from serving.hint_files import PageGuidance
from serving.page_names import NameClash
from trainer.export import signatures

RETRY_STATUSES = (429, 503)
# What a status means, said without the remote body (which a hostile or misconfigured server
# fills with whatever it likes).
STATUS_SENTENCES = {
    400: "the server refused the request (not an image the model can read, or too large)",
    404: "the server has no such model or version",
    413: "the request is larger than the server accepts",
    429: "the server is over its quota; try again later",
    503: "the server is busy; try again later",
}


class ClientError(RuntimeError):
  """A failure with a message meant for the user. `status` is the HTTP status when there was
  one; `detail` is what the server said (its error text, cut short), for the operator only."""

  def __init__(self, message: str, status: int | None = None, detail: str = ""):
    super().__init__(message)
    self.status = status
    self.detail = detail


def status_sentence(status: int) -> str:
  if status in STATUS_SENTENCES:
    return STATUS_SENTENCES[status]
  if 300 <= status < 400:
    return "a redirect, which this client does not follow"
  if status >= 500:
    return "the server failed"
  return "an answer this client does not expect"


def check_server_url(server: str) -> str:
  """The base URL without a trailing slash; ValueError for one that is not http(s)://host[:port]
  [/path], e.g. one whose `?` or `#` would swallow the /v1/models/... appended to it."""
  base = server.strip().rstrip("/")
  if "://" not in base:
    base = "http://" + base
  try:
    parts = urllib.parse.urlsplit(base)
    parts.port   # noqa: B018  (raises ValueError for a port that is not a number)
  except ValueError as e:
    raise ValueError(f"not a server URL: {server!r} ({e})") from None
  if parts.scheme not in ("http", "https") or not parts.hostname:
    raise ValueError(f"not a server URL: {server!r} (expected http://host:port)")
  if parts.query or parts.fragment or "?" in base or "#" in base:
    raise ValueError(f"not a server URL: {server!r} (no query or fragment: the client appends "
                     "/v1/models/NAME to it)")
  return base


class RestColorizer:
  """colorize(bytes) -> PNG bytes through POST /v1/models/NAME[/versions/N]:predict."""

  def __init__(self, server: str, model: str, version: int | None = None, *,
               retries: int = 6, backoff: float = 0.5, timeout: float = 300.0):
    try:
      self.base = check_server_url(server)
    except ValueError as e:
      raise ClientError(str(e)) from None
    self.model = model
    path = (f"/v1/models/{urllib.parse.quote(model, safe='')}"
            + (f"/versions/{int(version)}" if version else ""))
    self.status_url = self.base + path
    self.predict_url = self.base + path + ":predict"
    self.retries = retries
    self.backoff = backoff
    self.timeout = timeout
    self._local = threading.local()

  def _session(self) -> requests.Session:
    if not hasattr(self._local, "session"):
      self._local.session = requests.Session()
    return self._local.session

  def _get(self, url: str) -> requests.Response:
    return self._session().get(url, timeout=30, allow_redirects=False)

  def check(self) -> str:
    """Model status; a clear ClientError when the server or the model is not there."""
    try:
      r = self._get(self.status_url)
    except requests.ConnectionError:
      raise ClientError(
          f"cannot reach a model server at {self.base}: nothing answers there. Start one "
          "(docs/serving.md: `docker run ... tensorflow/serving`, or "
          "`python -m serving.server --model_base_path=... --model_name=...`) or fix --server"
      ) from None
    except requests.RequestException as e:
      raise ClientError(f"cannot talk to {self.base}: {type(e).__name__}") from None
    if r.status_code == 404:
      raise ClientError(f"the server at {self.base} has no model {self.model!r}", 404,
                        _error_text(r))
    if r.status_code != 200:
      raise _status_error(f"model status at {self.base}", r)
    try:
      statuses = r.json()["model_version_status"]
      states = [str(v.get("state")) for v in statuses]
      versions = ",".join(str(v["version"]) for v in statuses)
    except (ValueError, KeyError, TypeError, AttributeError):
      raise ClientError(f"the server at {self.base} answered its model status in a form "
                        "that is not TF Serving's") from None
    if "AVAILABLE" not in states:
      raise ClientError(f"model {self.model!r} is not available yet (states: {states})")
    return versions

  def signatures(self) -> list[str]:
    """The served model's signature names (from its metadata)."""
    try:
      r = self._get(self.status_url + "/metadata")
    except requests.RequestException as e:
      raise ClientError(f"cannot talk to {self.base}: {type(e).__name__}") from None
    if r.status_code != 200:
      raise _status_error(f"model metadata at {self.base}", r)
    try:
      return sorted(r.json()["metadata"]["signature_def"]["signature_def"])
    except (ValueError, KeyError, TypeError):
      raise ClientError(f"the server at {self.base} answered its model metadata in a form "
                        "that is not TF Serving's") from None

  def __call__(self, data: bytes, hints: bytes | None = None,
               reference: bytes | None = None) -> bytes:
    name, inputs = signatures.signature_inputs(data, hints, reference)
    if name == signatures.SERVING_DEFAULT:
      body = {"instances": [_b64(data)]}
    else:   # all three inputs in every instance, as TF Serving's row format requires
      body = {"signature_name": name,
              "instances": [{key: _b64(value) for key, value in inputs.items()}]}
    for attempt in range(self.retries + 1):
      try:
        r = self._session().post(self.predict_url, json=body, timeout=self.timeout,
                                 allow_redirects=False)
      except requests.ConnectionError:
        if attempt == self.retries:
          raise ClientError(f"lost the connection to {self.base}") from None
      except requests.RequestException as e:
        raise ClientError(f"cannot talk to {self.base}: {type(e).__name__}") from None
      else:
        if r.status_code == 200:
          try:
            return base64.b64decode(r.json()["predictions"][0]["b64"], validate=True)
          except (ValueError, KeyError, IndexError, TypeError):
            raise ClientError("the server answered 200 without a page in TF Serving's form",
                              200) from None
        if r.status_code not in RETRY_STATUSES or attempt == self.retries:
          raise _status_error("server", r)
      time.sleep(self.backoff * (2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _b64(data: bytes) -> dict:
  return {"b64": base64.b64encode(data).decode("ascii")}


def _status_error(what: str, r: requests.Response) -> ClientError:
  return ClientError(f"{what} answered {r.status_code}: {status_sentence(r.status_code)}",
                     r.status_code, _error_text(r))


def _error_text(r: requests.Response) -> str:
  try:
    return str(r.json().get("error", r.text))[:500]
  except (ValueError, AttributeError):
    return r.text[:200]


def _with_detail(e: ClientError) -> str:
  """The message and, for this command line's own user, what the server said."""
  return f"{e}: {e.detail}" if e.detail else str(e)


def check_local(data: bytes) -> None:
  """Refuses files that are not images before they cost a request, with the reason."""
  from koala import images
  images.image_size(data)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("inputs", nargs="+", metavar="INPUT", help="page files, folders, .cbz archives")
  p.add_argument("--server", default="http://localhost:8501")
  p.add_argument("--model", default="koala")
  p.add_argument("--version", type=int, default=None, help="a specific model version")
  p.add_argument("--output_dir", required=True)
  p.add_argument("--concurrency", type=int, default=2, help="requests in flight at once")
  p.add_argument("--skip_colour_pages", action="store_true",
                 help="copy pages that are already in colour unchanged")
  p.add_argument("--overwrite", action="store_true", help="redo outputs that exist already")
  p.add_argument("--retries", type=int, default=6, help="retries on 429/503, with backoff")
  p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
  p.add_argument("--no_progress", action="store_true")
  p.add_argument("--hints", metavar="DIR", default=None,
                 help="hint images, one per page matched by file stem (RGBA: opaque pixels are "
                      "colour hints)")
  p.add_argument("--reference", metavar="IMAGE", default=None,
                 help="one image whose palette steers every page")
  args = p.parse_args(argv)

  try:
    jobs, problems = pages.find_jobs(args.inputs, args.output_dir)
  except NameClash as e:
    print(f"error: {e} Nothing was coloured.", file=sys.stderr)
    return 2
  for problem in problems:
    print(f"skipped: {problem}", file=sys.stderr)
  if not jobs:
    print("nothing to colour: no pages or .cbz archives among the inputs", file=sys.stderr)
    return 2
  try:
    colorizer = RestColorizer(args.server, args.model, args.version, retries=args.retries,
                              timeout=args.timeout)
    guidance = PageGuidance.load(args.hints, args.reference)
    versions = colorizer.check()
    if (args.hints or args.reference) and \
        signatures.COLORIZE_GUIDED not in colorizer.signatures():
      raise ClientError(signatures.no_guidance(f"model {args.model!r}"))
  except ClientError as e:
    print(f"error: {_with_detail(e)}", file=sys.stderr)
    return 2
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  def colorize(data: bytes, **guide) -> bytes:
    try:
      check_local(data)
    except ValueError as e:
      raise ClientError(f"not a usable image: {e}") from None
    try:
      return colorizer(data, **guide)
    except ClientError as e:
      raise ClientError(_with_detail(e), e.status) from None

  print(f"{args.server} model {args.model} version {versions}: {len(jobs)} outputs to make",
        file=sys.stderr)
  if guidance:
    print(f"guidance: {len(guidance.hints)} hint files"
          + (", one reference for every page" if guidance.reference else ""), file=sys.stderr)
  report = pages.run(jobs, colorize, concurrency=args.concurrency,
                     skip_colour=args.skip_colour_pages, overwrite=args.overwrite,
                     progress=not args.no_progress, guidance=guidance)
  return summarize(report)


def summarize(report: pages.Report) -> int:
  print(f"done: {len(report.done)} written, {len(report.skipped_existing)} already there "
        f"(skipped), {len(report.kept_colour)} colour pages kept, {len(report.failed)} failed",
        file=sys.stderr)
  for page, reason in sorted(report.failed.items()):
    print(f"failed: {page}: {reason}", file=sys.stderr)
  for problem in report.skipped_inputs:
    print(f"skipped: {problem}", file=sys.stderr)
  return 1 if report.failed else 0


if __name__ == "__main__":
  sys.exit(main())
