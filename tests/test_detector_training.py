"""Smoke test of ``lepton-robot train detector``: train, export, parity, INT8/FP16 variants."""

import json

import detector_synth as synth
from lepton_robot.cli import main
from lepton_robot.detector.backends import OnnxRuntimeBackend
from lepton_robot.detector.metadata import read_onnx_metadata
from lepton_robot.training.detector_train import one_cycle_lr, tune_ok_threshold
import numpy as np
import pytest

torch = pytest.importorskip('torch', reason='PyTorch (train extra) not installed')


@pytest.mark.slow
def test_train_export_quantise_pipeline(tmp_path, capsys):
    """
    Run the whole trainer for one epoch on a tiny synthetic dataset.

    Steps: write two train sets and a val set in the datagen layout (so no rendering is
    needed), train one epoch on the two training sets pooled, then check the ONNX file
    carries its metadata, ONNX Runtime loads it, the INT8 (and FP16) variants exist and the
    report holds parity and per-variant accuracy.
    (The shipped model is trained on sim renders; this only exercises the pipeline.)
    """
    data = tmp_path / 'data'
    synth.write_dataset(data / 'train_s1', 60, seed=1)
    synth.write_dataset(data / 'train_s3', 40, seed=3)
    synth.write_dataset(data / 'val_s2', 20, seed=2)
    out = tmp_path / 'model' / 'det.onnx'
    rc = main(['train', 'detector', '--data', str(data), '--train-seed', '1,3', '--val-seed',
               '2', '--train-count', '60,40', '--val-count', '20', '--epochs', '1',
               '--batch-size', '32', '--widths', '8,8,16,16', '--fusion-frames', '30',
               '--input-size', '64', '--crop-px', '0', '--out', str(out)])
    assert rc == 0
    props = read_onnx_metadata(str(out))
    assert props['lepton.model'] == 'defect_detector'
    assert json.loads(props['segmentation'])['max_part_area'] > 0
    backend = OnnxRuntimeBackend(str(out), providers=['CPUExecutionProvider']).load()
    assert backend.metadata.input_size == 64
    report = json.loads(out.with_suffix('.train.json').read_text())
    assert report['parity']['labels_equal'] and report['parity']['max_abs_diff'] < 1e-4
    assert {'fp32', 'int8'} <= set(report['variants'])
    assert 0.0 <= report['shape_fusion']['fused_val_accuracy'] <= 1.0
    # Both training sets were pooled: their frames add up.
    assert report['data']['train'] == [str(data / 'train_s1'), str(data / 'train_s3')]
    assert report['data']['train_stats']['frames'] == 100
    assert report['data']['val_stats']['frames'] == 20
    assert backend.metadata.shape_fusion is not None
    for variant in report['variants'].values():
        assert 0.0 <= variant['condition_accuracy'] <= 1.0
    assert (tmp_path / 'model' / 'det_int8.onnx').is_file()
    assert out.with_suffix('.pt').is_file()


@pytest.mark.parametrize('argv,message', [
    (['--train-seed', '1,2', '--val-seed', '2'], 'overlap'),
    (['--train-seed', '1,3', '--train-count', '5,6,7'], '3 values for 2'),
])
def test_bad_dataset_seeds_are_refused_before_rendering(tmp_path, capsys, argv, message):
    """Overlapping train/val seeds or a count per seed that does not fit: exit 2, no data."""
    rc = main(['train', 'detector', '--data', str(tmp_path / 'data'), *argv])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'data').exists()


@pytest.mark.parametrize('p_ok,is_ok,want', [
    ([0.9, 0.8, 0.1, 0.2], [True, True, False, False], 0.5),      # separable at 0.5
    ([0.9, 0.8, 0.6, 0.2], [True, True, False, False], None),     # a defect above 0.5
    ([0.9, 0.55, 0.6, 0.2], [True, True, False, False], None),    # ok below the defect
])
def test_tuned_threshold_leaves_no_validation_escape(p_ok, is_ok, want):
    """The tuned ok threshold is above every defective part's p(ok) (no escapes)."""
    p_ok, is_ok = np.asarray(p_ok), np.asarray(is_ok)
    threshold = tune_ok_threshold(p_ok, is_ok)
    assert threshold > p_ok[~is_ok].max()
    if want is not None:
        assert threshold == want
    assert threshold <= 0.98


@pytest.mark.parametrize('total', [400, 1000])
@pytest.mark.parametrize('max_lr', [3e-3, 1e-2])
def test_progress_driven_one_cycle_matches_torch(total, max_lr):
    """The time-budget schedule follows OneCycleLR when progress is step / (n - 1)."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total,
                                                cycle_momentum=False)
    ours = []
    for step in range(total):
        ours.append(one_cycle_lr(step / (total - 1), max_lr))
        assert ours[-1] == pytest.approx(opt.param_groups[0]['lr'], rel=0.05, abs=max_lr * 0.01)
        opt.step()
        sched.step()
    assert max(ours) == pytest.approx(max_lr, rel=0.02)
    assert ours[-1] == pytest.approx(max_lr / 25 / 1e4)
    assert one_cycle_lr(2.0, max_lr) == ours[-1]
