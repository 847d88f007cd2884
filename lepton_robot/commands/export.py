"""
``lepton-robot export``: re-export the detector to ONNX, quantise it, prebuild TensorRT.

Without ``--engine-only`` the trained checkpoint (``models/defect_detector.pt``) is exported
again (parity with PyTorch checked) and the INT8/FP16 variants are rebuilt; metadata that
only the existing ONNX file holds (the shape fusion head, fitted after export) is carried
over. ``--variants-only`` rebuilds just the INT8/FP16 variants from the existing FP32 ONNX
file (no PyTorch needed). ``--engine`` also builds the TensorRT engine into the engine
cache, so the node starts without a build.
"""

import argparse
import functools
import sys

NAME = 'export'
HELP = 're-export the detector to ONNX (+ INT8/FP16); --engine prebuilds TensorRT'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    parser.add_argument('--checkpoint', default=None,
                        help='PyTorch checkpoint (default models/defect_detector.pt)')
    parser.add_argument('--model', default=None,
                        help='ONNX path to write/use (default models/defect_detector.onnx)')
    parser.add_argument('--data', default=None,
                        help='dataset dir whose crops calibrate INT8 and check parity '
                             '(default: the validation set under data/detector)')
    parser.add_argument('--engine', action='store_true',
                        help='also build the TensorRT engine (needs TensorRT and a GPU)')
    parser.add_argument('--engine-only', action='store_true',
                        help='only build the TensorRT engine from the existing ONNX file')
    parser.add_argument('--variants-only', action='store_true',
                        help='only rebuild the INT8/FP16 variants from the existing ONNX file')
    parser.add_argument('--int8-stem', default='space_to_depth',
                        choices=('space_to_depth', 'fp32', 'int8'),
                        help='INT8 stem: exact space-to-depth rewrite (default), first conv '
                             'left FP32, or the original graph quantised throughout')
    parser.add_argument('--precision', default='fp16', choices=('fp32', 'fp16', 'int8'),
                        help='TensorRT engine precision (default %(default)s)')


def _calibration_crops(data_dir, meta, limit=512):
    from lepton_robot.detector import dataset as ds
    from lepton_robot.detector.detector import preprocess
    frames = ds.read_labels(data_dir)
    crops = ds.build_crops(frames[:200], meta.segmentation, meta.crop_px, meta.input_size)
    if not len(crops.crops):
        from lepton_robot.errors import ConfigError
        raise ConfigError(f'no part crops could be cut from {data_dir}')
    return preprocess(list(crops.crops[:limit]), meta), crops


def _default_data():
    from pathlib import Path

    from lepton_robot.errors import ConfigError
    from lepton_robot.training.detector_train import DEFAULT_DATA, VAL_SEED
    path = Path(DEFAULT_DATA) / f'val_s{VAL_SEED}'
    if not (path / 'labels.jsonl').is_file():
        raise ConfigError(f'no calibration data at {path}: pass --data DIR '
                          '(make one with lepton-robot datagen --out DIR --count 200)')
    return str(path)


def run(args: argparse.Namespace) -> int:
    """Export, quantise and/or build the engine."""
    from pathlib import Path

    from lepton_robot.detector.backends import tensorrt_available, TensorRTBackend
    from lepton_robot.detector.detector import default_model_path
    from lepton_robot.errors import BackendError, ConfigError
    onnx_path = Path(args.model or default_model_path())
    want_engine = args.engine or args.engine_only
    if want_engine:
        reason = tensorrt_available()
        if reason is not None:
            raise BackendError(f'cannot build a TensorRT engine here: {reason}')
    if args.engine_only and args.variants_only:
        raise ConfigError('--engine-only and --variants-only exclude each other')
    if args.variants_only:
        try:
            import onnx  # noqa: F401
        except ImportError as exc:
            raise ConfigError('quantising needs the onnx package (pip install -e .[train]): '
                              f'{exc}') from exc
        from lepton_robot.detector.backends import OnnxRuntimeBackend
        from lepton_robot.training import detector_train as dt
        if not onnx_path.is_file():
            raise ConfigError(f'model not found: {onnx_path}')
        meta = OnnxRuntimeBackend(str(onnx_path),
                                  providers=['CPUExecutionProvider']).load().metadata
        x, crops = _calibration_crops(args.data or _default_data(), meta)
        _write_variants(dt, onnx_path, x, crops, meta, args.int8_stem)
    elif not args.engine_only:
        try:
            import torch
        except ImportError as exc:
            raise ConfigError('re-exporting needs PyTorch (pip install -e .[train]); '
                              f'use --engine-only to just build an engine: {exc}') from exc
        from lepton_robot.detector.metadata import ModelMetadata, read_onnx_metadata
        from lepton_robot.training import detector_train as dt
        torch.set_num_threads(2)
        ckpt = Path(args.checkpoint) if args.checkpoint else onnx_path.with_suffix('.pt')
        if not ckpt.is_file():
            raise ConfigError(f'checkpoint not found: {ckpt} (train with: '
                              'lepton-robot train detector)')
        model, props = dt.load_checkpoint(str(ckpt))
        if onnx_path.is_file():
            # Fitted after export and stored only in the ONNX files: keep it.
            old = read_onnx_metadata(str(onnx_path))
            if 'shape_fusion' in old and 'shape_fusion' not in props:
                props['shape_fusion'] = old['shape_fusion']
                print(f'keeping the shape fusion head of {onnx_path}')
        meta = ModelMetadata.from_props(props, source=str(ckpt))
        x, crops = _calibration_crops(args.data or _default_data(), meta)
        dt.export_onnx(model, meta, onnx_path)
        print(f'exported {onnx_path}')
        dt.check_parity(model, onnx_path, torch.from_numpy(x))
        _write_variants(dt, onnx_path, x, crops, meta, args.int8_stem)
    if want_engine:
        calibration = None
        if args.precision == 'int8':
            from lepton_robot.detector.backends import OnnxRuntimeBackend
            meta = OnnxRuntimeBackend(str(onnx_path),
                                      providers=['CPUExecutionProvider']).load().metadata
            data = args.data or _default_data()
            calibration = functools.partial(_calibration_batch, data, meta)
        backend = TensorRTBackend(str(onnx_path), args.precision, calibration,
                                  force_rebuild=True).load()
        print(f'TensorRT engine ({args.precision}): {backend.engine_path}')
        backend.close()
    sys.stdout.flush()
    return 0


def _write_variants(dt, onnx_path, x, crops, meta, stem):
    variants = dt.quantize_variants(onnx_path, x, stem=stem)
    for name, path in {'fp32': onnx_path, **variants}.items():
        if path is None:
            continue
        metrics = dt.crop_metrics(dt.onnx_predict(path, x), _Slice(crops, len(x)),
                                  meta.ok_threshold)
        print(f'{name}: {path} {metrics}')


def _calibration_batch(data_dir, meta):
    return _calibration_crops(data_dir, meta)[0]


class _Slice:
    """The first ``n`` labels of a crop set (the ones the calibration batch holds)."""

    def __init__(self, crops, n):
        self.condition = crops.condition[:n]
        self.color = crops.color[:n]
        self.shape = crops.shape[:n]
