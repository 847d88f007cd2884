"""Tests of ``lepton-robot inspect`` and ``lepton-robot evaluate`` (and export's errors)."""

import json

from detector_helpers import (CHECKPOINT, INT8_MODEL, needs_model, render_dataset,
                              SHIPPED_MODEL)
from lepton_robot.cli import main
from lepton_robot.detector.backends import tensorrt_available
from lepton_robot.interfaces import CONDITIONS, validate_inspection
import pytest

pytestmark = needs_model


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Render a small held-out set of frames (a seed never used in training)."""
    return render_dataset(tmp_path_factory.mktemp('cli') / 'sim', 8, seed=424242)


def test_inspect_json_one_object_per_image(dataset, capsys):
    """--json prints one object per image whose parts follow lepton.inspection/1."""
    images = [str(dataset / f'{i:06d}.png') for i in range(3)]
    assert main(['inspect', '--json', '--camera', str(dataset / 'camera.json'), *images]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, images):
        obj = json.loads(line)
        assert obj['image'] == path
        validate_inspection({'schema': 'lepton.inspection/1', 'stamp': 0.0,
                             'parts': obj['parts']})
        for part in obj['parts']:
            assert part['label'] in CONDITIONS and len(part['position']) == 3


def test_inspect_reports_unreadable_images_and_goes_on(dataset, tmp_path, capsys):
    """A missing or corrupt image gives an error line; the others are still inspected."""
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'\x89PNG not really')
    good = str(dataset / '000000.png')
    rc = main(['inspect', '--json', str(tmp_path / 'missing.png'), str(corrupt), good])
    captured = capsys.readouterr()
    assert rc == 1
    assert [json.loads(line)['image'] for line in captured.out.strip().splitlines()] == [good]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert 'missing.png' in errors[0] and 'corrupt.png' in errors[1]


def test_inspect_text_output(dataset, capsys):
    """Plain output names each part's label, colour and shape."""
    assert main(['inspect', str(dataset / '000001.png')]) == 0
    out = capsys.readouterr().out
    assert 'part(s)' in out and 'onnxruntime' in out


def test_evaluate_json_and_report(dataset, tmp_path, capsys):
    """
    Check that evaluate --json gives the contract keys; --out writes the report files.

    Steps: evaluate the small dataset with a report directory; check keys, counts and
    that the PNGs and report.json exist and are not empty.
    """
    out_dir = tmp_path / 'report'
    assert main(['evaluate', str(dataset), '--json', '--out', str(out_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ('accuracy', 'per_class', 'confusion', 'escapes', 'false_rejects', 'n_parts'):
        assert key in summary
    assert summary['n_parts'] >= 8
    assert 0.0 <= summary['accuracy'] <= 1.0
    assert set(summary['per_class']) == set(CONDITIONS)
    assert sum(sum(row.values()) for row in summary['confusion'].values()) \
        == summary['n_scored']
    for name in ('report.json', 'confusion.png', 'pr_curves.png', 'latency.png'):
        assert (out_dir / name).stat().st_size > 100
    assert json.loads((out_dir / 'report.json').read_text())['n_parts'] == summary['n_parts']


def test_evaluate_rejects_a_non_dataset(tmp_path, capsys):
    """Exit 2 from evaluate on a directory without labels, with a clear message."""
    assert main(['evaluate', str(tmp_path)]) == 2
    assert 'labels.jsonl missing' in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_available() is None, reason='TensorRT is present here')
def test_export_engine_without_tensorrt_is_a_clear_error(capsys):
    """Exit 2 from export --engine without TensorRT, saying why (before any work)."""
    assert main(['export', '--engine-only']) == 2
    assert 'TensorRT' in capsys.readouterr().err


def test_export_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    """Exit 2 from export with a missing checkpoint, naming it."""
    pytest.importorskip('torch')
    rc = main(['export', '--checkpoint', str(tmp_path / 'none.pt'),
               '--model', str(tmp_path / 'm.onnx')])
    assert rc == 2
    assert 'none.pt' in capsys.readouterr().err


def test_export_keeps_the_shape_fusion_head(dataset, tmp_path, capsys):
    """A re-export from the checkpoint keeps the metadata only the ONNX file holds."""
    pytest.importorskip('torch')
    from lepton_robot.detector.metadata import read_onnx_metadata
    model = tmp_path / 'det.onnx'
    model.write_bytes(SHIPPED_MODEL.read_bytes())
    before = read_onnx_metadata(str(model))
    assert 'shape_fusion' in before
    assert main(['export', '--checkpoint', str(CHECKPOINT), '--model', str(model),
                 '--data', str(dataset)]) == 0
    assert 'keeping the shape fusion head' in capsys.readouterr().out
    after = read_onnx_metadata(str(model))
    assert after['shape_fusion'] == before['shape_fusion']
    assert read_onnx_metadata(str(tmp_path / 'det_int8.onnx'))['shape_fusion'] == \
        before['shape_fusion']


def test_calibrate_chooses_the_cheapest_threshold():
    """Escapes cost escape_cost false rejects; the threshold moves just past an escape."""
    from lepton_robot.commands.calibrate import choose_threshold
    np = pytest.importorskip('numpy')
    p_ok = np.array([0.95, 0.9, 0.7, 0.62, 0.55, 0.3, 0.1, 0.72, 0.05])
    is_ok = np.array([True, True, True, True, True, False, False, False, False])
    # One defect at p(ok) 0.72: at 0.5 it escapes (cost 10); above 0.72 it is caught for 3
    # false rejects (0.7, 0.62, 0.55). The threshold sits half-way in logit space between
    # 0.72 and the next score, 0.9: a margin on both sides.
    t, curve = choose_threshold(p_ok, is_ok, escape_cost=10.0)
    logit = np.log(np.array([0.72, 0.9]) / (1 - np.array([0.72, 0.9])))
    assert t == pytest.approx(1 / (1 + np.exp(-logit.mean())))
    assert 0.8 < t < 0.85
    best = next(r for r in curve if r['threshold'] == t)
    assert (best['escapes'], best['false_rejects'], best['cost']) == (0, 3, 3.0)
    # When an escape is cheap, the threshold stays at the floor.
    t, _ = choose_threshold(p_ok, is_ok, escape_cost=2.0)
    assert t == 0.5


def test_calibrate_prints_the_curve_point_without_writing(dataset, capsys):
    """Calibrate on a rendered set: a JSON report, the model files untouched."""
    from lepton_robot.detector.detector import default_model_path
    model = default_model_path()
    before = open(model, 'rb').read()
    assert main(['calibrate', str(dataset), '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['n_parts'] >= 8 and report['written'] == []
    assert 0.5 <= report['threshold'] <= 0.99
    before_cost = 10 * report['at_threshold_before']['escapes'] \
        + report['at_threshold_before']['false_rejects']
    assert 10 * report['escapes'] + report['false_rejects'] <= before_cost
    assert open(model, 'rb').read() == before


def test_calibrate_refuses_a_non_positive_escape_cost(dataset, capsys):
    """A clear error, not a silent nonsense threshold."""
    assert main(['calibrate', str(dataset), '--escape-cost', '0']) == 2
    assert 'escape-cost' in capsys.readouterr().err


def test_calibrate_writes_the_threshold_with_its_test_time_augmentation(dataset, tmp_path,
                                                                        capsys):
    """--tta flip --write: every file of a model copy carries the threshold and tta=flip."""
    pytest.importorskip('onnx', reason='onnx (train extra) not installed')
    torch = pytest.importorskip('torch', reason='PyTorch (train extra) not installed')
    import shutil

    from lepton_robot.detector.metadata import read_onnx_metadata
    model = tmp_path / 'm.onnx'
    for src, dst in ((SHIPPED_MODEL, model), (INT8_MODEL, tmp_path / 'm_int8.onnx'),
                     (CHECKPOINT, tmp_path / 'm.pt')):
        shutil.copy(src, dst)
    for tta in ('none', 'flip'):
        assert main(['calibrate', str(dataset), '--model', str(model), '--tta', tta,
                     '--write', '--json']) == 0
        report = json.loads(capsys.readouterr().out)
        assert report['tta'] == tta and len(report['written']) == 3
        for path in (model, tmp_path / 'm_int8.onnx'):
            props = read_onnx_metadata(str(path))
            assert props['tta'] == tta
            assert float(props['ok_threshold']) == report['threshold']
        meta = torch.load(str(tmp_path / 'm.pt'), map_location='cpu',
                          weights_only=True)['metadata']
        assert meta['tta'] == tta
    # Without --tta the model's own is used (the one just written).
    assert main(['calibrate', str(dataset), '--model', str(model), '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['tta'] == report['tta_before'] == 'flip'
