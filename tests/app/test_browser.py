"""A person's session in a real headless Chromium: fit, photos without poses, bad upload, simulate."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(app_url):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh --test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.set_default_timeout(60_000)
        pg.goto(app_url)
        pg.get_by_role("button", name="Fit").wait_for()
        yield pg
        browser.close()


def _set_slider(page, container_id_or_label: str, value: int) -> None:
    box = page.get_by_label(container_id_or_label, exact=False).first
    box.fill(str(value))
    box.press("Enter")


def _image_std(png: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32).std())


def test_fit_shows_metrics_and_a_non_blank_splat_viewer(page):
    page.locator("input[type=number]").first.fill("20")
    page.locator("input[type=number]").first.press("Enter")
    page.get_by_role("button", name="Fit").click()
    metrics = page.locator("#fit-metrics")
    metrics.get_by_text('"psnr"').wait_for(timeout=420_000)
    assert "Done" in page.locator("#fit-status").inner_text()
    canvas = page.locator("#splat-viewer canvas")
    canvas.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # let the viewer draw the splats
    shot = canvas.screenshot()
    (ARTIFACTS / "browser-fit-viewer.png").write_bytes(shot)
    page.screenshot(path=str(ARTIFACTS / "browser-fit.png"), full_page=True)
    assert _image_std(shot) > 2.0, "the splat viewer is blank"


def test_plain_photos_upload_fits_and_shows_the_splats(page):
    globe = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "globe" / "images"
    photos = [str(p) for p in sorted(globe.glob("*.png"))[1:17:2]]  # 8 photos, no poses
    page.get_by_label("Upload photos or a video (no poses)").check()
    page.locator("#photo-upload input[type=file]").set_input_files(photos)
    page.wait_for_timeout(2000)
    page.locator("input[type=number]").first.fill("30")
    page.locator("input[type=number]").first.press("Enter")
    page.get_by_role("button", name="Fit").click()
    page.locator("#fit-status").get_by_text("photos posed").wait_for(timeout=420_000)
    assert "8 of 8 photos posed" in page.locator("#fit-status").inner_text()
    assert '"registered": 8' in page.locator("#fit-metrics").inner_text()
    canvas = page.locator("#splat-viewer canvas")
    canvas.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)
    shot = canvas.screenshot()
    page.screenshot(path=str(ARTIFACTS / "browser-photos.png"), full_page=True)
    assert _image_std(shot) > 2.0, "the splat viewer is blank after a photo fit"


def test_bad_upload_shows_an_error_and_the_app_keeps_serving(page, tmp_path):
    bad = tmp_path / "holiday.zip"
    bad.write_text("definitely not a zip")
    page.get_by_label("Upload a scene (.zip)").check()
    page.locator("#scene-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Fit").click()
    page.locator("#fit-status").get_by_text("can't be used").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "browser-bad-upload.png"), full_page=True)
    # The server still answers: the Simulate tab works next.


def test_simulation_preview_shows_an_animation(page):
    page.get_by_role("tab", name="Simulate").click()
    page.get_by_role("button", name="Simulate", exact=True).wait_for()
    page.get_by_role("button", name="Simulate", exact=True).click()
    img = page.locator("#sim-animation img")
    img.wait_for(timeout=300_000)
    page.locator("#sim-timings").get_by_text("GIOROM").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "browser-simulate.png"), full_page=True)
    assert "MPM" in page.locator("#sim-timings").inner_text()
