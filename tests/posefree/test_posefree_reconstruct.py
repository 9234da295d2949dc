"""Photos to cameras end to end on renders with known poses; reports; mapping failures."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splat.io import bundled_scene_path, load_colmap, load_scene
from splat.posefree import RegistrationReport, SfMOptions, reconstruct, trajectory_errors
from splat.posefree.reconstruct import _is_video_source, _resolve_matcher

GLOBE_VIEWS = list(range(10))  # consecutive spiral views, about 22 degrees apart


@pytest.fixture(scope="module")
def globe():
    return load_scene(bundled_scene_path())


@pytest.fixture(scope="module")
def globe_rec(globe, tmp_path_factory):
    """Ten globe views plus an unrelated photo (the cameraman), which must not register."""
    from skimage import data

    root = tmp_path_factory.mktemp("globe")
    unrelated = root / "cameraman.jpg"
    Image.fromarray(data.camera()).resize((320, 240)).save(unrelated)
    work = root / "work"
    messages = []
    rec = reconstruct([globe.image_paths[i] for i in GLOBE_VIEWS] + [unrelated], work,
                      progress=lambda f, m: messages.append((f, m)))
    return rec, work, messages


@pytest.mark.slow
def test_every_view_registers_and_poses_match_ground_truth(globe, globe_rec):
    rec, work, _ = globe_rec
    names = [globe.image_paths[i].name for i in GLOBE_VIEWS]
    assert rec.report.registered == names
    assert list(rec.report.unregistered) == ["cameraman.jpg"]
    assert "matches" in rec.report.unregistered["cameraman.jpg"]
    gt = globe.cameras.viewmats[GLOBE_VIEWS].double().numpy()
    err = trajectory_errors(rec.scene.cameras.viewmats.double().numpy(), gt)
    assert err.ate_relative < 0.10, err.to_dict()
    assert err.median_rotation_deg < 5.0, err.to_dict()
    focal = float(globe.cameras.Ks[0, 0, 0])
    assert abs(rec.report.focal - focal) / focal < 0.15


@pytest.mark.slow
def test_scene_cloud_and_colmap_model(globe, globe_rec):
    rec, work, messages = globe_rec
    scene = rec.scene
    assert scene.width == 320 and scene.height == 240
    assert scene.train_ids == list(range(len(GLOBE_VIEWS))) and scene.test_ids == []
    assert all(p.parent == work / "images" and p.is_file() for p in scene.image_paths)
    assert torch_allclose_shared_K(scene)
    assert scene.images([0]).shape == (1, 240, 320, 3)
    # A denser cloud than SfM's, in front of the cameras and projecting inside the images.
    assert rec.report.num_points == len(scene.points) > rec.report.num_sparse_points > 100
    pts = np.c_[scene.points.double().numpy(), np.ones(len(scene.points))]
    cam = (scene.cameras.viewmats[0].double().numpy() @ pts.T)[:3]
    assert np.mean(cam[2] > 0) > 0.99
    # Colours come from the images: the globe scene is mostly white background, objects are darker.
    assert 0.05 < float(scene.point_colors.mean()) < 0.95
    # The COLMAP model describes the normalised images and loads as a scene with the same cameras.
    assert rec.colmap_model_dir == work / "sparse" / "0"
    loaded = load_colmap(work)
    np.testing.assert_allclose(loaded.cameras.viewmats.numpy(), scene.cameras.viewmats.numpy(), atol=1e-4)
    np.testing.assert_allclose(loaded.cameras.Ks.numpy(), scene.cameras.Ks.numpy(), rtol=1e-5)
    assert rec.report.mean_reprojection_error < 1.5
    # No staging left beside the work folder, progress rose to 1.
    assert sorted(p.name for p in work.parent.iterdir()) == ["cameraman.jpg", "work"]
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def torch_allclose_shared_K(scene) -> bool:
    Ks = scene.cameras.Ks
    return bool((Ks - Ks[:1]).abs().max() == 0) and float(Ks[0, 0, 0]) == float(Ks[0, 1, 1])


@pytest.mark.slow
def test_report_to_dict(globe_rec):
    rec, _, _ = globe_rec
    d = rec.report.to_dict()
    json.dumps(d)
    assert d["num_images"] == len(GLOBE_VIEWS) + 1 and d["num_registered"] == len(GLOBE_VIEWS)
    assert d["mapper"] in ("incremental", "global")
    assert set(d["seconds"]) >= {"images", "features", "matching", "mapping", "cloud"}
    assert all(v >= 0 for v in d["seconds"].values())
    assert "/" not in "".join(d["registered"])  # user's names, never server paths


def test_featureless_images_fail_with_advice(tmp_path):
    for k, grey in enumerate((40, 120, 200)):
        Image.fromarray(np.full((60, 80, 3), grey, np.uint8)).save(tmp_path / f"blank{k}.png")
    work = tmp_path / "work"
    with pytest.raises(ValueError, match=r"mapping failed.*blank0.png: too few features.*Try more images, more overlap"):
        reconstruct(tmp_path, work)
    assert not work.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank0.png", "blank1.png", "blank2.png"]


def test_argument_checks(tmp_path):
    assert _resolve_matcher("auto", video=True) == "sequential"
    assert _resolve_matcher("auto", video=False) == "exhaustive"
    assert _resolve_matcher("sequential", video=False) == "sequential"
    (tmp_path / "clip.MOV").write_bytes(b"x")
    assert _is_video_source(tmp_path / "clip.MOV") and not _is_video_source(tmp_path)
    with pytest.raises(ValueError, match=r"matcher must be one of"):
        reconstruct(tmp_path, tmp_path / "w", matcher="vocab")
    with pytest.raises(TypeError, match=r"options must be SfMOptions"):
        reconstruct(tmp_path, tmp_path / "w", options={"matcher": "exhaustive"})
    with pytest.raises(ValueError, match=r"matcher must be 'exhaustive' or 'sequential'"):
        SfMOptions(matcher="auto")
    with pytest.raises(ValueError, match=r"at least 2 images .*single.png"):
        reconstruct(_one_image(tmp_path), tmp_path / "w")
    assert not (tmp_path / "w").exists()
    assert RegistrationReport([], {}, "incremental", 0.0, 0, 0).to_dict()["num_images"] == 0


def _one_image(folder: Path) -> list[Path]:
    path = folder / "single.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return [path]


@pytest.mark.slow
def test_video_frames_register_with_sequential_matching(globe, tmp_path):
    import imageio_ffmpeg

    video = tmp_path / "orbit.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), (320, 240), fps=4, quality=9, macro_block_size=16)
    writer.send(None)
    for i in GLOBE_VIEWS:
        writer.send(np.ascontiguousarray(np.asarray(Image.open(globe.image_paths[i]).convert("RGB"))))
    writer.close()
    rec = reconstruct(video, tmp_path / "work", frames=len(GLOBE_VIEWS))
    assert rec.report.registered == [f"frame_{k:05d}.png" for k in range(len(GLOBE_VIEWS))]
    assert rec.report.log[0].startswith("matcher: sequential")
    err = trajectory_errors(rec.scene.cameras.viewmats.double().numpy(),
                            globe.cameras.viewmats[GLOBE_VIEWS].double().numpy())
    assert err.ate_relative < 0.10 and err.median_rotation_deg < 5.0, err.to_dict()


@pytest.mark.slow
def test_same_photos_give_the_same_model_on_every_run(globe, tmp_path):
    """Eight globe photos whose multi-threaded extraction once registered 7 or 8 of them."""
    photos = sorted(globe.image_paths)[1:17:2]
    runs = [reconstruct(photos, tmp_path / f"run{k}", densify_cloud=False) for k in range(3)]
    first = runs[0].report
    assert len(first.registered) == 8
    for rec in runs[1:]:
        assert rec.report.registered == first.registered
        assert rec.report.num_sparse_points == first.num_sparse_points
        assert rec.report.focal == first.focal
        assert np.array_equal(rec.scene.cameras.viewmats.numpy(), runs[0].scene.cameras.viewmats.numpy())


def test_reproducible_runs_keep_extraction_and_mapping_on_one_thread():
    assert SfMOptions().serial_threads == 1
    assert SfMOptions(reproducible=False, num_threads=2).serial_threads == 2
