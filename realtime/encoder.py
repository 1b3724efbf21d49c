"""Streaming ONNX phoneme encoder: 16 kHz audio in, 100 Hz ARPAbet-39 + SIL posteriors out.

One ``StreamingPhonemeEncoder`` per audio stream holds that stream's feature and model state; the ONNX
session is shared per process. Feed any chunk size (10 or 20 ms live): frame ``t`` (audio
``[t * 10 ms, (t + 1) * 10 ms)``) is returned once audio up to ``(t + 1) * 10 ms + lookahead_ms`` has
arrived. Chunked and whole-utterance runs return the same posteriors. A model whose contract names
``sphinx_mfcc`` also gets Sphinx cepstra (``sphinx_mfcc.py``) beside the log-mels; its pocketsphinx
Gaussians are inside the ONNX graph. Not thread-safe: call one
encoder from one thread (the session's single-thread executor).

``push_quiet`` is for audio whose posteriors nobody will read (a stretch the VAD calls silence, where
the mouth rests whatever the encoder says): it keeps the feature normalisers current but skips the
network, which is most of the encoder's cost (``bench/stage_cost.py``). ``rehear`` then lets the
network hear the last ``WARMUP_FRAMES`` feature frames again from a fresh state, and returns the
posteriors it skipped of those, before the next ``push`` (``LearnedDriver`` does both).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .features import FeatureConfig, FeatureStream
from .onnx_session import onnx_session
from .phoneset import PHONES
from .sphinx_mfcc import N_FEATURES as N_SPHINX_FEATURES
from .sphinx_mfcc import MfccConfig, SphinxFeatureStream

logger = logging.getLogger(__name__)

MODEL_FILENAME = "encoder.onnx"
CONTRACT_KEY = "lipstream_contract"
STATE_INPUTS = ("conv1_state", "conv2_state", "gru_state")
STATE_OUTPUTS = ("conv1_state_out", "conv2_state_out", "gru_state_out")
WARMUP_FRAMES = 100
"""Feature frames (1 s) the network re-hears after ``push_quiet``. Its GRUs remember long: on speech
after 4 s of room noise, a 400 ms warm-up moved the mouth by up to 0.37 (r >= 0.965 against a run
that never stopped), 1 s by up to 0.09 (r >= 0.989). It costs one 5-10 ms run at the first frame of
speech (``python -m bench.quiet_driver``)."""


class ModelContractError(ValueError):
    """The model file's input contract does not match this runtime's features or phone set."""


@dataclass(frozen=True)
class EncoderContract:
    """What the shipped model expects and produces (read from its ONNX metadata)."""

    features: FeatureConfig
    sphinx: MfccConfig | None
    """Set when the model also reads Sphinx cepstra (its codebook layer); None for log-mels only."""
    phones: tuple[str, ...]
    lookahead_frames: int
    lookahead_ms: int
    frame_rate_hz: int
    state_shapes: dict[str, tuple[int, ...]]


def default_model_path() -> Path:
    """The encoder shipped as package data of ``lipstream.models`` (``models/encoder/encoder.onnx``).

    Resolved from ``lipstream.models`` rather than importing ``lipstream.models.encoder``, which holds
    torch training code and need not be installed as a package.
    """
    return Path(str(resources.files("lipstream.models").joinpath("encoder", MODEL_FILENAME)))


def read_contract(session: ort.InferenceSession) -> EncoderContract:
    """Parse and check the model's contract against the runtime's FeatureConfig and PHONES."""
    raw = session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY)
    if raw is None:
        raise ModelContractError(f"model has no {CONTRACT_KEY!r} metadata")
    meta = json.loads(raw)
    features = FeatureConfig(**meta["features"])
    if asdict(features) != asdict(FeatureConfig()):
        raise ModelContractError(
            f"model features {asdict(features)} != runtime {asdict(FeatureConfig())}"
        )
    if tuple(meta["phones"]) != PHONES:
        raise ModelContractError(f"model phone set {meta['phones']} != runtime {list(PHONES)}")
    sphinx = None
    if "sphinx_mfcc" in meta:
        sphinx = MfccConfig(**meta["sphinx_mfcc"])
        if asdict(sphinx) != asdict(MfccConfig()):
            raise ModelContractError(f"model Sphinx cepstra {asdict(sphinx)} != runtime {asdict(MfccConfig())}")
        if sphinx.delay_frames > int(meta["lookahead_frames"]):
            raise ModelContractError("the cepstra's delay exceeds the model's look-ahead")
    shapes = {k: tuple(int(d) for d in meta["inputs"][k]) for k in STATE_INPUTS}
    return EncoderContract(features, sphinx, PHONES, int(meta["lookahead_frames"]), int(meta["lookahead_ms"]),
                           int(meta["frame_rate_hz"]), shapes)  # fmt: skip


def load_session(
    path: str, intra_op_threads: int = 1
) -> tuple[ort.InferenceSession, EncoderContract]:
    """The process-wide session for ``path`` (``realtime/onnx_session.py``) and its contract."""
    session = onnx_session(path, intra_op_threads)
    return session, read_contract(session)


class StreamingPhonemeEncoder:
    """Per-stream encoder state: push audio, receive posteriors (k, 40) float32 rows summing to 1."""

    def __init__(self, model_path: Path | None = None) -> None:
        path = str(model_path or default_model_path())
        self._session, self.contract = load_session(path)
        self._features = FeatureStream(self.contract.features)
        self._sphinx = SphinxFeatureStream(self.contract.sphinx) if self.contract.sphinx else None
        self.reset()

    @property
    def lookahead_ms(self) -> int:
        """Audio the encoder needs past the end of a frame before it emits that frame."""
        return self.contract.lookahead_ms

    def reset(self) -> None:
        """Start a new utterance/stream: zero model state, fresh feature normalisation."""
        self._features.reset()
        if self._sphinx is not None:
            self._sphinx.reset()
        self._state = self._fresh_state()
        self._steps = 0
        self.frames_emitted = 0
        self._recent = np.zeros((0, self._width), np.float32)  # the last WARMUP_FRAMES features
        self._stale = False  # push_quiet skipped the network since its state was last advanced

    def push(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono float32 (n,) -> posteriors of the frames now complete, (k, n_phones)."""
        return self._run(self._features_of(audio))

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """As ``push``, for audio whose posteriors will not be read: silence rows, no network.

        Returns as many rows as ``push`` would, each certain of SIL, so the caller's frame count
        runs on. ``rehear`` (or else the next ``push``) warms the network up again.
        """
        feats = self._features_of(audio)
        self._remember(feats)
        self._stale = True
        out = np.zeros((self._count(len(feats)), len(self.contract.phones)), np.float32)
        out[:, self.contract.phones.index("SIL")] = 1.0
        return out

    def rehear(self) -> np.ndarray:
        """After ``push_quiet``: the network re-hears the last ``WARMUP_FRAMES`` feature frames.

        Returns the posteriors of the latest frames it gave as SIL rows, as many as that warm-up
        resolves (``WARMUP_FRAMES`` less the look-ahead, and no more than were emitted), oldest
        first, for the caller to put in their place; empty when nothing was skipped.
        """
        if not self._stale:
            return np.zeros((0, len(self.contract.phones)), np.float32)
        self._state = self._fresh_state()
        self._stale = False
        if len(self._recent) == 0:
            return np.zeros((0, len(self.contract.phones)), np.float32)
        # Output j is the posterior of feature frame j - L; the first L only heard zero context.
        resolved = self._advance(self._recent)[self.contract.lookahead_frames :]
        return resolved[max(0, len(resolved) - self.frames_emitted) :]

    def flush(self) -> np.ndarray:
        """End of an offline utterance: emit the last ``lookahead_frames`` frames.

        Feeds neutral (zero = running-mean) feature frames in place of the audio that never comes
        (for the Sphinx cepstra too: their last 3 frames stay unseen, as in training's padding).
        A live stream never calls this.
        """
        pad = np.zeros((self.contract.lookahead_frames, self._width), np.float32)
        return self._run(pad)

    @property
    def _width(self) -> int:
        return self.contract.features.n_mels + (N_SPHINX_FEATURES if self._sphinx is not None else 0)

    def _fresh_state(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(s, np.float32) for k, s in self.contract.state_shapes.items()}

    def _features_of(self, audio: np.ndarray) -> np.ndarray:
        """The model's input rows for ``audio``: log-mels, then Sphinx cepstra where it reads them."""
        if audio.ndim != 1:
            raise ValueError(f"expected mono (n,) float32 audio at 16 kHz, got shape {audio.shape}")
        audio = audio.astype(np.float32, copy=False)
        feats = self._features.push(audio)
        if self._sphinx is not None:
            feats = np.concatenate([feats, self._sphinx.push(audio)], axis=1)
        return feats

    def _remember(self, feats: np.ndarray) -> None:
        if len(feats):
            self._recent = np.concatenate([self._recent, feats])[-WARMUP_FRAMES:]

    def _advance(self, feats: np.ndarray) -> np.ndarray:
        """Runs the network over ``feats`` from its state; (T, n_phones) outputs, state advanced."""
        inputs = {"feats": feats[None], **self._state}
        post, *states = self._session.run(["posteriors", *STATE_OUTPUTS], inputs)
        self._state = dict(zip(STATE_INPUTS, states, strict=True))
        return post[0]

    def _count(self, rows: int) -> int:
        """Posterior frames that ``rows`` more feature frames complete (the first L never do)."""
        skip = min(rows, max(0, self.contract.lookahead_frames - self._steps))
        self._steps += rows
        self.frames_emitted += rows - skip
        return rows - skip

    def _run(self, feats: np.ndarray) -> np.ndarray:
        if feats.shape[0] == 0:
            return np.zeros((0, len(self.contract.phones)), np.float32)
        self.rehear()
        self._remember(feats)
        post = self._advance(feats)
        emitted = self._count(len(feats))
        return post[len(feats) - emitted :]
