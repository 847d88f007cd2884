"""
The benchmarks' common pieces: block-interleaved timing, and the JSON tail.

The tail prints the report and writes it to ``--out``.
"""

import json
from pathlib import Path
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np


def interleaved(runners: Mapping[str, Callable[[Any], Any]], x: Any, iters: int,
                block: int = 10, skip: int = 2, inputs: Optional[Sequence[Any]] = None,
                keep: Optional[Callable[[str, Any], None]] = None, settle_ms: float = 100.0
                ) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """
    Time each runner about ``iters`` times on ``x``, in rounds of blocks of consecutive calls.

    Each round runs every runner for a block: first uncounted calls, at least ``skip`` of
    them and for at least ``settle_ms``, then ``block - skip`` counted calls. So each
    runner is timed in its steady state (as in a node, where one session runs alone) while
    load drift still hits all runners alike. Calls interleaved one by one (the method
    before session 7) favoured whichever runner followed a quiet one: the thread pools of
    the runner just run (PyTorch's OpenMP, ONNX Runtime's) keep spinning and slow the next
    call. A fixed count of uncounted calls was not enough either (session 9): after a
    2-thread ONNX Runtime session, the next 2-thread session ran with one core's worth for
    about 4 ms (ten INT8 calls), and 2 uncounted calls hid almost none of it.

    :param inputs: instead of ``x`` each call takes the next of these (every runner the
        same ones in a round; the warm-up takes the first ``block``, round 0 starts again
        at the first).
    :param keep: called with ``(runner name, return value)`` of every counted call.
    :param settle_ms: least time from a block's first call to its first counted call.
    :return: ``(samples, rounds)``: every counted call's ms per runner, and each round's
        p50 per runner.
    """
    def arg(k: int) -> Any:
        return x if inputs is None else inputs[k % len(inputs)]

    for fn in runners.values():
        for i in range(block):
            fn(arg(i))
    samples: Dict[str, List[float]] = {name: [] for name in runners}
    rounds: Dict[str, List[float]] = {name: [] for name in runners}
    counted = block - skip
    for r in range(max(1, iters // counted)):
        for name, fn in runners.items():
            start = time.perf_counter()
            k = 0
            while k < skip or (time.perf_counter() - start) * 1e3 < settle_ms:
                fn(arg(r * block + k % block))
                k += 1
            times = []
            for i in range(counted):
                t0 = time.perf_counter()
                out = fn(arg(r * block + (skip + i) % block))
                times.append((time.perf_counter() - t0) * 1e3)
                if keep is not None:
                    keep(name, out)
            samples[name].extend(times)
            rounds[name].append(float(np.median(times)))
    return samples, rounds


def emit(report: Mapping[str, Any], out: Optional[Union[str, Path]] = None,
         indent: int = 1) -> str:
    """
    Print ``report`` as JSON on stdout and, when ``out`` is given, write it there too.

    :param out: the JSON file (its folder is created); None or empty: stdout only.
    :return: the JSON text.
    """
    text = json.dumps(report, indent=indent)
    print(text, flush=True)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + '\n', encoding='utf-8')
    return text
