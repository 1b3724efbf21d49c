"""Export a trained checkpoint to ONNX with explicit state tensors and the model's input contract.

    python -m lipstream.models.encoder.export CKPT [--out models/encoder/encoder.onnx]

The contract (feature config, the Sphinx cepstra config when the model has the codebook layer, phone set, look-ahead, IO names and state shapes) goes into the ONNX
``metadata_props`` under ``lipstream_contract`` and into ``encoder.json`` beside the model;
``lipstream.realtime.encoder`` checks it at load.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from lipstream.realtime.features import FeatureConfig
from lipstream.realtime.phonemes import PHONES
from lipstream.realtime.sphinx_mfcc import MfccConfig

from .model import EncoderConfig, StreamingEncoder
from .sphinx_am import CI_PHONES, N_STREAMS

INPUTS = ("feats", "conv1_state", "conv2_state", "gru_state")
OUTPUTS = ("posteriors", "conv1_state_out", "conv2_state_out", "gru_state_out")
OPSET = 17


def contract(cfg: EncoderConfig) -> dict[str, object]:
    """Everything a caller must match to feed this model (JSON-able)."""
    feat = FeatureConfig()
    n_conv1 = cfg.n_mels + (N_STREAMS * len(CI_PHONES) if cfg.sphinx_dims else 0)
    sphinx = {"sphinx_mfcc": asdict(MfccConfig())} if cfg.sphinx_dims else {}
    return {
        "name": "lipstream-phoneme-encoder",
        "features": asdict(feat),
        **sphinx,
        "phones": list(PHONES),
        "lookahead_frames": cfg.lookahead_frames,
        "lookahead_ms": cfg.lookahead_frames * feat.hop_samples * 1000 // feat.sample_rate_hz,
        "frame_rate_hz": feat.sample_rate_hz // feat.hop_samples,
        "inputs": {
            "feats": ["batch=1", "T", feat.n_mels + cfg.sphinx_dims],
            "conv1_state": [1, cfg.conv1_kernel - 1, n_conv1],
            "conv2_state": [1, cfg.conv2_kernel - 1, cfg.conv_channels],
            "gru_state": [cfg.gru_layers, 1, cfg.gru_hidden],
        },
        "outputs": {
            "posteriors": ["batch=1", "T", len(PHONES)],
            "conv1_state_out": "as conv1_state",
            "conv2_state_out": "as conv2_state",
            "gru_state_out": "as gru_state",
        },
        "output_semantics": "posteriors[t] is the softmax over phones for feature frame t - lookahead_frames",
        "architecture": cfg.as_dict(),
    }


class _Softmaxed(torch.nn.Module):
    def __init__(self, inner: StreamingEncoder) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, feats, c1, c2, h):  # type: ignore[no-untyped-def]
        logits, n1, n2, nh = self.inner(feats, c1, c2, h)
        return torch.softmax(logits, dim=-1), n1, n2, nh


def export(ckpt: Path, out: Path) -> dict[str, object]:
    """Write ``out`` (.onnx) and ``out.with_suffix('.json')``; returns the contract."""
    import onnx

    blob = torch.load(ckpt, map_location="cpu")
    cfg = EncoderConfig(**blob["cfg"])
    model = StreamingEncoder(cfg)
    model.load_state_dict(blob["state"])
    model.eval()
    example = (torch.zeros(1, 7, cfg.n_mels + cfg.sphinx_dims), *model.initial_state(1))
    torch.onnx.export(
        _Softmaxed(model), example, str(out), input_names=list(INPUTS), output_names=list(OUTPUTS),
        dynamic_axes={"feats": {1: "T"}, "posteriors": {1: "T"}}, opset_version=OPSET, dynamo=False,
    )  # fmt: skip
    meta = contract(cfg)
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "lipstream_contract", json.dumps(meta)
    onnx.save(proto, str(out))
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    """CLI entry."""
    p = argparse.ArgumentParser(description="export the encoder to ONNX")
    p.add_argument("ckpt", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("encoder.onnx"))
    a = p.parse_args(argv)
    export(a.ckpt, a.out)


if __name__ == "__main__":
    main()
