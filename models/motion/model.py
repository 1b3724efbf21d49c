"""The motion model: a window of phone posteriors -> the mouth parameters of one video frame.

A small dilated 1-D convolution stack over the window, then a linear read-out of the whole window,
so the model can weigh past and recent phones differently (coarticulation). Besides the posteriors
it sees the audio level of each 10 ms hop relative to the loudest hop in the window (computed inside
the graph, so microphone gain and speaker loudness do not matter): stress and vowel height show in
level, and it keeps the mouth moving with the voice where the encoder is unsure of an unfamiliar
speaker. ~45k parameters: one run per video frame costs well under a millisecond on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MotionConfig:
    """Shape of the model.

    Attributes:
        n_phones: input classes per posterior frame (ARPAbet 39 + SIL). window_frames: posterior
        frames (10 ms each) per window. lookahead_samples: 16 kHz samples of audio past the video
        frame's end that the window covers. hidden: channels of the convolution stack. n_out: mouth
        parameters (``MOUTH_PARAMS``). squeeze: channels per posterior frame that the read-out sees.
        head_hidden: width of the read-out MLP.
    """

    n_phones: int = 40
    window_frames: int = 32
    lookahead_samples: int = 160
    hidden: int = 48
    n_out: int = 6
    dropout: float = 0.2
    squeeze: int = 8
    head_hidden: int = 64


LEVEL_FLOOR_DB = -50.0  # a window whose loudest hop is below this is treated as silence
LEVEL_RANGE_DB = 20.0  # relative level scale: -20 dB below the window peak -> -1
LEVEL_MIN = -3.0  # relative levels are clipped here (60 dB below the peak)


class MotionNet(nn.Module):
    """Posteriors ``(B, W, n_phones)``, levels ``(B, W)`` dBFS -> ``(B, n_out)`` face heights."""

    def __init__(self, config: MotionConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.inp = nn.Conv1d(config.n_phones + 1, h, 1)
        self.convs = nn.ModuleList(nn.Conv1d(h, h, 3, dilation=d, padding=d) for d in (1, 2, 4, 8))
        self.drop = nn.Dropout(config.dropout)
        self.squeeze = nn.Conv1d(h, config.squeeze, 1)
        self.head = nn.Sequential(
            nn.Linear(config.squeeze * config.window_frames, config.head_hidden),
            nn.ReLU(),
            nn.Linear(config.head_hidden, config.n_out),
        )
        # Targets are standardised in training; the export folds the scale back in.
        self.register_buffer("out_mean", torch.zeros(config.n_out))
        self.register_buffer("out_std", torch.ones(config.n_out))

    def forward_standardised(self, window: torch.Tensor, level_db: torch.Tensor) -> torch.Tensor:
        """Output in standard units of the training targets (used by the loss)."""
        ref = torch.clamp(level_db.amax(dim=1, keepdim=True), min=LEVEL_FLOOR_DB)
        rel = torch.clamp((level_db - ref) / LEVEL_RANGE_DB, min=LEVEL_MIN, max=0.0)
        x = torch.cat([window, rel.unsqueeze(-1)], dim=-1)
        x = self.inp(x.transpose(1, 2))
        for conv in self.convs:
            x = x + torch.relu(conv(self.drop(x)))
        x = torch.relu(self.squeeze(x)).flatten(1)
        return self.head(self.drop(x))

    def forward(self, window: torch.Tensor, level_db: torch.Tensor) -> torch.Tensor:
        """Mouth parameters in face heights."""
        return self.forward_standardised(window, level_db) * self.out_std + self.out_mean


class MotionEnsemble(nn.Module):
    """The mean of several ``MotionNet`` members with the same window and look-ahead.

    Members trained from different seeds err differently frame to frame; their mean follows the real
    mouth more closely than any one of them (the card's table), for a few tenths of a millisecond
    more per video frame.
    """

    def __init__(self, members: list[MotionNet]) -> None:
        super().__init__()
        first = members[0].config
        for m in members[1:]:
            if (m.config.window_frames, m.config.lookahead_samples) != (
                first.window_frames,
                first.lookahead_samples,
            ):
                raise ValueError("ensemble members must share window and look-ahead")
        self.config = first
        self.members = nn.ModuleList(members)

    def forward(self, window: torch.Tensor, level_db: torch.Tensor) -> torch.Tensor:
        """Mouth parameters in face heights, averaged over the members."""
        return torch.stack([m(window, level_db) for m in self.members]).mean(0)


def load_members(checkpoints: list) -> MotionNet | MotionEnsemble:
    """One checkpoint as its ``MotionNet``, several as their ``MotionEnsemble`` (eval mode)."""
    members = []
    for path in checkpoints:
        state = torch.load(path)
        net = MotionNet(MotionConfig(**state["config"]))
        net.load_state_dict(state["model"])
        members.append(net.eval())
    model = members[0] if len(members) == 1 else MotionEnsemble(members)
    return model.eval()
