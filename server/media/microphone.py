"""The machine's own microphone as an audio track (``lipstream present``), through sounddevice.

PortAudio calls back on its own thread with each 20 ms block; the block crosses to the event loop
with ``call_soon_threadsafe`` into a bounded queue (the oldest block goes if the loop falls 1 s
behind), and ``recv`` hands it out as an ``av.AudioFrame``, so the session's reader loop
(``ingest.pump_track``) treats it as it treats a WebRTC publisher's track.
"""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .ingest import SILENCE_STEP_S
from .tracks import VOICE_LAYOUT, VOICE_RATE_HZ

CAPTURE_RATE_HZ = VOICE_RATE_HZ  # 48 kHz: what sound cards and PulseAudio sources offer natively
QUEUE_BLOCKS = 50  # 1 s of 20 ms blocks between PortAudio's thread and the loop


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise RuntimeError(
            "lipstream present needs sounddevice and PortAudio: pip install sounddevice, and "
            f"apt-get install libportaudio2 ({exc})"
        ) from exc
    return sounddevice


def list_devices() -> str:
    """The input devices sounddevice sees, one per line: index, name, channels, default rate."""
    sd = _sounddevice()
    lines = []
    for index, device in enumerate(sd.query_devices()):
        if device["max_input_channels"] > 0:
            lines.append(
                f"{index:3d}  {device['name']}  ({device['max_input_channels']} in, "
                f"{device['default_samplerate']:.0f} Hz)"
            )
    return "\n".join(lines) if lines else "no input devices found"


class MicrophoneTrack(MediaStreamTrack):
    """20 ms frames from a mono input device; create on the event loop."""

    kind = "audio"

    def __init__(self, device: int | str | None = None) -> None:
        super().__init__()
        sd = _sounddevice()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_BLOCKS)
        self.overflowed = 0  # blocks dropped because the loop fell behind
        loop = asyncio.get_running_loop()

        def on_block(data: Any, frames: int, time_info: Any, status: Any) -> None:
            loop.call_soon_threadsafe(self._put, bytes(data))  # PortAudio's thread

        self._stream = sd.RawInputStream(
            samplerate=CAPTURE_RATE_HZ,
            blocksize=int(CAPTURE_RATE_HZ * SILENCE_STEP_S),
            channels=1,
            dtype="int16",
            device=device,
            callback=on_block,
        )
        self._stream.start()

    def _put(self, pcm: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.overflowed += 1
        self._queue.put_nowait(pcm)

    async def recv(self) -> av.AudioFrame:
        """The next captured 20 ms block, in the voice format (48 kHz s16 stereo).

        The reader loop fills stalls with silence in that format, and one session's resampler
        accepts one input format only, so the microphone's mono is doubled here.
        """
        if self.readyState != "live":
            raise MediaStreamError
        mono = np.frombuffer(await self._queue.get(), dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(mono, 2).reshape(1, -1), format="s16", layout=VOICE_LAYOUT
        )
        frame.sample_rate = VOICE_RATE_HZ
        return frame

    def stop(self) -> None:
        """Stops and closes the capture stream."""
        super().stop()
        self._stream.stop()
        self._stream.close()
