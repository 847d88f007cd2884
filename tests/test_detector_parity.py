"""
Backend parity: the same image gives the same labels on every available backend.

ONNX Runtime FP32 and the PyTorch checkpoint must agree to 1e-4 in probability; the FP16
variant must give the same labels; INT8 the same parts and >= 95 % identical labels (a
part at the ok threshold may flip); native TensorRT joins where it can run.
"""

from detector_helpers import CHECKPOINT, INT8_MODEL, needs_model, render_dataset, SHIPPED_MODEL
from lepton_robot.detector.backends import (OnnxRuntimeBackend, tensorrt_available,
                                            TensorRTBackend)
from lepton_robot.detector.dataset import read_image, read_labels
from lepton_robot.detector.detector import DefectDetector, preprocess
import numpy as np
import pytest

pytestmark = needs_model
FP16_MODEL = SHIPPED_MODEL.with_name(SHIPPED_MODEL.stem + '_fp16.onnx')
N_FRAMES = 12


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Render held-out sim frames (a seed never used in training)."""
    out = render_dataset(tmp_path_factory.mktemp('parity') / 'sim', N_FRAMES, seed=55555)
    return [read_image(str(f.path)) for f in read_labels(str(out))]


def _labels(detector, images):
    out = []
    for img in images:
        result = detector.detect(img)
        out.append([(p.bbox, p.label, p.color, p.shape) for p in result.parts])
    return out


def _ort(path):
    return OnnxRuntimeBackend(str(path), providers=['CPUExecutionProvider'], threads=2).load()


@pytest.fixture(scope='module')
def reference(images):
    """Labels and crops from ONNX Runtime FP32 (the reference backend)."""
    backend = _ort(SHIPPED_MODEL)
    detector = DefectDetector(backend, track=False)
    labels = _labels(detector, images)
    crops = []
    for img in images:
        seg = detector.segmenter.segment(img)
        crops.extend(detector.crops(img, seg)[1])
    yield labels, preprocess(crops, backend.metadata), backend
    backend.close()


def test_reference_found_parts(reference):
    """The parity images contain parts (the comparison is not vacuous)."""
    labels, x, _ = reference
    assert sum(len(frame) for frame in labels) >= 2 * N_FRAMES
    assert len(x) >= 2 * N_FRAMES


@pytest.mark.skipif(not INT8_MODEL.is_file(), reason='no INT8 variant shipped')
def test_int8_gives_the_same_parts_and_nearly_the_same_labels(images, reference):
    """
    The INT8 model finds the same parts; at least 95 % of them get identical labels.

    Quantisation moves probabilities a little, so a part whose p(ok) sits at the ok
    threshold can flip (measured: see the README); colour never differs.
    """
    int8 = _ort(INT8_MODEL)
    try:
        got = _labels(DefectDetector(int8, track=False), images)
    finally:
        int8.close()
    want = reference[0]
    pairs = [(a, b) for fa, fb in zip(want, got) for a, b in zip(fa, fb)]
    assert [len(f) for f in got] == [len(f) for f in want]
    assert all(a[0] == b[0] and a[2] == b[2] for a, b in pairs)     # same boxes, colours
    agree = sum(a == b for a, b in pairs) / len(pairs)
    assert agree >= 0.95, f'INT8 agrees with FP32 on {agree:.1%} of parts'


@pytest.mark.skipif(not FP16_MODEL.is_file(), reason='no FP16 variant shipped')
def test_fp16_gives_the_same_labels(images, reference):
    """The FP16 model (run on CPU here) labels every part as FP32 does."""
    fp16 = _ort(FP16_MODEL)
    try:
        assert _labels(DefectDetector(fp16, track=False), images) == reference[0]
    finally:
        fp16.close()


def test_pytorch_matches_onnx(reference):
    """The PyTorch checkpoint and the exported ONNX agree to 1e-4 on real crops."""
    torch = pytest.importorskip('torch', reason='PyTorch (train extra) not installed')
    if not CHECKPOINT.is_file():
        pytest.skip(f'{CHECKPOINT} not shipped')
    from lepton_robot.training.detector_train import load_checkpoint
    model, _ = load_checkpoint(str(CHECKPOINT))
    _, x, backend = reference
    with torch.no_grad():
        heads = [torch.softmax(o, 1).numpy() for o in model(torch.from_numpy(x))]
    onnx_out = backend.infer(x)
    for name, probs in zip(('condition', 'color', 'shape'), heads):
        assert np.abs(probs - onnx_out[name]).max() < 1e-4
        assert np.array_equal(probs.argmax(1), onnx_out[name].argmax(1))


@pytest.mark.skipif(tensorrt_available() is not None,
                    reason=f'native TensorRT cannot run here: {tensorrt_available()}')
def test_tensorrt_gives_the_same_labels(images, reference, tmp_path):
    """A TensorRT FP16 engine labels every part as ONNX Runtime FP32 does."""
    trt = TensorRTBackend(str(SHIPPED_MODEL), 'fp16', cache_dir=str(tmp_path)).load()
    try:
        assert _labels(DefectDetector(trt, track=False), images) == reference[0]
    finally:
        trt.close()


@pytest.mark.parametrize('tta', ['none', 'flip'])
def test_test_time_flip_averages_each_crop_with_its_mirror_image(images, reference, tta):
    """With tta=flip a part's probabilities are the mean over its crop and the mirrored crop."""
    backend = reference[2]
    detector = DefectDetector(backend, track=False, tta=tta)
    checked = 0
    for img in images[:4]:
        result = detector.detect(img)
        seg = detector.segmenter.segment(img)
        x = preprocess(detector.crops(img, seg)[1], backend.metadata)
        want = backend.infer(x)['condition']
        if tta == 'flip':
            want = 0.5 * (want + backend.infer(np.ascontiguousarray(x[..., ::-1]))['condition'])
        for part, row in zip(result.parts, want):
            got = [part.probs[c] for c in backend.metadata.conditions]
            np.testing.assert_allclose(got, row, atol=1e-6)
            checked += 1
    assert checked >= 4


def test_unknown_test_time_augmentation_is_refused(reference):
    """A typo in tta is a ConfigError, not a silent plain run."""
    from lepton_robot.errors import ConfigError
    with pytest.raises(ConfigError, match='tta'):
        DefectDetector(reference[2], tta='flop')
