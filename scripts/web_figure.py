"""The web page's screenshot for the docs, from the real Fashion-MNIST GAN in headless Chromium.

    python scripts/web_figure.py [--model zoo:fmnist-gan] [--out docs/web.png]

Serves the model on a free loopback port, then drives the page as a person would: generate a
grid of 16, click two images (the seed shows), interpolate between them, upload a photo
(scikit-image's astronaut, downsized), paint a mask over the shuttle model and inpaint, and saves a
1200x720 screenshot. Needs the serve and test extras and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SIZE = (1200, 720)


def serve(app: Any) -> tuple[str, Any, threading.Thread]:
    """Run `app` with uvicorn in a thread on a free loopback port; its URL, server and thread."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=30):
                return url, server, thread
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def browser(profile: str) -> Any:
    """Headless Debian Chromium at the figure's size, with nothing fetched from elsewhere."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

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
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={SIZE[0]},{SIZE[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def photo(path: Path, side: int = 128) -> Path:
    """scikit-image's astronaut, shrunk to side x side."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS).save(path)
    return path


def drive(d: Any, url: str, shot: Path, work: Path, method: str) -> None:
    """Generate, pick, interpolate, inpaint, then screenshot the page."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(d, 120)

    def done() -> None:
        status = d.find_element(By.ID, "status")
        wait.until(lambda _: status.get_attribute("data-kind") in ("ok", "error"))
        if status.get_attribute("data-kind") == "error":
            raise SystemExit(f"the page says: {status.text}")

    def fill(element_id: str, value: str) -> None:
        box = d.find_element(By.ID, element_id)
        box.clear()
        box.send_keys(value)

    d.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1, "mobile": False},
    )
    d.get(url + "/")
    done()
    fill("n", "16")
    fill("seed", "2024")
    d.find_element(By.ID, "generate").click()
    done()
    cells = d.find_elements(By.CSS_SELECTOR, "#grid button")
    cells[1].click()
    cells[6].click()
    fill("steps", "8")
    d.find_element(By.ID, "interpolate").click()
    done()
    edits = [o.get_attribute("value") for o in Select(d.find_element(By.ID, "operation")).options]
    if "inpaint" in edits:
        Select(d.find_element(By.ID, "operation")).select_by_value("inpaint")
        d.find_element(By.ID, "photo").send_keys(str(photo(work / "astronaut.png")))
        done()
        canvas = d.find_element(By.ID, "mask-canvas")
        k = canvas.size["width"] / 128  # display pixels per photo pixel
        d.execute_script("document.getElementById('brush').value = arguments[0];", 22 * k)
        # a stroke down the shuttle model on the right, from its nose to its base
        chain = ActionChains(d).move_to_element_with_offset(canvas, round(37 * k), round(-58 * k))
        chain.click_and_hold()
        for _ in range(8):
            chain.move_by_offset(0, round(7 * k))
        chain.release().perform()
        Select(d.find_element(By.ID, "opt-method")).select_by_value(method)
        d.find_element(By.ID, "apply").click()
        done()
    d.execute_script("window.scrollTo(0, 0); document.activeElement.blur();")
    time.sleep(0.3)
    shot.parent.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(shot))


def main(argv: list[str] | None = None) -> int:
    """Serve the model, drive the page, write the screenshot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo:fmnist-gan")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "web.png")
    p.add_argument("--method", default="learned", help="the inpainting method shown")
    args = p.parse_args(argv)
    from pixelsmith.serve.app import create_app, load_served

    url, server, thread = serve(create_app(load_served([args.model])))
    profile = tempfile.mkdtemp(prefix="pixelsmith-chromium-")
    try:
        d = browser(profile)
        try:
            drive(d, url, args.out, Path(profile), args.method)
        finally:
            d.quit()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
