"""CPU cost of every server stage per 40 ms video frame, in µs, on one thread.

Runs the server's own components in order on real speech (LibriSpeech, ../shared/data, CC BY 4.0),
frame by frame, exactly as one session's worker threads and aiortc's sender run them, and times
each with ``time.thread_time`` (CPU of this thread, so other jobs on the shared machine do not
inflate it):

- Opus decode of the two 20 ms packets that make up a frame (aiortc's decoder);
- resample to 16 kHz (PyAV, the session's ``AudioFrontEnd``);
- the motion pipeline: log-mel features, phoneme encoder, motion model, and the rest (VAD, mouth
  gating, idle motion, driver bookkeeping);
- render: the generator on the face crop, then composing the yuv420p frame;
- VP8 encode (aiortc's encoder, with lipstream's bitrate cap), and the returned voice: the client's
  Opus packets passed on, as the server does (``opus_encode`` codes only what was not a packet);
- SRTP protect of every RTP packet sent (libsrtp, as aiortc calls it).

Not in it: the event loop, thread hand-offs, ICE/UDP sends. ``bench/hot_path.py`` profiles the
running server for those.

    python -m bench.stage_cost [--seconds 20] [--silent]

``--silent`` feeds a quiet room instead of speech (``bench/results/stage_cost_silent.json``).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

import av
import cv2
import numpy as np
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from lipstream.avatar import build_avatar, default_photo
from lipstream.realtime.avatar import Avatar
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.encoder import StreamingPhonemeEncoder
from lipstream.realtime.features import FeatureStream
from lipstream.realtime.motion import LearnedDriver, MotionModel
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer
from lipstream.server.media import aiortc_tuning
from lipstream.server.media.frames import FrameComposer
from lipstream.server.media.ingest import AudioFrontEnd
from lipstream.server.media.low_latency import OpusPacket, opus_packet_of
from pylibsrtp import Policy, Session

from bench.lipsync import real_speech
from bench.report import save
from bench.whip_client import SEND_FRAME_SAMPLES, SEND_RATE_HZ, send_frame

FRAME_S = 0.04
PACKETS_PER_FRAME = 2  # a browser sends 20 ms Opus packets
RTP_PAYLOAD_TYPE = 96
WARMUP_FRAMES = 25

T = TypeVar("T")


class StageClock:
    """Adds up the thread CPU time of named stages, frame by frame."""

    def __init__(self) -> None:
        self.frames: list[dict[str, float]] = []
        self._current: dict[str, float] = defaultdict(float)

    def time(self, stage: str, call: Callable[[], T]) -> T:
        """Runs ``call`` and charges its CPU time to ``stage`` in the current frame."""
        start = time.thread_time()
        result = call()
        self._current[stage] += time.thread_time() - start
        return result

    def end_frame(self) -> None:
        """Closes the current frame."""
        self.frames.append(dict(self._current))
        self._current = defaultdict(float)


class TimedEncoder:
    """The phoneme encoder, with the features it computes itself timed apart from the network."""

    def __init__(self, clock: StageClock) -> None:
        self._inner = StreamingPhonemeEncoder()
        self._features = FeatureStream(self._inner.contract.features)
        self._clock = clock
        self.lookahead_ms = self._inner.lookahead_ms

    def reset(self) -> None:
        """Delegates to the wrapped encoder."""
        self._inner.reset()
        self._features.reset()

    def push(self, audio: np.ndarray) -> np.ndarray:
        """The wrapped encoder's push (features and network), charged as ``phoneme_encoder``.

        A twin ``FeatureStream`` computes the features once more on the same audio, charged as
        ``features``; ``_split_derived`` takes that time off the encoder's and off the pipeline's.
        """
        self._clock.time("features", lambda: self._features.push(audio))
        return self._clock.time("phoneme_encoder", lambda: self._inner.push(audio))

    def rehear(self) -> np.ndarray:
        """The wrapped encoder's warm-up after a quiet stretch, charged as ``phoneme_encoder``."""
        return self._clock.time("phoneme_encoder", self._inner.rehear)

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """The wrapped encoder's ``push_quiet`` (features only, no network), timed as ``push``."""
        self._clock.time("features", lambda: self._features.push(audio))
        return self._clock.time("phoneme_encoder", lambda: self._inner.push_quiet(audio))


class TimedMotion:
    """The shared motion model, charged as ``motion_model``."""

    def __init__(self, clock: StageClock) -> None:
        self._inner = MotionModel()
        self.contract = self._inner.contract
        self._clock = clock

    def __call__(self, windows: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
        """Runs the model (nothing when no frame is ready, as the driver does)."""
        return self._clock.time("motion_model", lambda: self._inner(windows, levels_db))


class TimedRenderer:
    """The renderer as the composer sees it, with the generator charged as ``generator``."""

    def __init__(self, renderer: Renderer, clock: StageClock) -> None:
        self.avatar = renderer.avatar
        self._inner = renderer
        self._clock = clock

    def render_crop(self, pose: FramePose) -> np.ndarray:
        """The generator's face crop (graph and sampling), timed."""
        return self._clock.time("generator", lambda: self._inner.render_crop(pose))


def _opus_packets(speech: np.ndarray) -> list[bytes]:
    """The speech as a browser would send it: 20 ms Opus packets (aiortc's encoder)."""
    encoder = OpusEncoder()
    pcm = (np.clip(speech, -1, 1) * 32767).astype(np.int16)
    packets = []
    for start in range(0, len(pcm) - SEND_FRAME_SAMPLES + 1, SEND_FRAME_SAMPLES):
        frame = send_frame(pcm[start : start + SEND_FRAME_SAMPLES], start)
        payloads, _ = encoder.encode(frame)
        packets += payloads
    return packets


def _srtp_session() -> Session:
    """An outbound SRTP session with aiortc's default profile and a fixed test key."""
    policy = Policy(
        key=bytes(range(30)),
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    policy.allow_repeat_tx = True
    return Session(policy)


class ServerStages:
    """One session's server-side work, run inline, one frame at a time."""

    def __init__(self, clock: StageClock) -> None:
        self.clock = clock
        media_clock = MediaClock()
        driver = LearnedDriver(media_clock, encoder=TimedEncoder(clock), motion=TimedMotion(clock))
        self._pipeline = MotionPipeline(media_clock, driver)
        renderer = Renderer(Avatar.load(build_avatar(default_photo()).path), threads=1)
        self._composer = FrameComposer(TimedRenderer(renderer, clock))  # type: ignore[arg-type]
        self._front_end = AudioFrontEnd()
        self._decoder = OpusDecoder()
        self._vp8 = Vp8Encoder()
        self._voice_encoder = aiortc_tuning.VoiceEncoder()
        self._srtp = _srtp_session()
        self._sequence = 0
        self._pose: FramePose | None = None
        self._voice_pts = 0
        self.on_frame: Callable[[av.VideoFrame], None] = lambda frame: None  # sees each frame
        avatar = renderer.avatar
        x0, y0 = avatar.crop_xy
        self.face_region = (x0, y0, avatar.view_px)  # left, top, size of the rendered face

    def frame(self, packets: list[bytes]) -> None:
        """Everything the server does for one video frame's worth of input."""
        voice = []
        for packet in packets:
            decoded = self.clock.time("opus_decode", lambda p=packet: self._decode(p))
            for frame in decoded:
                frame.opaque = OpusPacket(packet)  # as the server's reader tags it
                converted = self.clock.time("resample", lambda f=frame: self._front_end.convert(f))
                voice += converted.voice
                poses = self.clock.time(
                    "pipeline", lambda c=converted: self._pipeline.push(c.pipeline)
                )
                self._pose = poses[-1] if poses else self._pose
        if self._pose is not None:
            video = self.clock.time("compose", lambda: self._composer.frame(self._pose))
            self.on_frame(video)
            video.pts, video.time_base = self._pose.index, Fraction(1, 25)
            payloads, _ = self.clock.time("vp8_encode", lambda: self._vp8.encode(video))
            self._protect(payloads)
        for frame in voice:
            payloads = self.clock.time("opus_encode", lambda f=frame: self._voice_out(f))
            self._protect(payloads)
        self.clock.end_frame()

    def _voice_out(self, frame: av.AudioFrame) -> list[bytes]:
        """The returned voice's payloads: the client's packet passed on, as ``VoiceTrack`` does."""
        pts, self._voice_pts = self._voice_pts, self._voice_pts + frame.samples
        packet = opus_packet_of(frame)
        if packet is not None:
            return [packet.payload]
        frame.pts, frame.time_base = pts, Fraction(1, 48_000)
        return self._voice_encoder.encode(frame)[0]

    def _decode(self, packet: bytes) -> list[av.AudioFrame]:
        return self._decoder.decode(JitterFrame(packet, 0))  # type: ignore[return-value]

    def _protect(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            packet = RtpPacket(payload_type=RTP_PAYLOAD_TYPE, sequence_number=self._sequence)
            packet.payload = payload
            self._sequence = (self._sequence + 1) % 65536
            self.clock.time("srtp_protect", lambda p=packet: self._srtp.protect(p.serialize()))


def _split_derived(frames: list[dict[str, float]]) -> list[dict[str, float]]:
    """Turns the nested totals into disjoint stages: the encoder without its features, the
    pipeline's remainder (VAD, gating, idle motion, driver bookkeeping) and the composer's remainder
    (paste and yuv420p conversion).

    The pipeline total holds the twin features (timing only), the encoder's whole push and the
    motion model; the encoder's push holds features as costly as the twin's.
    """
    out = []
    for frame in frames:
        row = dict(frame)
        features = row.get("features", 0.0)
        inner = features + row.get("phoneme_encoder", 0.0) + row.get("motion_model", 0.0)
        row["pipeline_rest"] = row.pop("pipeline", 0.0) - inner
        row["phoneme_encoder"] = row.get("phoneme_encoder", 0.0) - features
        row["compose"] = row.get("compose", 0.0) - row.get("generator", 0.0)
        out.append(row)
    return out


STAGE_ORDER = (
    "opus_decode", "resample", "features", "phoneme_encoder", "motion_model", "pipeline_rest",
    "generator", "compose", "vp8_encode", "opus_encode", "srtp_protect",
)  # fmt: skip


def summarise(frames: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, median and p95 µs per frame of each stage, and of their total."""
    table = {}
    for stage in (*STAGE_ORDER, "total"):
        if stage == "total":
            values = np.array([sum(f.values()) for f in frames]) * 1e6
        else:
            values = np.array([f.get(stage, 0.0) for f in frames]) * 1e6
        table[stage] = {
            "mean_us": round(float(values.mean()), 1),
            "p50_us": round(float(np.percentile(values, 50)), 1),
            "p95_us": round(float(np.percentile(values, 95)), 1),
        }
    return table


SPEECH_CLIPS = 3


def speech_packets(seconds: float) -> list[bytes]:
    """``seconds`` of real speech (after a warm-up) as a browser's 20 ms Opus packets."""
    speech, _ = real_speech(clips=SPEECH_CLIPS)
    return _opus_packets(speech[: int((seconds + FRAME_S * WARMUP_FRAMES) * SEND_RATE_HZ)])


ROOM_NOISE_DBFS = -60.0


def silent_packets(seconds: float) -> list[bytes]:
    """``seconds`` (after a warm-up) of a quiet room as packets: white noise at ``ROOM_NOISE_DBFS``.

    A speaker who is listening sends this, and so does a voice agent during its user's turn.
    """
    samples = int((seconds + FRAME_S * WARMUP_FRAMES) * SEND_RATE_HZ)
    noise = np.random.default_rng(0).standard_normal(samples) * 10 ** (ROOM_NOISE_DBFS / 20)
    return _opus_packets(noise.astype(np.float32))


def measure(seconds: float, silent: bool = False) -> dict[str, object]:
    """Runs ``seconds`` of real speech (or of a quiet room) through the stages; their cost."""
    aiortc_tuning.apply()
    packets = silent_packets(seconds) if silent else speech_packets(seconds)
    clock = StageClock()
    stages = ServerStages(clock)
    for start in range(0, len(packets) - PACKETS_PER_FRAME + 1, PACKETS_PER_FRAME):
        stages.frame(packets[start : start + PACKETS_PER_FRAME])
    frames = _split_derived(clock.frames[WARMUP_FRAMES:])
    table = summarise(frames)
    total_ms = table["total"]["mean_us"] / 1000
    return {
        "stages_us_per_frame": table,
        "frames": len(frames),
        "speech_clips": 0 if silent else SPEECH_CLIPS,
        "room_noise_dbfs": ROOM_NOISE_DBFS if silent else None,
        "sessions_per_core_at_25fps": round(1000 * FRAME_S / total_ms, 1),
    }


def main() -> None:
    """Prints the table and writes ``bench/results/stage_cost.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--silent", action="store_true", help="a quiet room instead of speech")
    args = parser.parse_args()
    # As the server runs (server/http/app.py); it also keeps all of cv2's work on the timed thread.
    cv2.setNumThreads(1)
    result = measure(args.seconds, args.silent)
    name, flag = ("stage_cost_silent", " --silent") if args.silent else ("stage_cost", "")
    save(name, result, f"python -m bench.stage_cost --seconds {args.seconds:g}{flag}")


if __name__ == "__main__":
    main()
