"""Exports a trained motion checkpoint to ``models/motion/motion.onnx`` with its input contract.

    python -m lipstream.models.motion.export ~/.cache/lipstream/motion/encoder.pt [more.pt ...]

Several checkpoints export as one graph that averages them (``model.MotionEnsemble``).

The contract travels as ONNX metadata (read and checked by ``lipstream.realtime.motion``): phone
order, window length, look-ahead, hop, sample rate and the output columns.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from lipstream.realtime.pose import MOUTH_PARAMS

from .dataset import HOP_SAMPLES, PHONES, SAMPLE_RATE_HZ
from .model import load_members

logger = logging.getLogger(__name__)

ONNX_PATH = Path(__file__).resolve().parent / "motion.onnx"
INPUT_NAME = "window"
LEVEL_NAME = "level_db"
OUTPUT_NAME = "mouth"
OPSET = 17


def export(checkpoints: list[Path], out: Path = ONNX_PATH) -> Path:
    """Writes the ONNX file and returns its path; checks it against torch on a random window."""
    import onnx
    import onnxruntime as ort

    model = load_members(checkpoints)
    config = model.config
    states = [torch.load(path) for path in checkpoints]
    state = states[0]
    dummy = torch.softmax(torch.randn(2, config.window_frames, config.n_phones), -1)
    level = -60 + 40 * torch.rand(2, config.window_frames)
    batch = {0: "batch"}
    torch.onnx.export(
        model,
        (dummy, level),
        str(out),
        input_names=[INPUT_NAME, LEVEL_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=OPSET,
        dynamo=False,
        dynamic_axes={INPUT_NAME: batch, LEVEL_NAME: batch, OUTPUT_NAME: batch},
    )
    proto = onnx.load(str(out))
    meta = {
        "phones": ",".join(PHONES),
        "window_frames": str(config.window_frames),
        "lookahead_samples": str(config.lookahead_samples),
        "hop_samples": str(HOP_SAMPLES),
        "sample_rate_hz": str(SAMPLE_RATE_HZ),
        "mouth_params": ",".join(MOUTH_PARAMS),
        "level_input": LEVEL_NAME,
        "dev_metrics": json.dumps([st.get("dev", {}) for st in states]),
        "members": str(len(states)),
        "sources": ",".join(state.get("sources", [])),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: dummy.numpy(), LEVEL_NAME: level.numpy()})[0]
    with torch.no_grad():
        want = model(dummy, level).numpy()
    err = float(abs(got - want).max())
    if err > 1e-4:
        raise RuntimeError(f"ONNX output differs from torch by {err}")
    logger.info("exported %s (max diff %.2e) metadata %s", out, err, meta)
    return out


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("-o", "--out", type=Path, default=ONNX_PATH)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    export(args.checkpoints, args.out)


if __name__ == "__main__":
    main()
