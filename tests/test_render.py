"""Renderer: the shipped generator ONNX on avatars built from the shared photos."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from lipstream.avatar import build_avatar
from lipstream.realtime.avatar import RIG_FIELDS, Avatar
from lipstream.realtime.pose import MOUTH_PARAMS, N_MOUTH_PARAMS, FramePose
from lipstream.realtime.render import Renderer

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
pytestmark = pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/photos is missing")

FOREHEAD, CHIN, UPPER_INNER_LIP, LOWER_INNER_LIP = 10, 152, 13, 14
LEFT_EYE_UPPER, LEFT_EYE_LOWER = 159, 145


def _pose(
    open_: float = 0.0,
    width: float = 0.0,
    blink: float = 0.0,
    head: tuple = (0, 0, 0),
    **shape: float,
) -> FramePose:
    """A pose; ``shape`` sets the other ``MOUTH_PARAMS`` columns by name (jaw=0.05, press=1)."""
    mouth = np.zeros(N_MOUTH_PARAMS, np.float32)
    mouth[:2] = open_, width
    for name, value in shape.items():
        mouth[MOUTH_PARAMS.index(name)] = value
    return FramePose(0, mouth, blink=blink, head=np.array(head, np.float32))


def _closeup_png() -> bytes:
    """A close-up made from obama.jpg: the face fills the photo, so the view is upscaled."""
    import cv2

    photo = cv2.imread(str(PHOTOS / "obama.jpg"))
    return cv2.imencode(".png", photo[120:470, 330:680])[1].tobytes()


@pytest.fixture(scope="module")
def renderers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Renderer]:
    cache = tmp_path_factory.mktemp("avatars")
    photos: dict[str, bytes | Path] = {
        n: PHOTOS / n for n in ("astronaut.png", "obama.jpg", "biden.jpg")
    }
    photos["closeup"] = _closeup_png()
    out = {
        n: Renderer(Avatar.load(build_avatar(p, cache_dir=cache).path)) for n, p in photos.items()
    }
    # The photo's own framing keeps a close-up a close-up (auto framing shrinks it to webcam size).
    built = build_avatar(photos["closeup"], cache_dir=cache, framing="photo")
    out["closeup_photo"] = Renderer(Avatar.load(built.path))
    return out


def _landmarks(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    import mediapipe as mp

    out: list[np.ndarray | None] = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        for frame in frames:
            result = mesh.process(frame)
            if not result.multi_face_landmarks:
                out.append(None)
                continue
            h, w = frame.shape[:2]
            pts = result.multi_face_landmarks[0].landmark
            out.append(np.array([[p.x * w, p.y * h] for p in pts], np.float32))
    return out


def _opening(lm: np.ndarray) -> float:
    face_h = np.linalg.norm(lm[FOREHEAD] - lm[CHIN])
    return float(np.linalg.norm(lm[UPPER_INNER_LIP] - lm[LOWER_INNER_LIP]) / face_h)


def test_frame_shape_dtype_and_size(renderers: dict[str, Renderer]) -> None:
    for r in renderers.values():
        frame = r.render(_pose(0.05))
        width, height = r.frame_size
        assert frame.shape == (height, width, 3) and frame.dtype == np.uint8


def test_rest_pose_reproduces_the_avatar_frame(renderers: dict[str, Renderer]) -> None:
    """Exactly for 1:1 avatars; an upscaled view only softens the face a little."""
    for name, r in renderers.items():
        diff = np.abs(r.render(_pose()).astype(int) - r.avatar.frame.astype(int))
        if r.avatar.alpha is None:
            assert diff.max() <= 1, name
        else:
            assert diff.mean() < 3.0, name


def test_closeup_fills_the_frame_with_an_upscaled_view(renderers: dict[str, Renderer]) -> None:
    avatar = renderers["closeup_photo"].avatar
    assert avatar.view_px > avatar.crop_px and avatar.alpha is not None
    assert avatar.view_px >= 0.8 * min(avatar.frame_size)


def test_auto_framing_is_webcam_like(renderers: dict[str, Renderer]) -> None:
    """Every auto-framed avatar: 512x512, the face (10-152) about 45 % of the frame's height."""
    for name, r in renderers.items():
        if name == "closeup_photo":
            continue
        lm = _landmarks([r.render(_pose())])[0]
        assert lm is not None, name
        assert r.frame_size == (512, 512), name
        face = np.linalg.norm(lm[FOREHEAD] - lm[CHIN]) / 512
        assert 0.38 < face < 0.52, (name, face)


def test_jaw_drops_the_chin(renderers: dict[str, Renderer]) -> None:
    for name in ("astronaut.png", "obama.jpg"):
        r = renderers[name]
        lms = _landmarks([r.render(_pose(0.06)), r.render(_pose(0.06, jaw=0.05))])
        assert lms[0] is not None and lms[1] is not None, name
        face_h = np.linalg.norm(lms[0][FOREHEAD] - lms[0][CHIN])
        drop = (lms[1][CHIN, 1] - lms[0][CHIN, 1]) / face_h
        # MediaPipe reads a third to a half of the commanded drop (its chin keeps face proportions).
        assert 0.008 < drop < 0.08, (name, drop)


def test_press_shuts_the_lips_and_thins_them(renderers: dict[str, Renderer]) -> None:
    r = renderers["obama.jpg"]
    lms = _landmarks([r.render(_pose(0.06)), r.render(_pose(0.06, press=1.0)), r.render(_pose())])
    assert all(lm is not None for lm in lms)
    assert _opening(lms[1]) < 0.01 < _opening(lms[0])  # type: ignore[arg-type]
    red = [np.linalg.norm(lm[0] - lm[17]) for lm in lms]  # type: ignore[index]
    assert red[1] < red[2]  # rolled in: less vermilion than at rest


def test_tuck_shows_the_upper_teeth_over_the_lower_lip(renderers: dict[str, Renderer]) -> None:
    for name, r in renderers.items():
        rig = dict(zip(RIG_FIELDS, r.avatar.rig.tolist(), strict=True))
        cx, cy, h = int(rig["mouth_cx"]), int(rig["mouth_cy"]), rig["face_h_px"]
        rows = slice(int(cy - 0.03 * h), int(cy + 0.01 * h) + 1)
        rest = r.render_crop(_pose())[rows, cx - 2 : cx + 3].astype(float).mean(axis=(1, 2))
        tuck = r.render_crop(_pose(tuck=1.0))[rows, cx - 2 : cx + 3].astype(float).mean(axis=(1, 2))
        # Teeth take the cheeks' light (TEETH_PER_CHEEK: 0.66 of their luma, as in GRID s1's
        # mouths), so they stand out from the lips by less than a studio white would.
        assert (tuck - rest).max() > 15, (name, rest, tuck)  # teeth are brighter than the lips


def test_rounding_narrows_and_protrusion_thickens_the_lips(renderers: dict[str, Renderer]) -> None:
    r = renderers["astronaut.png"]
    lms = _landmarks([r.render(_pose(0.02)), r.render(_pose(0.02, -0.05, protrude=0.02))])
    assert lms[0] is not None and lms[1] is not None
    width = [np.linalg.norm(lm[61] - lm[291]) for lm in lms]  # type: ignore[index]
    outer = [np.linalg.norm(lm[0] - lm[17]) for lm in lms]  # type: ignore[index]
    assert width[1] < 0.93 * width[0] and outer[1] > outer[0]


def test_deterministic_and_thread_safe(renderers: dict[str, Renderer]) -> None:
    r = renderers["obama.jpg"]
    poses = [_pose(0.01 * k, 0.005 * (k - 4), k / 8, (0.002 * k, 0.0, 0.005)) for k in range(9)]
    serial = [r.render(p) for p in poses]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(r.render, poses * 3))
    for k, frame in enumerate(parallel):
        assert np.array_equal(frame, serial[k % len(poses)])


def test_changes_stay_inside_the_crop_and_its_edge_matches(renderers: dict[str, Renderer]) -> None:
    for r in renderers.values():
        frame = r.render(_pose(0.12, 0.05, 1.0, (0.02, -0.02, 0.03)))
        x0, y0 = r.avatar.crop_xy
        n = r.avatar.view_px
        outside = np.ones(frame.shape[:2], bool)
        outside[y0 : y0 + n, x0 : x0 + n] = False
        assert np.array_equal(frame[outside], r.avatar.frame[outside])
        ring = np.zeros(frame.shape[:2], bool)
        ring[y0 : y0 + n, x0 : x0 + n] = True
        ring[y0 + 2 : y0 + n - 2, x0 + 2 : x0 + n - 2] = False
        assert np.abs(frame[ring].astype(int) - r.avatar.frame[ring].astype(int)).max() <= 2


def test_small_pose_steps_make_small_image_steps(renderers: dict[str, Renderer]) -> None:
    """No flicker: a 1% change of opening moves few pixels, and only a little."""
    r = renderers["astronaut.png"]
    a = r.render(_pose(0.060)).astype(int)
    b = r.render(_pose(0.061)).astype(int)
    assert np.mean(np.abs(a - b)) < 0.5


def test_measured_opening_follows_the_open_parameter(renderers: dict[str, Renderer]) -> None:
    """MediaPipe on the render: closed at 0 (obama's photo shows teeth), rising with ``open``."""
    opens = [0.0, 0.04, 0.08, 0.12]
    for name, r in renderers.items():
        lms = _landmarks([r.render(_pose(o)) for o in opens])
        assert all(lm is not None for lm in lms), name
        measured = [_opening(lm) for lm in lms]  # type: ignore[arg-type]
        assert measured[0] < 0.01, (name, measured)
        assert all(b > a for a, b in zip(measured, measured[1:], strict=False)), (name, measured)
        assert 0.05 < measured[-1] < 0.2, (name, measured)  # drawn OPEN_GAIN (1.25) x


def test_open_mouth_is_darker_than_skin_and_not_a_uniform_band(
    renderers: dict[str, Renderer],
) -> None:
    """Inside a wide-open mouth: darker than the closed lips were there.

    The teeth are brighter than the cavity (the GRID atlas), in every photo's colours.
    """
    for name, r in renderers.items():
        rig = dict(zip(RIG_FIELDS, r.avatar.rig.tolist(), strict=True))
        cx, cy, h = int(rig["mouth_cx"]), int(rig["mouth_cy"]), rig["face_h_px"]
        half = int(0.5 * rig["half_w_px"])
        box = (slice(int(cy - 0.01 * h), int(cy + 0.05 * h)), slice(cx - half, cx + half))
        gap = r.render_crop(_pose(0.09, jaw=0.04)).astype(float).mean(axis=2)[box]
        lips = r.render_crop(_pose()).astype(float).mean(axis=2)[box]
        assert gap.mean() < 0.9 * lips.mean(), (name, gap.mean(), lips.mean())
        spread = np.percentile(gap, 90) - np.percentile(gap, 10)
        assert spread > 0.15 * lips.mean(), (name, spread, lips.mean())  # not a uniform band


def test_blink_closes_the_eyes(renderers: dict[str, Renderer]) -> None:
    r = renderers["astronaut.png"]
    lms = _landmarks([r.render(_pose(blink=0.0)), r.render(_pose(blink=1.0))])
    assert lms[0] is not None and lms[1] is not None
    gaps = [np.linalg.norm(lm[LEFT_EYE_UPPER] - lm[LEFT_EYE_LOWER]) for lm in lms]  # type: ignore[index]
    assert gaps[1] < 0.5 * gaps[0]


def test_head_motion_moves_the_face(renderers: dict[str, Renderer]) -> None:
    r = renderers["astronaut.png"]
    lms = _landmarks([r.render(_pose()), r.render(_pose(head=(0.02, 0.0, 0.0)))])
    assert lms[0] is not None and lms[1] is not None
    face_h = np.linalg.norm(lms[0][FOREHEAD] - lms[0][CHIN])
    shift = (lms[1][1, 0] - lms[0][1, 0]) / face_h  # nose tip, face heights
    assert 0.01 < shift < 0.03


def test_out_of_range_and_nan_poses_render(renderers: dict[str, Renderer]) -> None:
    r = renderers["biden.jpg"]
    for pose in (_pose(float("nan"), float("inf"), -3.0), _pose(5.0, -5.0, 5.0, (1.0, -1.0, 3.0))):
        frame = r.render(pose)
        assert frame.shape[:2] == (r.frame_size[1], r.frame_size[0])


def test_avatars_share_one_generator_session(renderers: dict[str, Renderer]) -> None:
    sessions = {id(r._session) for r in renderers.values()}  # noqa: SLF001  (the sharing is the contract)
    assert len(sessions) == 1


def test_composed_video_frame_is_the_whole_render_converted(renderers: dict[str, Renderer]) -> None:
    """The encoders' frame is the whole rendered frame converted to I420, to within rounding.

    The composer upscales and blends in yuv420p, not RGB: luma within 2 levels everywhere, chroma
    within a few on average, and the background outside the view untouched; one pixel of shift
    anywhere would break the luma bound at the face's edges.
    """
    import cv2
    from lipstream.server.media.frames import FrameComposer, _planes

    pose = _pose(0.08, width=0.01, jaw=0.03)
    for name in ("astronaut.png", "closeup", "closeup_photo"):
        renderer = renderers[name]
        width, height = renderer.frame_size
        composed = _planes(FrameComposer(renderer).frame(pose).to_ndarray(), height, width)
        whole = _planes(
            cv2.cvtColor(renderer.render(pose), cv2.COLOR_RGB2YUV_I420), height, width
        )
        luma = np.abs(composed[0].astype(int) - whole[0])
        assert luma.max() <= 2, name
        for plane in (1, 2):
            chroma = np.abs(composed[plane].astype(int) - whole[plane])
            assert chroma.mean() < 0.5, name
        x0, y0 = renderer.avatar.crop_xy
        view = renderer.avatar.view_px
        outside = np.ones((height, width), bool)
        outside[y0 : y0 + view, x0 : x0 + view] = False
        assert np.array_equal(composed[0][outside], whole[0][outside]), name
        shifted = np.abs(composed[0][:, 1:].astype(int) - whole[0][:, :-1])
        assert shifted.max() > 2, name



def test_composer_reuses_an_unchanged_picture_and_redraws_any_change(
    renderers: dict[str, Renderer],
) -> None:
    """A repeated picture is not rendered again; any change of mouth, eyelids or head is.

    An idle pose repeated (another frame index, the same picture) still gets a frame of its own.
    """
    from dataclasses import replace

    from lipstream.server.media.frames import FrameComposer

    renderer = renderers["closeup"]
    composer = FrameComposer(renderer)
    rest = _pose(0.0)
    first = composer.frame(rest)
    again = composer.frame(replace(rest, index=rest.index + 1, speaking=True))
    assert composer.reused == 1 and again is not first
    assert np.array_equal(first.to_ndarray(), again.to_ndarray())
    changes = (
        replace(rest, mouth=_pose(0.08).mouth),
        replace(rest, blink=0.9),
        replace(rest, head=np.array([0.004, 0.0, 0.0], np.float32)),
    )
    for changed in changes:
        frame = composer.frame(changed)
        assert composer.reused == 1
        fresh = FrameComposer(renderer).frame(changed)
        assert np.array_equal(frame.to_ndarray(), fresh.to_ndarray())
        assert not np.array_equal(frame.to_ndarray(), first.to_ndarray())


# Poses that move every part the coarse grid must follow: a wide jaw drop, spreading and rounding,
# pressed and lightly tucked lips, and the head swayed and rolled with the mouth open.
COARSE_CHECK_POSES = (
    _pose(0.08, jaw=0.05),
    _pose(0.03, 0.02),
    _pose(0.02, -0.03, protrude=0.02),
    _pose(0.0, press=1.0),
    _pose(0.0, tuck=0.15),
    _pose(0.05, head=(0.01, -0.01, 0.02)),
)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


@pytest.mark.parametrize("name", ["astronaut.png", "obama.jpg"])
def test_the_coarse_warp_renders_what_the_full_grid_does(
    renderers: dict[str, Renderer], name: str
) -> None:
    """A quarter of the pixels through the graph, the rest upsampled: the same face.

    At rest nothing moves and the crops are equal to the bit. Moved, they stay within 38 dB
    (measured 41-59 dB on real speech); half a pixel's misalignment of the grids costs far more.
    """
    coarse = renderers[name]
    full = Renderer(coarse.avatar, coarse=False)
    assert np.array_equal(coarse.render_crop(_pose()), full.render_crop(_pose()))
    for pose in COARSE_CHECK_POSES:
        assert _psnr(coarse.render_crop(pose), full.render_crop(pose)) > 38.0, pose
    for sharp in (_pose(blink=1.0), _pose(0.0, tuck=1.0)):  # a lid's edge, the teeth's sliver
        assert np.array_equal(coarse.render_crop(sharp), full.render_crop(sharp)), "full grid"


def test_a_misaligned_coarse_grid_would_show(renderers: dict[str, Renderer]) -> None:
    """The check above can fail: the coarse grid's points moved by half a fine pixel drop it."""
    from lipstream.realtime.coarse_warp import CoarseWarp

    avatar = renderers["astronaut.png"].avatar
    full = Renderer(avatar, coarse=False)
    shifted = Renderer(avatar)
    grid: CoarseWarp = shifted._coarse[0]  # type: ignore[index]  # noqa: SLF001
    grid._fine_xy = grid._fine_xy + 0.5  # noqa: SLF001
    pose = COARSE_CHECK_POSES[0]
    assert _psnr(shifted.render_crop(pose), full.render_crop(pose)) < 38.0
