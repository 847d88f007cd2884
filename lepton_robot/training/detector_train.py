"""
``lepton-robot train detector``: train the part-crop CNN on sim datasets, export and quantise.

Steps (each logged; with the defaults, the shipped recipe, ~28 min on 2 CPU cores plus
rendering the data the first time):

1. Render (or reuse) the training and validation datasets with ``lepton-robot datagen``
   (one per seed; training and validation seeds differ: the split is by seed, never by
   frame; several seeds of a side are pooled).
2. Size the crops and the touching-parts split threshold from the data, then cut crops with
   the run-time segmentation code.
3. Train :class:`~lepton_robot.training.detector_model.PartNet` with augmentation
   (rotations/flips, brightness/contrast/noise, small shifts), tqdm progress.
4. Tune the ``ok`` threshold on validation (no escapes with margin), export ONNX with
   metadata and check parity with PyTorch on real crops.
5. INT8 static quantisation (ONNX Runtime, calibrated on training crops) and an FP16
   variant; accuracy of every variant on the validation crops, written to a JSON report.
"""

import argparse
import datetime
import json
import math
from pathlib import Path
import time
from typing import Any, Dict, List, Optional

from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import CONDITIONS
import numpy as np

HELP = 'train the defect detector CNN on sim data, export ONNX (+ INT8, FP16)'

DEFAULT_DATA = 'data/detector'
# The shipped model's data (model card): 6000 balanced training frames, 500 validation.
# Comma-separated lists (argparse parses string defaults with ``type``, as typed values).
TRAIN_SEED = '1201'
TRAIN_COUNT = '6000'
VAL_SEED = '2102'
VAL_COUNT = '500'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the trainer's options."""
    parser.add_argument('--data', default=DEFAULT_DATA,
                        help='where datasets are rendered/reused (default %(default)s)')
    parser.add_argument('--train-count', type=_int_list, default=TRAIN_COUNT,
                        help='training frames to render per training seed, comma-separated '
                             '(one value: the same for every seed; default %(default)s)')
    parser.add_argument('--val-count', type=_int_list, default=VAL_COUNT,
                        help='validation frames to render per validation seed (default '
                             '%(default)s)')
    parser.add_argument('--train-seed', type=_int_list, default=TRAIN_SEED,
                        help='training dataset seeds, comma-separated; each is rendered to '
                             'DATA/train_s<seed> and the crops are pooled (default '
                             '%(default)s)')
    parser.add_argument('--val-seed', type=_int_list, default=VAL_SEED,
                        help='validation dataset seeds (default %(default)s)')
    parser.add_argument('--datagen-args', default='--balance',
                        help='extra arguments passed to lepton-robot datagen (quoted)')
    parser.add_argument('--epochs', type=int, default=28)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('--input-size', type=int, default=96,
                        help='network input side; crops are resized to it (0 = crop size)')
    parser.add_argument('--widths', default='16,32,48,96', help='channels per stage')
    parser.add_argument('--crop-px', type=int, default=112,
                        help='crop side in frame pixels (0 = from the largest parts in the '
                             'data)')
    parser.add_argument('--out', default=None,
                        help='output ONNX path (default models/defect_detector.onnx)')
    parser.add_argument('--seed', type=int, default=0, help='torch seed')
    parser.add_argument('--fusion-only', action='store_true',
                        help='only fit the shape fusion head for an existing model (--out)')
    parser.add_argument('--fusion-frames', type=int, default=1500,
                        help='training frames used to fit the shape fusion head')
    parser.add_argument('--init', default=None, metavar='CKPT',
                        help='start from this checkpoint (.pt of the same widths): more epochs')
    parser.add_argument('--max-minutes', type=float, default=27.0,
                        help='stop training after this long (the best epoch is kept)')
    parser.add_argument('--time-schedule', action=argparse.BooleanOptionalAction, default=True,
                        help='one-cycle learning rate driven by the larger of epoch and '
                             'time progress (--max-minutes): the rate anneals fully even '
                             'when a loaded machine stops training before --epochs')


def _int_list(text: str) -> List[int]:
    """Parse ``'1201,1001'`` (or one int) into a list of ints for argparse."""
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a comma-separated list of integers: {text!r}')
    if not values:
        raise argparse.ArgumentTypeError('empty list')
    return values


def _per_seed(counts: List[int], seeds: List[int], what: str) -> List[int]:
    """Match one frame count per seed (a single count applies to every seed)."""
    counts = list(counts)
    if len(counts) == 1:
        counts = counts * len(seeds)
    if len(counts) != len(seeds):
        raise ConfigError(f'--{what}-count has {len(counts)} values for {len(seeds)} '
                          f'--{what}-seed values: give one, or one per seed')
    return counts


def _pool(sets):
    """Concatenate crop sets (one per dataset) into one, summing their stats."""
    from lepton_robot.detector import dataset as ds
    if len(sets) == 1:
        return sets[0]
    stats = {k: sum(s.stats.get(k, 0) for s in sets) for k in sets[0].stats}
    return ds.CropSet(*(np.concatenate([getattr(s, f) for s in sets])
                        for f in ('crops', 'condition', 'color', 'shape', 'areas')), stats)


def run(args: argparse.Namespace) -> int:
    """Run the whole pipeline (see the module docstring)."""
    import shlex

    from lepton_robot.detector import dataset as ds
    from lepton_robot.paths import models_dir
    out = Path(args.out) if args.out else models_dir() / 'defect_detector.onnx'
    data = Path(args.data)
    extra = shlex.split(args.datagen_args)
    t_start = time.time()
    train_seeds, val_seeds = args.train_seed, args.val_seed
    if set(train_seeds) & set(val_seeds):
        raise ConfigError(f'training and validation seeds overlap: '
                          f'{sorted(set(train_seeds) & set(val_seeds))}')
    train_counts = _per_seed(args.train_count, train_seeds, 'train')
    val_counts = _per_seed(args.val_count, val_seeds, 'val')
    print(f'[1/5] datasets under {data} (train seeds {train_seeds}, '
          f'val seeds {val_seeds})', flush=True)
    train_dirs = [ds.generate(str(data / f'train_s{seed}'), count, seed, extra)
                  for seed, count in zip(train_seeds, train_counts)]
    val_dirs = [ds.generate(str(data / f'val_s{seed}'), count, seed, extra)
                for seed, count in zip(val_seeds, val_counts)]
    train_by_dir = [ds.read_labels(str(d)) for d in train_dirs]
    val_by_dir = [ds.read_labels(str(d)) for d in val_dirs]
    train_frames = [f for frames in train_by_dir for f in frames]
    val_frames = [f for frames in val_by_dir for f in frames]
    if args.fusion_only:
        result = fit_shape_fusion(out, train_frames[:args.fusion_frames], val_frames)
        report_path = out.with_suffix('.train.json')
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        report['shape_fusion'] = result
        report_path.write_text(json.dumps(report, indent=2))
        return 0
    seg_config, crop_px = calibrate_segmentation(train_frames)
    crop_px = getattr(args, 'crop_px', 0) or crop_px
    input_size = args.input_size or crop_px
    print(f'[2/5] crops: crop_px={crop_px} input={input_size} '
          f'segmentation={seg_config.to_json()}', flush=True)
    train = _pool([_cached_crops(d, frames, seg_config, crop_px, input_size)
                   for d, frames in zip(train_dirs, train_by_dir)])
    val = _pool([_cached_crops(d, frames, seg_config, crop_px, input_size)
                 for d, frames in zip(val_dirs, val_by_dir)])
    print(f'      train {train.stats}  val {val.stats}', flush=True)
    report = train_and_export(train, val, seg_config, crop_px, input_size, out, args)
    report['shape_fusion'] = fit_shape_fusion(out, train_frames[:args.fusion_frames],
                                              val_frames)
    report['data'] = {'train': [str(d) for d in train_dirs],
                      'val': [str(d) for d in val_dirs],
                      'train_stats': train.stats, 'val_stats': val.stats,
                      'datagen_args': args.datagen_args}
    report['wall_time_s'] = round(time.time() - t_start, 1)
    report_path = out.with_suffix('.train.json')
    report_path.write_text(json.dumps(report, indent=2))
    print(f'[5/5] done in {report["wall_time_s"]:.0f} s; report {report_path}', flush=True)
    return 0


def _geometry_and_probs(backend, frames):
    """Return (geometry, CNN shape probs, true shape index) for every matched blob."""
    from lepton_robot.detector import dataset as ds
    from lepton_robot.detector.detector import preprocess
    from lepton_robot.detector.segmentation import (BeltSegmenter, blob_geometry,
                                                    extract_crop)
    from lepton_robot.interfaces import SHAPES
    meta = backend.metadata
    segmenter = BeltSegmenter(meta.segmentation)
    geometry, crops, truth = [], [], []
    for frame, image, seg, matches in ds.iter_matched(frames, segmenter):
        for bi, pj, _ in matches:
            blob = seg.blobs[bi]
            geometry.append(blob_geometry(seg, blob))
            crops.append(extract_crop(image, seg, blob, meta.crop_px, meta.input_size))
            truth.append(SHAPES.index(frame.parts[pj]['shape']))
    x = preprocess(crops, meta)
    probs = np.concatenate([backend.infer(x[i:i + 256])['shape']
                            for i in range(0, len(x), 256)])
    return np.stack(geometry), probs, np.asarray(truth)


def fit_shape_fusion(onnx_path: Path, train_frames, val_frames, steps: int = 3000,
                     lr: float = 0.5, l2: float = 1e-3) -> Dict[str, Any]:
    """
    Fit the shape fusion head (logistic regression over geometry + CNN shape log-probs).

    The CNN alone confuses blocks and plates (similar top faces; the difference is the
    aspect ratio and size of the whole silhouette, which global pooling blurs), so the
    silhouette's geometry joins the CNN's shape output. Writes the head into the metadata
    of the FP32 model and its INT8/FP16 variants.

    :return: train/val accuracy of the CNN shape head alone and of the fused head.
    """
    import onnx

    from lepton_robot.detector.backends import OnnxRuntimeBackend
    from lepton_robot.detector.detector import fuse_shape
    backend = OnnxRuntimeBackend(str(onnx_path), providers=['CPUExecutionProvider']).load()
    g_tr, p_tr, y_tr = _geometry_and_probs(backend, train_frames)
    g_va, p_va, y_va = _geometry_and_probs(backend, val_frames)
    feats = np.concatenate([g_tr, np.log(np.clip(p_tr, 1e-6, 1.0))], axis=1)
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mean) / std
    n_cls = p_tr.shape[1]
    weights, bias = np.zeros((n_cls, z.shape[1])), np.zeros(n_cls)
    onehot = np.eye(n_cls)[y_tr]
    for _ in range(steps):
        logits = z @ weights.T + bias
        logits -= logits.max(1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(1, keepdims=True)
        grad = prob - onehot
        weights -= lr * (grad.T @ z / len(z) + l2 * weights)
        bias -= lr * grad.mean(0)
    fusion = {'mean': mean.tolist(), 'std': std.tolist(), 'W': weights.tolist(),
              'b': bias.tolist()}
    result = {
        'n_train': int(len(y_tr)), 'n_val': int(len(y_va)),
        'cnn_train_accuracy': float(np.mean(p_tr.argmax(1) == y_tr)),
        'cnn_val_accuracy': float(np.mean(p_va.argmax(1) == y_va)),
        'fused_train_accuracy': float(np.mean(fuse_shape(g_tr, p_tr, fusion).argmax(1)
                                              == y_tr)),
        'fused_val_accuracy': float(np.mean(fuse_shape(g_va, p_va, fusion).argmax(1)
                                            == y_va)),
    }
    print(f'      shape fusion head: {result}', flush=True)
    onnx_path = Path(onnx_path)
    for path in (onnx_path, onnx_path.with_name(onnx_path.stem + '_int8.onnx'),
                 onnx_path.with_name(onnx_path.stem + '_fp16.onnx')):
        if path.is_file():
            proto = onnx.load(str(path))
            props = {p.key: p.value for p in proto.metadata_props}
            props['shape_fusion'] = json.dumps(fusion)
            write_metadata(proto, props)
            onnx.save(proto, str(path))
    return result


def _cached_crops(directory: Path, frames, seg_config, crop_px: int, input_size: int):
    """Cut the crops of a dataset once; reuse them while frames and settings are the same."""
    import hashlib

    from lepton_robot.detector import dataset as ds
    key = hashlib.sha256(json.dumps([seg_config.to_json(), crop_px, input_size, len(frames),
                                     ds.CropSet.__doc__]).encode()).hexdigest()[:12]
    cache = Path(directory) / f'crops-{key}.npz'
    if cache.is_file():
        print(f'      reusing {cache}', flush=True)
        return ds.CropSet.load(str(cache))
    crops = ds.build_crops(frames, seg_config, crop_px, input_size, progress=True)
    crops.save(str(cache))
    return crops


def calibrate_segmentation(frames, sample: int = 150):
    """
    Choose the crop size and the touching-parts split threshold from labelled frames.

    Blob areas of single, well-separated parts give ``max_part_area`` (blobs above it are
    split); the largest part's box side gives the crop size.

    :return: ``(SegmentationConfig, crop_px)``.
    """
    from lepton_robot.detector import dataset as ds
    from lepton_robot.detector.segmentation import BeltSegmenter, SegmentationConfig
    base = SegmentationConfig()
    segmenter = BeltSegmenter(base)
    areas, sides = [], []
    for frame, _, seg, matches in ds.iter_matched(frames[:sample], segmenter):
        for bi, pj, score in matches:
            if score > 0.5:
                areas.append(seg.blobs[bi].area)
                sides.append(max(seg.blobs[bi].bbox[2:]))
    if not areas:
        raise ValueError('no part could be matched in the training frames: check the '
                         'segmentation against the rendered images')
    p99_area = float(np.percentile(areas, 99))
    side = float(np.percentile(sides, 99.5))
    crop_px = int(math.ceil((side + 8) / 4.0) * 4)
    crop_px = max(crop_px, 32)
    config = SegmentationConfig(**{**json.loads(base.to_json()),
                                   'max_part_area': int(p99_area * 1.25)})
    return config, crop_px


def _augment(x, rng_torch):
    """
    Augment a batch of RGB crops in pixel space (float 0..1, N x 3 x S x S).

    Geometry: 90-degree rotations, flips, shifts of a few pixels (the blob centre is not
    exactly the part centre). Photometry, applied to the whole crop (part and belt alike,
    so the belt stays a white reference): brightness, colour temperature (red/blue
    balance), a soft lighting gradient, contrast and sensor noise.
    """
    import torch
    n, _, h, w = x.shape
    k = int(torch.randint(0, 4, (1,), generator=rng_torch))
    x = torch.rot90(x, k, dims=(2, 3))
    if bool(torch.rand(1, generator=rng_torch) < 0.5):
        x = torch.flip(x, dims=(3,))
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=rng_torch))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=rng_torch)
    gain = uniform(0.65, 1.35, n, 1, 1, 1)
    temp = uniform(-0.18, 0.18, n, 1, 1, 1)
    chan = torch.cat([1 + temp, 1 + uniform(-0.04, 0.04, n, 1, 1, 1), 1 - temp], dim=1)
    ramp_x = torch.linspace(-0.5, 0.5, w).view(1, 1, 1, w)
    ramp_y = torch.linspace(-0.5, 0.5, h).view(1, 1, h, 1)
    grad = 1 + uniform(-0.15, 0.15, n, 1, 1, 1) * ramp_x + uniform(-0.15, 0.15, n, 1, 1, 1) \
        * ramp_y
    x = x * gain * chan * grad
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.85, 1.15, n, 1, 1, 1) + mean
    x = x + uniform(0.0, 4.0 / 255, n, 1, 1, 1) * torch.randn(x.shape, generator=rng_torch)
    return x.clamp(0.0, 1.0)


def _pixels(crops: np.ndarray):
    """Return BGR uint8 N x S x S x 3 crops as an RGB uint8 N x 3 x S x S tensor."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2)))


def _to_tensor(crops: np.ndarray, meta) -> Any:
    import torch

    from lepton_robot.detector.detector import preprocess
    out = []
    for i in range(0, len(crops), 2048):
        out.append(preprocess(list(crops[i:i + 2048]), meta))
    return torch.from_numpy(np.concatenate(out) if out else
                            np.zeros((0, 3, meta.input_size, meta.input_size), np.float32))


def _predict(model, x, batch: int = 512) -> Dict[str, np.ndarray]:
    import torch
    model.eval()
    outs = {'condition': [], 'color': [], 'shape': []}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            c, col, s = model(x[i:i + batch].contiguous(memory_format=torch.channels_last))
            outs['condition'].append(torch.softmax(c, 1).numpy())
            outs['color'].append(torch.softmax(col, 1).numpy())
            outs['shape'].append(torch.softmax(s, 1).numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def one_cycle_lr(progress: float, max_lr: float, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """
    Return the one-cycle learning rate at ``progress`` (0..1) of training.

    Same shape as ``torch.optim.lr_scheduler.OneCycleLR`` (cosine warm-up from
    ``max_lr / div_factor`` to ``max_lr`` over ``pct_start``, then cosine annealing to
    ``max_lr / div_factor / final_div_factor``), but driven by a progress fraction, so a
    time budget can drive it.
    """
    progress = min(max(progress, 0.0), 1.0)
    start, end = max_lr / div_factor, max_lr / div_factor / final_div_factor

    def cos(a: float, b: float, t: float) -> float:
        return b + (a - b) * (1.0 + math.cos(math.pi * t)) / 2.0
    if progress < pct_start:
        return cos(start, max_lr, progress / pct_start)
    return cos(max_lr, end, (progress - pct_start) / (1.0 - pct_start))


def crop_metrics(probs: Dict[str, np.ndarray], labels, threshold: float) -> Dict[str, Any]:
    """
    Score crop-level predictions (condition with the ok threshold, color, shape).

    :param probs: ``condition``/``color``/``shape`` probability arrays.
    :param labels: a :class:`~lepton_robot.detector.dataset.CropSet`.
    :param threshold: ``p(ok)`` needed for ok.
    """
    ok = CONDITIONS.index('ok')
    cond = probs['condition']
    defect_best = np.argmax(np.where(np.arange(cond.shape[1]) == ok, -1.0, cond), axis=1)
    pred = np.where(cond[:, ok] >= threshold, ok, defect_best)
    truth = labels.condition
    return {
        'n': int(len(truth)),
        'condition_accuracy': float(np.mean(pred == truth)) if len(truth) else 0.0,
        'color_accuracy': float(np.mean(np.argmax(probs['color'], 1) == labels.color))
        if len(truth) else 0.0,
        'shape_accuracy': float(np.mean(np.argmax(probs['shape'], 1) == labels.shape))
        if len(truth) else 0.0,
        'escapes': int(np.sum((truth != ok) & (pred == ok))),
        'false_rejects': int(np.sum((truth == ok) & (pred != ok))),
    }


def tune_ok_threshold(p_ok: np.ndarray, is_ok: np.ndarray) -> float:
    """
    Pick the ``p(ok)`` threshold for sensitivity 50 from validation probabilities.

    Starts at 0.5; if a defective part reaches that, the threshold moves above the most
    ok-looking defective part (half-way in logit space to the next ok part), capped at 0.98.
    """
    defect_max = float(p_ok[~is_ok].max()) if (~is_ok).any() else 0.0
    if defect_max < 0.5:
        return 0.5
    from lepton_robot.detector.detector import logit, sigmoid
    above = p_ok[is_ok & (p_ok > defect_max)]
    nxt = float(above.min()) if len(above) else 0.999
    return float(min(0.98, sigmoid((logit(defect_max) + logit(nxt)) / 2.0)))


def train_and_export(train, val, seg_config, crop_px: int, input_size: int, out: Path,
                     args: argparse.Namespace) -> Dict[str, Any]:
    """Train, tune, export, check parity, quantise; return the report."""
    import torch
    from tqdm import tqdm

    from lepton_robot.detector.metadata import ModelMetadata
    from lepton_robot.training.detector_model import count_flops, PartNet
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    mean, std = _channel_stats(train.crops)
    meta = ModelMetadata(version=datetime.date.today().isoformat(), input_size=input_size,
                         crop_px=crop_px, mean=mean, std=std, segmentation=seg_config)
    x_train_px, x_val = _pixels(train.crops), _to_tensor(val.crops, meta)
    norm_mean = torch.tensor(meta.mean, dtype=torch.float32).view(1, 3, 1, 1)
    norm_std = torch.tensor(meta.std, dtype=torch.float32).view(1, 3, 1, 1)
    y_train = [torch.from_numpy(a) for a in (train.condition, train.color, train.shape)]
    widths = [int(w) for w in args.widths.split(',')]
    model = PartNet(widths)
    if getattr(args, 'init', None):
        init_model, _ = load_checkpoint(args.init)
        model.load_state_dict(init_model.state_dict())
        print(f'      starting from {args.init}', flush=True)
    # NHWC is several times faster for these small convs on x86 CPUs (6x at 96 px).
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(len(x_train_px) / args.batch_size))
    total_steps = args.epochs * steps_per_epoch
    time_schedule = bool(getattr(args, 'time_schedule', False))
    sched = None if time_schedule else torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=total_steps)
    # Defects are the minority and escapes cost most: weight them up a little.
    cond_counts = np.bincount(train.condition, minlength=len(CONDITIONS)).astype(np.float64)
    cond_w = torch.tensor((cond_counts.sum() / np.maximum(cond_counts, 1)) ** 0.5,
                          dtype=torch.float32)
    cond_w = cond_w / cond_w.mean()
    print(f'[3/5] training PartNet{tuple(widths)} on {len(x_train_px)} crops '
          f'({args.epochs} epochs, {args.threads} threads); condition counts '
          f'{dict(zip(CONDITIONS, cond_counts.astype(int).tolist()))}', flush=True)
    best, best_state, history = -1.0, None, []
    t_train = time.time()
    deadline = t_train + args.max_minutes * 60.0
    progress, done = 0.0, 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train_px), generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f'epoch {epoch + 1}/{args.epochs}',
                   unit='batch')
        total, n_epoch_steps = 0.0, 0
        for step in bar:
            if time_schedule:
                progress = max(done / total_steps,
                               (time.time() - t_train) / (args.max_minutes * 60.0))
                if progress >= 1.0:
                    break
                for group in opt.param_groups:
                    group['lr'] = one_cycle_lr(progress, args.lr)
            done += 1
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            xb = (_augment(x_train_px[idx].float() / 255.0, gen) - norm_mean) / norm_std
            xb = xb.contiguous(memory_format=torch.channels_last)
            c, col, s = model(xb)
            loss = (torch.nn.functional.cross_entropy(c, y_train[0][idx], weight=cond_w,
                                                      label_smoothing=0.02)
                    + 0.5 * torch.nn.functional.cross_entropy(col, y_train[1][idx])
                    + 0.5 * torch.nn.functional.cross_entropy(s, y_train[2][idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item()
            n_epoch_steps += 1
            bar.set_postfix(loss=f'{total / (step + 1):.4f}')
        metrics = crop_metrics(_predict(model, x_val), val, 0.5)
        # Escapes are not scored here: the ok threshold is tuned afterwards to remove them.
        score = metrics['condition_accuracy'] + metrics['color_accuracy'] \
            + metrics['shape_accuracy']
        history.append({'epoch': epoch + 1, 'loss': total / max(1, n_epoch_steps),
                        'steps': done,
                        'minutes': round((time.time() - t_train) / 60.0, 2), **metrics})
        print(f'      val epoch {epoch + 1}: {metrics}', flush=True)
        if score > best:
            best = score
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if time.time() > deadline or progress >= 1.0:
            print(f'      time budget of {args.max_minutes} min reached after {done} of '
                  f'{total_steps} steps, stopping', flush=True)
            break
    model.load_state_dict(best_state)
    val_probs = _predict(model, x_val)
    meta.ok_threshold = tune_ok_threshold(val_probs['condition'][:, CONDITIONS.index('ok')],
                                          val.condition == CONDITIONS.index('ok'))
    print(f'[4/5] ok threshold {meta.ok_threshold:.4f}; exporting {out}', flush=True)
    report: Dict[str, Any] = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'widths': widths, 'input_size': input_size, 'crop_px': crop_px,
        'ok_threshold': meta.ok_threshold, 'history': history,
        'flops': count_flops(PartNet(widths), input_size),
        'val_pytorch': crop_metrics(val_probs, val, meta.ok_threshold),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': model.state_dict(), 'widths': widths,
                'metadata': meta.to_props()}, out.with_suffix('.pt'))
    export_onnx(model, meta, out)
    report['parity'] = check_parity(model, out, x_val[:512])
    calib_idx = torch.randperm(len(x_train_px), generator=gen)[:512].numpy()
    calib = _to_tensor(train.crops[np.sort(calib_idx)], meta).numpy()
    variants = quantize_variants(out, calib)
    report['variants'] = {}
    for name, path in {'fp32': out, **variants}.items():
        if path is None:
            continue
        probs = onnx_predict(path, x_val.numpy())
        report['variants'][name] = {'path': str(path), 'bytes': Path(path).stat().st_size,
                                    **crop_metrics(probs, val, meta.ok_threshold)}
        print(f'      {name}: {report["variants"][name]}', flush=True)
    return report


def _channel_stats(crops: np.ndarray):
    if not len(crops):
        return (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    rgb = crops[..., ::-1].reshape(-1, 3).astype(np.float64) / 255.0
    return tuple(round(float(v), 4) for v in rgb.mean(0)), \
        tuple(round(float(max(v, 1e-3)), 4) for v in rgb.std(0))


def export_onnx(model, meta, out: Path) -> None:
    """Export ``model`` (with softmax heads) to ONNX at ``out`` and attach ``meta``."""
    import copy

    import onnx
    import torch

    from lepton_robot.detector.metadata import INPUT_NAME, OUTPUT_NAMES
    net = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    net.softmax = True
    dummy = torch.zeros(1, 3, meta.input_size, meta.input_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, dummy, str(out), input_names=[INPUT_NAME],
                      output_names=list(OUTPUT_NAMES),
                      dynamic_axes={INPUT_NAME: {0: 'batch'},
                                    **{n: {0: 'batch'} for n in OUTPUT_NAMES}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(out))
    write_metadata(proto, meta.to_props())
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def write_metadata(proto, props: Dict[str, str]) -> None:
    """Replace an ONNX model's ``metadata_props`` with ``props``."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def onnx_predict(path, x: np.ndarray, batch: int = 256) -> Dict[str, np.ndarray]:
    """Run an ONNX model on CPU over ``x`` in batches."""
    from lepton_robot.detector.backends import OnnxRuntimeBackend
    from lepton_robot.detector.metadata import OUTPUT_NAMES
    backend = OnnxRuntimeBackend(str(path), providers=['CPUExecutionProvider']).load()
    outs = {k: [] for k in OUTPUT_NAMES}
    for i in range(0, len(x), batch):
        res = backend.infer(x[i:i + batch])
        for k in OUTPUT_NAMES:
            outs[k].append(res[k])
    return {k: np.concatenate(v) for k, v in outs.items()}


def check_parity(model, path: Path, x, atol: float = 1e-4) -> Dict[str, Any]:
    """
    Compare ONNX Runtime with PyTorch on real crops.

    :raises RuntimeError: if probabilities differ by more than ``atol`` or a label differs.
    """
    torch_probs = _predict(model, x)
    onnx_probs = onnx_predict(path, x.numpy())
    diff = max(float(np.abs(torch_probs[k] - onnx_probs[k]).max()) for k in torch_probs)
    same = all(bool(np.all(np.argmax(torch_probs[k], 1) == np.argmax(onnx_probs[k], 1)))
               for k in torch_probs)
    result = {'n': int(len(x)), 'max_abs_diff': diff, 'atol': atol, 'labels_equal': same}
    print(f'      parity ONNX vs PyTorch: {result}', flush=True)
    if diff > atol or not same:
        raise RuntimeError(f'ONNX export does not match PyTorch: {result}')
    return result


class _CalibReader:
    """ONNX Runtime ``CalibrationDataReader`` over a float32 array."""

    def __init__(self, data: np.ndarray, input_name: str, batch: int = 32) -> None:
        self.batches = iter([data[i:i + batch] for i in range(0, len(data), batch)])
        self.input_name = input_name

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        item = next(self.batches, None)
        return None if item is None else {self.input_name: item}


def quantize_variants(fp32_path: Path, calib: np.ndarray,
                      stem: str = 'space_to_depth') -> Dict[str, Optional[Path]]:
    """
    Write the INT8 (static, QDQ, per-channel) and FP16 variants next to the FP32 model.

    The INT8 graph is quantised throughout, after an exact rewrite of its stem
    (``stem='space_to_depth'``, :mod:`lepton_robot.training.onnx_stem`): the first conv, on
    3 channels at full resolution, is ONNX Runtime's slowest INT8 case, and left in FP32 it
    needed a hand-over to INT8 that cost as much again. The rewrite is checked on the
    calibration crops before quantising (FP32 probabilities within 1e-4 of the original).
    ``stem='fp32'`` keeps the original graph and leaves its first conv unquantised (the
    INT8 model shipped before session 9); ``stem='int8'`` quantises the original graph
    throughout. ``benchmarks/bench_int8_formats.py`` compares them. The softmaxes stay
    FP32 in every case, so the probabilities are not rounded to steps of 1/256 (the ok
    threshold is compared against them); at 13 values a crop they cost nothing.

    :return: ``{'int8': path, 'fp16': path or None}`` (FP16 needs onnxconverter-common).
    :raises ValueError: if ``stem`` is unknown or the stem rewrite changes the outputs.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, quantize_static,
                                          QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from lepton_robot.detector.metadata import INPUT_NAME
    if stem not in ('space_to_depth', 'fp32', 'int8'):
        raise ValueError(f'unknown stem {stem!r}: space_to_depth, fp32 or int8')
    fp32_path = Path(fp32_path)
    int8_path = fp32_path.with_name(fp32_path.stem + '_int8.onnx')
    pre = fp32_path.with_name(fp32_path.stem + '_pre.onnx')
    source = fp32_path
    if stem == 'space_to_depth':
        from lepton_robot.training.onnx_stem import space_to_depth_stem
        source = fp32_path.with_name(fp32_path.stem + '_s2d.onnx')
        onnx.save(space_to_depth_stem(onnx.load(str(fp32_path))), str(source))
        x = calib[:64]
        ref, got = onnx_predict(fp32_path, x), onnx_predict(source, x)
        diff = max(float(np.abs(ref[k] - got[k]).max()) for k in ref)
        print(f'      space-to-depth stem: max |dp| {diff:.2e} on {len(x)} crops', flush=True)
        if diff > 1e-4:
            source.unlink()
            raise ValueError(f'the space-to-depth stem changes the outputs (max |dp| {diff})')
    quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
    if source != fp32_path:
        source.unlink()
    nodes = onnx.load(str(pre)).graph.node
    exclude = [n.name for n in nodes if n.op_type == 'Softmax']
    if stem == 'fp32':
        exclude.append(next(n.name for n in nodes if n.op_type == 'Conv'))
    quantize_static(str(pre), str(int8_path), _CalibReader(calib, INPUT_NAME),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)
    pre.unlink()
    props = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
    proto = onnx.load(str(int8_path))
    write_metadata(proto, {**props, 'precision': 'int8'})
    onnx.save(proto, str(int8_path))
    variants: Dict[str, Optional[Path]] = {'int8': int8_path, 'fp16': None}
    try:
        from onnxconverter_common import float16
    except ImportError:
        print('      FP16 variant skipped: onnxconverter-common is not installed', flush=True)
        return variants
    fp16_path = fp32_path.with_name(fp32_path.stem + '_fp16.onnx')
    proto = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    write_metadata(proto, {**props, 'precision': 'fp16'})
    onnx.save(proto, str(fp16_path))
    variants['fp16'] = fp16_path
    return variants


def load_checkpoint(path: str):
    """Load a ``.pt`` checkpoint written by training; return (model, metadata props)."""
    import torch

    from lepton_robot.training.detector_model import PartNet
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    model = PartNet(ckpt['widths'])
    model.load_state_dict(ckpt['state_dict'])
    model.eval()
    return model, dict(ckpt['metadata'])
