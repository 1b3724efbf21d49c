"""The aiortc adjustments: the vectorised audio level equals aiortc's own (RFC 6465), VP8 keeps
aiortc's settings except the denoiser and the static threshold, which must not freeze a mouth, and
H.264 keeps them except its preset."""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import rtp
from aiortc.codecs import h264, vpx
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame, VideoFrame
from lipstream.server.media import aiortc_tuning, tracks

ORIGINAL_LEVEL = rtp.compute_audio_level_dbov  # captured before any app applies the tuning


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize("amplitude", [0, 3, 300, 12000, 32767])
def test_audio_level_matches_aiortc(layout: str, amplitude: int) -> None:
    channels = 2 if layout == "stereo" else 1
    rng = np.random.default_rng(amplitude)
    pcm = rng.integers(-amplitude, amplitude + 1, size=(1, 960 * channels)).astype(np.int16)
    frame = AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
    frame.sample_rate = 48_000
    assert ORIGINAL_LEVEL.__module__ == "aiortc.rtp", "compare against aiortc's own function"
    assert aiortc_tuning.audio_level_dbov(frame) == ORIGINAL_LEVEL(frame)


def _talking_blob(index: int) -> np.ndarray:
    """A low-contrast shape opening and closing on a textured still background, like a mouth."""
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    height = 8 + 6 * np.sin(index * 0.7)
    blob = np.exp(-((xx - 64) ** 2 / 400 + (yy - 64) ** 2 / height**2))
    image = 120 + 20 * np.sin(xx / 9) * np.cos(yy / 7) - 50 * blob
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


MOUTH_BOX = (slice(44, 84), slice(40, 88))  # rows, columns the blob's opening sweeps


def _vp8_roundtrip_psnr(frames: int = 40, box: tuple[slice, slice] | None = None) -> float:
    """PSNR (dB) of the pictures after aiortc's VP8 encoder, packetiser and decoder: the mean over
    frames, or with ``box`` the worst frame's, measured inside the box."""
    encoder, decoder = vpx.Vp8Encoder(), vpx.Vp8Decoder()
    scores = []
    for index in range(frames):
        picture = _talking_blob(index)
        frame = VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = index, Fraction(1, 25)
        payloads, timestamp = encoder.encode(frame)
        data = b"".join(vpx.VpxPayloadDescriptor.parse(p)[1] for p in payloads)
        for decoded in decoder.decode(JitterFrame(data, timestamp)):
            error = decoded.to_ndarray(format="rgb24").astype(np.float64) - picture
            if box is not None:
                error = error[box]
            scores.append(10 * np.log10(255**2 / np.mean(error**2)))
    return float(np.min(scores[10:]) if box is not None else np.mean(scores[10:]))


def test_vp8_without_denoiser_keeps_a_moving_mouth_sharper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vpx, "av", av)  # aiortc as shipped, whatever ran before
    shipped = _vp8_roundtrip_psnr()
    aiortc_tuning.apply()
    tuned = _vp8_roundtrip_psnr()
    assert tuned > shipped + 1.0, (shipped, tuned)


def test_vp8_static_threshold_skips_the_still_background_but_never_the_mouth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A threshold that skipped the mouth's blocks would leave it frozen: worst frame ~25 dB."""
    monkeypatch.setattr(vpx, "av", av)
    aiortc_tuning.apply()
    assert int(aiortc_tuning.VP8_OPTIONS["static-thresh"]) > 1
    assert _vp8_roundtrip_psnr(box=MOUTH_BOX) > 35.0


def test_h264_keeps_aiortc_settings_but_the_preset_and_a_sharp_mouth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An H.264-only consumer's encoder runs at ``superfast`` (one reference, diamond search,
    subpixel level 1) with the deblocking filter, still Baseline without B-frames as aiortc asks,
    and the moving mouth stays far past visibly lossless. libx264 writes the settings it ran with
    into the first frame's SEI."""
    monkeypatch.setattr(h264, "av", av)
    aiortc_tuning.apply()
    encoder, decoder = h264.H264Encoder(), h264.H264Decoder()
    scores, stream = [], b""
    for index in range(40):
        picture = _talking_blob(index)
        frame = VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = index, Fraction(1, 25)
        payloads, timestamp = encoder.encode(frame)
        data = b"".join(h264.H264PayloadDescriptor.parse(p)[1] for p in payloads)
        stream += data
        for decoded in decoder.decode(JitterFrame(data, timestamp)):
            error = decoded.to_ndarray(format="rgb24").astype(np.float64) - picture
            scores.append(10 * np.log10(255**2 / np.mean(error[MOUTH_BOX] ** 2)))
    settings = re.search(rb"options: ([ -~]+)", stream)
    assert settings is not None, "libx264 wrote no settings SEI"
    ran_with = set(settings.group(1).decode().split())
    assert {"ref=1", "me=dia", "subme=1", "deblock=1:0:0", "cabac=0", "bframes=0"} <= ran_with
    assert len(scores) >= 35 and min(scores[5:]) > 35.0, scores


def _voice(seconds: float) -> np.ndarray:
    """A voiced, speech-like s16 signal at 48 kHz: 130 Hz harmonics under a syllable envelope."""
    t = np.arange(int(48_000 * seconds)) / 48_000
    harmonics = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 25))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (6000 * envelope * harmonics / 3).astype(np.int16)


def _opus_roundtrip(encoder: object, voice: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
    """The voice through ``encoder`` and aiortc's (stereo) decoder: ((n, 2) s16, packets)."""
    from aiortc.codecs.opus import OpusDecoder

    decoder, decoded, packets = OpusDecoder(), [], []
    for start in range(0, voice.size, 960):
        chunk = voice[None, start : start + 960]
        frame = AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, start, Fraction(1, 48_000)
        payloads, _ = encoder.encode(frame)  # type: ignore[attr-defined]
        packets += payloads
        for payload in payloads:
            for out in decoder.decode(JitterFrame(payload, start)):
                decoded.append(out.to_ndarray().reshape(-1, 2))
    return np.concatenate(decoded), packets


def _spectral_distance(decoded: np.ndarray, voice: np.ndarray) -> float:
    """Log spectral distance (dB) below 8 kHz after aligning out the codec's delay (Welch means)."""
    n = voice.size - 2000
    out = decoded.astype(np.float64)
    lag = max(range(960), key=lambda k: float(np.dot(out[k : k + n], voice[:n])))
    window = np.hanning(960)
    spectra = []
    for x in (out[lag : lag + n], voice[:n].astype(np.float64)):
        frames = np.lib.stride_tricks.sliding_window_view(x, 960)[::480] * window
        power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
        spectra.append(10 * np.log10(power[: 8000 * 960 // 48_000] + 1e-3))
    return float(np.sqrt(np.mean((spectra[0] - spectra[1]) ** 2)))


def test_voice_goes_out_as_mono_opus_as_faithful_as_aiortcs() -> None:
    """After ``apply``, aiortc's senders get the mono encoder; its packets are mono (TOC stereo bit
    0, RFC 6716 3.1) and decode on aiortc's stereo decoder to both channels alike, as close to the
    input as aiortc's own stereo encoder gets."""
    from aiortc import RTCRtpCodecParameters
    from aiortc.codecs import get_encoder
    from aiortc.codecs.opus import OpusEncoder

    voice = _voice(1.0)
    shipped, _ = _opus_roundtrip(OpusEncoder(), voice)
    aiortc_tuning.apply()
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)
    encoder = get_encoder(codec)
    assert isinstance(encoder, aiortc_tuning.VoiceEncoder)
    tuned, packets = _opus_roundtrip(encoder, voice)
    assert packets and all(packet[0] & 0x04 == 0 for packet in packets)
    assert np.array_equal(tuned[:, 0], tuned[:, 1])
    distances = [_spectral_distance(pcm[:, 0], voice) for pcm in (shipped, tuned)]
    assert distances[1] <= distances[0] + 0.5, distances


def test_coded_voice_and_passed_through_packets_share_one_timeline() -> None:
    """The voice encoder times its packets by the frames' pts, as ``pack`` times a client's packet,
    so a stream that switches between the two (silence coded here, speech passed through) keeps
    its RTP timestamps continuous, also for a viewer whose sender starts mid-stream."""
    encoder = aiortc_tuning.VoiceEncoder()
    stamps = []
    for index in range(50, 56):  # a viewer that joins at the channel's 50th voice frame
        pts = 960 * index
        if index in (52, 53):
            packet = av.Packet(b"\xfc\xff\xfe")  # any client packet: passed on as it is
            packet.pts, packet.time_base = pts, Fraction(1, 48_000)
            stamps.append(encoder.pack(packet)[1])
            continue
        silent = np.zeros((1, 1920), np.int16)
        frame = AudioFrame.from_ndarray(silent, format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, pts, Fraction(1, 48_000)
        payloads, stamp = encoder.encode(frame)
        assert payloads
        stamps.append(stamp)
    assert stamps == [960 * index for index in range(50, 56)]


def _coded_with_canned_silence(voice: np.ndarray, canned: bool) -> list[bytes]:
    """``voice`` in 20 ms frames through one ``VoiceEncoder``; with ``canned``, silent frames past
    the first ``CODED_SILENT_FRAMES`` of a run are ``OPUS_SILENCE`` instead (as ``VoiceTrack``
    sends them)."""
    encoder, packets, run = aiortc_tuning.VoiceEncoder(), [], 0
    for start in range(0, voice.size, 960):
        chunk = voice[None, start : start + 960]
        run = 0 if chunk.any() else run + 1
        if canned and run > tracks.CODED_SILENT_FRAMES:
            packets.append(tracks.OPUS_SILENCE)
            continue
        frame = AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, start, Fraction(1, 48_000)
        packets += encoder.encode(frame)[0]
    return packets


def _decoded(packets: list[bytes]) -> np.ndarray:
    from aiortc.codecs.opus import OpusDecoder

    decoder = OpusDecoder()
    frames = [decoder.decode(JitterFrame(p, 960 * i))[0] for i, p in enumerate(packets)]
    return np.concatenate([f.to_ndarray().reshape(-1, 2)[:, 0] for f in frames]).astype(float)


def test_libopus_codes_steady_silence_as_the_packet_the_voice_track_sends() -> None:
    """``OPUS_SILENCE`` is what the voice encoder itself makes of 20 ms of digital silence after
    its first ``CODED_SILENT_FRAMES`` (speech fading), and from the start on a fresh encoder; a
    stream sent that way decodes as the fully coded one does, also once speech resumes."""
    gap = np.zeros(960 * 50, np.int16)
    voice = np.concatenate([_voice(1.0), gap, _voice(1.0)])
    coded = _coded_with_canned_silence(voice, canned=False)
    canned = _coded_with_canned_silence(voice, canned=True)
    first_silent = 50  # the voice's 1 s is 50 frames
    after = coded[first_silent + tracks.CODED_SILENT_FRAMES : 100]
    assert after == [tracks.OPUS_SILENCE] * len(after)
    assert coded[first_silent] != tracks.OPUS_SILENCE  # the voice fades first
    assert _coded_with_canned_silence(gap[: 960 * 3], canned=False) == [tracks.OPUS_SILENCE] * 3
    assert canned[:100] == coded[:100]
    heard, sent = _decoded(coded), _decoded(canned)
    resumed = slice(100 * 960, None)
    noise = np.sum((heard[resumed] - sent[resumed]) ** 2)
    assert 10 * np.log10(np.sum(heard[resumed] ** 2) / max(noise, 1e-9)) > 40
