"""
Why is INT8 not faster than FP32 at batch 1? Compare ONNX Runtime quantisation formats.

From one FP32 detector model, builds INT8 variants (QDQ vs QOperator, per-channel vs
per-tensor, with and without the first conv quantised, and per-channel with the exact
space-to-depth stem rewrite of ``lepton_robot/training/onnx_stem.py``; ``shipped_recipe`` is
``quantize_variants`` itself, as ``lepton-robot export`` runs it), counts the operators
ONNX Runtime actually runs after its graph optimisations (is every Conv a QLinearConv, or is it
DequantizeLinear -> float Conv?), and measures per-call latency at batch 1 and 8 with 2
threads and with 1 (block-interleaved with FP32; ``--spin`` as the node's parameter, ``run``
by default), plus crop-level accuracy on validation crops. Also records the CPU's int8
features (avx512_vnni, avx_vnni, avx2). JSON out. Not a test. Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_int8_formats.py --data DIR --out x.json
"""

import argparse
from collections import Counter
import os
from pathlib import Path
import tempfile

import numpy as np


def _cpu_flags():
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return {}
    flags = set()
    model = ''
    for line in text.splitlines():
        if line.startswith('flags'):
            flags.update(line.split(':', 1)[1].split())
        elif line.startswith('model name') and not model:
            model = line.split(':', 1)[1].strip()
    wanted = ('avx2', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_int8')
    return {'model': model, **{f: f in flags for f in wanted}}


def _session(path, threads, optimized_out=None, spin='run'):
    import onnxruntime as ort
    from lepton_robot.detector.backends import set_spin
    opts = ort.SessionOptions()
    set_spin(opts, spin)
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if optimized_out:
        opts.optimized_model_filepath = str(optimized_out)
    return ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])


def _op_counts(path, threads, workdir):
    import onnx
    out = Path(workdir) / (Path(path).stem + '_opt.onnx')
    _session(path, threads, out)
    counts = Counter(f'{n.domain + "." if n.domain else ""}{n.op_type}'
                     for n in onnx.load(str(out)).graph.node)
    return dict(sorted(counts.items()))


def _quantize(fp32, out, calib, fmt, per_channel, exclude_first, s2d=False):
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, quantize_static,
                                          QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from lepton_robot.detector.metadata import INPUT_NAME
    from lepton_robot.training.detector_train import _CalibReader, write_metadata
    pre = Path(out).with_name(Path(out).stem + '_pre.onnx')
    source = fp32
    if s2d:
        from lepton_robot.training.onnx_stem import space_to_depth_stem
        source = Path(out).with_name(Path(out).stem + '_s2d.onnx')
        onnx.save(space_to_depth_stem(onnx.load(str(fp32))), str(source))
    quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
    exclude = []
    if exclude_first:
        graph = onnx.load(str(pre)).graph
        exclude = [next(n.name for n in graph.node if n.op_type == 'Conv')]
    quantize_static(str(pre), str(out), _CalibReader(calib, INPUT_NAME),
                    quant_format=QuantFormat.QDQ if fmt == 'qdq' else QuantFormat.QOperator,
                    per_channel=per_channel, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=exclude)
    pre.unlink()
    props = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    proto = onnx.load(str(out))
    write_metadata(proto, props)
    onnx.save(proto, str(out))


def _latency(sessions, inputs, iters):
    """Return p50 ms per session name and batch, block-interleaved (``_report.interleaved``)."""
    from _report import interleaved

    from lepton_robot.detector.metadata import INPUT_NAME
    runners = {name: (lambda x, sess=sess: sess.run(None, {INPUT_NAME: x}))
               for name, sess in sessions.items()}
    result = {name: {} for name in sessions}
    for batch, x in inputs.items():
        samples, _ = interleaved(runners, x, iters)
        for name, s in samples.items():
            result[name][batch] = {'p50_ms': round(float(np.percentile(s, 50)), 4),
                                   'p10_ms': round(float(np.percentile(s, 10)), 4)}
    return result


def main(argv=None):
    """Build the variants, count their operators, time them, write JSON."""
    from lepton_robot.detector.backends import SPIN_MODES
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--model', default=None, help='FP32 ONNX (default: shipped)')
    parser.add_argument('--data', required=True, help='datagen dir (validation crops)')
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--threads', type=int, nargs='+', default=[2, 1],
                        help='intra-op thread counts to time (the first one also counts the '
                             'operators)')
    parser.add_argument('--spin', default='run', choices=SPIN_MODES,
                        help="how ONNX Runtime's pool threads wait for work (as the detector "
                             "node's 'spin' parameter)")
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)

    from lepton_robot.detector import dataset as ds
    from lepton_robot.detector.backends import OnnxRuntimeBackend
    from lepton_robot.detector.detector import default_model_path, preprocess
    from lepton_robot.detector.metadata import INPUT_NAME, OUTPUT_NAMES
    from lepton_robot.training.detector_train import crop_metrics
    fp32 = Path(args.model or default_model_path())
    meta = OnnxRuntimeBackend(str(fp32), providers=['CPUExecutionProvider']).load().metadata
    frames = ds.read_labels(args.data)
    crops = ds.build_crops(frames, meta.segmentation, meta.crop_px, meta.input_size)
    x_all = preprocess(list(crops.crops), meta)
    rng = np.random.default_rng(0)
    calib = x_all[np.sort(rng.permutation(len(x_all))[:256])]
    work = tempfile.mkdtemp(prefix='int8_formats_')
    variants = {'fp32': fp32}
    for fmt in ('qdq', 'qop'):
        for per_channel in (True, False):
            for exclude_first in (False, True):
                name = f'{fmt}_{"pc" if per_channel else "pt"}' \
                       f'{"_first_fp32" if exclude_first else ""}'
                path = Path(work) / f'{name}.onnx'
                _quantize(fp32, path, calib, fmt, per_channel, exclude_first)
                variants[name] = path
        path = Path(work) / f'{fmt}_pc_s2d.onnx'
        _quantize(fp32, path, calib, fmt, True, False, s2d=True)
        variants[f'{fmt}_pc_s2d'] = path
    from lepton_robot.training.detector_train import quantize_variants
    shipped = Path(work) / 'recipe' / fp32.name
    shipped.parent.mkdir()
    shipped.write_bytes(fp32.read_bytes())
    variants['shipped_recipe'] = quantize_variants(shipped, calib)['int8']
    report = {'cpu': _cpu_flags(), 'threads': args.threads, 'spin': args.spin,
              'model': str(fp32),
              'input_size': meta.input_size, 'n_val_crops': int(len(x_all)),
              'load_avg_1m': round(os.getloadavg()[0], 2), 'variants': {}}
    by_threads, first = {}, None
    for threads in args.threads:
        sessions = {name: _session(path, threads, spin=args.spin)
                    for name, path in variants.items()}
        by_threads[threads] = _latency(sessions, {'batch1': x_all[:1], 'batch8': x_all[:8]},
                                       args.iters)
        if first is None:
            first = sessions
    lat, sessions = by_threads[args.threads[0]], first     # accuracy on the first count
    for name, path in variants.items():
        outs = {k: [] for k in OUTPUT_NAMES}
        for i in range(0, len(x_all), 256):
            for k, v in zip(OUTPUT_NAMES,
                            sessions[name].run(list(OUTPUT_NAMES),
                                               {INPUT_NAME: x_all[i:i + 256]})):
                outs[k].append(v)
        probs = {k: np.concatenate(v) for k, v in outs.items()}
        acc = crop_metrics(probs, crops, meta.ok_threshold)
        report['variants'][name] = {
            'bytes': Path(path).stat().st_size, 'latency': lat[name],
            'over_fp32_batch1': round(lat[name]['batch1']['p50_ms']
                                      / lat['fp32']['batch1']['p50_ms'], 3),
            'over_fp32_batch8': round(lat[name]['batch8']['p50_ms']
                                      / lat['fp32']['batch8']['p50_ms'], 3),
            'by_threads': {
                str(t): {'latency': by[name],
                         'over_fp32_batch1': round(by[name]['batch1']['p50_ms']
                                                   / by['fp32']['batch1']['p50_ms'], 3),
                         'over_fp32_batch8': round(by[name]['batch8']['p50_ms']
                                                   / by['fp32']['batch8']['p50_ms'], 3)}
                for t, by in by_threads.items()},
            'accuracy': acc,
            'ops_after_ort_optimisation': _op_counts(path, args.threads[0], work)}
    from _report import emit
    emit(report, args.out, indent=2)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
