"""pocketsphinx's phone codebooks as a fixed torch layer: 39 Sphinx features in, 126 scores out.

The layer holds ``sphinx_am.SenoneScorer``'s Gaussians as buffers (saved in the checkpoint and
exported into ``encoder.onnx`` as constants; never trained), so the shipped model carries what it
needs and the runtime only computes the cepstra. Per frame and stream (cepstra, deltas,
delta-deltas), each of the 42 phone codebooks scores the frame by its best Gaussian (the Viterbi
approximation of the mixture); the output is the log-posterior over codebooks under a flat prior
(score minus the log-sum-exp over codebooks), clamped at -FLOOR and scaled by 1 / SCALE so its range
is like the log-mels'.

Why these choices (measured, /work/notes/enc4.md): a linear probe on test-other frames scores 0.46
from these codebook log-posteriors (0.47 with the full log-sum-exp, 0.48 with CI senones) against
0.41 from 7 frames of log-mels. The best Gaussian instead of the log-sum-exp avoids an exp per
Gaussian, which made training about 5x slower. A posterior rather than the raw likelihood, because
the likelihood's level moves with loudness and channel.
"""

from __future__ import annotations

import torch
from torch import nn

from .sphinx_am import N_STREAMS, STREAM_DIM, SenoneScorer

FLOOR = 30.0
SCALE = 10.0


class CodebookLayer(nn.Module):
    """(B, T, 39) Sphinx frames -> (B, T, 3 * n_codebooks) scaled per-stream log-posteriors."""

    def __init__(self, n_codebooks: int = 42, n_density: int = 128) -> None:
        super().__init__()
        self.n_codebooks, self.n_density = n_codebooks, n_density
        self.register_buffer(
            "quad", torch.zeros(N_STREAMS, 2 * STREAM_DIM, n_codebooks * n_density)
        )
        self.register_buffer("bias", torch.zeros(N_STREAMS, n_codebooks * n_density))

    @property
    def n_out(self) -> int:
        """Features per frame."""
        return self.n_codebooks * N_STREAMS

    def load_scorer(self, scorer: SenoneScorer) -> None:
        """Copy the acoustic model's Gaussians in (once, when the layer is first made)."""
        if scorer.quad.shape != tuple(self.quad.shape):
            raise ValueError(f"scorer shape {scorer.quad.shape} != layer {tuple(self.quad.shape)}")
        self.quad.copy_(torch.from_numpy(scorer.quad))
        self.bias.copy_(torch.from_numpy(scorer.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score frames; the layer is fixed, so no gradient is kept.

        Written as one batched matmul over the 3 streams and a log-softmax, so the exported graph
        has a dozen nodes: at 1-2 frames per call (live chunks) per-node overhead adds up.
        """
        b, t, _ = x.shape
        with torch.set_grad_enabled(False):
            xs = x.reshape(b * t, N_STREAMS, STREAM_DIM).transpose(0, 1)  # (3, N, 13)
            g = torch.matmul(torch.cat([xs * xs, xs], dim=2), self.quad) + self.bias[:, None, :]
            s = g.reshape(N_STREAMS, b * t, self.n_codebooks, self.n_density).amax(dim=-1)
            lp = torch.clamp(torch.log_softmax(s, dim=-1), min=-FLOOR) * (1.0 / SCALE)
        return lp.transpose(0, 1).reshape(b, t, self.n_out)
