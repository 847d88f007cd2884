"""
Exact space-to-depth rewrite of the detector's stem, for INT8.

The network opens with ``Conv 3x3 stride 1`` on the 3-channel, full-resolution input, a
ReLU, then ``Conv 3x3 stride 2``. Quantised, the first conv is ONNX Runtime's worst case
(``QLinearConv`` vectorises over input channels, and there are 3); left in FP32 it costs
its own time plus a hand-over to INT8 (NCHWc reorder, quantise, transpose) that together
were a third of the INT8 model's time.

This module rewrites the two convs into an equivalent pair that runs at half resolution
on 12 channels, with no change to the function the graph computes (floating-point
rounding aside):

* ``SpaceToDepth(2)`` turns the ``C x H x W`` input into ``4C x H/2 x W/2``; channel
  ``(i * 2 + j) * C + c`` holds pixel ``(2P + i, 2Q + j)`` of channel ``c`` (ONNX DCR
  order).
* Conv A (``4C -> 4 O``, 3x3, stride 1, pad 1) computes the first conv's output at all
  four sub-pixels of each 2x2 block: output channel ``(a * 2 + b) * O + o`` is the first
  conv's channel ``o`` at full-resolution pixel ``(2P + a, 2Q + b)``. Full-resolution
  offset ``dy`` from that pixel lies in coarse row ``P + floor((a + dy) / 2)`` at sub-row
  ``(a + dy) mod 2``, so its weight lands at coarse kernel row ``floor((a + dy) / 2) + 1``.
  The bias is repeated for the four sub-pixels; the ReLU is unchanged (element-wise).
* Conv B (``4 O -> O2``, 2x2, pads top/left 1, bottom/right 0) is the stride-2 conv:
  its tap ``ey`` in {-1, 0, 1} around full-resolution row ``2p`` reads sub-row
  ``ey mod 2`` of coarse row ``p + floor(ey / 2)``, i.e. kernel row 0 (``ey = -1``) or 1.

Zero padding agrees: a full-resolution pixel outside the image falls in a padded coarse
row or column. The rewrite costs more multiply-adds (the new kernels hold zeros: 25 M
instead of 9 M for the shipped model), but every one of them is an INT8 GEMM with 108 or
256 inputs per output, which ONNX Runtime runs far faster than the 3-channel conv.
"""

from typing import Tuple

import numpy as np


def _attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attrs(node, **attrs) -> None:
    from onnx import helper
    for a in list(node.attribute):
        if a.name in attrs:
            node.attribute.remove(a)
    node.attribute.extend([helper.make_attribute(k, v) for k, v in attrs.items()])


def _is_conv(node, stride: int) -> bool:
    return (node.op_type == 'Conv' and list(_attr(node, 'kernel_shape', [])) == [3, 3]
            and list(_attr(node, 'strides', [1, 1])) == [stride, stride]
            and list(_attr(node, 'pads', [0, 0, 0, 0])) == [1, 1, 1, 1]
            and list(_attr(node, 'dilations', [1, 1])) == [1, 1]
            and _attr(node, 'group', 1) == 1 and len(node.input) == 3)


def stem_weights(w0: np.ndarray, b0: np.ndarray, w1: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Return Conv A's weights and bias and Conv B's weights (see the module docstring).

    :param w0: first conv, ``O x C x 3 x 3``. :param b0: its bias, ``O``.
    :param w1: second (stride-2) conv, ``O2 x O x 3 x 3``.
    """
    o, c = w0.shape[:2]
    wa = np.zeros((4 * o, 4 * c, 3, 3), np.float32)
    for a in range(2):
        for b in range(2):
            for i in range(2):
                for j in range(2):
                    for kr in range(3):
                        for kc in range(3):
                            dy, dx = 2 * (kr - 1) + i - a, 2 * (kc - 1) + j - b
                            if abs(dy) <= 1 and abs(dx) <= 1:
                                wa[(a * 2 + b) * o:(a * 2 + b + 1) * o,
                                   (i * 2 + j) * c:(i * 2 + j + 1) * c, kr, kc] = \
                                    w0[:, :, dy + 1, dx + 1]
    wb = np.zeros((w1.shape[0], 4 * o, 2, 2), np.float32)
    for a in range(2):
        for b in range(2):
            for kr in range(2):
                for kc in range(2):
                    ey, ex = 2 * (kr - 1) + a, 2 * (kc - 1) + b
                    if abs(ey) <= 1 and abs(ex) <= 1:
                        wb[:, (a * 2 + b) * o:(a * 2 + b + 1) * o, kr, kc] = \
                            w1[:, :, ey + 1, ex + 1]
    return wa, np.tile(np.asarray(b0, np.float32), 4), wb


def space_to_depth_stem(proto):
    """
    Rewrite ``proto``'s stem in place (see the module docstring) and return it.

    :raises ValueError: if the graph does not open with Conv 3x3/1 -> Relu -> Conv 3x3/2
        on the graph input (with constant weights and an input of even height and width).
    """
    from onnx import helper, numpy_helper
    g = proto.graph
    if len(g.node) < 3:
        raise ValueError('graph too small for the stem rewrite')
    c0, relu, c1 = g.node[0], g.node[1], g.node[2]
    input_name = g.input[0].name
    if not (_is_conv(c0, 1) and c0.input[0] == input_name and relu.op_type == 'Relu'
            and relu.input[0] == c0.output[0] and _is_conv(c1, 2)
            and c1.input[0] == relu.output[0]):
        raise ValueError('the graph does not open with Conv 3x3/1 -> Relu -> Conv 3x3/2')
    readers = [n for n in g.node if relu.output[0] in n.input or c0.output[0] in n.input]
    if readers != [relu, c1]:
        raise ValueError('the stem activations are read by other nodes too')
    dims = g.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or any(not d.HasField('dim_value') or d.dim_value % 2
                             for d in dims[2:]):
        raise ValueError('the input needs a fixed, even height and width')
    init = {t.name: t for t in g.initializer}
    try:
        w0, b0, w1 = (numpy_helper.to_array(init[n])
                      for n in (c0.input[1], c0.input[2], c1.input[1]))
    except KeyError as exc:
        raise ValueError(f'stem weights are not initializers: {exc}') from exc
    weights = (c0.input[1], c0.input[2], c1.input[1])
    if sum(name in weights for n in g.node for name in n.input) != 3:
        raise ValueError('the stem weights are shared with other nodes')
    wa, ba, wb = stem_weights(w0, b0, w1)
    for name, arr in ((c0.input[1], wa), (c0.input[2], ba), (c1.input[1], wb)):
        init[name].CopyFrom(numpy_helper.from_array(arr, name))
    s2d_out = input_name + '_space_to_depth'
    c0.input[0] = s2d_out
    _set_attrs(c0, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    _set_attrs(c1, kernel_shape=[2, 2], pads=[1, 1, 0, 0], strides=[1, 1])
    g.node.insert(0, helper.make_node('SpaceToDepth', [input_name], [s2d_out],
                                      name='stem/SpaceToDepth', blocksize=2))
    stale = {c0.output[0], relu.output[0], c1.output[0]}
    keep = [v for v in g.value_info if v.name not in stale]
    del g.value_info[:]
    g.value_info.extend(keep)
    return proto
