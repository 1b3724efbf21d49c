r"""pocketsphinx's en-us acoustic model as a fixed scoring layer: read its Gaussians and senones.

pocketsphinx's PTM model was trained on hundreds of hours of American English; our encoder has about
an hour. Its 42 phone codebooks x 128 diagonal Gaussians x 3 streams (cepstra, deltas,
delta-deltas) score a ``realtime.sphinx_mfcc`` frame, and the network reads those scores beside the
log-mels (``gmm_layer.py``). This module only reads the files of the pip package (training side;
the Gaussians are baked into ``encoder.onnx`` as constants, so the runtime needs neither
pocketsphinx nor these files). Formats, from the sphinxbase readers (``ms_gauden.c``,
``ptm_mgau.c``, ``bio.c``):

- ``means`` / ``variances``: text header ending ``endhdr\n``, uint32 byte-order magic 0x11223344,
  int32 n_mgau, n_feat, n_density, veclen[n_feat], total count, then float32 values
  [mgau][feat][density][dim] and a checksum.
- ``sendump``: int32-length-prefixed header strings, a marker, int32 n_codewords, n_senones, then
  uint8 [feat][codeword][senone] holding -log_1.0001(weight) >> 10.
- ``mdef`` (binary): the CI phone names in order; CI senones are the first 3 per CI phone.

Licence: BSD-style (Alpha Cephei Inc. 2015; README beside the model files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_STREAMS = 3
STREAM_DIM = 13
STATES_PER_PHONE = 3
VAR_FLOOR = 1e-4
"""pocketsphinx's default ``-varfloor``."""
MIXW_LOG_SCALE = 1024 * np.log(1.0001)
"""A sendump byte v is a weight of exp(-v * MIXW_LOG_SCALE) (log base 1.0001, shifted 10 bits)."""
CI_PHONES = (
    "+NSN+", "+SPN+", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH",
    "SIL", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
"""The model's CI phones, in its mdef order (checked against the file by ``read_ci_phones``)."""


def model_dir() -> Path:
    """The en-us model folder inside the pocketsphinx wheel (a training dependency)."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"


def _read_s3_floats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(dims int32[3 + n_feat], values float32) of a sphinx3 binary Gaussian file."""
    raw = path.read_bytes()
    start = raw.index(b"endhdr\n") + len(b"endhdr\n")
    if np.frombuffer(raw[start : start + 4], "<u4")[0] != 0x11223344:
        raise ValueError(f"{path}: unexpected byte order")
    n_mgau, n_feat, n_density = np.frombuffer(raw[start + 4 : start + 16], "<i4")
    veclen = np.frombuffer(raw[start + 16 : start + 16 + 4 * n_feat], "<i4")
    at = start + 16 + 4 * n_feat
    total = int(np.frombuffer(raw[at : at + 4], "<i4")[0])
    values = np.frombuffer(raw[at + 4 : at + 4 + 4 * total], "<f4")
    if total != n_mgau * n_density * veclen.sum():
        raise ValueError(f"{path}: {total} values do not match the header")
    return np.array([n_mgau, n_feat, n_density, *veclen]), values


def read_gaussians(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Means and floored variances, each (n_mgau, N_STREAMS, n_density, STREAM_DIM) float64."""
    out = []
    for name in ("means", "variances"):
        dims, values = _read_s3_floats(folder / name)
        n_mgau, n_feat, n_density, *veclen = (int(d) for d in dims)
        if n_feat != N_STREAMS or any(v != STREAM_DIM for v in veclen):
            raise ValueError(f"{name}: expected {N_STREAMS} streams of {STREAM_DIM}, got {veclen}")
        out.append(values.reshape(n_mgau, n_feat, n_density, STREAM_DIM).astype(np.float64))
    return out[0], np.maximum(out[1], VAR_FLOOR)


def read_ci_phones(folder: Path) -> tuple[str, ...]:
    """The CI phone names of the binary mdef (after the format description, NUL-separated)."""
    raw = (folder / "mdef").read_bytes()
    at = raw.index(b"+NSN+")
    names = raw[at:].split(b"\0")[: len(CI_PHONES)]
    return tuple(n.decode() for n in names)


def read_ci_mixture_weights(folder: Path, n_ci_senones: int) -> np.ndarray:
    """Log mixture weights of the first ``n_ci_senones`` senones, (n_ci_senones, 3, n_density)."""
    raw = (folder / "sendump").read_bytes()
    # The header's last entries are odd (a 3-byte marker); the two counts sit right before the data.
    at = raw.index(b"feature_count")
    for offset in range(at, at + 64):
        n_codewords, n_senones = (int(v) for v in np.frombuffer(raw[offset : offset + 8], "<i4"))
        if (
            n_codewords > 0
            and n_senones > 0
            and len(raw) - offset - 8 == N_STREAMS * n_codewords * n_senones
        ):
            break
    else:
        raise ValueError("sendump: cannot find the codeword and senone counts")
    at = offset - 4
    data = np.frombuffer(raw[at + 12 :], np.uint8)
    if data.size != N_STREAMS * n_codewords * n_senones:
        raise ValueError(f"sendump: {data.size} bytes for {n_codewords} x {n_senones}")
    mixw = data.reshape(N_STREAMS, n_codewords, n_senones)[:, :, :n_ci_senones]
    return -mixw.transpose(2, 0, 1).astype(np.float64) * MIXW_LOG_SCALE


@dataclass(frozen=True)
class SenoneScorer:
    """Every Gaussian as a quadratic form, then a log-sum-exp per codebook (or senone) and stream.

    ``quad`` (N_STREAMS, 2 * STREAM_DIM, n_codebooks * n_density) and ``bias`` (N_STREAMS,
    n_codebooks * n_density) hold each Gaussian's log-density so that one matmul per stream scores
    all of them from [x_f^2, x_f]. ``log_weights`` (n_senones, N_STREAMS, n_density) are the CI
    senones' mixture weights over their phone's codebook (senone s uses codebook s // 3); None means
    uniform weights over each codebook (then the scores are per codebook).
    """

    quad: np.ndarray
    bias: np.ndarray
    n_codebooks: int
    n_density: int
    log_weights: np.ndarray | None

    @property
    def n_outputs(self) -> int:
        """Scores per stream and frame: CI senones, or codebooks."""
        return self.n_codebooks if self.log_weights is None else len(self.log_weights)

    def gaussian_scores(self, feats: np.ndarray) -> np.ndarray:
        """(T, 39) frames -> (T, N_STREAMS, n_codebooks, n_density) log-densities."""
        out = []
        for f in range(N_STREAMS):
            x = feats[:, f * STREAM_DIM : (f + 1) * STREAM_DIM].astype(np.float64)
            out.append(np.concatenate([x * x, x], axis=1) @ self.quad[f] + self.bias[f])
        return np.stack(out, axis=1).reshape(
            len(feats), N_STREAMS, self.n_codebooks, self.n_density
        )

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """(T, 39) -> (T, n_outputs, N_STREAMS) log-likelihoods per senone (or codebook), stream."""
        g = self.gaussian_scores(feats)
        if self.log_weights is not None:
            g = g[
                :, :, np.arange(len(self.log_weights)) // STATES_PER_PHONE
            ] + self.log_weights.transpose(1, 0, 2)
        m = g.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(g - m).sum(-1, keepdims=True)))[..., 0]
        return lse.transpose(0, 2, 1)


def senone_scorer(folder: Path | None = None, ci_weights: bool = True) -> SenoneScorer:
    """Read the model; ``ci_weights``: score the 126 CI senones, else the 42 codebooks (uniform)."""
    folder = folder or model_dir()
    if read_ci_phones(folder) != CI_PHONES:
        raise ValueError("mdef CI phones differ from CI_PHONES")
    means, var = read_gaussians(folder)
    n_mgau, _, n_density, _ = means.shape
    prec = 1.0 / var
    quad = np.concatenate([-0.5 * prec, means * prec], axis=-1)  # (mgau, f, dens, 26)
    bias = -0.5 * ((means**2) * prec).sum(-1) - 0.5 * np.log(2 * np.pi * var).sum(
        -1
    )  # (mgau, f, dens)
    logw = read_ci_mixture_weights(folder, n_mgau * STATES_PER_PHONE) if ci_weights else None
    if logw is None:
        bias = bias - np.log(n_density)
    q = quad.transpose(1, 3, 0, 2).reshape(N_STREAMS, 2 * STREAM_DIM, n_mgau * n_density)
    b = bias.transpose(1, 0, 2).reshape(N_STREAMS, n_mgau * n_density)
    w = None if logw is None else logw.astype(np.float32)
    return SenoneScorer(q.astype(np.float32), b.astype(np.float32), n_mgau, n_density, w)
