"""Reading the inputs and writing the dubbed MP4 with PyAV; the output timeline of each sync mode.

Every PyAV failure on an input becomes a ``DubInputError`` naming the file and what was wrong with
it, so the CLI prints one line and the API answers 422 without a traceback.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .errors import DubInputError

SYNC_MODES = ("cut_off", "loop", "pad")
"""What happens when the video and audio lengths differ (sync.so's names):
``cut_off`` stops at the shorter one; ``loop`` plays the video forwards and backwards (no jump)
until the audio ends; ``pad`` holds the last frame or pads the audio with silence."""
OUTPUT_AUDIO_RATE_HZ = 48_000
AAC_FRAME_SAMPLES = 1024
X264_CRF = "18"  # near-transparent
# x264 presets by frame size: at 1280x720, veryfast cost 31 ms of CPU a frame, superfast 22 and
# ultrafast 13 (with 1.0, 2.3 and 3.1 times the bytes); small frames keep veryfast.
X264_PRESET_SMALL, X264_PRESET_LARGE = "veryfast", "superfast"
LARGE_FRAME_PX = 640 * 480
RAW_STORE_MAX_BYTES = 256 * 1024 * 1024  # loop mode keeps decoded frames raw up to this, else JPEG
STORE_JPEG_QUALITY = 95  # above x264 crf 18's own loss, so the re-encode dominates


@dataclass(frozen=True)
class VideoInfo:
    """What the dub needs to know about the input video before decoding it.

    Attributes:
        width: output width in px (the input's, made even for yuv420p).
        height: output height in px (likewise).
        fps: frame rate as a fraction (30000/1001 for NTSC); frames are taken as evenly spaced.
        duration_s: the container's stated duration, or None when it does not say.
    """

    width: int
    height: int
    fps: Fraction
    duration_s: float | None


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise DubInputError(f"the {what} {path} does not exist")
    if path.stat().st_size == 0:
        raise DubInputError(f"the {what} {path} is empty (0 bytes)")


def _open(path: Path, what: str) -> av.container.InputContainer:
    _check_file(path, what)
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise DubInputError(
            f"the {what} {path} is not a media file we can read (corrupt or unknown format)"
        ) from exc


def probe_video(path: Path) -> VideoInfo:
    """Opens ``path``, checks it has a decodable video stream and returns its ``VideoInfo``.

    Raises:
        DubInputError: missing, empty, corrupt, no video stream, or no frame decodes.
    """
    with _open(path, "video") as container:
        if not container.streams.video:
            raise DubInputError(f"the video {path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise DubInputError(f"the video {path} does not state a frame rate")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise DubInputError(f"the video {path} is corrupt: its frames do not decode") from exc
        if first is None:
            raise DubInputError(f"the video {path} holds no frames")
        width, height = first.width - first.width % 2, first.height - first.height % 2
        if width < 16 or height < 16:
            raise DubInputError(f"the video {path} is {first.width}x{first.height} px; too small")
        return VideoInfo(width, height, Fraction(rate), duration)


def read_frames(path: Path, info: VideoInfo) -> Generator[np.ndarray, None, None]:
    """Yields every frame of ``path`` as ``(H, W, 3)`` uint8 RGB, cropped to ``info``'s even size.

    Raises:
        DubInputError: a frame fails to decode part-way (truncated or corrupt file).
    """
    with _open(path, "video") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                yield np.ascontiguousarray(rgb[: info.height, : info.width])
        except av.FFmpegError as exc:
            raise DubInputError(f"the video {path} is corrupt part-way: {exc}"[:300]) from exc


def read_audio(path: Path, rate_hz: int, layout: str = "mono") -> np.ndarray:
    """Decodes the first audio stream of ``path`` to ``(channels, n)`` float32 at ``rate_hz``.

    Raises:
        DubInputError: missing, empty, corrupt, no audio stream, or no samples decode.
    """
    chunks: list[np.ndarray] = []
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate_hz)
    with _open(path, "audio") as container:
        if not container.streams.audio:
            raise DubInputError(f"the audio {path} has no audio stream")
        try:
            for frame in container.decode(audio=0):
                frame.pts = None
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except (av.FFmpegError, ValueError) as exc:
            raise DubInputError(f"the audio {path} cannot be decoded: {exc}"[:300]) from exc
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)
    if samples.shape[1] == 0:
        raise DubInputError(f"the audio {path} holds no samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def audio_channels(path: Path) -> int:
    """Channels of the first audio stream (1 or 2: AAC output is mono or stereo)."""
    with _open(path, "audio") as container:
        if not container.streams.audio:
            raise DubInputError(f"the audio {path} has no audio stream")
        return 2 if (container.streams.audio[0].channels or 1) >= 2 else 1


def output_frames(mode: str, source_frames: int, audio_s: float, fps: Fraction) -> int:
    """Number of output frames for ``mode`` (one of ``SYNC_MODES``).

    ``cut_off`` ends at the shorter input, rounding down so that neither runs out;
    ``loop`` follows the audio (rounded up so the last word is not cut); ``pad`` the longer one.
    """
    audio_frames = audio_s * fps
    if mode == "cut_off":
        return min(source_frames, int(math.floor(audio_frames + 1e-6)))
    if mode == "loop":
        return int(math.ceil(audio_frames - 1e-6))
    if mode == "pad":
        return max(source_frames, int(math.ceil(audio_frames - 1e-6)))
    raise ValueError(f"sync mode must be one of {SYNC_MODES}, got {mode!r}")


def source_index(mode: str, i: int, source_frames: int) -> int:
    """The input frame shown as output frame ``i``: itself, ping-pong (loop) or held (pad)."""
    if i < source_frames or source_frames == 1:
        return min(i, source_frames - 1)
    if mode == "loop":
        period = 2 * (source_frames - 1)
        k = i % period
        return k if k < source_frames else period - k
    return source_frames - 1


def fit_length(samples: np.ndarray, n: int) -> np.ndarray:
    """``(channels, m)`` samples cut or padded with silence to exactly ``n`` per channel."""
    if samples.shape[1] >= n:
        return samples[:, :n]
    pad = np.zeros((samples.shape[0], n - samples.shape[1]), samples.dtype)
    return np.concatenate([samples, pad], axis=1)


class FrameStore:
    """The input frames, kept so that pass 2 need not decode the video again.

    Raw in memory while they fit ``RAW_STORE_MAX_BYTES``. Beyond that, with ``spill`` (``loop``
    mode, which plays the frames backwards and so must keep them), JPEG files in a private
    temporary directory (removed by ``close``); without it the store gives up (``complete`` is
    False) and pass 2 decodes the video again, which costs less than JPEG. Used from one thread.
    """

    def __init__(self, frame_bytes: int, expected_frames: int, spill: bool = True) -> None:
        self._raw: list[np.ndarray] | None = None
        self._dir: Path | None = None
        self._count = 0
        self._spill_allowed = spill
        self.complete = True
        if frame_bytes * max(expected_frames, 1) <= RAW_STORE_MAX_BYTES:
            self._raw = []
        elif spill:
            self._dir = Path(tempfile.mkdtemp(prefix="lipstream-dub-frames-"))
        else:
            self.complete = False

    def add(self, rgb: np.ndarray) -> None:
        """Keeps frame number ``len(self)``."""
        if not self.complete:
            return
        if self._raw is not None:
            self._raw.append(rgb)
            if self._count * rgb.nbytes > RAW_STORE_MAX_BYTES:  # the hint was low
                if self._spill_allowed:
                    self._spill()
                else:
                    self._give_up()
        else:
            self._write(self._count, rgb)
        self._count += 1

    def _give_up(self) -> None:
        self._raw = None
        self.complete = False

    def _spill(self) -> None:
        assert self._raw is not None  # only called while raw
        self._dir = Path(tempfile.mkdtemp(prefix="lipstream-dub-frames-"))
        for i, rgb in enumerate(self._raw):
            self._write(i, rgb)
        self._raw = None

    def _write(self, i: int, rgb: np.ndarray) -> None:
        assert self._dir is not None
        ok, buf = cv2.imencode(
            ".jpg",
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, STORE_JPEG_QUALITY],
        )
        if not ok:
            raise OSError("could not encode a frame for the loop store")
        (self._dir / f"{i:07d}.jpg").write_bytes(buf.tobytes())

    def __len__(self) -> int:
        return self._count

    def get(self, i: int) -> np.ndarray:
        """Frame ``i`` as ``(H, W, 3)`` uint8 RGB."""
        if self._raw is not None:
            return self._raw[i]
        assert self._dir is not None
        bgr = cv2.imread(str(self._dir / f"{i:07d}.jpg"), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Frees the frames and removes the directory; idempotent."""
        self._raw = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class DubWriter:
    """Writes H.264 video and AAC audio into one MP4, interleaved, the audio cut to the video.

    ``audio`` is ``(channels, n)`` float32 at ``OUTPUT_AUDIO_RATE_HZ``, already fitted to the
    output length; after each frame the audio up to that frame's end is encoded, so both streams end
    together. Used from one thread.
    """

    def __init__(self, path: Path, info: VideoInfo, audio: np.ndarray) -> None:
        self._container = av.open(str(path), "w", format="mp4")
        self._fps = info.fps
        video = self._container.add_stream("libx264", rate=info.fps)
        video.width, video.height, video.pix_fmt = info.width, info.height, "yuv420p"
        large = info.width * info.height > LARGE_FRAME_PX
        preset = X264_PRESET_LARGE if large else X264_PRESET_SMALL
        video.options = {"preset": preset, "crf": X264_CRF}
        video.thread_type = "AUTO"
        self._video = video
        layout = "stereo" if audio.shape[0] == 2 else "mono"
        self._sound = self._container.add_stream("aac", rate=OUTPUT_AUDIO_RATE_HZ, layout=layout)
        self._sound.options = {"aac_coder": "fast"}  # twoloop (the default) cost 2.4x the CPU
        self._layout = layout
        self._audio = audio
        self._audio_sent = 0
        self._frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Appends one ``(H, W, 3)`` uint8 RGB frame and the audio that plays under it."""
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._frames
        frame.time_base = 1 / self._fps
        self._container.mux(self._video.encode(frame))
        self._frames += 1
        end = int(round(self._frames / self._fps * OUTPUT_AUDIO_RATE_HZ))
        self._send_audio(min(end, self._audio.shape[1]))

    def _send_audio(self, end: int, final: bool = False) -> None:
        # The AAC encoder takes whole 1024-sample frames; only the last one may be short.
        while self._audio_sent + (1 if final else AAC_FRAME_SAMPLES) <= end:
            stop = min(self._audio_sent + AAC_FRAME_SAMPLES, end)
            chunk = np.ascontiguousarray(self._audio[:, self._audio_sent : stop])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._layout)
            frame.sample_rate = OUTPUT_AUDIO_RATE_HZ
            frame.pts = self._audio_sent
            frame.time_base = Fraction(1, OUTPUT_AUDIO_RATE_HZ)
            self._container.mux(self._sound.encode(frame))
            self._audio_sent = stop

    def close(self) -> None:
        """Flushes both encoders (the rest of the audio first) and closes the file."""
        self._send_audio(self._audio.shape[1], final=True)
        self._container.mux(self._video.encode(None))
        self._container.mux(self._sound.encode(None))
        self._container.close()

    def abort(self) -> None:
        """Closes the file without flushing (the caller deletes it)."""
        try:
            self._container.close()
        except (av.FFmpegError, OSError):
            pass
