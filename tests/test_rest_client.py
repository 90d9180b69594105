"""serving.client.RestColorizer against model servers that misbehave (issue 19, attack 3): the
web page runs this client on a visitor's behalf, so a server that redirects, a model name that
walks out of /v1/models/, a `?` in the URL or an error body full of internal detail must not
turn it into a request forgery or a leak. Real loopback HTTP servers (tests/traps.py).
"""
import json

import pytest

from serving import client
from tests import traps
from tests import serving_support as support

PAGE = support.png_bytes(support.task_page(60, 40)[0])
SECRET = "internal-token-5f2a"


@pytest.fixture
def internal():
  """An internal service the page must never reach: it records what arrives."""
  with traps.Trap(200, json.dumps({"predictions": [{"b64": ""}]}).encode()) as trap:
    yield trap


def redirect_to(target: str) -> traps.Trap:
  return traps.Trap(307, b"", {"Location": target + "/v1/models/koala:predict"})


def test_a_307_does_not_resend_the_page_elsewhere(internal):
  with redirect_to(internal.url) as redirector:
    colorize = client.RestColorizer(redirector.url, "koala", retries=0)
    with pytest.raises(client.ClientError) as e:
      colorize(PAGE)
  assert e.value.status == 307
  assert str(e.value) == "server answered 307: a redirect, which this client does not follow"
  assert [r.method for r in redirector.requests] == ["POST"]
  assert internal.requests == []                       # the page went nowhere else


def test_status_and_metadata_do_not_follow_redirects_either(internal):
  with redirect_to(internal.url) as redirector:
    colorize = client.RestColorizer(redirector.url, "koala", retries=0)
    with pytest.raises(client.ClientError, match="answered 307"):
      colorize.check()
    with pytest.raises(client.ClientError, match="answered 307"):
      colorize.signatures()
  assert internal.requests == []


@pytest.mark.parametrize("status", [400, 404, 500, 502])
def test_a_remote_error_body_never_reaches_the_message(status):
  body = json.dumps({"error": f"{SECRET} at /srv/secret/config.yaml"}).encode()
  with traps.Trap(status, body) as server:
    colorize = client.RestColorizer(server.url, "koala", retries=0)
    for call in (lambda: colorize(PAGE), colorize.check, colorize.signatures):
      with pytest.raises(client.ClientError) as e:
        call()
      assert SECRET not in str(e.value) and "/srv/" not in str(e.value)
      assert e.value.status == status
      assert SECRET in e.value.detail          # kept for the command line's own user


def test_the_command_line_still_tells_its_user_what_the_server_said(tmp_path, capsys):
  (tmp_path / "p.png").write_bytes(PAGE)
  with traps.Trap(404, json.dumps({"error": f"{SECRET}: no such model"}).encode()) as srv:
    code = client.main([str(tmp_path / "p.png"), f"--server={srv.url}",
                        f"--output_dir={tmp_path / 'out'}", "--no_progress"])
  assert code == 2
  err = capsys.readouterr().err
  assert "has no model 'koala'" in err and SECRET in err


def test_the_model_name_stays_inside_the_model_path():
  with traps.Trap(404, b"{}") as server:
    colorize = client.RestColorizer(server.url, "../../admin?delete=1#", retries=0)
    with pytest.raises(client.ClientError):
      colorize.check()
    with pytest.raises(client.ClientError):
      colorize(PAGE)
  paths = [r.path for r in server.requests]
  assert paths == ["/v1/models/..%2F..%2Fadmin%3Fdelete%3D1%23",
                   "/v1/models/..%2F..%2Fadmin%3Fdelete%3D1%23:predict"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/admin?x=",
                                 "http://127.0.0.1:{port}/#",
                                 "file:///etc/passwd",
                                 "gopher://127.0.0.1:{port}/",
                                 "http://127.0.0.1:notaport/"])
def test_a_url_that_would_change_the_request_is_refused_before_any_request(url, internal):
  port = internal.url.rsplit(":", 1)[1]
  with pytest.raises(client.ClientError, match="not a server URL"):
    client.RestColorizer(url.format(port=port), "koala")
  assert internal.requests == []
