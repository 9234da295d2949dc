"""Every app endpoint through gradio_client, against the app served on a local port."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow

BUNDLED_IMAGES = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "globe" / "images"


def test_fit_bundled_scene_returns_renders_splats_and_metrics(client):
    status, gallery, video, viewer, metrics, download = client.predict(
        "Bundled example scene", None, None, "3dgs", 20, api_name="/fit")
    m = json.loads(metrics)
    assert m["method"] == "3dgs" and m["steps"] == 20
    assert m["num_gaussians"] > 0 and m["psnr"] > 10.0
    assert Path(viewer).suffix == ".ply" and Path(viewer).stat().st_size > 1000
    assert Path(download).read_bytes()[:3] == b"ply"
    assert len(gallery) >= 1 and Path(video).stat().st_size > 0
    assert "Done" in status


def test_bad_uploads_show_a_readable_error(client, tmp_path):
    not_zip = tmp_path / "scene.zip"
    not_zip.write_text("this is not a zip archive")
    status = client.predict("Upload a scene (.zip)", handle_file(str(not_zip)), None, "3dgs", 20,
                            api_name="/fit")[0]
    assert "can't be used" in status and "not a zip" in status.lower()
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "no images here")
    status = client.predict("Upload a scene (.zip)", handle_file(str(empty)), None, "3dgs", 20,
                            api_name="/fit")[0]
    assert "can't be used" in status and "image" in status.lower()
    status = client.predict("Upload a scene (.zip)", None, None, "3dgs", 20, api_name="/fit")[0]
    assert "Choose a .zip" in status


PHOTOS = "Upload photos or a video (no poses)"


def test_bad_photo_uploads_name_the_problem(client, tmp_path):
    status = client.predict(PHOTOS, None, None, "instantsplat", 20, api_name="/fit")[0]
    assert "Choose 3 to 100 photos" in status
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    with pytest.raises(AppError, match="Invalid file type"):  # refused by the upload widget itself
        client.predict(PHOTOS, None, [handle_file(str(notes))], "instantsplat", 20, api_name="/fit")
    broken = tmp_path / "broken.png"
    broken.write_text("not a photo either")
    status = client.predict(PHOTOS, None, [handle_file(str(broken))], "instantsplat", 20, api_name="/fit")[0]
    assert "can't be used" in status and "broken.png" in status and "/tmp" not in status
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "x")
    photo = sorted(BUNDLED_IMAGES.glob("*.png"))[1]
    status = client.predict(PHOTOS, None, [handle_file(str(photo)), handle_file(str(archive))],
                            "instantsplat", 20, api_name="/fit")[0]
    assert "not a mix" in status and "more.zip" in status


def test_plain_photos_fit_with_estimated_cameras(client):
    photos = [handle_file(str(p)) for p in sorted(BUNDLED_IMAGES.glob("*.png"))[1:17:2]]  # 8 views
    status, gallery, video, viewer, metrics, download = client.predict(
        PHOTOS, None, photos, "instantsplat", 30, api_name="/fit")
    assert "Done" in status and "8 of 8 photos posed" in status, status
    m = json.loads(metrics)
    assert m["method"] == "instantsplat" and m["registered"] == 8 and m["unregistered"] == []
    assert m["num_gaussians"] > 0
    assert Path(viewer).read_bytes()[:3] == b"ply" and Path(video).stat().st_size > 0
    assert len(gallery) >= 1


def test_a_zip_of_plain_images_goes_the_pose_free_way(client, tmp_path):
    images_only = tmp_path / "photos.zip"
    with zipfile.ZipFile(images_only, "w") as z:
        for i, path in enumerate(sorted(BUNDLED_IMAGES.glob("*.png"))[1:8]):  # 7 neighbouring views
            z.write(path, f"photos/{i}.png")
    status, _, _, viewer, metrics, _ = client.predict(
        "Upload a scene (.zip)", handle_file(str(images_only)), None, "instantsplat", 20, api_name="/fit")
    assert "photos posed" in status, status
    assert json.loads(metrics)["registered"] >= 6
    assert Path(viewer).read_bytes()[:3] == b"ply"


def test_simulation_preview_runs_mpm_and_giorom(client):
    gif, timings, summary = client.predict("water", "dam_break", 400, 20, api_name="/simulate")
    assert Path(gif).read_bytes()[:3] == b"GIF"
    models = [row[0] for row in timings["data"]]
    assert models[0].startswith("MPM")
    assert any(m.startswith("GIOROM") for m in models), summary
    assert "water" in summary


def test_cgs_porous_solve_is_close_to_exact(client):
    png, summary = client.predict(300, 0, api_name="/cgs_porous")
    assert Path(png).read_bytes()[:4] == b"\x89PNG"
    mae = float(summary.split("Mean absolute error ")[1].split()[0])
    assert mae < 0.1, summary


def test_forwardgnn_table_has_one_row_per_variant(client):
    table = client.predict("karate", "gcn", ["bp", "sf"], 1, api_name="/forwardgnn")
    rows = table["data"]
    assert [r[0] for r in rows] == ["bp", "sf"]
    for r in rows:
        acc = float(r[1].split(" ")[0])
        assert 50.0 < acc <= 100.0


def test_cancel_stops_a_long_fit_cleanly(client):
    job = client.submit("Bundled example scene", None, None, "3dgs", 5000, api_name="/fit")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("Fitting" in str(o[0]) for o in job.outputs()):
        time.sleep(0.5)
    client.predict(api_name="/cancel_fit")
    status, gallery, video, viewer, metrics, download = job.result(timeout=300)
    m = json.loads(metrics)
    assert 0 < m["steps"] < 5000 and m["stopped_early"] is True
    assert "stopped early" in status
    assert Path(viewer).stat().st_size > 1000
