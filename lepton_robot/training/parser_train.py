"""
``lepton-robot train parser``: train the joint intent + slot BiLSTM and export it to ONNX.

The only module of the parser that imports torch (inside functions, so importing this
module for ``--help`` stays cheap). Steps: generate the seeded corpus (train and
validation splits), build the vocabulary, train with a progress bar, export to ONNX with
the vocabulary, labels and version in ``metadata_props``, check PyTorch-vs-ONNX parity on
real validation inputs, write the PyTorch checkpoint next to it (for the benchmark and the
parity test) and print the validation metrics.
"""

import argparse
import collections
import json
from pathlib import Path
import random
import sys
import time
from typing import Any, Dict, List, Sequence, Tuple

from lepton_robot import __version__, paths
from lepton_robot.errors import ModelError
from lepton_robot.interfaces import INTENTS, SLOT_VALUES
from lepton_robot.parser import corpus as corpusmod, text as textmod
from lepton_robot.parser.features import (Batch, encode_batch, NGRAM_BUCKETS, NGRAM_SIZES,
                                          NGRAMS_PER_TOKEN, NUM, PAD, UNK, word_key)
import numpy as np

HELP = 'train the operator command parser (BiLSTM intent + slot tagger) and export ONNX'

MODEL_NAME = 'command_parser'
MODEL_VERSION = '1.2.0'
#: PyTorch vs ONNX Runtime: largest allowed absolute difference of any output probability
PARITY_ATOL = 1e-4

SLOTS = tuple(SLOT_VALUES)
TAGS = ('O',) + tuple(f'{p}-{s}' for s in SLOTS for p in ('B', 'I'))

DEFAULTS = {'train_size': 40000, 'val_size': 4000, 'epochs': 10, 'batch_size': 256,
            'lr': 6e-3, 'word_dim': 64, 'char_dim': 32, 'hidden': 64, 'dropout': 0.25,
            'word_dropout': 0.15, 'min_count': 2, 'seed': 7, 'threads': 2, 'members': 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the trainer's options."""
    parser.add_argument('--out', type=Path, default=None,
                        help='ONNX file to write (default: models/command_parser.onnx)')
    parser.add_argument('--train-size', type=int, default=DEFAULTS['train_size'],
                        help='generated training utterances')
    parser.add_argument('--val-size', type=int, default=DEFAULTS['val_size'],
                        help='generated validation utterances')
    parser.add_argument('--epochs', type=int, default=DEFAULTS['epochs'])
    parser.add_argument('--batch-size', type=int, default=DEFAULTS['batch_size'])
    parser.add_argument('--lr', type=float, default=DEFAULTS['lr'])
    parser.add_argument('--hidden', type=int, default=DEFAULTS['hidden'],
                        help='LSTM units per direction')
    parser.add_argument('--seed', type=int, default=DEFAULTS['seed'],
                        help='training seed of the first member (the others: seed+1, ...)')
    parser.add_argument('--members', type=int, default=DEFAULTS['members'],
                        help='networks trained with consecutive seeds and averaged (1: one)')
    parser.add_argument('--threads', type=int, default=DEFAULTS['threads'],
                        help='torch CPU threads')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


# --- model ------------------------------------------------------------------------------

def build_model(n_words: int, n_intents: int, n_tags: int, word_dim: int, char_dim: int,
                hidden: int, dropout: float):
    """
    Return the joint intent + slot network (a torch ``nn.Module``).

    Token vector = word embedding ++ mean of hashed character n-gram embeddings; a forward
    and a backward LSTM (the backward one reads each sequence reversed inside its own
    length via ``rev_index``, so padding never leaks in); intent head on masked mean+max
    pooling; a per-token BIO tag head. Outputs are probabilities.
    """
    import torch
    from torch import nn

    class ParserNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding(n_words, word_dim, padding_idx=0)
            self.char = nn.Embedding(NGRAM_BUCKETS, char_dim, padding_idx=0)
            dim = word_dim + char_dim
            self.drop = nn.Dropout(dropout)
            self.fwd = nn.LSTM(dim, hidden, batch_first=True)
            self.bwd = nn.LSTM(dim, hidden, batch_first=True)
            self.intent_head = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.ReLU(),
                                             nn.Dropout(dropout), nn.Linear(hidden, n_intents))
            self.tag_head = nn.Linear(2 * hidden, n_tags)
            self.hidden = hidden

        def logits(self, words, ngrams, mask, rev_index):
            present = (ngrams > 0).to(torch.float32).unsqueeze(-1)
            chars = (self.char(ngrams) * present).sum(2) / present.sum(2).clamp(min=1.0)
            x = self.drop(torch.cat([self.word(words), chars], dim=-1))
            h_fwd, _ = self.fwd(x)
            idx_in = rev_index.unsqueeze(-1).expand(-1, -1, x.shape[-1])
            h_bwd, _ = self.bwd(torch.gather(x, 1, idx_in))
            idx_out = rev_index.unsqueeze(-1).expand(-1, -1, self.hidden)
            h_bwd = torch.gather(h_bwd, 1, idx_out)
            h = self.drop(torch.cat([h_fwd, h_bwd], dim=-1))
            m = mask.unsqueeze(-1)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            peak = (h * m + (m - 1.0) * 1e4).max(dim=1).values
            return self.intent_head(torch.cat([mean, peak], dim=-1)), self.tag_head(h)

        def forward(self, words, ngrams, mask, rev_index):
            intent_logits, tag_logits = self.logits(words, ngrams, mask, rev_index)
            return torch.softmax(intent_logits, dim=-1), torch.softmax(tag_logits, dim=-1)

    return ParserNet()


def build_ensemble(members: Sequence[Any]):
    """
    Return a module whose outputs are the mean of ``members``' probabilities.

    Same inputs and outputs as one network, so the exported ONNX file and the runtime do not
    change. Averaging networks trained with different seeds lowers the run-to-run variance
    of a single small network (session 12: validation intent 0.9878 / 0.9878 / 0.9928 for
    seeds 7 / 8 / 9 alone, 0.9925 averaged).
    """
    import torch
    from torch import nn

    class ParserEnsemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, words, ngrams, mask, rev_index):
            outs = [m(words, ngrams, mask, rev_index) for m in self.members]
            return (torch.stack([o[0] for o in outs]).mean(0),
                    torch.stack([o[1] for o in outs]).mean(0))

    return ParserEnsemble()


def load_checkpoint(path: Path):
    """
    Load a checkpoint written by :func:`run` and return ``(model, meta)`` in eval mode.

    :raises ModelError: if the file is missing or not a parser checkpoint.
    """
    import torch
    if not Path(path).is_file():
        raise ModelError(f'no parser checkpoint at {path} (run: lepton-robot train parser)')
    ckpt = torch.load(str(path), map_location='cpu', weights_only=False)
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'meta' not in ckpt:
        raise ModelError(f'{path} is not a command parser checkpoint')
    meta = ckpt['meta']
    hp = meta['hparams']
    nets = [build_model(len(meta['vocab']), len(meta['intents']), len(meta['tags']),
                        hp['word_dim'], hp['char_dim'], hp['hidden'], hp['dropout'])
            for _ in range(hp.get('members', 1))]
    model = build_ensemble(nets) if len(nets) > 1 else nets[0]
    model.load_state_dict(ckpt['state_dict'])
    model.eval()
    return model, meta


def torch_predictor(model):
    """Wrap a torch model as a :data:`lepton_robot.parser.pipeline.Predictor`."""
    import torch

    def predict(batch: Batch) -> Tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            ip, tp = model(torch.from_numpy(batch.words), torch.from_numpy(batch.ngrams),
                           torch.from_numpy(batch.mask), torch.from_numpy(batch.rev_index))
        return ip.numpy(), tp.numpy()
    return predict


# --- data -------------------------------------------------------------------------------

def build_vocab(examples: Sequence[Dict[str, Any]], min_count: int) -> Dict[str, int]:
    """Return word -> id over the normalised training tokens (``<pad>`` 0, ``<unk>`` 1)."""
    counts = collections.Counter(word_key(t) for ex in examples
                                 for t in textmod.normalize_tokens(ex['tokens']))
    vocab = {PAD: 0, UNK: 1, NUM: 2}
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_count and word not in vocab:
            vocab[word] = len(vocab)
    return vocab


def _encode(examples: Sequence[Dict[str, Any]], vocab: Dict[str, int]):
    raw = [ex['tokens'] for ex in examples]
    norm = [textmod.normalize_tokens(ex['tokens']) for ex in examples]
    batch = encode_batch(raw, norm, vocab)
    intents = np.array([INTENTS.index(ex['intent']) for ex in examples], dtype=np.int64)
    tags = np.zeros(batch.words.shape, dtype=np.int64)
    for b, ex in enumerate(examples):
        tags[b, :len(ex['tags'])] = [TAGS.index(t) for t in ex['tags']]
    return batch, intents, tags


# --- training ---------------------------------------------------------------------------

def train(args: argparse.Namespace, log=None):
    """
    Generate data, train, and return ``(model, meta, train_examples, val_examples)``.

    :param args: parsed options (see :func:`add_arguments`).
    """
    import torch

    if log is None:
        def log(msg):
            print(msg, flush=True)
    torch.set_num_threads(max(1, args.threads))
    t0 = time.time()
    train_ex = corpusmod.generate_split('train', args.train_size)
    val_ex = corpusmod.generate_split('val', args.val_size)
    vocab = build_vocab(train_ex, DEFAULTS['min_count'])
    log(f'corpus: {len(train_ex)} train / {len(val_ex)} val utterances, '
        f'vocabulary {len(vocab)} words ({time.time() - t0:.1f} s)')
    hp = {k: DEFAULTS[k] for k in ('word_dim', 'char_dim', 'dropout', 'word_dropout')}
    hp['hidden'] = args.hidden
    members = max(1, getattr(args, 'members', 1))
    # bucket by length so padded batches stay small
    order = sorted(range(len(train_ex)), key=lambda i: len(train_ex[i]['tokens']))
    chunks = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    encoded = [_encode([train_ex[i] for i in chunk], vocab) for chunk in chunks]
    nets = []
    for k in range(members):
        if members > 1:
            log(f'member {k + 1}/{members} (seed {args.seed + k})')
        nets.append(_fit(args, hp, vocab, list(encoded), args.seed + k, t0, log))
    if members > 1:
        hp['members'] = members
        model = build_ensemble(nets)
    else:
        model = nets[0]
    model.eval()
    meta = {'name': MODEL_NAME, 'version': MODEL_VERSION, 'package_version': __version__,
            'vocab': vocab, 'intents': list(INTENTS), 'tags': list(TAGS), 'hparams': hp,
            'train': {'train_size': args.train_size, 'val_size': args.val_size,
                      'epochs': args.epochs, 'batch_size': args.batch_size, 'lr': args.lr,
                      'seed': args.seed, 'members': members,
                      'train_seed': corpusmod.TRAIN_SEED,
                      'val_seed': corpusmod.VAL_SEED,
                      'seconds': round(time.time() - t0, 1)},
            'features': {'ngram_buckets': NGRAM_BUCKETS, 'ngrams_per_token': NGRAMS_PER_TOKEN,
                         'ngram_sizes': list(NGRAM_SIZES)},
            'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
    return model, meta, train_ex, val_ex


def _fit(args: argparse.Namespace, hp: Dict[str, Any], vocab: Dict[str, int],
         encoded: List[Any], seed: int, t0: float, log):
    """Train one network on the encoded batches with ``seed``; return it in eval mode."""
    import torch
    from torch import nn
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = build_model(len(vocab), len(INTENTS), len(TAGS), hp['word_dim'], hp['char_dim'],
                        hp['hidden'], hp['dropout'])
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                                total_steps=len(encoded) * args.epochs)
    ce = nn.CrossEntropyLoss(reduction='none')
    unk = vocab[UNK]
    for epoch in range(args.epochs):
        model.train()
        rng.shuffle(encoded)
        total = 0.0
        bar = tqdm(encoded, desc=f'epoch {epoch + 1}/{args.epochs}', unit='batch',
                   disable=args.no_progress, file=sys.stderr, leave=False)
        for batch, intents, tags in bar:
            words = torch.from_numpy(batch.words)
            drop = (torch.rand(words.shape) < hp['word_dropout']) & (words > 0)
            words = torch.where(drop, torch.full_like(words, unk), words)
            mask = torch.from_numpy(batch.mask)
            il, tl = model.logits(words, torch.from_numpy(batch.ngrams), mask,
                                  torch.from_numpy(batch.rev_index))
            loss_i = ce(il, torch.from_numpy(intents)).mean()
            loss_t = (ce(tl.reshape(-1, tl.shape[-1]), torch.from_numpy(tags).reshape(-1))
                      * mask.reshape(-1)).sum() / mask.sum()
            loss = loss_i + loss_t
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f'{float(loss.detach()):.3f}')
        model.eval()
        log(f'epoch {epoch + 1}/{args.epochs}: mean loss {total / len(encoded):.4f} '
            f'({time.time() - t0:.0f} s)')
    return model


# --- export -----------------------------------------------------------------------------

def export_onnx(model, meta: Dict[str, Any], out: Path, check_examples: Sequence[Dict[str, Any]]
                ) -> float:
    """
    Export to ONNX with metadata and check parity with PyTorch.

    :param model: the trained torch model (eval mode).
    :param meta: vocabulary, labels, version... (stored as ``metadata_props``).
    :param out: the ONNX file to write.
    :param check_examples: utterances whose padded batch is run through both backends.
    :return: the largest absolute probability difference found.
    :raises ModelError: when the difference exceeds :data:`PARITY_ATOL`.
    """
    import onnx
    import torch

    model.eval()
    sample = _encode(check_examples[:4], meta['vocab'])[0]
    args = tuple(torch.from_numpy(a) for a in (sample.words, sample.ngrams, sample.mask,
                                               sample.rev_index))
    out.parent.mkdir(parents=True, exist_ok=True)
    dyn = {'words': {0: 'batch', 1: 'tokens'}, 'ngrams': {0: 'batch', 1: 'tokens'},
           'mask': {0: 'batch', 1: 'tokens'}, 'rev_index': {0: 'batch', 1: 'tokens'},
           'intent_probs': {0: 'batch'}, 'tag_probs': {0: 'batch', 1: 'tokens'}}
    torch.onnx.export(model, args, str(out), input_names=['words', 'ngrams', 'mask',
                                                          'rev_index'],
                      output_names=['intent_probs', 'tag_probs'], dynamic_axes=dyn,
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(out))
    props = {'name': meta['name'], 'version': meta['version'],
             'package_version': meta['package_version'], 'created': meta['created'],
             'vocab': json.dumps(meta['vocab'], separators=(',', ':')),
             'intents': json.dumps(meta['intents']), 'tags': json.dumps(meta['tags']),
             'features': json.dumps(meta['features']), 'hparams': json.dumps(meta['hparams']),
             'train': json.dumps(meta['train']), 'parity_atol': str(PARITY_ATOL)}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = 'lepton_robot operator command parser (BiLSTM intent + BIO slots)'
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    diff = parity(model, out, meta, check_examples)
    if diff > PARITY_ATOL:
        raise ModelError(f'ONNX export differs from PyTorch by {diff:.2e} > {PARITY_ATOL:.0e}')
    return diff


def parity(model, onnx_path: Path, meta: Dict[str, Any],
           examples: Sequence[Dict[str, Any]]) -> float:
    """Return max |PyTorch - ONNX Runtime| over both outputs, batched and one by one."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    worst = 0.0
    groups = [list(examples[:256])] + [[ex] for ex in examples[:16]]
    for group in groups:
        batch = _encode(group, meta['vocab'])[0]
        with torch.inference_mode():
            ti, tt = model(*(torch.from_numpy(a) for a in (batch.words, batch.ngrams,
                                                           batch.mask, batch.rev_index)))
        oi, ot = sess.run(None, batch.as_feed())
        m = batch.mask[..., None] > 0
        worst = max(worst, float(np.abs(ti.numpy() - oi).max()),
                    float(np.abs(np.where(m, tt.numpy() - ot, 0.0)).max()))
    return worst


def save_checkpoint(model, meta: Dict[str, Any], path: Path) -> None:
    """Write the PyTorch weights and metadata (for benchmarks and the parity test)."""
    import torch
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, str(path))


def run(args: argparse.Namespace) -> int:
    """Train, export, check parity, evaluate on the validation split and report."""
    from lepton_robot.parser.evaluate import evaluate_examples
    from lepton_robot.parser.pipeline import ParserCore

    out = args.out or (paths.models_dir() / f'{MODEL_NAME}.onnx')
    model, meta, _train_ex, val_ex = train(args)
    diff = export_onnx(model, meta, out, val_ex)
    save_checkpoint(model, meta, out.with_suffix('.pt'))
    print(f'exported {out} ({out.stat().st_size / 1024:.0f} KiB), PyTorch vs ONNX Runtime '
          f'max |diff| {diff:.2e} (tolerance {PARITY_ATOL:.0e})')
    core = ParserCore(torch_predictor(model), meta['vocab'], meta['intents'], meta['tags'])
    report = evaluate_examples(core, [{'text': ex['text'], 'intent': ex['intent'],
                                       'slots': ex['slots']} for ex in val_ex])
    print('validation:', json.dumps({k: report[k] for k in
                                     ('n', 'intent_accuracy', 'slot_f1', 'exact_match',
                                      'safety_recall')}))
    return 0


def _cli_entry(argv: List[str]) -> int:  # pragma: no cover - convenience for python -m
    parser = argparse.ArgumentParser(description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':  # pragma: no cover
    sys.exit(_cli_entry(sys.argv[1:]))
