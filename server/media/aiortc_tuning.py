"""Seven process-wide adjustments to aiortc for the avatar's hot path, each measured in a profile.

1. ``aiortc.rtp.compute_audio_level_dbov`` walks every sample of every outgoing audio frame in a
   Python loop on the event-loop thread (RFC 6465 audio level, aiortc 1.16 ``rtp.py``): 15 % of
   that thread with four sessions. The numpy version below computes the same RFC 6465 value.
2. aiortc lets VP8 climb to 1.5 Mbps (H.264 to 3 Mbps) on a good link. A 512x512 talking head over a
   still background looks the same at 800 kbps, and every extra packet costs an SRTP call and a
   send on the event loop, which the sessions share.
3. aiortc turns on libvpx's temporal denoiser (``noise-sensitivity 4``), meant for camera noise.
   Rendered frames have none, so it only smears the moving mouth and costs CPU: off, the VP8
   encode of the default avatar takes 1.16 instead of 1.61 ms per frame and the face comes back
   46.5 instead of 41.7 dB PSNR from what was rendered, at the same bitrate
   (``python -m bench.vp8_denoiser``).
4. aiortc sets ``static-thresh 1``, so libvpx codes every macroblock of every frame. The background
   around the face never changes; at ``static-thresh 500`` libvpx skips blocks whose change is
   below that SAD: 1.7-2.0 instead of 3.8 ms per 512x512 frame of the default avatar talking, and
   the mouth comes back 46.8 dB PSNR (min 46.1) instead of 48.7 (min 46.5): both far past visibly
   lossless (``python -m bench.vp8_denoiser``).
5. aiortc codes every outgoing Opus stream as stereo at libopus's top complexity. The avatar's
   voice is mono speech: coded mono at the same 96 kbps and complexity 5, a 20 ms packet takes
   0.15-0.22 instead of 0.27-0.46 ms (four runs), and LibriSpeech speech comes back closer to what
   went in (log spectral distance below 8 kHz 2.3-2.4 instead of 4.2-4.4 dB, SNR 10.5 vs 8.2 dB;
   ``python -m bench.opus_voice``). The SDP still says ``opus/48000/2``, as RFC 7587 requires; a
   mono packet decodes to both channels.
6. A channel codes its video once and every sender packs the same VP8 packets (``video_out.py``).
   aiortc keeps three things from such a track: which codec was negotiated, a receiver's request
   for a keyframe (PLI or FIR), and its bitrate estimate (REMB). ``RTCRtpSender`` passes them on
   to a track that takes them (``use_codec``, ``request_keyframe``, ``report_bitrate``), after
   doing what it did before.
7. A consumer that negotiated H.264 only (some WHIP ingests take nothing else) gets frames, and
   aiortc codes them with libx264's default ``medium`` preset: 12-17 ms of CPU per 512x512 frame
   of the avatar talking, a third of a core or more for that one consumer. At ``superfast`` it
   takes 2.0-3.3 ms, and the face comes back 50.1 instead of 50.4 dB PSNR at 800 kbps and 48.3
   instead of 48.7 at aiortc's 500 kbps floor (``python -m bench.h264_preset``). ``ultrafast``
   would save a little more by dropping the deblocking filter, which shows at low bitrates.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import aiortc.codecs
import av
import numpy as np
from aiortc import RTCRtpSender, rtp
from aiortc.codecs import h264, opus, vpx
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTCP_PSFB_APP, AnyRtcpPacket, RtcpPsfbPacket, unpack_remb_fci
from av import AudioFrame, AudioResampler
from av.frame import Frame

MAX_VIDEO_BITRATE_BPS = 800_000
VP8_OPTIONS = {"noise-sensitivity": "0", "static-thresh": "500"}
"""libvpx options set over aiortc's own (see the module docstring, items 3 and 4)."""
H264_OPTIONS = {"preset": "superfast"}
"""libx264 options set over aiortc's own (see the module docstring, item 7)."""
VOICE_BITRATE_BPS = 96_000
VOICE_COMPLEXITY = 5
"""libopus ``compression_level`` (0-10) for the avatar's voice; see the module docstring, item 5."""
MIN_AUDIO_LEVEL_DBOV = -127  # RFC 6465: the level of digital silence
FULL_SCALE = 32767.0


def audio_level_dbov(frame: AudioFrame) -> int:
    """RFC 6465 audio level of an s16 frame in dBov (0 loudest, -127 silence), vectorised.

    Same arithmetic as aiortc's, including its division by samples per channel.
    """
    samples = np.frombuffer(bytes(frame.planes[0]), dtype=np.int16).astype(np.float64)
    if samples.size == 0:
        return MIN_AUDIO_LEVEL_DBOV
    rms = math.sqrt(float(np.dot(samples, samples)) / (frame.samples * FULL_SCALE * FULL_SCALE))
    if rms <= 0:
        return MIN_AUDIO_LEVEL_DBOV
    return round(min(max(20 * math.log10(rms), MIN_AUDIO_LEVEL_DBOV), 0.0))


class _TunedEncoder:
    """An encoder context that keeps every setting aiortc gives it but those in ``tuning``.

    aiortc builds and opens its VP8 and H.264 contexts inside its encoders' ``encode``; the
    options can only be changed between the two, which is where this stand-in sees them.
    """

    def __init__(self, inner: av.CodecContext, tuning: dict[str, str]) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_tuning", tuning)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "options":
            value = {**value, **self._tuning}
        setattr(self._inner, name, value)


class _TunedContexts:
    """What aiortc calls as ``av.CodecContext``: the real one, with its encoders tuned."""

    def __init__(self, tuning: dict[str, str]) -> None:
        self._tuning = tuning

    def create(self, codec: str, mode: Literal["r", "w"]) -> Any:
        inner = av.CodecContext.create(codec, mode)
        return _TunedEncoder(inner, self._tuning) if mode == "w" else inner


class _TunedAv:
    """What one of aiortc's codec modules sees as the ``av`` module.

    The real one, except that the encoder contexts it creates get ``tuning`` over aiortc's options.
    """

    def __init__(self, tuning: dict[str, str]) -> None:
        self.CodecContext = _TunedContexts(tuning)

    def __getattr__(self, name: str) -> Any:
        return getattr(av, name)


class VoiceEncoder(opus.OpusEncoder):
    """aiortc's Opus encoder, coding the voice as the mono speech it is (module docstring, 5).

    Its RTP timestamps are the frames' own pts, as ``pack`` gives a passed-through client packet's
    (``tracks.VoiceTrack``). aiortc's ``encode`` counts from the first packet it coded, which
    would make the stream's timestamps jump where coded frames and passed-through packets meet.
    """

    def __init__(self) -> None:
        super().__init__()
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.bit_rate = VOICE_BITRATE_BPS
        self.codec.format = "s16"
        self.codec.layout = "mono"
        self.codec.options = {
            "application": "voip",
            "compression_level": str(VOICE_COMPLEXITY),
        }
        self.codec.sample_rate = opus.SAMPLE_RATE
        self.codec.time_base = opus.TIME_BASE
        self.resampler = AudioResampler(
            format="s16",
            layout="mono",
            rate=opus.SAMPLE_RATE,
            frame_size=opus.SAMPLES_PER_FRAME,
        )

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """The coded packets, timed by the frame's pts instead of since the first packet coded.

        A packet is coded once its 20 ms have come in, so the first packet returned starts that
        many packets before the end of ``frame``. (aiortc's own count also slips where the input
        pts jumps, as a channel's voice does when a passed-through stretch ends.)
        """
        payloads, timestamp = super().encode(frame, force_keyframe)
        if not (payloads and isinstance(frame, AudioFrame)) or frame.pts is None:
            return payloads, timestamp
        if frame.time_base is None:
            return payloads, timestamp
        end = convert_timebase(frame.pts, frame.time_base, opus.TIME_BASE) + frame.samples
        return payloads, end - len(payloads) * opus.SAMPLES_PER_FRAME


_SEND = RTCRtpSender.send
_SEND_KEYFRAME = RTCRtpSender._send_keyframe
_HANDLE_RTCP = RTCRtpSender._handle_rtcp_packet


async def _send(self: RTCRtpSender, parameters: RTCRtpSendParameters) -> None:
    """Runs aiortc's ``send``, first telling the track which codec it will be packed or coded in."""
    use_codec = getattr(self.track, "use_codec", None)
    if use_codec is not None and parameters.codecs:
        use_codec(parameters.codecs[0].mimeType)
    await _SEND(self, parameters)


def _send_keyframe(self: RTCRtpSender) -> None:
    """Does aiortc's keyframe request (for the encoder it owns), and passes it on to the track."""
    _SEND_KEYFRAME(self)
    request_keyframe = getattr(self.track, "request_keyframe", None)
    if request_keyframe is not None:
        request_keyframe()


async def _handle_rtcp_packet(self: RTCRtpSender, packet: AnyRtcpPacket) -> None:
    """Runs aiortc's RTCP handling, then passes a REMB for this sender on to the track."""
    await _HANDLE_RTCP(self, packet)
    report_bitrate = getattr(self.track, "report_bitrate", None)
    if report_bitrate is None or not isinstance(packet, RtcpPsfbPacket):
        return
    if packet.fmt != RTCP_PSFB_APP:
        return
    try:
        bitrate, ssrcs = unpack_remb_fci(packet.fci)
    except ValueError:
        return  # an APP message that is not a REMB (aiortc ignores it too)
    if self._ssrc in ssrcs:
        report_bitrate(bitrate)


def apply() -> None:
    """Installs all seven adjustments (idempotent); called once when the app is created."""
    rtp.compute_audio_level_dbov = audio_level_dbov
    RTCRtpSender.send = _send  # type: ignore[method-assign]
    RTCRtpSender._send_keyframe = _send_keyframe  # type: ignore[method-assign]
    RTCRtpSender._handle_rtcp_packet = _handle_rtcp_packet  # type: ignore[method-assign]
    aiortc.codecs.OpusEncoder = VoiceEncoder  # type: ignore[misc]
    vpx.av = _TunedAv(VP8_OPTIONS)  # type: ignore[assignment]
    h264.av = _TunedAv(H264_OPTIONS)  # type: ignore[assignment]
    vpx.MAX_BITRATE = MAX_VIDEO_BITRATE_BPS
    h264.MAX_BITRATE = MAX_VIDEO_BITRATE_BPS
