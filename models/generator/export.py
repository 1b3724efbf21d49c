"""Exports the analytic generator to ``generator.onnx``.

Run: python -m lipstream.models.generator.export
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from lipstream.models.generator.model import SPREAD_GAIN, Generator
from lipstream.realtime.avatar import ATLAS_TEXELS, MAP_CHANNELS, RIG_FIELDS
from lipstream.realtime.render import GENERATOR_OUTPUTS, POSE_FIELDS

OPSET = 17
EXAMPLE_CROP_PX = 64  # spatial size is dynamic; this only shapes the trace
DEFAULT_OUT = Path(__file__).with_name("generator.onnx")

logger = logging.getLogger(__name__)


def export(out: Path = DEFAULT_OUT) -> Path:
    """Traces ``Generator`` with a dynamic crop size; its I/O contract goes into the metadata."""
    import onnx

    n = EXAMPLE_CROP_PX
    args = (
        torch.zeros(len(MAP_CHANNELS), n * n),
        torch.ones(len(RIG_FIELDS)).index_fill(0, torch.tensor([RIG_FIELDS.index("crop_px")]), n),
        torch.zeros(len(POSE_FIELDS)),
        torch.zeros(ATLAS_TEXELS, 3),
    )
    torch.onnx.export(
        Generator().eval(),
        args,
        str(out),
        input_names=["maps", "rig", "pose", "interior"],
        output_names=list(GENERATOR_OUTPUTS),
        dynamic_axes={
            "maps": {1: "pixels"},
            "source": {1: "pixels"},
            "cover": {1: "band_pixels"},
        },
        opset_version=OPSET,
        dynamo=False,
    )
    model = onnx.load(str(out))
    meta = {
        "rig_fields": ",".join(RIG_FIELDS),
        "map_channels": ",".join(MAP_CHANNELS),
        "pose_fields": ",".join(POSE_FIELDS),
        "outputs": ",".join(GENERATOR_OUTPUTS),
        # Spreading is drawn SPREAD_GAIN x the pose's width: re-lipping real footage reads it to
        # move real corners by the measured amount (dub/retarget.py).
        "spread_gain": repr(SPREAD_GAIN),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))
    logger.info("wrote %s", out)
    return out


def main() -> None:
    """CLI entry: ``--out PATH``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    logging.basicConfig(level=logging.INFO)
    export(parser.parse_args().out)


if __name__ == "__main__":
    main()
