"""The streaming phoneme encoder: causal convolutions + GRU, explicit state, fixed look-ahead by delay.

The network is strictly causal; look-ahead L frames is obtained by training output step t to predict the
phone of frame t - L. So the streaming model needs no future input, chunked == whole holds by
construction, and state is just the conv buffers plus the GRU hidden state.
Shapes: feats (B, T, n_mels [+ sphinx_dims]) float32 -> logits (B, T, n_phones).
With ``sphinx_dims`` = 39 the input also carries ``realtime.sphinx_mfcc`` frames (already delayed by
their 3 frames), which a fixed layer (``gmm_layer.CodebookLayer``, pocketsphinx's phone codebooks)
turns into 126 phone-codebook log-posteriors; those join the log-mels as extra input channels of the first convolution, so
the conv1 state holds them too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .gmm_layer import CodebookLayer


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture hyper-parameters (saved with the checkpoint and in the ONNX metadata)."""

    n_mels: int = 40
    n_phones: int = 40
    conv_channels: int = 192
    conv1_kernel: int = 5
    conv2_kernel: int = 3
    gru_hidden: int = 256
    gru_layers: int = 2
    lookahead_frames: int = 5
    sphinx_dims: int = 0
    """39: the input carries Sphinx cepstral frames after the log-mels, scored by the codebook layer."""

    def as_dict(self) -> dict[str, int]:
        """Plain dict (JSON / ONNX metadata)."""
        return asdict(self)


class StreamingEncoder(nn.Module):
    """Causal conv front end + GRU + linear phone classifier."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.sphinx = CodebookLayer() if cfg.sphinx_dims else None
        self.conv1 = nn.Conv1d(self.conv1_inputs, cfg.conv_channels, cfg.conv1_kernel)
        self.conv2 = nn.Conv1d(cfg.conv_channels, cfg.conv_channels, cfg.conv2_kernel)
        self.gru = nn.GRU(cfg.conv_channels, cfg.gru_hidden, cfg.gru_layers, batch_first=True)
        self.out = nn.Linear(cfg.gru_hidden, cfg.n_phones)

    @property
    def conv1_inputs(self) -> int:
        """Channels of the first convolution: log-mels, plus codebook scores when present."""
        return self.cfg.n_mels + (self.sphinx.n_out if self.sphinx is not None else 0)

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Zero state: conv1 buffer (B, k1-1, conv1_inputs), conv2 buffer (B, k2-1, C), GRU (layers, B, H)."""
        c = self.cfg
        return (
            torch.zeros(batch, c.conv1_kernel - 1, self.conv1_inputs),
            torch.zeros(batch, c.conv2_kernel - 1, c.conv_channels),
            torch.zeros(c.gru_layers, batch, c.gru_hidden),
        )

    def forward(
        self,
        feats: torch.Tensor,
        conv1_state: torch.Tensor,
        conv2_state: torch.Tensor,
        gru_state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, F) features + state -> (B, T, n_phones) logits + next state."""
        k1, k2 = self.cfg.conv1_kernel - 1, self.cfg.conv2_kernel - 1
        if self.sphinx is not None:
            n = self.cfg.n_mels
            feats = torch.cat([feats[..., :n], self.sphinx(feats[..., n : n + self.cfg.sphinx_dims])], dim=-1)
        x1 = torch.cat([conv1_state, feats], dim=1)
        h1 = torch.relu(self.conv1(x1.transpose(1, 2))).transpose(1, 2)
        x2 = torch.cat([conv2_state, h1], dim=1)
        h2 = torch.relu(self.conv2(x2.transpose(1, 2))).transpose(1, 2)
        y, gru_next = self.gru(h2, gru_state)
        return self.out(y), x1[:, x1.shape[1] - k1 :], x2[:, x2.shape[1] - k2 :], gru_next


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def add_sphinx_input(model: StreamingEncoder, state: dict[str, torch.Tensor]) -> None:
    """Load a log-mel-only checkpoint's weights into a model with the codebook layer.

    The first convolution's weights for the new channels start at zero, so the model's output equals the
    checkpoint's exactly until training moves them; the layer's buffers come from pocketsphinx's files.
    """
    from .sphinx_am import senone_scorer

    if model.sphinx is None:
        raise ValueError("model has no codebook layer")
    state = dict(state)
    w = state["conv1.weight"]
    extra = torch.zeros(w.shape[0], model.conv1_inputs - w.shape[1], w.shape[2])
    state["conv1.weight"] = torch.cat([w, extra], dim=1)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("sphinx.") for k in missing):
        raise ValueError(f"checkpoint does not fit: missing {missing}, unexpected {unexpected}")
    model.sphinx.load_scorer(senone_scorer(ci_weights=False))
