"""Converts MediaPipe's bundled face detector and face-mesh ``.tflite`` files to ONNX, once.

Run by hand (it needs the ``tflite`` flatbuffer schema package, ``onnx`` and mediapipe's wheel for
the source files; none of them at run time)::

    pip install tflite onnx mediapipe==0.10.21
    python models/landmarks/convert.py            # writes models/landmarks/*.onnx + mesh.json

Only the operators these three models use are handled; anything else raises. Tensors keep
TFLite's NHWC layout in the graph: convolutions and pools are wrapped in transposes to ONNX's
NCHW, which onnxruntime's optimiser folds. MediaPipe's three custom operators of the attention
mesh become ONNX subgraphs with the semantics of ``mediapipe/util/tflite/operations/*.cc``:
``Landmarks2TransformMatrix`` (v2), ``TransformTensorBilinear`` (v2, via ``GridSample``) and
``TransformLandmarks`` (v2).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
import onnx
import tflite
from flatbuffers import flexbuffers
from onnx import TensorProto, helper, numpy_helper

HERE = pathlib.Path(__file__).resolve().parent
MODELS = {
    "face_detection_short_range": "face_detection/face_detection_short_range.tflite",
    "face_detection_full_range": "face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark_with_attention": "face_landmark/face_landmark_with_attention.tflite",
}
OPSET = 17
OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
NP_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
}
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


def _densify(shape: list[int], sp: tflite.SparsityParameters, values: np.ndarray) -> np.ndarray:
    """TFLite sparse tensor (traversal order, blocks, dense/CSR levels) to a dense array."""
    order = list(sp.TraversalOrderAsNumpy())
    block_map = list(sp.BlockMapAsNumpy()) if sp.BlockMapLength() else []
    n = len(shape)
    metas = [sp.DimMetadata(k) for k in range(sp.DimMetadataLength())]

    def vec(meta, segments: bool) -> np.ndarray:
        kind = meta.ArraySegmentsType() if segments else meta.ArrayIndicesType()
        table = meta.ArraySegments() if segments else meta.ArrayIndices()
        cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
        v = cls()
        v.Init(table.Bytes, table.Pos)
        return v.ValuesAsNumpy().astype(np.int64)

    block_sizes = {
        block_map[k]: metas[order.index(n + k)].DenseSize() for k in range(len(block_map))
    }
    out = np.zeros(shape, values.dtype)
    coords = [0] * len(order)

    def put(value) -> None:
        idx = list(coords[:n])
        for k, dim in enumerate(block_map):
            idx[dim] = coords[dim] * block_sizes[dim] + coords[n + k]
        out[tuple(idx)] = value

    def walk(level: int, prev: int) -> None:
        meta = metas[level]
        last = level + 1 == len(order)
        if meta.Format() == tflite.DimensionType.DENSE:
            size = meta.DenseSize()
            for i in range(size):
                coords[order[level]] = i
                pos = prev * size + i
                put(values[pos]) if last else walk(level + 1, pos)
        else:
            seg, ind = vec(meta, True), vec(meta, False)
            for j in range(seg[prev], seg[prev + 1]):
                coords[order[level]] = int(ind[j])
                put(values[j]) if last else walk(level + 1, j)

    walk(0, 0)
    return out


class Converter:
    """One TFLite subgraph to one ONNX graph (NHWC tensors, static shapes)."""

    def __init__(self, buf: bytes) -> None:
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        self.graph = self.model.Subgraphs(0)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.consts: dict[int, np.ndarray] = {}
        self.uid = 0
        self.custom_options: list[tuple[str, dict]] = []

    # --- tensors -------------------------------------------------------------------------------
    def tensor(self, i: int) -> tflite.Tensor:
        """TFLite tensor ``i``."""
        return self.graph.Tensors(i)

    def shape(self, i: int) -> list[int]:
        """Static shape of tensor ``i``."""
        return [int(d) for d in self.tensor(i).ShapeAsNumpy()]

    def name(self, i: int) -> str:
        """ONNX name of tensor ``i``."""
        return f"t{i}"

    def const(self, i: int) -> np.ndarray | None:
        """The constant value of tensor ``i`` (a buffer, or folded DEQUANTIZE/DENSIFY), or None."""
        if i in self.consts:
            return self.consts[i]
        t = self.tensor(i)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        values = np.frombuffer(data.tobytes(), NP_TYPES[t.Type()])
        if t.Sparsity() is not None:
            arr = _densify(self.shape(i), t.Sparsity(), values)
        else:
            arr = values.reshape(self.shape(i))
        self.consts[i] = arr
        return arr

    def input(self, i: int) -> str:
        """ONNX name of tensor ``i``, adding it as an initializer when it is a constant."""
        value = self.const(i)
        if value is not None and self.name(i) not in self.inits:
            self.inits[self.name(i)] = (
                value.astype(np.float32) if value.dtype == np.float16 else value
            )
        return self.name(i)

    def add_const(self, value: np.ndarray, hint: str = "c") -> str:
        """A new initializer; its name."""
        self.uid += 1
        name = f"{hint}_{self.uid}"
        self.inits[name] = np.asarray(value)
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> str:
        """Appends an ONNX node; the name of its first output."""
        if outputs is None:
            self.uid += 1
            outputs = [f"{op.lower()}_{self.uid}"]
        self.nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0]

    def activation(self, x: str, act: int, out: str) -> None:
        """Fused activation ``act`` from ``x`` to ``out``."""
        if act == tflite.ActivationFunctionType.NONE:
            self.node("Identity", [x], [out])
        elif act == tflite.ActivationFunctionType.RELU:
            self.node("Relu", [x], [out])
        elif act == tflite.ActivationFunctionType.RELU6:
            self.node(
                "Clip", [x, self.add_const(np.float32(0)), self.add_const(np.float32(6))], [out]
            )
        else:
            raise NotImplementedError(f"fused activation {act}")

    # --- padding ---------------------------------------------------------------------------------
    @staticmethod
    def same_pads(in_hw, k_hw, stride, dilation) -> list[int]:
        """ONNX pads (begins, ends) of TFLite SAME padding."""
        pads_begin, pads_end = [], []
        for size, k, s, d in zip(in_hw, k_hw, stride, dilation, strict=True):
            eff = (k - 1) * d + 1
            out = -(-size // s)
            total = max((out - 1) * s + eff - size, 0)
            pads_begin.append(total // 2)
            pads_end.append(total - total // 2)
        return pads_begin + pads_end

    # --- operators -------------------------------------------------------------------------------
    def convert(self) -> onnx.ModelProto:
        """The whole subgraph as a checked ONNX model."""
        g = self.graph
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            oc = self.model.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            ins = [int(j) for j in op.InputsAsNumpy()]
            outs = [int(j) for j in op.OutputsAsNumpy()]
            if code == tflite.BuiltinOperator.CUSTOM:
                opts = (
                    flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
                    if op.CustomOptionsLength()
                    else {}
                )
                getattr(self, "_custom_" + oc.CustomCode().decode())(ins, outs, opts or {})
            else:
                getattr(self, "_op_" + OP_NAMES[code])(op, ins, outs)
        inputs = [
            helper.make_tensor_value_info(self.name(i), TensorProto.FLOAT, self.shape(i))
            for i in g.InputsAsNumpy()
        ]
        outputs = [
            helper.make_tensor_value_info(
                self.tensor(i).Name().decode(), TensorProto.FLOAT, self.shape(i)
            )
            for i in g.OutputsAsNumpy()
        ]
        for i in g.OutputsAsNumpy():
            self.node("Identity", [self.name(i)], [self.tensor(i).Name().decode()])
        graph = helper.make_graph(
            self.nodes,
            "main",
            inputs,
            outputs,
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def _op_DEQUANTIZE(self, op, ins, outs) -> None:
        value = self.const(ins[0])
        if value is None:
            raise NotImplementedError("DEQUANTIZE of a runtime tensor")
        self.consts[outs[0]] = value.astype(np.float32)

    def _op_DENSIFY(self, op, ins, outs) -> None:
        self.consts[outs[0]] = self.const(ins[0])

    def _nchw_op(self, x: str, make) -> str:
        t = self.node("Transpose", [x], perm=NHWC_TO_NCHW)
        return self.node("Transpose", [make(t)], perm=NCHW_TO_NHWC)

    def _op_CONV_2D(self, op, ins, outs) -> None:
        o = tflite.Conv2DOptions()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        w = self.const(ins[1]).astype(np.float32)  # (O, kh, kw, I)
        self._conv(op, ins, outs, w.transpose(0, 3, 1, 2), 1, o)

    def _op_DEPTHWISE_CONV_2D(self, op, ins, outs) -> None:
        o = tflite.DepthwiseConv2DOptions()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        w = self.const(ins[1]).astype(np.float32)  # (1, kh, kw, C * mult)
        groups = self.shape(ins[0])[3]
        self._conv(op, ins, outs, w.transpose(3, 0, 1, 2), groups, o)

    def _conv(self, op, ins, outs, w: np.ndarray, groups: int, o) -> None:
        stride = [o.StrideH(), o.StrideW()]
        dil = [o.DilationHFactor(), o.DilationWFactor()]
        in_hw = self.shape(ins[0])[1:3]
        if o.Padding() == tflite.Padding.SAME:
            pads = self.same_pads(in_hw, w.shape[2:], stride, dil)
        else:
            pads = [0, 0, 0, 0]
        args = [self.input(ins[0]), self.add_const(w, "w")]
        if len(ins) > 2 and ins[2] >= 0:
            args.append(self.add_const(self.const(ins[2]).astype(np.float32), "b"))
        x = self.node("Transpose", [args[0]], perm=NHWC_TO_NCHW)
        y = self.node(
            "Conv",
            [x, *args[1:]],
            strides=stride,
            dilations=dil,
            pads=pads,
            group=groups,
            kernel_shape=list(w.shape[2:]),
        )
        y = self.node("Transpose", [y], perm=NCHW_TO_NHWC)
        self.activation(y, o.FusedActivationFunction(), self.name(outs[0]))

    def _op_MAX_POOL_2D(self, op, ins, outs) -> None:
        o = tflite.Pool2DOptions()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        k = [o.FilterHeight(), o.FilterWidth()]
        stride = [o.StrideH(), o.StrideW()]
        pads = (
            self.same_pads(self.shape(ins[0])[1:3], k, stride, [1, 1])
            if o.Padding() == tflite.Padding.SAME
            else [0, 0, 0, 0]
        )
        if any(pads):
            raise NotImplementedError("SAME max pool with padding (TFLite ignores padded cells)")
        y = self._nchw_op(
            self.input(ins[0]),
            lambda t: self.node("MaxPool", [t], kernel_shape=k, strides=stride, pads=pads),
        )
        self.activation(y, o.FusedActivationFunction(), self.name(outs[0]))

    def _binary(self, onnx_op: str, op, ins, outs, opts_cls) -> None:
        act = tflite.ActivationFunctionType.NONE
        if op.BuiltinOptions() is not None:
            o = opts_cls()
            tab = op.BuiltinOptions()
            o.Init(tab.Bytes, tab.Pos)
            act = o.FusedActivationFunction()
        a, b = self.input(ins[0]), self.input(ins[1])
        self.activation(self.node(onnx_op, [a, b]), act, self.name(outs[0]))

    def _op_ADD(self, op, ins, outs) -> None:
        self._binary("Add", op, ins, outs, tflite.AddOptions)

    def _op_MUL(self, op, ins, outs) -> None:
        self._binary("Mul", op, ins, outs, tflite.MulOptions)

    def _op_RELU(self, op, ins, outs) -> None:
        self.node("Relu", [self.input(ins[0])], [self.name(outs[0])])

    def _op_PRELU(self, op, ins, outs) -> None:
        self.node("PRelu", [self.input(ins[0]), self.input(ins[1])], [self.name(outs[0])])

    def _op_PAD(self, op, ins, outs) -> None:
        p = self.const(ins[1]).astype(np.int64)  # (rank, 2)
        pads = self.add_const(np.concatenate([p[:, 0], p[:, 1]]), "pads")
        self.node("Pad", [self.input(ins[0]), pads], [self.name(outs[0])], mode="constant")

    def _op_RESHAPE(self, op, ins, outs) -> None:
        shape = self.add_const(np.array(self.shape(outs[0]), np.int64), "shape")
        self.node("Reshape", [self.input(ins[0]), shape], [self.name(outs[0])])

    def _op_CONCATENATION(self, op, ins, outs) -> None:
        o = tflite.ConcatenationOptions()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        y = self.node("Concat", [self.input(i) for i in ins], axis=o.Axis())
        self.activation(y, o.FusedActivationFunction(), self.name(outs[0]))

    def _op_STRIDED_SLICE(self, op, ins, outs) -> None:
        if self.shape(ins[0]) != self.shape(outs[0]) or np.any(self.const(ins[3]) != 1):
            raise NotImplementedError("only the identity STRIDED_SLICE of the mesh model")
        self.node("Identity", [self.input(ins[0])], [self.name(outs[0])])

    def _op_RESIZE_BILINEAR(self, op, ins, outs) -> None:
        o = tflite.ResizeBilinearOptions()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        if o.AlignCorners():
            mode = "align_corners"
        elif o.HalfPixelCenters():
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        sizes = self.add_const(
            np.array([1, *self.shape(outs[0])[1:3], self.shape(ins[0])[3]], np.int64)[NHWC_TO_NCHW],
            "sizes",
        )
        y = self._nchw_op(
            self.input(ins[0]),
            lambda t: self.node(
                "Resize", [t, "", "", sizes], mode="linear", coordinate_transformation_mode=mode
            ),
        )
        self.node("Identity", [y], [self.name(outs[0])])

    def _op_DEPTH_TO_SPACE(self, op, ins, outs) -> None:
        o = tflite.DepthToSpaceOptions()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        y = self._nchw_op(
            self.input(ins[0]),
            lambda t: self.node("DepthToSpace", [t], blocksize=o.BlockSize(), mode="DCR"),
        )
        self.node("Identity", [y], [self.name(outs[0])])

    # --- MediaPipe custom operators --------------------------------------------------------------
    def _gather_xy(self, lm: str, idx) -> tuple[str, str]:
        """The x and y of landmarks ``idx`` of a (1, N, 3) tensor: two (K,) tensors."""
        g = self.node("Gather", [lm, self.add_const(np.array(idx, np.int64), "idx")], axis=1)
        x = self.node("Gather", [g, self.add_const(np.int64(0))], axis=2)
        y = self.node("Gather", [g, self.add_const(np.int64(1))], axis=2)
        shape = self.add_const(np.array([-1], np.int64))
        return self.node("Reshape", [x, shape]), self.node("Reshape", [y, shape])

    def _custom_Landmarks2TransformMatrix(self, ins, outs, opts: dict) -> None:
        """v2: crop of a landmark subset, rotated so the left->right landmarks are level."""
        self.custom_options.append(("Landmarks2TransformMatrix", opts))
        if opts.get("target_rotation_radians", 0.0) != 0.0:
            raise NotImplementedError("target_rotation_radians != 0")
        lm = self.input(ins[0])
        lx, ly = self._gather_xy(lm, [opts["left_rotation_idx"]])
        rx, ry = self._gather_xy(lm, [opts["right_rotation_idx"]])
        dx, dy = self.node("Sub", [rx, lx]), self.node("Sub", [ry, ly])
        norm = self.node(
            "Sqrt", [self.node("Add", [self.node("Mul", [dx, dx]), self.node("Mul", [dy, dy])])]
        )
        # rotation r = -atan2(dy, dx): cos r = dx / |d|, sin r = -dy / |d|
        c = self.node("Div", [dx, norm])
        s = self.node("Neg", [self.node("Div", [dy, norm])])
        px, py = self._gather_xy(lm, opts["subset_idxs"])
        # rotated subset: x' = c x - s y, y' = s x + c y
        xr = self.node("Sub", [self.node("Mul", [c, px]), self.node("Mul", [s, py])])
        yr = self.node("Add", [self.node("Mul", [s, px]), self.node("Mul", [c, py])])
        red = {"keepdims": 1}
        axes = self.add_const(np.array([0], np.int64))
        x_max, x_min = self.node("ReduceMax", [xr], **red), self.node("ReduceMin", [xr], **red)
        y_max, y_min = self.node("ReduceMax", [yr], **red), self.node("ReduceMin", [yr], **red)
        del axes
        half = self.add_const(np.float32(0.5))
        w, h = self.node("Sub", [x_max, x_min]), self.node("Sub", [y_max, y_min])
        mx = self.node("Mul", [self.node("Add", [x_max, x_min]), half])
        my = self.node("Mul", [self.node("Add", [y_max, y_min]), half])
        # centre rotated back by -r: cx = c mx + s my, cy = -s mx + c my
        cx = self.node("Add", [self.node("Mul", [c, mx]), self.node("Mul", [s, my])])
        cy = self.node("Sub", [self.node("Mul", [c, my]), self.node("Mul", [s, mx])])
        ow, oh = float(opts["output_width"]), float(opts["output_height"])
        sx = self.node("Mul", [w, self.add_const(np.float32(opts["scale_x"] / ow))])
        sy = self.node("Mul", [h, self.add_const(np.float32(opts["scale_y"] / oh))])
        # T = shift(c) * R(-r) * S * shift(-o/2);  R(-r) = [[c, s], [-s, c]]
        a00, a01 = self.node("Mul", [c, sx]), self.node("Mul", [s, sy])
        a10, a11 = self.node("Neg", [self.node("Mul", [s, sx])]), self.node("Mul", [c, sy])
        hw, hh = self.add_const(np.float32(-ow / 2)), self.add_const(np.float32(-oh / 2))
        t0 = self.node(
            "Add",
            [cx, self.node("Add", [self.node("Mul", [a00, hw]), self.node("Mul", [a01, hh])])],
        )
        t1 = self.node(
            "Add",
            [cy, self.node("Add", [self.node("Mul", [a10, hw]), self.node("Mul", [a11, hh])])],
        )
        zero, one = self.add_const(np.zeros(1, np.float32)), self.add_const(np.ones(1, np.float32))
        flat = self.node(
            "Concat",
            [a00, a01, zero, t0, a10, a11, zero, t1, zero, zero, one, zero, zero, zero, zero, one],
            axis=0,
        )
        self.node(
            "Reshape", [flat, self.add_const(np.array([1, 4, 4], np.int64))], [self.name(outs[0])]
        )

    def _custom_TransformTensorBilinear(self, ins, outs, opts: dict) -> None:
        """v2: samples a (1, H, W, C) tensor at M * (x + .5, y + .5) - .5; zero outside."""
        _, height, width, _ = self.shape(ins[0])
        oh, ow = opts["output_height"], opts["output_width"]
        m = self.input(ins[1])
        rows = self.node(
            "Slice",
            [
                m,
                self.add_const(np.array([0, 0], np.int64)),
                self.add_const(np.array([2, 4], np.int64)),
                self.add_const(np.array([1, 2], np.int64)),
            ],
        )  # (1, 2, 4): rows 0, 1
        rows = self.node("Reshape", [rows, self.add_const(np.array([2, 4], np.int64))])
        # half-pixel correction folded into the grid: coords (x + .5, y + .5, 0, 1), then - .5
        ys, xs = np.meshgrid(
            np.arange(oh, dtype=np.float32), np.arange(ow, dtype=np.float32), indexing="ij"
        )
        grid = np.stack([xs + 0.5, ys + 0.5, np.zeros_like(xs), np.ones_like(xs)], -1).reshape(
            -1, 4
        )
        tc = self.node(
            "MatMul", [self.add_const(grid, "grid"), self.node("Transpose", [rows], perm=[1, 0])]
        )
        tc = self.node("Sub", [tc, self.add_const(np.float32(0.5))])  # (oh*ow, 2) in pixels
        limit = self.add_const(np.array([width - 1, height - 1], np.float32))
        inside = self.node(
            "And",
            [
                self.node("GreaterOrEqual", [tc, self.add_const(np.float32(0))]),
                self.node("LessOrEqual", [tc, limit]),
            ],
        )
        inside = self.node("Cast", [inside], to=TensorProto.FLOAT)
        mask = self.node("ReduceProd", [inside], axes=[1], keepdims=1)
        mask = self.node("Reshape", [mask, self.add_const(np.array([1, oh, ow, 1], np.int64))])
        norm = self.node(
            "Sub",
            [
                self.node(
                    "Mul",
                    [tc, self.add_const(np.array([2 / (width - 1), 2 / (height - 1)], np.float32))],
                ),
                self.add_const(np.float32(1)),
            ],
        )
        norm = self.node("Reshape", [norm, self.add_const(np.array([1, oh, ow, 2], np.int64))])
        x = self.node("Transpose", [self.input(ins[0])], perm=NHWC_TO_NCHW)
        y = self.node(
            "GridSample", [x, norm], align_corners=1, mode="bilinear", padding_mode="zeros"
        )
        y = self.node("Transpose", [y], perm=NCHW_TO_NHWC)
        self.node("Mul", [y, mask], [self.name(outs[0])])

    def _custom_TransformLandmarks(self, ins, outs, opts: dict) -> None:
        """v2: (1, N, 2) landmarks through the 2x4 affine part of a (1, 4, 4) matrix."""
        if self.shape(ins[0])[-1] != 2:
            raise NotImplementedError("only 2-D landmarks")
        m = self.node("Reshape", [self.input(ins[1]), self.add_const(np.array([4, 4], np.int64))])
        lin = self.node(
            "Slice",
            [
                m,
                self.add_const(np.array([0, 0], np.int64)),
                self.add_const(np.array([2, 2], np.int64)),
            ],
        )
        shift = self.node(
            "Slice",
            [
                m,
                self.add_const(np.array([0, 3], np.int64)),
                self.add_const(np.array([2, 4], np.int64)),
            ],
        )  # (2, 1)
        y = self.node("MatMul", [self.input(ins[0]), self.node("Transpose", [lin], perm=[1, 0])])
        self.node("Add", [y, self.node("Transpose", [shift], perm=[1, 0])], [self.name(outs[0])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mediapipe", help="mediapipe package folder (default: the installed one)")
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    if args.mediapipe:
        root = pathlib.Path(args.mediapipe)
    else:
        import mediapipe

        root = pathlib.Path(mediapipe.__file__).parent
    out = pathlib.Path(args.out)
    for stem, rel in MODELS.items():
        conv = Converter((root / "modules" / rel).read_bytes())
        model = conv.convert()
        model.doc_string = (
            f"converted from mediapipe 0.10.21 modules/{rel} by models/landmarks/convert.py"
        )
        onnx.save(model, out / f"{stem}.onnx")
        print(stem, len(model.graph.node), "nodes")
        if stem == "face_landmark_with_attention":
            subsets = [o["subset_idxs"] for name, o in conv.custom_options]
            meta = {"lips": subsets[0], "left_eye": subsets[1], "right_eye": subsets[2]}
            (out / "mesh.json").write_text(json.dumps(meta) + "\n")


if __name__ == "__main__":
    main()
