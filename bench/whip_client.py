"""An independent WHIP/WHEP client (aiortc) that sends a voice and records what comes back.

Used by the end-to-end tests and the bench harnesses. It paces its own audio on ``time.monotonic()``
and stamps every sent and received frame with that clock, so latency and A/V offset are measured at
the client, from what actually crossed the network, not from server logs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from bench.receive_buffers import receive_like_a_browser

SEND_RATE_HZ = 48_000
SEND_FRAME_SAMPLES = SEND_RATE_HZ // 50  # 20 ms, as a browser sends
KEPT_FRAME_SIZE = (
    256  # received frames are kept downscaled to this square, enough for face landmarks
)


def send_frame(pcm: np.ndarray, first_sample: int) -> av.AudioFrame:
    """One mono s16 48 kHz frame of ``pcm`` (int16), stamped as starting at ``first_sample``."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SEND_RATE_HZ
    frame.pts = first_sample
    frame.time_base = Fraction(1, SEND_RATE_HZ)
    return frame


class PacedVoiceTrack(MediaStreamTrack):
    """Plays a mono float32 48 kHz array in real time, then silence; records each frame's send
    time."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self._pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        self._index = 0
        self.started_at: float | None = None
        self.sent_at: list[float] = []  # monotonic time each 20 ms frame was handed to the sender

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, at its due time."""
        if self.readyState != "live":
            raise MediaStreamError
        if self.started_at is None:
            self.started_at = time.monotonic()
        # A microphone can send 20 ms of audio only once it has captured them: frame i leaves at
        # the end
        # of its interval, never before.
        due = self.started_at + (self._index + 1) * SEND_FRAME_SAMPLES / SEND_RATE_HZ
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        start = self._index * SEND_FRAME_SAMPLES
        chunk = self._pcm[start : start + SEND_FRAME_SAMPLES]
        frame = send_frame(np.pad(chunk, (0, SEND_FRAME_SAMPLES - len(chunk))), start)
        self._index += 1
        self.sent_at.append(time.monotonic())
        return frame

    def send_time(self, sample_index: int) -> float:
        """When the frame holding ``sample_index`` (48 kHz) left; NaN if not yet sent."""
        frame = sample_index // SEND_FRAME_SAMPLES
        return self.sent_at[frame] if frame < len(self.sent_at) else float("nan")


@dataclass
class Received:
    """What a client got back: video frames (downscaled RGB) and voice, with arrival times."""

    video_at: list[float] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)
    video_size: tuple[int, int] | None = None
    # Downscaled frames (or probe(frame) values), made on a worker thread: see _read_video.
    kept: list[Future[np.ndarray]] = field(default_factory=list)
    probed: list[Future[float]] = field(default_factory=list)
    audio_at: list[float] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)  # per received audio frame
    audio_samples: int = 0

    @property
    def frames(self) -> list[np.ndarray]:
        """Every received frame, downscaled RGB (waits for any still being converted)."""
        return [job.result() for job in self.kept]

    @property
    def probes(self) -> list[float]:
        """probe(frame) of every received frame, when a probe is set (waits as ``frames``)."""
        return [job.result() for job in self.probed]

    def fps(self, since: float, until: float) -> float:
        """Frames per second received in ``[since, until)``."""
        n = sum(since <= t < until for t in self.video_at)
        return n / max(until - since, 1e-9)


FrameProbe = Callable[[np.ndarray], float]


async def _read_video(
    track: MediaStreamTrack, out: Received, keep_frames: bool, probe: FrameProbe | None
) -> None:
    converter = VideoReformatter()  # a fresh frame.reformat would rebuild its scaler every frame
    # Downscaling (and the MediaPipe probe, ~10 ms) run on one worker thread, in order: on the
    # event loop they would delay the receive stamps of the frames and voice arriving meanwhile,
    # which is what is measured (a browser decodes and paints off its main thread too).
    worker = ThreadPoolExecutor(1, thread_name_prefix="receive")

    def keep(frame: av.VideoFrame) -> np.ndarray:
        small = converter.reformat(
            frame, width=KEPT_FRAME_SIZE, height=KEPT_FRAME_SIZE, format="rgb24"
        )
        return small.to_ndarray()

    def measure(frame: av.VideoFrame) -> float:
        assert probe is not None
        return probe(keep(frame))

    try:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            out.video_at.append(time.monotonic())
            out.video_pts.append(frame.pts)
            out.video_size = (frame.width, frame.height)
            if probe is not None:
                out.probed.append(worker.submit(measure, frame))
            elif keep_frames:
                out.kept.append(worker.submit(keep, frame))
    finally:
        worker.shutdown(wait=False)  # queued jobs still run; frames/probes wait for them


async def _read_audio(track: MediaStreamTrack, out: Received) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        pcm = frame.to_ndarray().astype(np.float32) / 32768.0
        out.audio_at.append(time.monotonic())
        out.audio_rms.append(float(np.sqrt(np.mean(pcm * pcm))))
        out.audio_samples += frame.samples


class WebRtcClient:
    """One WHIP publisher (with return path) or WHEP viewer connection."""

    def __init__(
        self,
        base_url: str,
        keep_frames: bool = True,
        probe: FrameProbe | None = None,
        browser_buffers: bool = True,
        video_mime: str | None = None,
    ) -> None:
        """``keep_frames`` keeps every frame (downscaled); ``probe`` keeps only probe(frame)
        instead; ``browser_buffers`` receives as a browser does (``receive_buffers.py``), else
        with aiortc's own buffers, as the independent probe does; ``video_mime`` offers only that
        video codec (e.g. ``video/H264``), else aiortc's list (VP8 first)."""
        self.base_url = base_url.rstrip("/")
        self.browser_buffers = browser_buffers
        self.video_mime = video_mime
        self.keep_frames = keep_frames
        self.probe = probe
        self.pc = RTCPeerConnection()
        self.received = Received()
        self.resource: str | None = None
        self.voice: PacedVoiceTrack | None = None
        self._readers: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                reader = _read_video(track, self.received, self.keep_frames, self.probe)
            else:
                reader = _read_audio(track, self.received)
            self._readers.append(asyncio.ensure_future(reader))

    async def publish(self, samples_48k: np.ndarray, query: str = "") -> None:
        """Starts a WHIP session sending ``samples_48k`` (mono float32) and receiving the avatar."""
        self.voice = PacedVoiceTrack(samples_48k)
        self.pc.addTransceiver(self.voice, direction="sendrecv")
        self._receive_video()
        await self._negotiate(f"/whip{query}")

    async def view(self, channel: str) -> None:
        """Starts a WHEP viewer on ``channel``."""
        self._receive_video()
        self.pc.addTransceiver("audio", direction="recvonly")
        await self._negotiate(f"/whep/{channel}")

    def _receive_video(self) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        if self.video_mime is not None:
            codecs = RTCRtpReceiver.getCapabilities("video").codecs
            wanted = [c for c in codecs if c.mimeType.lower() == self.video_mime.lower()]
            transceiver.setCodecPreferences(wanted)

    async def _negotiate(self, path: str) -> None:
        if self.browser_buffers:
            receive_like_a_browser(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(
                self.base_url + path,
                data=self.pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            ) as response:
                body = await response.text()
                if response.status != 201:
                    raise RuntimeError(f"{path}: HTTP {response.status}: {body.strip()}")
                self.resource = response.headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    async def close(self, hang_up: bool = True) -> None:
        """Ends the connection; with ``hang_up`` it sends the WHIP/WHEP DELETE first."""
        if hang_up and self.resource:
            async with aiohttp.ClientSession() as http:
                async with http.delete(self.base_url + self.resource):
                    pass
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def load_voice_48k(path: str) -> np.ndarray:
    """Decodes an audio file to mono float32 at 48 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SEND_RATE_HZ)
    chunks = []
    with av.open(path) as container:
        for frame in container.decode(audio=0):
            frame.pts = None
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32)
