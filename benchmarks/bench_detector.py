"""
Detector latency benchmark: PyTorch eager vs ONNX Runtime FP32 vs INT8 (vs TensorRT).

Same model, same inputs (real part crops cut from sim frames), one run, 2 threads each
(the detector node's default), and ONNX Runtime FP32 / INT8 again with 1 thread.
Reports per-call latency p50/p99 at batch 1 and 8, throughput, the ratios against the goals
(ORT FP32 <= 0.33x PyTorch eager; INT8 <= 0.6x FP32 with <= 0.5 pt accuracy loss), the
spread of the INT8 / FP32 ratio over the rounds, the model's FLOPs and the floor they imply
on 2 cores (FLOPs / measured 2-thread SGEMM rate), and the full per-frame pipeline
(segmentation + crops + inference with the model's flip, as the node runs it) on ONNX
Runtime FP32 and INT8, with the inference part per frame reported on its own.

Timing is block-interleaved: each round times every runner for a block of consecutive
calls (the first calls of a block are not counted), so each is measured in its steady state,
as in the node where one session runs alone, and load drift still hits all runners alike.
Calls interleaved one by one (the method before session 7) favour INT8: PyTorch's OpenMP
threads and ONNX Runtime's pool keep spinning after a call and slow the call that follows
(FP32 came right after PyTorch).

Not a test. Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_detector.py --out bench_detector.json
"""

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np


def _percentiles(samples_ms):
    a = np.asarray(samples_ms, np.float64)
    return {'p50_ms': round(float(np.percentile(a, 50)), 4),
            'p99_ms': round(float(np.percentile(a, 99)), 4),
            'mean_ms': round(float(a.mean()), 4), 'n': int(len(a))}


def _ratio_spread(rounds, num, den):
    """Return min / p50 / max over the rounds of the ratio of two runners' round p50s."""
    r = np.asarray(rounds[num]) / np.asarray(rounds[den])
    return {'min': round(float(r.min()), 3), 'p50': round(float(np.median(r)), 3),
            'max': round(float(r.max()), 3), 'rounds': int(len(r))}


def _sgemm_gflops(threads):
    import torch
    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(10):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * 1024 ** 3 / (time.perf_counter() - t0))
    return best / 1e9


def _worker(model, threads, inputs, spin='run'):
    """
    ``--worker MODEL THREADS INPUTS.npy SPIN``: one ONNX Runtime session alone in this process.

    Reads ``batch settle_ms n`` lines on stdin; for each, calls the model on the first
    ``batch`` inputs for at least ``settle_ms`` uncounted, then ``n`` times counted, and
    prints the counted calls' milliseconds on one line.
    """
    from lepton_robot.detector.backends import OnnxRuntimeBackend
    backend = OnnxRuntimeBackend(model, providers=['CPUExecutionProvider'],
                                 threads=threads, spin=spin).load()
    x_all = np.load(inputs)
    for _ in range(10):
        backend.infer(x_all[:1])
    for line in sys.stdin:
        batch, settle_ms, n = line.split()
        x = x_all[:int(batch)]
        start = time.perf_counter()
        while (time.perf_counter() - start) * 1e3 < float(settle_ms):
            backend.infer(x)
        times = []
        for _ in range(int(n)):
            t0 = time.perf_counter()
            backend.infer(x)
            times.append((time.perf_counter() - t0) * 1e3)
        print(' '.join(f'{t:.5f}' for t in times), flush=True)
    backend.close()
    return 0


def _own_process_latency(models, x, threads, batches, block=8, settle_ms=100.0,
                         spin='run'):
    """
    Time each model in its own worker process, block-interleaved across the processes.

    The node runs one session in its process; here too each session is alone in its
    process (the idle workers wait on a pipe), so no other session's thread pool shares
    it, and the rounds still alternate so that load drift hits all models alike.
    :return: ``{model name: {batch name: [ms, ...]}}`` and each round's p50 likewise.
    """
    import subprocess
    workdir = tempfile.mkdtemp(prefix='bench_detector_')
    inputs = os.path.join(workdir, 'inputs.npy')
    np.save(inputs, x)
    procs = {name: subprocess.Popen([sys.executable, os.path.abspath(__file__), '--worker',
                                     str(path), str(threads), inputs,
                                     spin],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name, path in models.items()}
    samples = {name: {} for name in models}
    rounds = {name: {} for name in models}
    try:
        for batch_name, batch, n_rounds in batches:
            for _ in range(n_rounds):
                for name, proc in procs.items():
                    proc.stdin.write(f'{batch} {settle_ms} {block}\n')
                    proc.stdin.flush()
                    times = [float(v) for v in proc.stdout.readline().split()]
                    if len(times) != block:
                        raise RuntimeError(f'worker for {name} stopped')
                    samples[name].setdefault(batch_name, []).extend(times)
                    rounds[name].setdefault(batch_name, []).append(float(np.median(times)))
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(timeout=30)
        os.unlink(inputs)
        os.rmdir(workdir)
    return samples, rounds


def main(argv=None):
    """Run the benchmark and print/write the JSON report."""
    if argv is None and len(sys.argv) == 6 and sys.argv[1] == '--worker':
        return _worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    from lepton_robot.detector.backends import SPIN_MODES
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--model', default=None, help='FP32 ONNX (default: shipped)')
    parser.add_argument('--data', default=None,
                        help='datagen dir for input crops and accuracy (default: render 150 '
                             'frames, seed 777)')
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--spin', default='run', choices=SPIN_MODES,
                        help="how ONNX Runtime's pool threads wait for work (as the node's "
                             "'spin' parameter; default run: spin within a call only)")
    parser.add_argument('--out', default=None, help='write the JSON here too')
    args = parser.parse_args(argv)

    import torch

    from lepton_robot.detector import dataset as ds
    from lepton_robot.detector.backends import (OnnxRuntimeBackend, tensorrt_available,
                                                TensorRTBackend)
    from lepton_robot.detector.detector import (default_model_path, DefectDetector,
                                                preprocess)
    from lepton_robot.training.detector_model import count_flops
    from lepton_robot.training.detector_train import crop_metrics, load_checkpoint
    torch.set_num_threads(args.threads)
    fp32_path = Path(args.model or default_model_path())
    int8_path = fp32_path.with_name(fp32_path.stem + '_int8.onnx')
    fp16_path = fp32_path.with_name(fp32_path.stem + '_fp16.onnx')
    ckpt = fp32_path.with_suffix('.pt')

    data = args.data
    if data is None:
        from lepton_robot.sim import datagen
        data = os.path.join(tempfile.mkdtemp(prefix='bench_detector_'), 'frames')
        for _ in datagen.iter_dataset(Path(data), 150, seed=777):
            pass
    fp32 = OnnxRuntimeBackend(str(fp32_path), providers=['CPUExecutionProvider'],
                              threads=args.threads, spin=args.spin).load()
    meta = fp32.metadata
    frames = ds.read_labels(data)
    crops = ds.build_crops(frames, meta.segmentation, meta.crop_px, meta.input_size)
    x_all = preprocess(list(crops.crops), meta)
    x1, x8 = x_all[:1], x_all[:8]

    report = {'machine': {'cpus': os.cpu_count(), 'threads': args.threads,
                          'ort_spin': args.spin,
                          'load_avg_1m': round(os.getloadavg()[0], 2)},
              'model': str(fp32_path), 'input_size': meta.input_size,
              'n_crops': int(len(x_all)), 'data': data, 'latency': {}, 'accuracy': {}}
    model, _ = load_checkpoint(str(ckpt))
    flops = count_flops(model, meta.input_size)
    gflops = _sgemm_gflops(args.threads)
    report['flops'] = {**flops, 'sgemm_gflops_2_threads': round(gflops, 2),
                       'floor_ms_batch1': round(flops['flops'] / (gflops * 1e9) * 1e3, 4),
                       'floor_ms_batch8': round(8 * flops['flops'] / (gflops * 1e9) * 1e3,
                                                4)}

    def torch_infer(x):
        with torch.no_grad():
            return [torch.softmax(o, 1) for o in model(torch.from_numpy(x))]
    runners = {'pytorch_eager': torch_infer, 'ort_fp32': fp32.infer}
    backends = [fp32]
    if int8_path.is_file():
        int8 = OnnxRuntimeBackend(str(int8_path), providers=['CPUExecutionProvider'],
                                  threads=args.threads, spin=args.spin).load()
        runners['ort_int8'] = int8.infer
        backends.append(int8)
    if fp16_path.is_file():
        fp16 = OnnxRuntimeBackend(str(fp16_path), providers=['CPUExecutionProvider'],
                                  threads=args.threads, spin=args.spin).load()
        runners['ort_fp16_on_cpu'] = fp16.infer
        backends.append(fp16)
    reason = tensorrt_available()
    if reason is None:
        for precision in ('fp16', 'int8'):
            calib = (lambda: x_all[:512]) if precision == 'int8' else None
            trt = TensorRTBackend(str(fp32_path), precision, calib).load()
            runners[f'tensorrt_{precision}'] = trt.infer
            backends.append(trt)
    else:
        report['tensorrt'] = f'skipped: {reason}'

    # Block-interleaved (_report.interleaved): each runner in its steady state, and load
    # drift on a shared machine hits all of them alike, so the ratios stay meaningful.
    from _report import interleaved
    batches = (('batch1', x1, args.iters), ('batch8', x8, max(40, args.iters // 4)))
    spread = {}
    for batch_name, x, iters in batches:
        samples, rounds = interleaved(runners, x, iters)
        for name, values in samples.items():
            stats = _percentiles(values)
            stats['throughput_crops_per_s'] = round(len(x) * 1000.0 / stats['mean_ms'], 1)
            report['latency'].setdefault(name, {})[batch_name] = stats
        if 'ort_int8' in rounds:
            spread[f'int8_over_fp32_{batch_name}'] = _ratio_spread(rounds, 'ort_int8',
                                                                   'ort_fp32')
    # The same two models with one intra-op thread: on a 2-vCPU machine the second thread's
    # share of a core comes and goes, and FP32 gains more from it than INT8 does.
    if int8_path.is_file():
        one = {name: OnnxRuntimeBackend(str(path), providers=['CPUExecutionProvider'],
                                        threads=1, spin=args.spin).load()
               for name, path in (('ort_fp32', fp32_path), ('ort_int8', int8_path))}
        backends.extend(one.values())
        report['latency_1_thread'] = {}
        for batch_name, x, iters in batches:
            samples, rounds = interleaved({k: b.infer for k, b in one.items()}, x, iters)
            for name, values in samples.items():
                report['latency_1_thread'].setdefault(name, {})[batch_name] = \
                    _percentiles(values)
            spread[f'int8_over_fp32_{batch_name}_1_thread'] = _ratio_spread(
                rounds, 'ort_int8', 'ort_fp32')
        # Each session alone in its own process, as in the node (see _own_process_latency):
        # in one process, the thread pool of the session just run slowed the next one.
        own, own_rounds = _own_process_latency(
            {'ort_fp32': fp32_path, 'ort_int8': int8_path}, x8, args.threads,
            (('batch1', 1, 25), ('batch8', 8, 6)), spin=args.spin)
        report['latency_own_process'] = {
            name: {b: _percentiles(v) for b, v in by_batch.items()}
            for name, by_batch in own.items()}
        for b in ('batch1', 'batch8'):
            spread[f'int8_over_fp32_{b}_own_process'] = _ratio_spread(
                {k: v[b] for k, v in own_rounds.items()}, 'ort_int8', 'ort_fp32')
    report['int8_over_fp32_per_round'] = spread
    for name, fn in runners.items():
        if name == 'pytorch_eager':
            probs = {k: v.numpy() for k, v in zip(('condition', 'color', 'shape'),
                                                  torch_infer(x_all))}
        else:
            probs = {k: [] for k in ('condition', 'color', 'shape')}
            for i in range(0, len(x_all), 64):
                out = fn(x_all[i:i + 64])
                for k in probs:
                    probs[k].append(out[k])
            probs = {k: np.concatenate(v) for k, v in probs.items()}
        report['accuracy'][name] = crop_metrics(probs, crops, meta.ok_threshold)
        print(f'{name}: {report["latency"][name]}', file=sys.stderr, flush=True)

    lat = report['latency']
    ratios = {}
    for batch in ('batch1', 'batch8'):
        eager = lat['pytorch_eager'][batch]['p50_ms']
        f32 = lat['ort_fp32'][batch]['p50_ms']
        ratios[f'ort_fp32_over_eager_{batch}'] = round(f32 / eager, 3)
        if 'ort_int8' in lat:
            ratios[f'int8_over_fp32_{batch}'] = round(lat['ort_int8'][batch]['p50_ms'] / f32, 3)
        own = report.get('latency_own_process')
        if own:
            ratios[f'int8_over_fp32_{batch}_own_process'] = round(
                own['ort_int8'][batch]['p50_ms'] / own['ort_fp32'][batch]['p50_ms'], 3)
        one = report.get('latency_1_thread')
        if one:
            ratios[f'int8_over_fp32_{batch}_1_thread'] = round(
                one['ort_int8'][batch]['p50_ms'] / one['ort_fp32'][batch]['p50_ms'], 3)
    acc = report['accuracy']
    if 'ort_int8' in acc:
        ratios['int8_condition_accuracy_loss_pt'] = round(
            100 * (acc['ort_fp32']['condition_accuracy']
                   - acc['ort_int8']['condition_accuracy']), 3)
    report['ratios'] = ratios
    report['goals'] = {
        'ort_fp32_le_0.33x_eager': ratios['ort_fp32_over_eager_batch1'] <= 0.33,
        'int8_le_0.6x_fp32': ratios.get('int8_over_fp32_batch1', 9) <= 0.6,
        'int8_le_0.6x_fp32_1_thread': ratios.get('int8_over_fp32_batch1_1_thread', 9) <= 0.6,
        'int8_le_0.6x_fp32_own_process': ratios.get('int8_over_fp32_batch1_own_process',
                                                    9) <= 0.6,
        'int8_loss_le_0.5pt': ratios.get('int8_condition_accuracy_loss_pt', 9) <= 0.5,
    }

    # The whole per-frame pipeline (what the node does per frame: segmentation, crops, one
    # batch of 2 crops per part with the flip, postprocess) on ONNX Runtime FP32, without
    # the test-time augmentation, and on INT8. Block-interleaved like the model timing:
    # frames in blocks of 5 per pipeline, the first of each block not counted, so every
    # pipeline is timed on the same frames in its steady state.
    images = [ds.read_image(str(f.path)) for f in frames[:60]]
    pipelines = {'pipeline_ort_fp32': DefectDetector(fp32, track=False)}
    if fp32.metadata.tta != 'none':
        pipelines['pipeline_ort_fp32_no_tta'] = DefectDetector(fp32, track=False, tta='none')
    if 'ort_int8' in runners:
        pipelines['pipeline_ort_int8'] = DefectDetector(int8, track=False)
    infer_ms = {name: [] for name in pipelines}
    parts = []

    def keep(name, result):
        infer_ms[name].append(result.latency_ms['infer'])
        if name == 'pipeline_ort_fp32':
            parts.append(len(result.parts))
    per_frame, _ = interleaved({name: d.detect for name, d in pipelines.items()}, None,
                               len(images) // 5 * 4, block=5, skip=1, inputs=images,
                               keep=keep)
    for name, detector in pipelines.items():
        report[name] = {**_percentiles(per_frame[name]),
                        'infer_p50_ms': round(float(np.median(infer_ms[name])), 4),
                        'mean_parts_per_frame': round(float(np.mean(parts)), 2),
                        'tta': detector.tta}
    if 'pipeline_ort_fp32_no_tta' in report:
        ratios['pipeline_tta_over_no_tta_p50'] = round(
            report['pipeline_ort_fp32']['p50_ms'] / report['pipeline_ort_fp32_no_tta']['p50_ms'],
            3)
    if 'pipeline_ort_int8' in report:
        # Per frame as the node runs it: the inference part alone (batch = 2 crops per part)
        # and the whole frame, INT8 over FP32.
        ratios['int8_over_fp32_frame_infer_p50'] = round(
            report['pipeline_ort_int8']['infer_p50_ms']
            / report['pipeline_ort_fp32']['infer_p50_ms'], 3)
        ratios['int8_over_fp32_frame_p50'] = round(
            report['pipeline_ort_int8']['p50_ms'] / report['pipeline_ort_fp32']['p50_ms'], 3)
    for b in backends:
        b.close()
    from _report import emit
    emit(report, args.out, indent=2)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
