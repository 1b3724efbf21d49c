"""Audio in, one ``FramePose`` per video frame out: the stateful half of the avatar pipeline.

The pipeline is split where frames may be dropped. Everything here is cheap and runs for every
frame, because drivers carry state from frame to frame. Rendering (``realtime/render.py``) is
stateless per frame, so a session that falls behind renders only the newest pose and skips the rest.
"""

from __future__ import annotations

import numpy as np

from .clock import MediaClock
from .driver import MouthDriver, RestsInSilence
from .idle import blink_at, head_at
from .pose import FramePose
from .vad import VoiceActivity

SILENCE_CLOSE_PER_FRAME = 0.5  # the mouth eases shut over two frames once the VAD hears no speech


class MotionPipeline:
    """Feeds a driver and the VAD; stamps each mouth row it emits with frame index and idle motion.

    Owned by one session and called from that session's single worker thread.
    """

    def __init__(self, clock: MediaClock, driver: MouthDriver, seed: int = 0) -> None:
        self.clock = clock
        self._driver = driver
        self._vad = VoiceActivity()
        self._seed = seed
        self._next_frame = 0
        self._samples_seen = 0
        self._speech_gain = 0.0

    @property
    def lookahead_samples(self) -> int:
        """How far past a frame's end the pipeline must hear before emitting that frame."""
        return self._driver.lookahead_samples

    @property
    def lips_lag_samples(self) -> int:
        """How much longer than its frame the voice should be held to meet the lips."""
        return self._driver.lips_lag_samples

    @property
    def samples_seen(self) -> int:
        """Input samples consumed so far: the session's media clock."""
        return self._samples_seen

    def completes_frame(self, samples: int) -> bool:
        """Whether ``samples`` more input would let the next frame be emitted."""
        ready = self.clock.frames_ready(self._samples_seen + samples, self.lookahead_samples)
        return ready > self._next_frame

    def push(self, audio: np.ndarray) -> list[FramePose]:
        """Consumes ``(n,)`` float32 16 kHz samples; returns poses for the frames it completed.

        When the gate is shut and the VAD heard no speech in any frame this call can complete
        (their spans and hang-over), every one of them rests whatever the driver says, so a driver
        that can (``RestsInSilence``) is told to skip its work: a silent speaker, such as a voice
        agent during its user's turn, then costs no encoder or motion model.
        """
        self._samples_seen += len(audio)
        self._vad.push(audio)
        first_start = self.clock.frame_start(self._next_frame)
        resting = self._speech_gain == 0.0 and not self._vad.is_speech(
            first_start, self._samples_seen
        )
        if resting and isinstance(self._driver, RestsInSilence):
            rows = self._driver.push_quiet(audio)
        else:
            rows = self._driver.push(audio)
        poses = []
        for mouth in rows:
            poses.append(self._pose(self._next_frame, mouth))
            self._next_frame += 1
        return poses

    def _pose(self, index: int, mouth: np.ndarray) -> FramePose:
        time_s = index / self.clock.fps
        speaking = self._vad.is_speech(self.clock.frame_start(index), self.clock.frame_end(index))
        return FramePose(
            index=index,
            mouth=self._gate(mouth, speaking),
            blink=blink_at(time_s, self._seed),
            head=head_at(time_s, self._seed),
            speaking=speaking,
        )

    def _gate(self, mouth: np.ndarray, speaking: bool) -> np.ndarray:
        """Eases the mouth to rest while the VAD hears no speech.

        Whatever a driver makes of breath, hum or fan noise, a mouth that moves while nobody speaks
        is the most jarring error; the VAD's 200 ms hang-over keeps it from clipping word endings.
        """
        target = 1.0 if speaking else 0.0
        step = float(np.clip(target - self._speech_gain, -SILENCE_CLOSE_PER_FRAME, 1.0))
        self._speech_gain += step
        return (mouth * self._speech_gain).astype(np.float32)

    def reset(self) -> None:
        """Starts the clock again from sample 0."""
        self._driver.reset()
        self._vad.reset()
        self._next_frame = 0
        self._samples_seen = 0
        self._speech_gain = 0.0
