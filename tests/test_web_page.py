"""The web page in a real browser: Debian's headless Chromium driven by Selenium against the
service on a loopback port, with a tiny in-memory class-conditional GAN. The page loads with no
console errors, generates a grid whose seeds match the API's, shows errors in its status line,
interpolates between two picked images, edits an uploaded photo (a painted mask for inpainting)
and offers the result for download; behind an API key it asks for the key and then works."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_gan

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRE = os.environ.get("PIXELSMITH_REQUIRE_BROWSER") == "1"  # CI sets it: fail, never skip


def _why_no_browser() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    for module, extra in (("selenium", "test"), ("uvicorn", "serve"), ("fastapi", "serve")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install 'pixelsmith[{extra}]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install {package})"
    return None


WHY = _why_no_browser()
if WHY and REQUIRE:
    pytest.fail(f"{WHY}, and PIXELSMITH_REQUIRE_BROWSER=1 requires it", pytrace=False)
if WHY:
    pytest.skip(WHY, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from pixelsmith.jobs.stamp import Stamp  # noqa: E402
from pixelsmith.models.gan import GAN  # noqa: E402
from pixelsmith.serve.app import Served, create_app  # noqa: E402

KEY = "k" * 20
WAIT_S = 20


class Live:
    """The app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or not self.thread.is_alive():
                    raise RuntimeError("the test server did not start") from None
                time.sleep(0.05)

    def routes(self) -> set[str]:
        """The paths the app answers."""
        return {getattr(r, "path", "") for r in self.server.config.app.routes}

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def gan() -> GAN:
    model = make_gan((1, 16, 16), 3)
    model.add_ema_copies()
    model.eval()
    return model


@pytest.fixture(scope="module")
def live(gan: GAN) -> Iterator[Live]:
    # Unstamped (no mark, no manifest): the page's images are compared with the API's byte for
    # byte, and each stamped answer carries a manifest of its own (test_serve_provenance.py).
    server = Live(create_app({"tiny": Served("tiny", gan, "test")}, stamp=Stamp()))
    yield server
    server.close()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pixelsmith-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _post(live: Live, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        live.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())


def _open(driver: Any, live: Live) -> None:
    """Load the page afresh and wait until it says it is ready."""
    driver.get(live.url + "/")
    _wait_status(driver, "ok")


def _wait_status(driver: Any, kind: str) -> str:
    """The status line's text once its kind is `kind` (ok, error)."""
    status = driver.find_element(By.ID, "status")
    WebDriverWait(driver, WAIT_S).until(lambda _: status.get_attribute("data-kind") in (kind,))
    return status.text


def _set(driver: Any, element_id: str, value: str) -> None:
    box = driver.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(value)


def _images(driver: Any, css: str, n: int) -> list[Any]:
    """The n decoded images matching css, once they are all there."""

    def ready(_: Any) -> list[Any] | bool:
        imgs = driver.find_elements(By.CSS_SELECTOR, css)
        ok = len(imgs) == n and all(
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
            for i in imgs
        )
        return imgs if ok else False

    return WebDriverWait(driver, WAIT_S).until(ready)


def _b64(img: Any) -> str:
    src = img.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    return src.split(",", 1)[1]


def _generate(driver: Any, n: int, seed: int, label: str = "by seed") -> list[Any]:
    _set(driver, "n", str(n))
    _set(driver, "seed", str(seed))
    Select(driver.find_element(By.ID, "label")).select_by_visible_text(
        label if label == "by seed" else f"class {label}"
    )
    driver.find_element(By.ID, "generate").click()
    _wait_status(driver, "ok")
    return _images(driver, "#grid img", n)


def _need(live: Live, *paths: str) -> None:
    missing = [p for p in paths if p not in live.routes()]
    assert not missing, f"the server has no {', '.join(missing)} endpoint"


def _photo(tmp_path: Path, name: str = "photo.png", size: tuple[int, int] = (40, 30)) -> Path:
    """A small smooth RGB test photo written to tmp_path."""
    import numpy as np
    from PIL import Image

    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return path


def test_page_loads_without_console_errors_and_lists_the_generators(driver, live):
    _open(driver, live)
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if "/v1/edits" not in live.routes():  # a server without edits: the page hides that card
        severe = [m for m in severe if "/v1/edits - " not in m or "404" not in m]
        assert not driver.find_element(By.ID, "edit-card").is_displayed()
    assert severe == [], severe
    models = Select(driver.find_element(By.ID, "model")).options
    assert [o.get_attribute("value") for o in models] == ["tiny"]
    labels = [o.text for o in Select(driver.find_element(By.ID, "label")).options]
    assert labels == ["by seed", "class 0", "class 1", "class 2"]
    assert driver.find_element(By.ID, "generate").is_enabled()
    # the stylesheet is the page's own and applied: pixelated scaling for the tiny images
    rule = driver.execute_script(
        "const i = document.createElement('img'); document.body.append(i);"
        "const r = getComputedStyle(i).imageRendering; i.remove(); return r;"
    )
    assert rule == "pixelated"


def test_generate_shows_the_grid_and_a_clicked_image_shows_its_seed(driver, live):
    _open(driver, live)
    imgs = _generate(driver, 5, 40)
    api = _post(live, "/v1/images/generations", {"model": "tiny", "n": 5, "seed": 40})["data"]
    assert [_b64(i) for i in imgs] == [d["b64_json"] for d in api]
    assert driver.execute_script("return arguments[0].naturalWidth", imgs[0]) == 16
    imgs[2].click()
    assert driver.find_element(By.ID, "seed-info").is_displayed()
    assert driver.find_element(By.ID, "seed-value").text == str(api[2]["seed"]) == "42"
    remake = driver.find_element(By.ID, "remake").get_attribute("value")
    assert '"seed":42' in remake and live.url in remake and "image/png" in remake
    # a class picked: the grid is that class, image for image as the API makes it
    imgs = _generate(driver, 2, 7, label="2")
    want = _post(live, "/v1/images/generations", {"n": 2, "seed": 7, "labels": [2]})["data"]
    assert [_b64(i) for i in imgs] == [d["b64_json"] for d in want]
    imgs[1].click()
    assert '"labels":[2]' in driver.find_element(By.ID, "remake").get_attribute("value")
    # the keyboard reaches the images too: each is a button
    cell = driver.find_elements(By.CSS_SELECTOR, "#grid button")[0]
    cell.send_keys(" ")
    assert cell.get_attribute("aria-pressed") == "true"


def test_errors_show_in_the_status_line(driver, live):
    _open(driver, live)
    _set(driver, "n", "99")  # the server's own check answers
    driver.find_element(By.ID, "generate").click()
    message = _wait_status(driver, "error")
    assert "n must be a whole number from 1 to 16" in message and "400" in message
    assert driver.find_element(By.ID, "generate").is_enabled()
    _set(driver, "n", "2")
    _set(driver, "seed", "")
    driver.find_element(By.ID, "generate").click()
    assert "Seed must be a whole number" in _wait_status(driver, "error")


def test_two_picked_images_interpolate_into_a_strip(driver, live):
    _need(live, "/v1/images/interpolations")
    _open(driver, live)
    imgs = _generate(driver, 4, 100)
    assert not driver.find_element(By.ID, "interpolate").is_enabled()
    imgs[0].click()
    imgs[3].click()
    assert driver.find_element(By.ID, "picked").text == "100 → 103"
    _set(driver, "steps", "5")
    driver.find_element(By.ID, "interpolate").click()
    _wait_status(driver, "ok")
    strip = _images(driver, "#strip img", 5)
    want = _post(
        live,
        "/v1/images/interpolations",
        {"model": "tiny", "seeds": [100, 103], "steps": 5, "output_format": "png"},
    )["data"]
    assert [_b64(i) for i in strip] == [d["b64_json"] for d in want]
    # with a class picked, the strip's ends are the two picked images themselves
    imgs = _generate(driver, 3, 60, label="2")
    ends = [_b64(imgs[0]), _b64(imgs[2])]
    imgs[0].click()
    imgs[2].click()
    driver.find_element(By.ID, "interpolate").click()
    _wait_status(driver, "ok")
    strip = _images(driver, "#strip img", 5)
    assert [_b64(strip[0]), _b64(strip[-1])] == ends


def _choose_edit(driver: Any, wanted: tuple[str, ...]) -> str:
    """Pick the first of `wanted` that the page's edit list offers."""
    select = Select(driver.find_element(By.ID, "operation"))
    offered = [o.get_attribute("value") for o in select.options]
    for op in wanted:
        if op in offered:
            select.select_by_value(op)
            return op
    pytest.skip(f"/v1/edits offers none of {', '.join(wanted)} (it offers {offered})")


def _quick_method(driver: Any) -> None:
    """Pick a classical method over the learned one where the edit offers a choice: in a list
    of choices, or in a list of ticks applied in order (enhance's methods)."""
    for select in driver.find_elements(By.CSS_SELECTOR, "#options select[name=method]"):
        values = [o.get_attribute("value") for o in Select(select).options]
        classical = [v for v in ("telea", "harmonic", "unsharp", "clahe") if v in values]
        others = [v for v in values if v != "learned"]
        if classical or others:
            Select(select).select_by_value((classical or others)[0])
    for ticks in driver.find_elements(By.CSS_SELECTOR, "#options span[data-list=methods]"):
        for tick in ticks.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"):
            if tick.is_selected() != (tick.get_attribute("value") == "unsharp"):
                tick.click()


def test_an_uploaded_photo_is_edited_and_offered_for_download(driver, live, tmp_path):
    _need(live, "/v1/edits", "/v1/images/edits")
    _open(driver, live)
    photo = _photo(tmp_path, "my photo.png")
    driver.find_element(By.ID, "photo").send_keys(str(photo))
    _wait_status(driver, "ok")
    assert driver.find_element(By.ID, "original").get_attribute("naturalWidth") == "40"
    with urllib.request.urlopen(live.url + "/v1/edits", timeout=10) as r:
        offered = [e["id"] for e in json.loads(r.read())["data"]]
    options = Select(driver.find_element(By.ID, "operation")).options
    assert [o.get_attribute("value") for o in options] == offered
    op = _choose_edit(driver, ("enhance", "denoise", "sr"))
    _quick_method(driver)
    driver.find_element(By.ID, "apply").click()
    _wait_status(driver, "ok")
    [result] = _images(driver, "#result img", 1)
    assert driver.execute_script("return arguments[0].naturalWidth", result) >= 40
    link = driver.find_element(By.ID, "download")
    assert link.is_displayed() and link.get_attribute("href") == result.get_attribute("src")
    assert link.get_attribute("href").startswith("blob:")  # not megabytes of data URL
    name = link.get_attribute("download")
    assert name.startswith("my_photo-" + op) and name.endswith(".png")
    # a photo dropped on the edit card replaces the chosen one
    dropped = base64.b64encode(_photo(tmp_path, "dropped.png", (24, 20)).read_bytes()).decode()
    driver.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const dt = new DataTransfer();"
        "dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));"
        "const card = document.getElementById('edit-card');"
        "for (const type of ['dragenter', 'dragover', 'drop'])"
        "  card.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true}));",
        dropped,
    )
    WebDriverWait(driver, WAIT_S).until(
        lambda _: driver.find_element(By.ID, "original").get_attribute("naturalWidth") == "24"
    )
    assert "dropped.png" in driver.find_element(By.ID, "original-caption").text
    assert not driver.find_elements(By.CSS_SELECTOR, "#result img")  # the old result is gone
    # a bad upload: the server's message in the status line
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    driver.execute_script(
        "state.photo = new File([Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0))],"
        " 'bad.png', {type: 'image/png'}); refreshButtons();",
        base64.b64encode(bad.read_bytes()).decode(),
    )
    driver.find_element(By.ID, "apply").click()
    assert "(4" in _wait_status(driver, "error")


def test_inpainting_sends_the_painted_mask_at_the_photos_size(driver, live, tmp_path):
    _need(live, "/v1/edits", "/v1/images/edits")
    _open(driver, live)
    _choose_edit(driver, ("inpaint",))
    _quick_method(driver)
    driver.find_element(By.ID, "photo").send_keys(str(_photo(tmp_path, size=(48, 32))))
    _wait_status(driver, "ok")
    canvas = driver.find_element(By.ID, "mask-canvas")
    assert canvas.is_displayed() and driver.find_element(By.ID, "clear-mask").is_displayed()
    assert not driver.find_element(By.ID, "apply").is_enabled()  # nothing painted yet
    width = canvas.size["width"]
    ActionChains(driver).move_to_element_with_offset(
        canvas, -width // 6, 0
    ).click_and_hold().move_by_offset(width // 3, 4).release().perform()
    mask = driver.execute_async_script(
        "const done = arguments[0]; maskBlob().then(b => createImageBitmap(b)).then(bm => {"
        " const c = document.createElement('canvas'); c.width = bm.width; c.height = bm.height;"
        " const x = c.getContext('2d'); x.drawImage(bm, 0, 0);"
        " const d = x.getImageData(0, 0, bm.width, bm.height).data; let white = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i] === 255) white++;"
        " done([bm.width, bm.height, white]); });"
    )
    w, h, white = mask
    assert (w, h) == (48, 32) and 0 < white < w * h // 2
    driver.find_element(By.ID, "apply").click()
    _wait_status(driver, "ok")
    [result] = _images(driver, "#result img", 1)
    assert driver.execute_script("return arguments[0].naturalWidth", result) == 48
    assert driver.find_element(By.ID, "download").get_attribute("download").endswith(".png")
    driver.find_element(By.ID, "clear-mask").click()
    assert not driver.find_element(By.ID, "apply").is_enabled()


def test_behind_an_api_key_the_page_asks_for_it_and_then_works(driver, gan):
    keyed = Live(create_app({"tiny": Served("tiny", gan, "test")}, api_key=KEY))
    try:
        try:
            urllib.request.urlopen(keyed.url + "/", timeout=5).close()
        except urllib.error.HTTPError as e:
            if e.code == 401:
                pytest.skip(
                    "the server guards / and /static/* with the API key, so no browser can load "
                    "the page to ask for it (serve.app's OPEN_PATHS should let those through)"
                )
        driver.get(keyed.url + "/")
        assert "API key" in _wait_status(driver, "error")
        form = driver.find_element(By.ID, "key-form")
        assert form.is_displayed()
        driver.find_element(By.ID, "api-key").send_keys(KEY + "\n")
        _wait_status(driver, "ok")
        assert not form.is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('pixelsmith-api-key')") == KEY
        assert driver.execute_script("return localStorage.length") == 0
        _generate(driver, 2, 3)
    finally:
        keyed.close()
