"""Avatar builder: real MediaPipe on the shared photos and on images made here (unhappy paths)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from lipstream.avatar import (
    AvatarError,
    BuiltAvatar,
    FaceTooSmallError,
    NoFaceError,
    NotAnImageError,
    ProfileFaceError,
    build_avatar,
    default_photo,
)
from lipstream.avatar.build import check_frontal
from lipstream.realtime.avatar import Avatar

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/photos is missing")


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the test image")
    return buf.tobytes()


def _photo(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)


@needs_photos
@pytest.mark.parametrize("name", ["astronaut.png", "obama.jpg", "biden.jpg"])
def test_builds_each_shared_photo(name: str, tmp_path: Path) -> None:
    built = build_avatar(PHOTOS / name, cache_dir=tmp_path)
    assert isinstance(built, BuiltAvatar)
    assert built.notes == ()
    avatar = Avatar.load(built.path)
    width, height = avatar.frame_size
    assert 512 <= width <= 1280 and 512 <= height <= 720
    assert width % 2 == 0 and height % 2 == 0
    assert 64 <= avatar.crop_px <= 256


@needs_photos
def test_cache_is_keyed_by_content_and_reused(tmp_path: Path) -> None:
    data = (PHOTOS / "astronaut.png").read_bytes()
    first = build_avatar(data, cache_dir=tmp_path)
    stamp = (first.path / "meta.json").stat().st_mtime_ns
    second = build_avatar(PHOTOS / "astronaut.png", cache_dir=tmp_path)
    assert second.path == first.path and second.avatar_id == first.avatar_id
    assert (first.path / "meta.json").stat().st_mtime_ns == stamp  # not rebuilt
    assert len(first.avatar_id) == 64 and int(first.avatar_id, 16) >= 0


@needs_photos
def test_env_overrides_cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSTREAM_CACHE", str(tmp_path))
    built = build_avatar(PHOTOS / "astronaut.png")
    assert built.path.parent == tmp_path / "avatars"


@needs_photos
def test_concurrent_builds_of_one_photo_end_with_one_complete_dir(tmp_path: Path) -> None:
    data = (PHOTOS / "astronaut.png").read_bytes()
    results: list[BuiltAvatar] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(build_avatar(data, cache_dir=tmp_path))
        except BaseException as exc:  # noqa: BLE001  (reported by the assert below)
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.path for r in results}) == 1
    assert [p.name for p in tmp_path.iterdir()] == [results[0].path.name]  # no temp dirs left
    Avatar.load(results[0].path)


@needs_photos
def test_several_faces_uses_the_largest_and_says_so(tmp_path: Path) -> None:
    big = _photo("astronaut.png")
    small = cv2.resize(big, (400, 400), interpolation=cv2.INTER_AREA)  # face ~70 px across
    canvas = np.full((512, 932, 3), 200, np.uint8)
    canvas[:, :512] = big
    canvas[56:456, 522:922] = small
    built = build_avatar(_png(canvas), cache_dir=tmp_path)
    assert built.notes == ("2 faces found; using the largest",)
    assert json.loads((built.path / "meta.json").read_text())["notes"] == list(built.notes)


def test_corrupt_bytes_are_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(NotAnImageError, match="not an image"):
        build_avatar(b"\x89PNG\r\n\x1a\n garbage that is not a png", cache_dir=tmp_path)
    with pytest.raises(NotAnImageError):
        build_avatar(b"", cache_dir=tmp_path)


def test_gradient_has_no_face(tmp_path: Path) -> None:
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    image = np.stack([np.tile(ramp, (480, 1))] * 3, axis=-1).astype(np.uint8)
    with pytest.raises(NoFaceError, match="no face"):
        build_avatar(_png(image), cache_dir=tmp_path)


@needs_photos
def test_tiny_face_is_refused(tmp_path: Path) -> None:
    small = cv2.resize(_photo("astronaut.png"), (240, 240), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 600, 3), 128, np.uint8)
    canvas[180:420, 180:420] = small  # face about 50 px across
    with pytest.raises((FaceTooSmallError, NoFaceError)) as info:
        build_avatar(_png(canvas), cache_dir=tmp_path)
    assert "px" in str(info.value) or "no face" in str(info.value)


def test_profile_is_refused_by_landmark_geometry() -> None:
    lm = np.zeros((478, 3), np.float32)
    lm[234, 0], lm[454, 0] = 100.0, 200.0
    lm[1, 0] = 150.0
    check_frontal(lm)  # frontal: nose midway
    lm[1, 0] = 192.0
    with pytest.raises(ProfileFaceError, match="profile"):
        check_frontal(lm)


def test_errors_are_avatar_errors() -> None:
    for cls in (NotAnImageError, NoFaceError, FaceTooSmallError, ProfileFaceError):
        assert issubclass(cls, AvatarError)


def test_default_photo_is_the_shipped_astronaut() -> None:
    path = default_photo()
    assert path.name == "astronaut.png" and path.is_file()
    assert cv2.imread(str(path)).shape == (512, 512, 3)


def test_oversized_photo_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lipstream.avatar import PhotoTooLargeError, detect

    monkeypatch.setattr(detect, "MAX_PIXELS", 100 * 100)
    with pytest.raises(PhotoTooLargeError, match="megapixels"):
        build_avatar(_png(np.zeros((120, 120, 3), np.uint8)), cache_dir=tmp_path)


def test_loading_a_broken_dir_fails_clearly(tmp_path: Path) -> None:
    from lipstream.realtime.avatar import AvatarFormatError

    with pytest.raises(AvatarFormatError):
        Avatar.load(tmp_path)
    (tmp_path / "meta.json").write_text('{"format_version": 0}')
    (tmp_path / "arrays.npz").write_bytes(b"not npz")
    with pytest.raises(AvatarFormatError):
        Avatar.load(tmp_path)


def test_a_face_view_off_the_chroma_grid_is_refused(tmp_path: Path) -> None:
    """The live composer pastes the view on whole 2x2 chroma blocks; an odd corner is refused."""
    import json
    import shutil

    from lipstream.realtime.avatar import META_FILE, AvatarFormatError

    built = build_avatar(default_photo(), cache_dir=tmp_path / "cache")
    x0, y0 = Avatar.load(built.path).crop_xy
    assert x0 % 2 == 0 and y0 % 2 == 0
    odd = tmp_path / "odd"
    shutil.copytree(built.path, odd)
    meta = json.loads((odd / META_FILE).read_text())
    meta["crop_xy"] = [x0 + 1, y0]
    (odd / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(AvatarFormatError, match="even pixels"):
        Avatar.load(odd)
