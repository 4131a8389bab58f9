"""`sfhformer serve` in a real browser: headless Chromium, driven by Selenium, against the real
server in a subprocess. It chooses a model, uploads a photograph, restores it, downloads the
result (which must equal what `sfhformer restore` writes, pixel for pixel), opens the Frequency
tab, and checks the page on a phone-sized screen.

Needs Debian's `chromium` and `chromium-driver`, and the `selenium`, `fastapi` and `uvicorn`
modules; skipped without them.

A README screenshot of the page with a restored image, through the same code path:

    SFHFORMER_SCREENSHOT=docs/serve.png python -m pytest tests/test_serve_browser.py
    python -c "import sys; sys.path.insert(0, 'tests'); import test_serve_browser as t; t.save_readme_screenshot('docs/serve.png')"
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

TOKEN = "browser-test-token"
DESKTOP = (1280, 900)
PHONE = {"width": 390, "height": 844, "pixelRatio": 3}
SERVER_START_S = 60
RESTORE_S = 120


def _missing() -> str | None:
    """Why this test cannot run here, or None."""
    missing = [m for m in ("selenium", "fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        missing.append("python-multipart")
    if missing:
        return f"needs the Python modules {', '.join(missing)} (pip install selenium fastapi uvicorn python-multipart)"
    if _chromium() is None or shutil.which("chromedriver") is None:
        return "needs the chromium and chromedriver binaries (apt-get install chromium chromium-driver)"
    return None


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# ---- the server ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0, token: str | None = TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"X-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextlib.contextmanager
def running_server(models_dir: Path, log: Path, token: str | None = TOKEN):
    """`sfhformer serve` on a free local port, with a token or without (this machine only);
    yields its base URL; stops it."""
    port = _free_port()
    command = [sys.executable, "-m", "sfhformer", "serve", "--port", str(port), "--device", "cpu",
               "--models", str(models_dir), *(["--token", token] if token else [])]
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        # the same thread count as this process (conftest: 2), so that the server's arithmetic, and
        # so its rounding, is the one `sfhformer restore` does here, whatever the machine's cores
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"sfhformer serve exited with {proc.returncode}:\n{log.read_text()}")
                with contextlib.suppress(OSError):
                    status, body = _get(base + "/api/health", timeout=2, token=token)
                    if status == 200 and json.loads(body).get("status") == "ok":
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"sfhformer serve did not answer /api/health in {SERVER_START_S} s:\n"
                                         f"{log.read_text()}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- the browser -----------------------------------------------------------------------------

def new_driver(downloads: Path | None = None, phone: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--lang=en-US"):
        options.add_argument(arg)
    if phone:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": PHONE,
            "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                         "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"})
    else:  # the window; the viewport is set to exactly DESKTOP below
        options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1] + 200}")
    if downloads is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads), "download.prompt_for_download": False,
            "download.directory_upgrade": True, "safebrowsing.enabled": False})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    if not phone:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": DESKTOP[0], "height": DESKTOP[1], "deviceScaleFactor": 1, "mobile": False})
    if downloads is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def wait_for(what: str, predicate, timeout: float = 10.0, interval: float = 0.1):
    """predicate()'s first truthy value within ``timeout`` seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def page_error(driver) -> str:
    return driver.execute_script("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent;")


def open_page(driver, base: str, token: str | None = TOKEN) -> None:
    """The page, opened as `sfhformer serve` prints it (with ?token= when it has one), its models loaded."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/?token={token}" if token else f"{base}/")
    wait_for("the model list", lambda: driver.find_element(By.ID, "model").is_enabled()
             and driver.find_elements(By.CSS_SELECTOR, "#model option[value='denoise']"), timeout=15)
    assert "token" not in driver.current_url, f"the token stayed in the address bar: {driver.current_url}"
    assert driver.execute_script("return sessionStorage.getItem('sfhformer-token')") == token


def restore_in_page(driver, image: Path, model: str = "denoise", tile: int | None = 0):
    """Choose ``image`` and ``model``, set the tile (None: the model's default), press Restore;
    returns the .result element once done."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    if tile is not None:
        tile_input = driver.find_element(By.ID, "tile")
        tile_input.clear()
        tile_input.send_keys(str(tile))
    driver.find_element(By.ID, "file").send_keys(str(image))
    driver.find_element(By.ID, "restore").click()
    result = wait_for("a result card", lambda: driver.find_element(By.CSS_SELECTOR, ".result"), timeout=10)

    def finished():
        error = page_error(driver)
        if error:
            raise AssertionError(f"the page shows an error: {error}")
        return result.get_attribute("data-state") == "done" and "ready" in result.get_attribute("class")

    deadline = time.monotonic() + RESTORE_S
    while not finished():
        assert time.monotonic() < deadline, (f"not restored in {RESTORE_S} s; state "
                                             f"{result.find_element(By.CSS_SELECTOR, '.state').text!r}")
        time.sleep(0.2)
    assert result.find_element(By.CSS_SELECTOR, ".state").text.lower() == "done"
    progress = result.find_element(By.CSS_SELECTOR, "progress")
    assert float(progress.get_attribute("value")) == float(progress.get_attribute("max"))
    for name in ("before", "after"):
        assert driver.execute_script(f"return arguments[0].querySelector('img.{name}').naturalWidth",
                                     result) > 0, f"img.{name} did not load"
    return result


def no_horizontal_overflow(driver) -> bool:
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")


def in_viewport(driver, element) -> bool:
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth + 1;", element)


# ---- the photograph --------------------------------------------------------------------------

def noisy_photo(path: Path, size: tuple[int, int] = (96, 128), sigma: float = 25.0) -> Path:
    """A real photograph (scikit-image's chelsea), cropped, with Gaussian noise, as a PNG."""
    import skimage.data

    from sfhformer.io import write_image

    clean = skimage.data.chelsea()[: size[0], : size[1]].astype(np.float64)
    noise = np.random.default_rng(0).normal(0.0, sigma, clean.shape)
    return write_image(path, np.clip(clean + noise, 0, 255).round().astype(np.uint8))


def cli_restore(image: Path, out_dir: Path, tile: int = 0) -> np.ndarray:
    """What `sfhformer restore` writes for ``image`` with the options the page used."""
    from sfhformer.cli import main
    from sfhformer.io import read_image

    assert main(["restore", str(image), "-o", str(out_dir), "--weights", "denoise", "--device", "cpu",
                 "--tile", str(tile)]) == 0
    (written,) = list(out_dir.iterdir())
    return read_image(written).pixels


# ---- the test --------------------------------------------------------------------------------

def _skip_without_tools():
    reason = _missing()
    if reason:
        pytest.skip(reason)


def test_page_restores_downloads_and_fits_a_phone(tmp_path):
    _skip_without_tools()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from sfhformer.io import read_image

    image = noisy_photo(tmp_path / "chelsea_noisy.png")
    models = tmp_path / "models"
    models.mkdir()
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    with running_server(models, tmp_path / "server.log") as base:
        driver = new_driver(downloads)
        try:
            open_page(driver, base)
            assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == list(DESKTOP)
            # the options show the chosen model's defaults
            assert driver.find_element(By.ID, "overlap").get_attribute("value") != ""
            assert driver.find_element(By.ID, "ensemble").is_selected() is False
            result = restore_in_page(driver, image, "denoise", tile=0)

            # the before/after slider answers the keyboard
            slider = result.find_element(By.CSS_SELECTOR, "input.slider")
            slider.send_keys(Keys.END)
            assert slider.get_attribute("value") == "100"
            slider.send_keys(Keys.HOME)
            assert slider.get_attribute("value") == "0"
            slider.send_keys(Keys.ARROW_RIGHT)
            assert slider.get_attribute("value") == "1"
            driver.execute_script("arguments[0].value = 50; arguments[0].dispatchEvent(new Event('input'));"
                                  "arguments[0].blur()", slider)
            driver.save_screenshot(str(tmp_path / "desktop.png"))
            if os.environ.get("SFHFORMER_SCREENSHOT"):
                driver.save_screenshot(os.environ["SFHFORMER_SCREENSHOT"])

            # zoom and side by side
            result.find_element(By.CSS_SELECTOR, ".zoom-in").click()
            after = result.find_element(By.CSS_SELECTOR, "img.after")
            assert after.size["width"] == 128  # 100%: the image's own width
            result.find_element(By.CSS_SELECTOR, ".zoom-in").click()
            assert after.size["width"] == 256
            result.find_element(By.CSS_SELECTOR, ".view-toggle").click()
            before = result.find_element(By.CSS_SELECTOR, "img.before")
            assert before.location["x"] + before.size["width"] <= after.location["x"]  # side by side
            driver.save_screenshot(str(tmp_path / "desktop_side_by_side.png"))

            # the download is the file `sfhformer restore` writes, pixel for pixel
            result.find_element(By.CSS_SELECTOR, ".download").click()
            job = json.loads(_get(f"{base}/api/jobs/{result.get_attribute('data-job')}")[1])
            assert job["filename"] == "chelsea_noisy_restored.png"
            target = downloads / job["filename"]
            wait_for(f"the download {target.name}", lambda: target.is_file() and not any(
                p.suffix == ".crdownload" for p in downloads.iterdir()), timeout=20)
            expected = cli_restore(image, tmp_path / "cli", tile=0)
            got = read_image(target).pixels
            assert got.shape == expected.shape == (96, 128, 3)
            assert np.array_equal(got, expected), "the download differs from what `sfhformer restore` writes"
            assert not np.array_equal(got, read_image(image).pixels)  # it did restore

            # the Frequency tab: the spectra, fetched with the token
            tab = result.find_element(By.CSS_SELECTOR, ".tab-frequency")
            tab.click()
            assert tab.get_attribute("aria-selected") == "true"
            spectrum = result.find_element(By.CSS_SELECTOR, "img.spectrum")
            wait_for("the spectrum image", lambda: driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", spectrum) > 0, timeout=60)
            assert spectrum.is_displayed()
            assert not result.find_element(By.CSS_SELECTOR, "img.after").is_displayed()  # the other tab hid
            driver.save_screenshot(str(tmp_path / "desktop_frequency.png"))

            # an API error is shown in one sentence: an unknown model id
            driver.execute_script("const o = new Option('gone', 'no-such-model');"
                                  "document.getElementById('model').append(o); o.selected = true;")
            driver.find_element(By.ID, "restore").click()
            message = wait_for("the error line", lambda: page_error(driver), timeout=15)
            assert "no-such-model" in message, message
            assert page_error(driver) == driver.find_element(By.ID, "error").text
            assert no_horizontal_overflow(driver)
        finally:
            driver.quit()

    # on the phone, a server without a token: this machine only, POSTs from its own page (the
    # browser's real Host and Origin headers pass the server's DNS-rebinding and CSRF checks)
    with running_server(models, tmp_path / "server_local.log", token=None) as base:
        phone = new_driver(phone=True)
        try:
            open_page(phone, base, token=None)
            rebound = urllib.request.Request(f"{base}/api/health", headers={"Host": "rebound.example"})
            with pytest.raises(urllib.error.HTTPError) as refused:  # another name for this machine
                urllib.request.urlopen(rebound, timeout=5)
            assert refused.value.code == 403
            assert phone.execute_script("return window.innerWidth") == PHONE["width"]
            assert no_horizontal_overflow(phone), "the page overflows horizontally at 390 px"
            restore_button = phone.find_element(By.ID, "restore")
            phone.execute_script("arguments[0].scrollIntoView({block: 'center'})", restore_button)
            assert restore_button.is_displayed() and in_viewport(phone, restore_button)
            phone.save_screenshot(str(tmp_path / "phone.png"))
            result = restore_in_page(phone, image, "denoise", tile=0)
            assert no_horizontal_overflow(phone), "a result overflows horizontally at 390 px"
            phone.execute_script("arguments[0].scrollIntoView()", result)
            assert in_viewport(phone, result.find_element(By.CSS_SELECTOR, "img.after"))
            phone.save_screenshot(str(tmp_path / "phone_result.png"))
        finally:
            phone.quit()


# ---- for the README --------------------------------------------------------------------------

def save_readme_screenshot(path: str | os.PathLike, size: tuple[int, int] = (300, 451), sigma: float = 25.0,
                           tile: int | None = None, keep_dir: str | os.PathLike | None = None) -> Path:
    """Save a 1280x900 screenshot of the page with a restored photograph (the test's code path:
    the real server, the real page, headless Chromium). ``size``: the crop of chelsea (H, W);
    ``tile``: as typed into the page (None: the model's default tiling)."""
    reason = _missing()
    if reason:
        raise RuntimeError(reason)
    path = Path(path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(keep_dir) if keep_dir else Path(tmp)
        image = noisy_photo(tmp / "chelsea_noisy.png", size, sigma)
        (tmp / "models").mkdir(exist_ok=True)
        with running_server(tmp / "models", tmp / "server.log") as base:
            driver = new_driver()
            try:
                open_page(driver, base)
                restore_in_page(driver, image, "denoise", tile=tile)
                driver.execute_script("window.scrollTo(0, 0)")
                path.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(path))
            finally:
                driver.quit()
    return path


if __name__ == "__main__":
    print(save_readme_screenshot(sys.argv[1] if len(sys.argv) > 1 else "sfhformer_serve.png"))
