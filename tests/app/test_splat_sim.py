"""The Simulate tab's splat objects: MPM beside the GIOROM preview as rendered videos."""

from __future__ import annotations

from pathlib import Path


def _video_path(v) -> Path:
    return Path(v["video"] if isinstance(v, dict) else v)


def test_splat_object_drop_shows_mpm_and_preview_videos(client):
    mpm, preview, timings, summary = client.predict("ring", "jelly", 20, api_name="/simulate_splats")
    for video in (mpm, preview):
        data = _video_path(video).read_bytes()
        assert data[4:8] == b"ftyp", "an mp4 file"
    rows = timings["data"]
    assert rows[0][0].startswith("MPM") and rows[1][0].startswith("GIOROM"), rows
    assert float(rows[0][2]) > 0 and float(rows[1][2]) > 0  # ms per frame of both
    assert rows[1][4].endswith("%")  # the preview's error against MPM
    assert "ring" in summary and "jelly" in summary


def test_splat_object_without_a_checkpoint_runs_mpm_only(client):
    mpm, preview, timings, summary = client.predict("ball", "plasticine", 20, api_name="/simulate_splats")
    assert _video_path(mpm).read_bytes()[4:8] == b"ftyp"
    assert preview is None and len(timings["data"]) == 1
    assert "No bundled 3-D GIOROM checkpoint" in summary
