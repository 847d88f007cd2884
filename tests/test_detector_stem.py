"""The exact space-to-depth stem rewrite behind the INT8 model (onnx_stem), and its use."""

from collections import Counter

from detector_helpers import INT8_MODEL, needs_model, render_dataset, SHIPPED_MODEL
from lepton_robot.cli import main
from lepton_robot.detector.metadata import read_onnx_metadata
from lepton_robot.training.onnx_stem import space_to_depth_stem
import numpy as np
import pytest

onnx = pytest.importorskip('onnx', reason='onnx (train extra) not installed')
ort = pytest.importorskip('onnxruntime')
helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto


def _stem_graph(size=12, c_mid=8, c_out=6, stride2=2, rng=None, extra_reader=False):
    """Conv 3x3/1 -> Relu -> Conv 3x3/stride2 -> Relu -> GlobalAveragePool, random weights."""
    rng = rng or np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((c_mid, 3, 3, 3)).astype(np.float32),
                                     'w0'),
             numpy_helper.from_array(rng.standard_normal(c_mid).astype(np.float32), 'b0'),
             numpy_helper.from_array(rng.standard_normal((c_out, c_mid, 3, 3))
                                     .astype(np.float32), 'w1'),
             numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), 'b1')]
    nodes = [helper.make_node('Conv', ['x', 'w0', 'b0'], ['c0'], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], strides=[1, 1]),
             helper.make_node('Relu', ['c0'], ['r0']),
             helper.make_node('Conv', ['r0', 'w1', 'b1'], ['c1'], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], strides=[stride2, stride2]),
             helper.make_node('Relu', ['c1'], ['r1']),
             helper.make_node('GlobalAveragePool', ['r1'], ['y'])]
    outputs = [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node('Relu', ['r0'], ['z']))
        outputs.append(helper.make_tensor_value_info('z', TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, 'stem', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                      ['batch', 3, size, size])],
        outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])


def _run(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=['CPUExecutionProvider'])
    return sess.run(None, {'x': x})[0]


def _input_reader(graph):
    readers = [n.op_type for n in graph.node if graph.input[0].name in n.input]
    assert len(readers) == 1
    return readers[0]


@pytest.mark.parametrize('size', [2, 12, 96])
def test_rewrite_computes_the_same_function(size):
    """Same outputs as the original graph (float rounding aside), on random weights/inputs."""
    rng = np.random.default_rng(size)
    proto = _stem_graph(size, rng=rng)
    x = rng.standard_normal((3, 3, size, size)).astype(np.float32)
    want = _run(proto, x)
    got = _run(space_to_depth_stem(_stem_graph(size, rng=np.random.default_rng(size))), x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rewrite_structure():
    """The input goes to SpaceToDepth; Conv A 3x3 on 12 channels; Conv B 2x2, pads 1,1,0,0."""
    proto = space_to_depth_stem(_stem_graph(12))
    nodes = proto.graph.node
    assert [n.op_type for n in nodes[:4]] == ['SpaceToDepth', 'Conv', 'Relu', 'Conv']
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert init['w0'].shape == (32, 12, 3, 3) and init['b0'].shape == (32,)
    assert init['w1'].shape == (6, 32, 2, 2)
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[3].attribute}
    assert list(attrs['pads']) == [1, 1, 0, 0] and list(attrs['strides']) == [1, 1]
    # Each first-conv weight lands in Conv A once per output sub-pixel (4 times), each
    # second-conv weight in Conv B once; the rest of the new kernels is zero.
    assert np.count_nonzero(init['w0']) == 4 * 8 * 27
    assert np.count_nonzero(init['w1']) == 6 * 8 * 9


@pytest.mark.parametrize('kwargs,message', [
    ({'stride2': 1}, 'does not open with'),
    ({'size': 11}, 'even height and width'),
    ({'extra_reader': True}, 'read by other nodes'),
])
def test_rewrite_refuses_graphs_it_cannot_keep_exact(kwargs, message):
    """A stem of another shape is refused with the reason, never rewritten approximately."""
    with pytest.raises(ValueError, match=message):
        space_to_depth_stem(_stem_graph(**kwargs))


@needs_model
@pytest.mark.skipif(not INT8_MODEL.is_file(), reason='no INT8 variant shipped')
def test_shipped_int8_model_is_quantised_throughout():
    """Every Conv/Gemm of the shipped INT8 graph reads dequantised weights and activations."""
    graph = onnx.load(str(INT8_MODEL)).graph
    assert _input_reader(graph) == 'SpaceToDepth'
    made_by = {out: n for n in graph.node for out in n.output}
    for node in graph.node:
        if node.op_type in ('Conv', 'Gemm'):
            feeders = [made_by[i].op_type for i in node.input[:2]]
            assert feeders == ['DequantizeLinear', 'DequantizeLinear'], node.name
    ops = Counter(n.op_type for n in graph.node)
    assert ops['Softmax'] == 3      # probabilities stay float, not steps of 1/256
    assert read_onnx_metadata(str(INT8_MODEL))['precision'] == 'int8'


@needs_model
def test_export_variants_only_rebuilds_int8_from_the_onnx_file(tmp_path, capsys):
    """``export --variants-only`` needs no checkpoint, keeps the metadata, checks the stem."""
    model = tmp_path / 'det.onnx'
    model.write_bytes(SHIPPED_MODEL.read_bytes())
    data = render_dataset(tmp_path / 'calib', 6, seed=515151)
    assert main(['export', '--variants-only', '--model', str(model), '--data', str(data)]) == 0
    out = capsys.readouterr().out
    assert 'space-to-depth stem: max |dp|' in out
    int8 = tmp_path / 'det_int8.onnx'
    props, want = read_onnx_metadata(str(int8)), read_onnx_metadata(str(model))
    assert props.pop('precision') == 'int8'
    want.pop('precision', None)
    assert props == want                # shape fusion head, threshold, tta carried over
    assert _input_reader(onnx.load(str(int8)).graph) == 'SpaceToDepth'
    assert not (tmp_path / 'det_s2d.onnx').exists() and not (tmp_path / 'det_pre.onnx').exists()
