"""A real Pipecat pipeline through ``LipstreamVideoService`` against a running lipstream server.

Run by ``tests/test_pipecat.py`` with the Python of a virtualenv that has only ``pipecat-ai``,
``aiohttp`` and ``aiortc``: pipecat's own test runner (``pipecat.tests.utils.run_test``) sends TTS
audio frames faster than real time, waits, interrupts, waits, and ends; this prints what came out
of the service as one JSON line.

usage: check_pipeline.py BASE_URL WAV_16K_S16LE_MONO CHANNEL
"""

from __future__ import annotations

import asyncio
import json
import sys
import wave

from lipstream_pipecat import LipstreamVideoService
from pipecat.frames.frames import (
    InterruptionFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

CHUNK_SAMPLES = 320  # 20 ms at 16 kHz, as a streaming TTS delivers


async def main() -> None:
    """Runs the pipeline and prints what came out."""
    base, wav_path, channel = sys.argv[1], sys.argv[2], sys.argv[3]
    with wave.open(wav_path) as w:
        pcm = w.readframes(w.getnframes())
    chunks = [pcm[i : i + 2 * CHUNK_SAMPLES] for i in range(0, len(pcm), 2 * CHUNK_SAMPLES)]
    tts = [TTSAudioRawFrame(audio=c, sample_rate=16_000, num_channels=1) for c in chunks]
    service = LipstreamVideoService(base, channel=channel)
    down, _up = await run_test(
        service,
        frames_to_send=[TTSStartedFrame(), *tts, SleepFrame(sleep=3.0), InterruptionFrame(),
                        SleepFrame(sleep=1.5)],
        start_timeout=30.0,
    )  # fmt: skip
    images = [f for f in down if isinstance(f, OutputImageRawFrame)]
    voice = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    result = {
        "images": len(images),
        "image_size": list(images[-1].size) if images else None,
        "voice_frames": len(voice),
        "voice_rate": voice[0].sample_rate if voice else None,
        "interruptions_passed_on": sum(isinstance(f, InterruptionFrame) for f in down),
        "playback": service.playback,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
