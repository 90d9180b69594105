"""The Streamlit page in a real browser: `streamlit run` as the README says (the repository's
.streamlit/config.toml keeps it on loopback), shared, with the operator's one export listed;
Debian's headless Chromium driven through chromedriver (Selenium). It uploads a gray page, waits
for the result, checks that the colour image the browser shows is coloured, downloads the PNG,
and saves a screenshot under out/test_artifacts/ (printed; gitignored) for a person to look at.
Shared means: the page listens on 127.0.0.1 only, answers only the Host names it lists, has no
field that takes a folder or a URL, and runs the listed model whatever a visitor types.

Why a browser on top of AppTest: AppTest runs the script without the frontend, so it cannot
see a broken upload widget, media that never reaches the page, or a download that does not
start. `make test` installs the browser first (`make browser`); Chromium is started with the
flags that keep it off the (closed) network and with a fresh profile.

The guidance test serves the manga model (serving_support's, trained for real on manga
renderings of the hint task's art, ~2 min the first time) and a manga page: a click on bare
white paper must colour the paper around it, the case where a hint that does nothing shows.
"""
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import requests
from PIL import Image

from koala import colour
from tests import serving_support as support

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = os.path.join(support.ROOT, "out", "test_artifacts")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1400,1300")


pytestmark = pytest.mark.slow   # Chromium, and a Streamlit app on the trained exports


@pytest.fixture(scope="module")
def base(inception_export):
  return inception_export


@pytest.fixture(scope="module")
def app_url(base):
  yield from streamlit_app(base)


@pytest.fixture(scope="module")
def manga_app_url(manga_export):
  yield from streamlit_app(manga_export)


def streamlit_app(base):
  """`streamlit run serving/streamlit_app.py` as the README says, on a free port, stopped
  afterwards: the repository's .streamlit/config.toml, not this test, keeps it on loopback;
  the operator lists one export (KOALA_MODEL_PATH), so the page is shared."""
  port = support.free_port()
  log_path = os.path.join(support.workdir(), f"streamlit-{port}.log")
  env = {k: v for k, v in os.environ.items() if not k.startswith("KOALA_")}
  env["KOALA_MODEL_PATH"] = base
  with open(log_path, "w") as log:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serving/streamlit_app.py",
         f"--server.port={port}", "--server.headless=true"],
        cwd=support.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
  url = f"http://127.0.0.1:{port}"
  try:
    deadline = time.time() + 120
    while True:
      try:
        if requests.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
          break
      except requests.ConnectionError:
        pass
      assert proc.poll() is None, open(log_path).read()
      assert time.time() < deadline, "streamlit did not start: " + open(log_path).read()
      time.sleep(0.3)
    yield url
  finally:
    proc.terminate()
    try:
      proc.wait(30)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


@pytest.fixture
def browser(tmp_path):
  if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: run `make browser` (Debian's "
                "chromium and chromium-driver)")
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  profile = tempfile.mkdtemp(prefix="koala-chromium-")
  for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  downloads = tmp_path / "downloads"
  downloads.mkdir()
  driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                         {"behavior": "allow", "downloadPath": str(downloads)})
  driver.downloads = downloads
  try:
    yield driver
  finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def chroma90(png: bytes) -> float:
  lab = colour.rgb_to_lab(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
  return float(np.percentile(colour.chroma(lab[..., 1:]), 90))


def wait(driver, condition, timeout: float, what: str):
  from selenium.common.exceptions import TimeoutException
  from selenium.webdriver.support.ui import WebDriverWait
  try:
    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: condition(d))
  except TimeoutException:
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "streamlit_browser_timeout.png")
    driver.save_screenshot(shot)
    raise AssertionError(f"timed out waiting for {what}; screenshot: {shot}") from None


def page_uploader(driver):
  """The pages' file input (the sidebar has another, for the reference image)."""
  from selenium.webdriver.common.by import By
  for widget in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stFileUploader]"):
    if widget.text.startswith("Pages"):
      return widget.find_element(By.CSS_SELECTOR, "input[type=file]")
  return None


def button(driver, label: str):
  from selenium.webdriver.common.by import By
  for b in driver.find_elements(By.TAG_NAME, "button"):
    if b.text.strip() == label and b.is_enabled():
      return b
  return None


def test_upload_a_page_and_see_it_coloured_in_chromium(app_url, browser, tmp_path):
  from selenium.webdriver.common.by import By
  gray, _ = support.task_page(300, 210, seed=11)
  page = tmp_path / "my_page.png"
  page.write_bytes(support.png_bytes(gray))
  assert chroma90(page.read_bytes()) < 1

  browser.get(app_url)
  upload = wait(browser, page_uploader, 90, "the upload widget")
  upload.send_keys(str(page))
  wait(browser, lambda d: button(d, "Colorize"), 60, "the Colorize button").click()

  def coloured_image(d):
    for figure in d.find_elements(By.CSS_SELECTOR, "[data-testid=stImage]"):
      if "Koala's colour" in figure.text:
        return figure.find_element(By.TAG_NAME, "img")
    return None
  img = wait(browser, coloured_image, 300, "the coloured page")
  wait(browser, lambda d: d.execute_script(
      "return arguments[0].complete && arguments[0].naturalWidth > 0", img), 30, "the image to load")
  shown = requests.get(img.get_attribute("src"), timeout=30).content
  assert Image.open(io.BytesIO(shown)).size == (210, 300)
  assert chroma90(shown) > 10, "the page shows a gray image where the colour one should be"
  assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid=stException]")

  browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", img)
  os.makedirs(ARTIFACTS, exist_ok=True)
  shot = os.path.join(ARTIFACTS, "streamlit_browser.png")
  browser.save_screenshot(shot)
  print(f"\nscreenshot of the Streamlit page in Chromium: {shot}")

  wait(browser, lambda d: button(d, "Download PNG"), 30, "the download button").click()
  target = browser.downloads / "my_page_koala.png"
  wait(browser, lambda d: target.exists() and target.stat().st_size > 0, 60, "the download")
  downloaded = target.read_bytes()
  assert Image.open(io.BytesIO(downloaded)).format == "PNG"
  assert Image.open(io.BytesIO(downloaded)).size == (210, 300)
  assert chroma90(downloaded) > 10


def listening_addresses(port: int) -> set[str]:
  """The local addresses with a socket listening on `port` (/proc/net/tcp and tcp6)."""
  import ipaddress
  import struct
  found = set()
  for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table) as f:
      for line in f.readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:   # 0A: LISTEN
          raw = bytes.fromhex(address)
          words = struct.unpack(f"<{len(raw) // 4}I", raw)     # stored as host-order words
          found.add(str(ipaddress.ip_address(struct.pack(f">{len(words)}I", *words))))
  return found


def test_the_shared_page_listens_on_loopback_and_runs_only_the_listed_model(app_url, base,
                                                                            browser, tmp_path):
  """As the README starts it for sharing: loopback only, unless its operator says otherwise;
  the model is picked from the operator's list, and nothing on the page takes a folder or a
  URL: a visitor who types the path of an export they planted into the model list, as a
  browser lets them, still gets the listed model (the planted one would leave a marker)."""
  from selenium.webdriver.common.by import By
  from selenium.webdriver.common.keys import Keys
  from tests.traps import crafted_export
  assert listening_addresses(int(app_url.rsplit(":", 1)[1])) == {"127.0.0.1"}
  marker = tmp_path / "marker"
  crafted = crafted_export(tmp_path / "crafted", marker)
  browser.get(app_url)
  upload = wait(browser, page_uploader, 90, "the upload widget")
  model = wait(browser, lambda d: next(
      (w for w in d.find_elements(By.CSS_SELECTOR, "[data-testid=stSelectbox]")
       if w.text.startswith("Model")), None), 30, "the model list")
  choice = model.find_element(By.TAG_NAME, "input")
  assert choice.get_attribute("value") == "inception"   # the export's folder name, not its path
  assert os.path.dirname(base) not in browser.page_source
  assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=stTextInput]") == []
  typed = [i.get_attribute("role") for i in browser.find_elements(By.CSS_SELECTOR, "input")
           if i.get_attribute("type") == "text"]
  assert typed == ["combobox"]                  # the model list's filter, nothing else
  choice.click()
  options = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=option]"), 30,
                 "the model list's options")
  assert [o.text for o in options] == ["inception"]
  choice.send_keys(Keys.CONTROL, "a")
  choice.send_keys(crafted, Keys.ENTER)
  choice.send_keys(Keys.ESCAPE)

  gray, _ = support.task_page(200, 140, seed=12)
  (tmp_path / "p.png").write_bytes(support.png_bytes(gray))
  upload.send_keys(str(tmp_path / "p.png"))
  wait(browser, lambda d: button(d, "Colorize"), 60, "the Colorize button").click()
  assert chroma90(shown_png(browser, wait(browser, coloured_image, 300, "the coloured page"))) > 10
  assert not marker.exists(), "the visitor's export ran on the host"
  assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid=stException]")


def websocket_handshake(url: str, host: str) -> str:
  """The status line Streamlit answers a WebSocket handshake to its stream with this Host."""
  import base64
  import socket
  port = int(url.rsplit(":", 1)[1])
  key = base64.b64encode(os.urandom(16)).decode()
  request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Origin: http://{host}\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n")
  with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
    s.sendall(request.encode())
    return s.recv(4096).decode(errors="replace").splitlines()[0]


def test_a_web_site_cannot_reach_the_page_by_rebinding_its_name_to_loopback(app_url):
  """DNS rebinding: a site the user visits points its own name at 127.0.0.1 and talks to the
  page from the browser. The repository's config answers only the Host names it lists."""
  port = app_url.rsplit(":", 1)[1]
  assert " 101 " in websocket_handshake(app_url, f"127.0.0.1:{port}")
  assert " 101 " in websocket_handshake(app_url, f"localhost:{port}")
  assert " 403 " in websocket_handshake(app_url, f"attacker.example:{port}")


def coloured_image(d):
  from selenium.webdriver.common.by import By
  for figure in d.find_elements(By.CSS_SELECTOR, "[data-testid=stImage]"):
    if "Koala's colour" in figure.text:
      return figure.find_element(By.TAG_NAME, "img")
  return None


def shown_png(driver, img) -> bytes:
  wait(driver, lambda d: d.execute_script(
      "return arguments[0].complete && arguments[0].naturalWidth > 0", img), 30, "the image to load")
  return requests.get(img.get_attribute("src"), timeout=30).content


def paper_spot(page: np.ndarray) -> tuple[int, int]:
  """(y, x): the paper pixel farthest from any ink or tone, the middle of the page's largest
  paper area (where a user clicks to colour bare paper)."""
  import cv2
  paper = (page >= 250).astype(np.uint8)
  paper[[0, -1], :] = paper[:, [0, -1]] = 0
  clear = cv2.distanceTransform(paper, cv2.DIST_L2, 5)
  return tuple(int(v) for v in np.unravel_index(int(np.argmax(clear)), clear.shape))


def test_a_click_on_paper_fills_its_region(manga_app_url, browser, tmp_path):
  """A manga page (koala.manga's rendering of held-out hint-task art) and a manga model: a click
  on bare paper with the default hint colour fills the paper region it sits in (the 4-connected
  area of paper, gray >= 250, around the click; many times the dot's disc) in the colour picked,
  up to its lines: what the served graph's region fill does for any weights."""
  from selenium.webdriver.common.action_chains import ActionChains
  from selenium.webdriver.common.by import By
  from koala import manga
  from tests import trainer_records
  gray = manga.render_manga(trainer_records.hint_task_art(np.random.default_rng(999), 300, 400),
                            seed=7)
  h, w = gray.shape
  cy, cx = paper_spot(gray)
  page = tmp_path / "hint_me.png"
  page.write_bytes(support.png_bytes(gray))
  browser.get(manga_app_url)
  wait(browser, page_uploader, 90, "the upload widget").send_keys(str(page))
  wait(browser, lambda d: button(d, "Colorize"), 60, "the Colorize button").click()
  first = wait(browser, coloured_image, 300, "the automatic colour page")
  automatic = shown_png(browser, first)
  first_src = first.get_attribute("src")

  # Click on the page shown in the hint component (an iframe), at page pixel (cx, cy): the page
  # is shown 420 px wide, and Selenium's offsets count from the image's centre.
  frame = wait(browser, lambda d: next(
      (f for f in d.find_elements(By.TAG_NAME, "iframe")
       if "streamlit_image_coordinates" in (f.get_attribute("title") or "")), None), 60,
      "the hint component")
  browser.switch_to.frame(frame)
  target = wait(browser, lambda d: d.find_element(By.TAG_NAME, "img"), 30, "the page to click")
  wait(browser, lambda d: target.size["width"] > 0, 30, "the page to show")
  assert target.size["width"] == 420
  shown = target.size["width"] / w
  ActionChains(browser).move_to_element_with_offset(
      target, round(cx * shown - target.size["width"] / 2),
      round(cy * shown - target.size["height"] / 2)).click().perform()
  browser.switch_to.default_content()
  wait(browser, lambda d: "1 hint dot on hint_me.png" in d.page_source, 60, "the dot to be placed")

  wait(browser, lambda d: button(d, "Colorize"), 60, "the Colorize button").click()

  def new_image(d):
    img = coloured_image(d)
    return img if img is not None and img.get_attribute("src") != first_src else None
  hinted = shown_png(browser, wait(browser, new_image, 300, "the hinted colour page"))
  a = np.asarray(Image.open(io.BytesIO(automatic)).convert("RGB"))
  b = np.asarray(Image.open(io.BytesIO(hinted)).convert("RGB"))
  # The page shows a preview-sized image of a large page: measure there, the click and the
  # 20 page-pixel neighbourhood scaled with it, on pixels that are all paper at that scale.
  assert a.shape == b.shape and abs(a.shape[0] / a.shape[1] - h / w) < 0.01
  sh, sw = a.shape[:2]
  k = sw / w
  import cv2
  paper = cv2.resize((gray >= 250).astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
  yy, xx = np.mgrid[:sh, :sw]
  near = ((yy - cy * k) ** 2 + (xx - cx * k) ** 2 <= (20 * k) ** 2) & (paper >= 0.999)
  assert near.sum() > 0.5 * np.pi * (20 * k) ** 2           # the click is on bare paper
  import scipy.ndimage
  from serving import hint_dots
  areas, _ = scipy.ndimage.label(gray >= 250)
  region = areas == areas[cy, cx]
  assert region.sum() > 10 * np.pi * hint_dots.dot_radius(h, w) ** 2   # far more than the disc
  inside = cv2.resize(region.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) >= 0.999
  picked = colour.rgb_to_lab(np.array([[0xD0, 0x30, 0x30]], np.uint8))[0]   # the default colour
  off = lambda rgb: np.linalg.norm(colour.rgb_to_lab(rgb)[inside] - picked, axis=-1)
  assert (off(b) <= 15).mean() >= 0.9, (off(b) <= 15).mean()
  assert (off(a) <= 15).mean() < 0.1                        # the automatic page is not red there
  assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid=stException]")
  os.makedirs(ARTIFACTS, exist_ok=True)
  shot = os.path.join(ARTIFACTS, "streamlit_browser_hints.png")
  browser.execute_script("arguments[0].scrollIntoView({block: 'end'})",
                         wait(browser, coloured_image, 30, "the hinted colour page"))
  browser.save_screenshot(shot)
  print(f"\nscreenshot of the hint editor in Chromium: {shot}")
