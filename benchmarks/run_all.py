"""
Run every benchmark side by side; write one JSON, plots and the README results table.

Not a test. Each benchmark runs in its own process (``nice -n 10``) with its ``--out``
JSON in a temporary directory; this script merges them into
``benchmarks/results/latest.json``, draws ``benchmarks/results/latest.png`` (matplotlib
Agg), writes ``benchmarks/results/latest.md`` (the table) and, with ``--readme``, replaces
the table between the ``<!-- bench:start -->`` / ``<!-- bench:end -->`` markers of
``README.md``.

Benchmarks: ``bench_detector`` (PyTorch eager vs ONNX Runtime FP32 / INT8 / TensorRT where
present, FLOP floor), ``bench_parser`` (ONNX Runtime vs PyTorch), ``bench_transport``
(camera -> decision minus inference, separate processes vs composed), ``bench_sim``
(real-time factor vs parts), ``bench_throughput`` (parts/min vs belt speed, the ROS 2 graph).

Usage::

    make bench                                   # full run, README updated
    .venv/bin/python benchmarks/run_all.py --quick [--only parser sim] [--readme]
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / 'results'
START, END = '<!-- bench:start -->', '<!-- bench:end -->'

# name -> (script, full args, quick args); {model} is the detector model (or dropped)
BENCHES = {
    'detector': ('bench_detector.py', ['--iters', '200'], ['--iters', '40']),
    'parser': ('bench_parser.py', ['--repeats', '300'], ['--repeats', '60']),
    'transport': ('bench_transport.py', ['--seconds', '40'], ['--seconds', '15']),
    'sim': ('bench_sim.py', [], ['--parts', '0', '5', '10', '--sim-seconds', '4']),
    'throughput': ('bench_throughput.py', ['--speeds', '25', '50', '75', '100', '--parts',
                                           '30'],
                   ['--speeds', '50', '--parts', '6']),
}
NEEDS_DETECTOR = ('detector', 'transport')


def run_bench(name: str, quick: bool, model: str, timeout_s: float) -> dict:
    """Run one benchmark in a child process; return its JSON (or why it failed/skipped)."""
    script, full, short = BENCHES[name]
    out = Path(tempfile.mkdtemp(prefix='run_all_')) / f'bench_{name}.json'   # merged below
    cmd = ['nice', '-n', '10', sys.executable, str(HERE / script), '--out', str(out),
           *(short if quick else full)]
    if name in NEEDS_DETECTOR and model:
        cmd += ['--model', model]
    if out.exists():
        out.unlink()
    t0 = time.monotonic()
    print(f'== {name}: {" ".join(cmd[3:])}', flush=True)
    try:
        proc = subprocess.run(cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=timeout_s,
                              check=False)
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        rc, err = 124, f'timed out after {timeout_s:.0f} s'
    wall = round(time.monotonic() - t0, 1)
    if rc != 0 or not out.is_file():
        tail = '\n'.join((err or '').strip().splitlines()[-12:])
        print(f'   {name} FAILED (rc {rc}):\n{tail}', flush=True)
        return {'status': 'failed', 'rc': rc, 'error': tail, 'bench_wall_s': wall,
                'command': ' '.join(cmd[3:])}
    data = json.loads(out.read_text())
    data['status'] = 'ok'
    data['bench_wall_s'] = wall
    data['command'] = ' '.join(cmd[3:]).replace(str(ROOT) + '/', '')
    data['finished_utc'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    print(f'   {name}: done in {wall} s', flush=True)
    return data


def _fmt(v, unit=''):
    if v is None:
        return '-'
    if isinstance(v, float):
        v = f'{v:.3g}' if abs(v) < 100 else f'{v:.0f}'
    return f'{v}{unit}'


def table_rows(res: dict) -> list:
    """Return ``(benchmark, measure, value, goal)`` rows of the results."""
    rows = []
    d = res.get('detector', {})
    if d.get('status') == 'ok':
        lat = d['latency']
        for backend, v in lat.items():
            rows.append(('detector', f'{backend} p50 / p99, batch 1',
                         f'{_fmt(v["batch1"]["p50_ms"])} / {_fmt(v["batch1"]["p99_ms"])} ms',
                         ''))
            rows.append(('detector', f'{backend} p50 batch 8 (per batch), throughput',
                         f'{_fmt(v["batch8"]["p50_ms"])} ms, '
                         f'{_fmt(v["batch8"]["throughput_crops_per_s"])} crops/s', ''))
        r = d.get('ratios', {})
        g = d.get('goals', {})
        rows.append(('detector', 'ORT FP32 / eager (p50, batch 1)',
                     _fmt(r.get('ort_fp32_over_eager_batch1')),
                     f'<= 0.33 ({"met" if g.get("ort_fp32_le_0.33x_eager") else "not met"})'))
        if 'int8_over_fp32_batch1' in r:
            rows.append(('detector', 'INT8 / FP32 (p50, batch 1); accuracy loss',
                         f'{_fmt(r["int8_over_fp32_batch1"])}; '
                         f'{_fmt(r.get("int8_condition_accuracy_loss_pt"))} pt',
                         f'<= 0.6 ({"met" if g.get("int8_le_0.6x_fp32") else "not met"}); '
                         f'<= 0.5 pt ({"met" if g.get("int8_loss_le_0.5pt") else "not met"})'))
            spread = d.get('int8_over_fp32_per_round', {}).get('int8_over_fp32_batch1')
            if spread:
                rows.append(('detector', 'INT8 / FP32 per round (batch 1): min / p50 / max',
                             f'{_fmt(spread["min"])} / {_fmt(spread["p50"])} / '
                             f'{_fmt(spread["max"])} ({spread["rounds"]} rounds)', ''))
        if 'int8_over_fp32_batch1_own_process' in r:
            spread = d.get('int8_over_fp32_per_round', {}).get(
                'int8_over_fp32_batch1_own_process', {})
            rows.append(('detector', 'INT8 / FP32, each session alone in its own process as in '
                         'the node (p50, batch 1 / 8); batch 1 per round min / p50 / max',
                         f'{_fmt(r["int8_over_fp32_batch1_own_process"])} / '
                         f'{_fmt(r.get("int8_over_fp32_batch8_own_process"))}; '
                         f'{_fmt(spread.get("min"))} / {_fmt(spread.get("p50"))} / '
                         f'{_fmt(spread.get("max"))}',
                         '<= 0.6 (' + ('met' if g.get('int8_le_0.6x_fp32_own_process')
                                       else 'not met') + ')'))
        if 'int8_over_fp32_batch1_1_thread' in r:
            rows.append(('detector', 'INT8 / FP32 with 1 thread (p50, batch 1 / 8)',
                         f'{_fmt(r["int8_over_fp32_batch1_1_thread"])} / '
                         f'{_fmt(r.get("int8_over_fp32_batch8_1_thread"))}',
                         '<= 0.6 (' + ('met' if g.get('int8_le_0.6x_fp32_1_thread')
                                       else 'not met') + ')'))
        f = d.get('flops', {})
        rows.append(('detector', 'FLOP floor on 2 cores, batch 1 / 8',
                     f'{_fmt(f.get("floor_ms_batch1"))} / {_fmt(f.get("floor_ms_batch8"))} ms '
                     f'({_fmt(f.get("sgemm_gflops_2_threads"))} GFLOP/s SGEMM)', ''))
        if 'tensorrt' in d:
            rows.append(('detector', 'TensorRT', d['tensorrt'], ''))
        pipe, plain = d.get('pipeline_ort_fp32'), d.get('pipeline_ort_fp32_no_tta')
        if pipe:
            text = (f'{_fmt(pipe["p50_ms"])} / {_fmt(pipe["p99_ms"])} ms '
                    f'({_fmt(pipe["mean_parts_per_frame"])} parts/frame, tta {pipe["tta"]})')
            if plain:
                text += (f'; without tta {_fmt(plain["p50_ms"])} ms '
                         f'({_fmt(r.get("pipeline_tta_over_no_tta_p50"))}x)')
            rows.append(('detector', 'whole frame (segment, crops, CNN) p50 / p99, ORT FP32',
                         text, ''))
        i8 = d.get('pipeline_ort_int8')
        if i8 and pipe:
            rows.append(('detector', 'per frame as the node runs it (flip): INT8 / FP32 p50, '
                         'inference only; whole frame',
                         f'{_fmt(r.get("int8_over_fp32_frame_infer_p50"))} '
                         f'({_fmt(i8["infer_p50_ms"])} / {_fmt(pipe["infer_p50_ms"])} ms); '
                         f'{_fmt(r.get("int8_over_fp32_frame_p50"))}', ''))
    p = res.get('parser', {})
    if p.get('status') == 'ok':
        for backend, v in p['results'].items():
            rows.append(('parser', f'{backend} end-to-end p50 / p99, single',
                         f'{_fmt(v["end_to_end_single_ms"]["p50"])} / '
                         f'{_fmt(v["end_to_end_single_ms"]["p99"])} ms',
                         '<= 1 ms (ORT)' if backend == 'onnxruntime' else ''))
        ratio = p['ratio_pytorch_over_onnxruntime_p50'].get('end_to_end_single_ms')
        rows.append(('parser', 'PyTorch / ORT (p50, single)', _fmt(ratio), ''))
    t = res.get('transport', {})
    if t.get('status') == 'ok':
        goals = {'separate': '<= 2 ms', 'composed': '<= 0.5 ms'}
        defaults = set(t.get('default_executor_results', {}).values())
        for key, v in t['results'].items():
            tr = v['transport_ms']
            mode = v.get('mode', key)
            met = tr.get('p50', 1e9) <= (2.0 if mode == 'separate' else 0.5)
            path = 'in-process' if v.get('intra_process') else 'DDS'
            rows.append(('transport', f'{key} ({v["processes"]} process(es), '
                         f'{v.get("executor", "single")} executor, {path}): camera -> '
                         f'decision minus inference p50 / p99'
                         + (' (the default set-up)' if key in defaults else ''),
                         f'{_fmt(tr.get("p50"))} / {_fmt(tr.get("p99"))} ms '
                         f'(n={tr.get("n")}; detector {_fmt(v["detector_ms"].get("p50"))} ms; '
                         f'{_fmt(v["graph_cpu_ms_per_decision"])} ms CPU/decision)',
                         f'p50 {goals[mode]} ({"met" if met else "not met"})'))
        for executor, f in t.get('floor', {}).items():
            rows.append(('transport', f'floor: plain rclpy, 2 processes, {executor} executor: '
                         'image hop + inspection-sized string hop, p50',
                         f'{_fmt(f["image_hop_ms"].get("p50"))} + '
                         f'{_fmt(f["string_hop_ms"].get("p50"))} = '
                         f'{_fmt(f.get("two_hops_p50_ms"))} ms', ''))
        for name, ratio in t.get('ratios', {}).items():
            label = name.replace('_over_', ' / ').replace('_p50', '')
            rows.append(('transport', f'ratio {label} (p50)', _fmt(ratio), ''))
    s = res.get('sim', {})
    if s.get('status') == 'ok':
        for r in s['results']:
            rows.append(('sim', f'real-time factor, {r["parts"]} parts (wall / CPU time)',
                         f'{_fmt(r["real_time_factor"])} / {_fmt(r["real_time_factor_cpu"])}',
                         ''))
    th = res.get('throughput', {})
    if th.get('status') == 'ok':
        for r in th['results']:
            if r.get('error'):
                rows.append(('cell (graph)', f'belt {_fmt(r["belt_speed_percent"])} %: failed',
                             r['error'].strip().splitlines()[-1][:120], ''))
                continue
            rows.append(('cell (graph)', f'belt {_fmt(r["belt_speed_percent"])} % '
                         f'({_fmt(r["belt_speed_mps"])} m/s): throughput, accuracy',
                         f'{_fmt(r["throughput_ppm"])} parts/min sim, '
                         f'{_fmt(r["sorting_accuracy"])} ({r["parts_spawned"]} parts, '
                         f'{r["escapes"]} escapes)', ''))
    for name, v in res.items():
        if isinstance(v, dict) and v.get('status') in ('failed', 'skipped'):
            rows.append((name, v['status'], (v.get('error') or v.get('reason') or '')
                         .splitlines()[-1][:120] if (v.get('error') or v.get('reason'))
                         else '', ''))
    return rows


def markdown(report: dict) -> str:
    """Return the results as a markdown table with how they were made."""
    m = report['machine']
    lines = [f'Measured {report["finished_utc"]} by `{report["command"]}` '
             f'({"quick" if report["quick"] else "full"} run'
             f'{", merged into the previous results" if report.get("merged") else ""}) '
             f'on {m["cpus"]} shared CPU cores, '
             f'load average {m["load_avg_start"]} at start, {m["load_avg_end"]} at the end '
             f"(the benchmarks' own graphs count in it: wall-clock figures move with "
             f'load, so CPU-time figures are given where they matter). '
             f'Raw: `benchmarks/results/latest.json`, plots: `benchmarks/results/latest.png`.',
             '',
             'Per benchmark (command, wall time): ' + '; '.join(
                 f'{name}: `{v["command"]}` ({v.get("bench_wall_s")} s'
                 f'{", finished " + v["finished_utc"] if v.get("finished_utc") else ""})'
                 for name, v in report['results'].items() if v.get('command')) + '.', '',
             '| benchmark | measure | value | goal |', '|---|---|---|---|']
    for row in table_rows(report['results']):
        lines.append('| ' + ' | '.join(str(c).replace('|', '/') for c in row) + ' |')
    return '\n'.join(lines) + '\n'


def plot(report: dict, path: Path) -> None:
    """Draw the results (one panel per benchmark) into a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    res = report['results']
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    axes = axes.ravel()
    d = res.get('detector', {})
    if d.get('status') == 'ok':
        names = list(d['latency'])
        x = range(len(names))
        for off, (batch, stat) in enumerate([('batch1', 'p50_ms'), ('batch1', 'p99_ms'),
                                             ('batch8', 'p50_ms')]):
            axes[0].bar([i + 0.27 * off for i in x],
                        [d['latency'][n][batch][stat] for n in names], 0.27,
                        label=f'{batch} {stat[:-3]}')
        floor = d.get('flops', {}).get('floor_ms_batch1')
        if floor:
            axes[0].axhline(floor, color='k', ls='--', lw=1, label='FLOP floor b1')
        axes[0].set_xticks([i + 0.27 for i in x])
        axes[0].set_xticklabels(names, rotation=20, fontsize=8)
        axes[0].set_ylabel('ms per call')
        axes[0].set_title('detector inference')
        axes[0].legend(fontsize=7)
    p = res.get('parser', {})
    if p.get('status') == 'ok':
        names = list(p['results'])
        keys = list(p['results'][names[0]])
        for off, n in enumerate(names):
            axes[1].bar([i + 0.4 * off for i in range(len(keys))],
                        [p['results'][n][k]['p50'] for k in keys], 0.4, label=n)
        axes[1].set_xticks([i + 0.2 for i in range(len(keys))])
        axes[1].set_xticklabels([k.replace('_ms', '') for k in keys], rotation=20, fontsize=7)
        axes[1].set_ylabel('p50 ms per utterance')
        axes[1].set_title('parser')
        axes[1].legend(fontsize=7)
    t = res.get('transport', {})
    if t.get('status') == 'ok':
        modes = list(t['results'])
        for off, stat in enumerate(('p50', 'p90', 'p99')):
            axes[2].bar([i + 0.27 * off for i in range(len(modes))],
                        [t['results'][m]['transport_ms'].get(stat, 0) for m in modes], 0.27,
                        label=stat)
        axes[2].set_xticks([i + 0.27 for i in range(len(modes))])
        axes[2].set_xticklabels(modes)
        axes[2].axhline(2.0, color='r', ls='--', lw=1, label='goal separate')
        axes[2].axhline(0.5, color='g', ls='--', lw=1, label='goal composed')
        axes[2].set_ylabel('ms (camera -> decision minus inference)')
        axes[2].set_title('transport')
        axes[2].legend(fontsize=7)
    s = res.get('sim', {})
    if s.get('status') == 'ok':
        parts = [r['parts'] for r in s['results']]
        axes[3].plot(parts, [r['real_time_factor'] for r in s['results']], 'o-', label='wall')
        axes[3].plot(parts, [r['real_time_factor_cpu'] for r in s['results']], 's-',
                     label='CPU time')
        axes[3].axhline(1.0, color='k', ls=':', lw=1)
        axes[3].set_xlabel('parts on the belt')
        axes[3].set_ylabel('real-time factor')
        axes[3].set_title('sim (camera 10 Hz)')
        axes[3].legend(fontsize=7)
    th = res.get('throughput', {})
    if th.get('status') == 'ok':
        ok_rows = [r for r in th['results'] if not r.get('error')]
        speeds = [r['belt_speed_percent'] for r in ok_rows]
        axes[4].plot(speeds, [r['throughput_ppm'] or 0 for r in ok_rows], 'o-')
        axes[4].set_xlabel('belt speed (%)')
        axes[4].set_ylabel('parts / min (sim time)')
        ax2 = axes[4].twinx()
        ax2.plot(speeds, [r['sorting_accuracy'] or 0 for r in ok_rows], 's--',
                 color='tab:red')
        ax2.set_ylabel('sorting accuracy', color='tab:red')
        ax2.set_ylim(0, 1.05)
        axes[4].set_title('cell throughput (ROS 2 graph)')
    axes[5].axis('off')
    axes[5].text(0, 0.5, f'{report["finished_utc"]}\n{report["command"]}\n'
                 f'load avg {report["machine"]["load_avg_start"]} -> '
                 f'{report["machine"]["load_avg_end"]} on {report["machine"]["cpus"]} CPUs',
                 fontsize=9, va='center')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def update_readme(readme: Path, table: str) -> bool:
    """Replace the text between the bench markers of the README; return True if found."""
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f'{head}{START}\n{table}{END}{tail}')
    return True


def main(argv=None) -> int:
    """Run the benchmarks and write the merged results."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--quick', action='store_true', help='short runs (minutes, not tens)')
    ap.add_argument('--only', nargs='+', choices=list(BENCHES), default=list(BENCHES))
    ap.add_argument('--detector-model', default='',
                    help='detector ONNX (default: models/defect_detector.onnx)')
    ap.add_argument('--readme', action='store_true', help='update the README table')
    ap.add_argument('--timeout', type=float, default=1800.0, help='per benchmark (s)')
    ap.add_argument('--merge', action='store_true',
                    help='keep the other benchmarks of the previous latest.json')
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    model = args.detector_model
    if not model and not (ROOT / 'models' / 'defect_detector.onnx').is_file():
        model = None
    latest = RESULTS / 'latest.json'
    results = {}
    if args.merge and latest.is_file():
        results = json.loads(latest.read_text()).get('results', {})
    load0 = round(os.getloadavg()[0], 2)
    for name in args.only:
        if name in NEEDS_DETECTOR and model is None:
            results[name] = {'status': 'skipped',
                             'reason': 'models/defect_detector.onnx is not installed '
                                       '(pass --detector-model)'}
            continue
        results[name] = run_bench(name, args.quick, model or '', args.timeout)
    command = 'python benchmarks/run_all.py ' + ' '.join(
        a for a in (argv if argv is not None else sys.argv[1:]))
    report = {'finished_utc': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
              'command': command.strip(), 'quick': args.quick, 'merged': args.merge,
              'machine': {'cpus': os.cpu_count(), 'load_avg_start': load0,
                          'load_avg_end': round(os.getloadavg()[0], 2)},
              'results': results}
    latest.write_text(json.dumps(report, indent=1) + '\n')
    table = markdown(report)
    (RESULTS / 'latest.md').write_text(table)
    try:
        plot(report, RESULTS / 'latest.png')
    except (ImportError, KeyError, TypeError, ValueError) as exc:
        print(f'plot skipped: {exc}', file=sys.stderr)
    print(table)
    if args.readme and not update_readme(ROOT / 'README.md', table):
        print(f'README.md has no {START} / {END} markers; table not written', file=sys.stderr)
    failed = [n for n, v in results.items() if v.get('status') == 'failed']
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
