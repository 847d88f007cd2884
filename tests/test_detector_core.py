"""Unit tests of the detector core: decision, metadata, image conversion, tracking, scoring."""

import array
import json
import math

from lepton_robot.detector.dataset import iou, match_boxes
from lepton_robot.detector.detector import (CentroidTracker, decide_condition, fuse_shape,
                                            ok_threshold, preprocess)
from lepton_robot.detector.evaluation import pr_curve, summarize
from lepton_robot.detector.image_msg import image_to_bgr
from lepton_robot.detector.metadata import ModelMetadata
from lepton_robot.detector.segmentation import SegmentationConfig
from lepton_robot.errors import ConfigError, ImageError, ModelError
from lepton_robot.interfaces import CONDITIONS
import numpy as np
import pytest


@pytest.mark.parametrize('base', [0.5, 0.2, 0.9])
def test_sensitivity_moves_threshold_monotonically(base):
    """Higher sensitivity never lowers the ok threshold; 50 gives the model's own."""
    values = [ok_threshold(s, base) for s in range(0, 101, 5)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert ok_threshold(50, base) == pytest.approx(base)
    assert 0.0 < values[0] < base < values[-1] < 1.0


@pytest.mark.parametrize('bad', [-1, 100.5, float('nan'), float('inf'), '50', None])
def test_sensitivity_out_of_range_is_rejected(bad):
    """Sensitivity outside 0..100 (or not a number) raises ConfigError."""
    with pytest.raises(ConfigError):
        ok_threshold(bad)


def test_decide_condition_uses_threshold():
    """A part is ok only when p(ok) reaches the threshold; else its most likely defect."""
    probs = np.array([0.6, 0.05, 0.25, 0.05, 0.05])
    assert decide_condition(probs, CONDITIONS, 0.5) == ('ok', pytest.approx(0.6))
    label, score = decide_condition(probs, CONDITIONS, 0.7)
    assert (label, score) == ('crack', pytest.approx(0.25))


def test_more_sensitive_flags_more():
    """Raising sensitivity turns a borderline ok into a defect, never the reverse."""
    probs = np.array([0.55, 0.3, 0.05, 0.05, 0.05])
    labels = [decide_condition(probs, CONDITIONS, ok_threshold(s))[0] for s in (0, 50, 60, 100)]
    assert labels == ['ok', 'ok', 'scratch', 'scratch']


def test_metadata_round_trip():
    """Metadata written as ONNX props parses back identically (JSON, no eval)."""
    meta = ModelMetadata(version='7', input_size=64, crop_px=84, mean=(0.1, 0.2, 0.3),
                         std=(0.5, 0.6, 0.7), ok_threshold=0.81,
                         segmentation=SegmentationConfig(max_part_area=5000), tta='flip')
    back = ModelMetadata.from_props(meta.to_props())
    assert back.to_props() == meta.to_props()
    assert back.segmentation.max_part_area == 5000
    assert back.tta == 'flip'
    # A model written before the key existed runs without test-time augmentation.
    props = meta.to_props()
    del props['tta']
    assert ModelMetadata.from_props(props).tta == 'none'


@pytest.mark.parametrize('mutate', [
    lambda p: p.pop('input_size'),
    lambda p: p.update({'lepton.model': 'parser'}),
    lambda p: p.update({'mean': '__import__("os").system("true")'}),
    lambda p: p.update({'conditions': json.dumps(['ok', 'bad'])}),
    lambda p: p.update({'std': '[0, 1, 1]'}),
    lambda p: p.update({'ok_threshold': '1.5'}),
    lambda p: p.update({'segmentation': '{"downscale": 0}'}),
    lambda p: p.update({'tta': 'rotate-and-hope'}),
])
def test_bad_metadata_raises_model_error(mutate):
    """Missing, malformed or hostile metadata is refused with ModelError."""
    props = ModelMetadata().to_props()
    mutate(props)
    with pytest.raises(ModelError):
        ModelMetadata.from_props(props)


def test_preprocess_layout_and_normalisation():
    """Crops become N x 3 x S x S RGB, normalised with the metadata's mean/std."""
    meta = ModelMetadata(input_size=8, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    crop = np.zeros((8, 8, 3), np.uint8)
    crop[..., 0] = 255          # blue channel (BGR)
    x = preprocess([crop, crop], meta)
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32
    assert np.allclose(x[0, 0], 0.0)             # R: (0 - 0) / 1
    assert np.allclose(x[0, 1], -1.0)            # G: (0 - 0.5) / 0.5
    assert np.allclose(x[0, 2], 0.0)             # B: (1 - 1) / 0.25


GOOD = {'height': 4, 'width': 5, 'encoding': 'bgr8', 'step': 15}


def _data(n):
    return bytes(range(256)) * (n // 256) + bytes(range(n % 256))


@pytest.mark.parametrize('encoding,channels', [('bgr8', 3), ('rgb8', 3), ('bgra8', 4),
                                               ('rgba8', 4)])
def test_supported_encodings_convert_to_bgr(encoding, channels):
    """bgr8/rgb8/bgra8/rgba8 all give the same BGR pixels, step padding skipped."""
    bgr = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    if encoding.startswith('rgb'):
        pix = bgr[..., ::-1]
    else:
        pix = bgr
    if channels == 4:
        pix = np.concatenate([pix, np.full((4, 5, 1), 7, np.uint8)], axis=2)
    step = 5 * channels + 3
    rows = np.zeros((4, step), np.uint8)
    rows[:, :5 * channels] = pix.reshape(4, -1)
    out = image_to_bgr(4, 5, encoding, step, array.array('B', rows.tobytes()))
    assert np.array_equal(out, bgr)


@pytest.mark.parametrize('fields,reason', [
    ({'height': 0}, 'empty'),
    ({'width': 0, 'step': 0}, 'empty'),
    ({'encoding': 'mono8'}, 'unsupported encoding'),
    ({'encoding': '16UC1'}, 'unsupported encoding'),
    ({'encoding': 'bgr16'}, 'unsupported encoding'),
    ({'encoding': 'yuv422'}, 'unsupported encoding'),
    ({'encoding': ''}, 'unsupported encoding'),
    ({'step': 14}, 'step'),
    ({'step': 16}, 'data size'),
    ({'height': 5}, 'data size'),
    ({'height': 100000, 'width': 100000, 'step': 300000}, 'too large'),
    ({'height': -3}, 'empty'),
])
def test_malformed_images_raise_image_error(fields, reason):
    """Every malformed frame raises ImageError naming the problem."""
    spec = {**GOOD, **fields}
    with pytest.raises(ImageError, match=reason):
        image_to_bgr(spec['height'], spec['width'], spec['encoding'], spec['step'],
                     _data(60))


def test_unpadded_bgr8_is_a_read_only_view_of_the_message_data():
    """No copy for the contract's encoding, and nobody can change a shared message."""
    data = array.array('B', range(60))
    out = image_to_bgr(4, 5, 'bgr8', 15, data)
    assert np.shares_memory(out, np.frombuffer(data, np.uint8))
    with pytest.raises(ValueError):
        out[0, 0, 0] = 1
    padded = image_to_bgr(4, 4, 'bgr8', 15, data)      # rows padded: a contiguous copy
    assert padded.flags.c_contiguous and padded.flags.writeable
    assert padded[1, 0].tolist() == [15, 16, 17]


def test_non_buffer_data_raises_image_error():
    """Data that is not a byte buffer is refused, not crashed on."""
    with pytest.raises(ImageError):
        image_to_bgr(4, 5, 'bgr8', 15, 12345)


def test_tracker_keeps_ids_while_parts_move():
    """Parts moving along the belt keep their id; a new part gets a new one."""
    tracker = CentroidTracker(gate_px=30)
    assert tracker.update([(10, 50), (100, 60)]) == [0, 1]
    assert tracker.update([(18, 50), (108, 61)]) == [0, 1]
    assert tracker.update([(26, 51), (116, 60), (5, 100)]) == [0, 1, 2]
    # The first part leaves; the others continue.
    assert tracker.update([(124, 60), (13, 100)]) == [1, 2]


def test_iou_and_matching():
    """Check IoU values and that greedy matching pairs each box once, best first."""
    assert iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    m = match_boxes([[0, 0, 10, 10], [50, 50, 10, 10]],
                    [[51, 50, 10, 10], [1, 0, 10, 10], [200, 0, 5, 5]])
    assert sorted((i, j) for i, j, _ in m) == [(0, 1), (1, 0)]


def test_summarize_counts_escapes_false_rejects_and_missed():
    """Escapes, false rejects, missed and deferred parts are counted as the contract says."""
    def rec(truth, pred, color='red', pc='red'):
        return {'truth': truth, 'pred': pred, 'color': color, 'pred_color': pc,
                'shape': 'block', 'pred_shape': 'block', 'probs': None}
    records = [rec('ok', 'ok'), rec('ok', 'scratch'), rec('crack', 'ok'),
               rec('stain', 'stain'), rec('chip', 'missed', pc=None),
               rec('ok', 'deferred', pc=None)]
    s = summarize(records)
    assert s['n_parts'] == 6 and s['n_scored'] == 5 and s['deferred'] == 1
    assert s['escapes'] == 1 and s['false_rejects'] == 1 and s['missed'] == 1
    assert s['accuracy'] == pytest.approx(2 / 5)
    assert s['confusion']['crack'] == {'ok': 1}
    assert s['per_class']['ok']['precision'] == pytest.approx(0.5)
    assert s['per_class']['stain']['recall'] == 1.0
    assert s['color_accuracy'] == pytest.approx(4 / 5)


def test_pr_curve_endpoints():
    """The PR curve reaches recall 1 and starts at the top-scored sample's precision."""
    precision, recall = pr_curve(np.array([0.9, 0.8, 0.1]), np.array([True, False, True]))
    assert precision[0] == 1.0 and recall[-1] == 1.0
    assert math.isclose(precision[-1], 2 / 3)


def test_shape_fusion_round_trip_and_math():
    """The fusion head survives the metadata round trip and computes a softmax."""
    fusion = {'mean': [0.0, 0.0, 0.0, 0.0], 'std': [1.0, 1.0, 1.0, 1.0],
              'W': [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]],
              'b': [0.0, 0.0, 3.0]}
    meta = ModelMetadata.from_props(ModelMetadata(shape_fusion=fusion).to_props())
    assert meta.shape_fusion == fusion
    geometry = np.array([[3.0], [0.0]])
    cnn = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    probs = fuse_shape(geometry, cnn, fusion)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0)
    assert probs[0].argmax() == 0          # the geometry feature dominates
    assert probs[1].argmax() == 2          # log p_cnn(plate) pushes the third class


def test_bad_shape_fusion_is_refused():
    """A fusion head whose sizes disagree is a ModelError."""
    props = ModelMetadata().to_props()
    props['shape_fusion'] = json.dumps({'mean': [0.0], 'std': [1.0], 'W': [[1.0, 2.0]],
                                        'b': [0.0]})
    with pytest.raises(ModelError):
        ModelMetadata.from_props(props)
