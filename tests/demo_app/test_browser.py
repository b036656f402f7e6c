"""The app as a person uses it: `streamlit run` on a free localhost port, driven by headless Chromium (Playwright)."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from demo_app.launch import app_command
from device_runtime.chromium import CHROMIUM_MISSING, FLAGS, find_chromium

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 180_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(app_workspace, tmp_path_factory):
    """The app on 127.0.0.1 (the same command `pipeline app` runs), stopped by its own process group at the end."""
    port = free_port()
    log = tmp_path_factory.mktemp("app-server") / "streamlit.log"
    with log.open("wb") as out:
        process = subprocess.Popen(app_command(app_workspace, port, address="127.0.0.1"), stdout=out,
                                   stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"streamlit exited: {log.read_text()[-2000:]}"
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                assert time.monotonic() < deadline, f"streamlit did not come up: {log.read_text()[-2000:]}"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    assert executable is not None, CHROMIUM_MISSING
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), headless=True, args=list(FLAGS))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    yield context.new_page()
    context.close()


QUIET = """() => {  // true once Streamlit's running indicator has stayed away for 2 s
    const now = performance.now();
    if (document.querySelector('[data-testid="stStatusWidget"]') || window.__busySince === undefined) window.__busySince = now;
    return now - window.__busySince > 2000;
}"""


def settle(page, ready: str, state: str = "visible") -> None:
    """Wait for `ready`, then for the script run to end: the indicator shows up only after a moment, so it must
    stay away for a while, not just be absent once."""
    page.wait_for_selector(ready, state=state, timeout=WAIT_MS)
    page.evaluate("() => { window.__busySince = undefined; }")
    page.wait_for_function(QUIET, timeout=WAIT_MS, polling=200)


def assert_no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').all_inner_texts()
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


def predictions(page) -> dict[str, dict[str, str]]:
    """The Try it table as {model: {column: text}}."""
    rows = page.eval_on_selector('[data-testid="stTable"] table', """table => {
        const head = [...table.querySelectorAll('thead th')].map(c => c.innerText.trim());
        return [...table.querySelectorAll('tbody tr')].map(r => [...r.children].map(c => c.innerText.trim()))
            .map(cells => Object.fromEntries(cells.map((text, i) => [head[i], text])));
    }""")
    return {row["model"]: row for row in rows}


def shoot(page, folder: Path, name: str) -> Path:
    path = folder / f"app_{name}.png"
    page.screenshot(path=str(path))
    return path


def test_compare_detail_and_run_pages_load_cleanly(page, server, tmp_path):
    page.goto(server + "/")
    settle(page, "text=Leaderboard")
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 1
    assert_no_errors(page)
    shoot(page, tmp_path, "compare")
    page.goto(server + "/detail?artifact=digits-cnn-torch/tflite-int8")
    settle(page, "text=Top-1 agreement with source")
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2  # the two confusion matrices
    assert_no_errors(page)
    shoot(page, tmp_path, "detail")
    page.goto(server + "/run")
    settle(page, "text=Jobs")
    assert_no_errors(page)
    shoot(page, tmp_path, "run")


def test_try_it_shows_predictions_for_a_sample_and_an_upload(page, server, app_workspace, tmp_path):
    page.goto(server + "/try")
    settle(page, '[data-testid="stTable"]')
    sample = page.get_by_label("Sample (0-255)")
    sample.fill("3")
    sample.press("Enter")
    settle(page, "text=evaluation sample #3")
    table = predictions(page)
    artifacts = [name for name in table if not name.startswith("source:")]
    assert len(artifacts) >= 3 and all(table[name]["prediction"] not in ("error", "") for name in artifacts)
    assert_no_errors(page)
    shoot(page, tmp_path, "try_sample")

    with np.load(app_workspace / "artifacts" / "digits-cnn-torch/tflite-none/eval.npz") as data:
        digit, label = data[next(k for k in data.files if k != "y")][0, 0], str(int(data["y"][0]))
    from PIL import Image

    photo = io.BytesIO()
    Image.fromarray(np.kron((1.0 - digit) * 255, np.ones((12, 12))).astype(np.uint8)).save(photo, "PNG")
    page.get_by_text("Upload an image").click()
    settle(page, '[data-testid="stFileUploaderDropzoneInput"]', state="attached")  # a hidden <input type=file>
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "digit.png", "mimeType": "image/png", "buffer": photo.getvalue()}])
    settle(page, "text=model input — digit.png")
    table = predictions(page)
    assert sum(row["prediction"] == label for row in table.values()) >= len(table) - 1
    assert_no_errors(page)
    shoot(page, tmp_path, "try_upload")


def test_try_it_predicts_a_drawn_digit(page, server, tmp_path):
    if importlib.util.find_spec("streamlit_drawable_canvas") is None:  # importing it needs a running app
        pytest.skip("the canvas is optional: pip install streamlit-drawable-canvas")
    page.goto(server + "/try")
    settle(page, '[data-testid="stTable"]')
    page.get_by_text("Draw", exact=True).click()
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(timeout=WAIT_MS)
    box = canvas.bounding_box()
    x, top, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.3, box["y"] + box["height"] * 0.92
    page.mouse.move(x, top)  # strokes start below the canvas toolbar, which covers its top edge while hovered
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + (step % 2), top + (bottom - top) * step / 20, steps=2)
    page.mouse.up()
    settle(page, "text=model input — your drawing")
    table = predictions(page)
    assert len([name for name in table if not name.startswith("source:")]) >= 3
    assert_no_errors(page)
    shoot(page, tmp_path, "try_drawing")
