"""
Token features shared by training and runtime (numpy only).

Each token gets a word id (its normalised form in the vocabulary, numbers as ``<num>``,
anything else ``<unk>``) and up to :data:`NGRAMS_PER_TOKEN` hashed character n-grams of
its raw lower-case form, so an unseen word or a typo the corrector missed still shares
most features with the word it resembles. Batches are right-padded; ``rev_index`` lets the
model run its backward LSTM over each sequence's own tokens only, so a padded batch gives
exactly the outputs of single utterances.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence
import zlib

import numpy as np

PAD = '<pad>'
UNK = '<unk>'
NUM = '<num>'
#: hash buckets of the character n-grams (bucket 0 is padding)
NGRAM_BUCKETS = 4096
NGRAMS_PER_TOKEN = 16
NGRAM_SIZES = (2, 3, 4)


def word_key(norm_token: str) -> str:
    """Return the vocabulary key of a normalised token (numbers collapse to ``<num>``)."""
    if norm_token[:1].isdigit():
        return NUM
    return norm_token


def token_ngrams(raw_token: str) -> List[int]:
    """
    Return the hashed character n-gram ids (1..NGRAM_BUCKETS-1) of one raw token.

    The whole word and its 2-, 3- and 4-grams with boundary marks, de-duplicated, at most
    :data:`NGRAMS_PER_TOKEN`.
    """
    word = f'<{raw_token[:24]}>'
    grams = [word]
    for n in NGRAM_SIZES:
        grams.extend(word[i:i + n] for i in range(len(word) - n + 1))
    ids: List[int] = []
    seen = set()
    for gram in grams:
        h = 1 + zlib.crc32(gram.encode('utf-8')) % (NGRAM_BUCKETS - 1)
        if h not in seen:
            seen.add(h)
            ids.append(h)
        if len(ids) == NGRAMS_PER_TOKEN:
            break
    return ids


@dataclass
class Batch:
    """Model inputs for a batch of token sequences (right-padded to the longest)."""

    words: np.ndarray      # [B, T] int64
    ngrams: np.ndarray     # [B, T, K] int64
    mask: np.ndarray       # [B, T] float32, 1 on tokens
    rev_index: np.ndarray  # [B, T] int64, reversal of each sequence inside its length

    def as_feed(self) -> Dict[str, np.ndarray]:
        """Return the ONNX Runtime input feed."""
        return {'words': self.words, 'ngrams': self.ngrams, 'mask': self.mask,
                'rev_index': self.rev_index}


def encode_batch(raw_tokens: Sequence[Sequence[str]], norm_tokens: Sequence[Sequence[str]],
                 vocab: Dict[str, int]) -> Batch:
    """
    Encode token sequences as model inputs.

    :param raw_tokens: per utterance, the tokens as typed (lower-case).
    :param norm_tokens: per utterance, the normalised tokens (same lengths).
    :param vocab: word -> id, with ``<pad>`` = 0 and ``<unk>`` present.
    :return: the padded :class:`Batch` (every sequence has at least one position).
    """
    size = len(raw_tokens)
    length = max([1] + [len(t) for t in raw_tokens])
    words = np.zeros((size, length), dtype=np.int64)
    ngrams = np.zeros((size, length, NGRAMS_PER_TOKEN), dtype=np.int64)
    mask = np.zeros((size, length), dtype=np.float32)
    rev = np.tile(np.arange(length, dtype=np.int64), (size, 1))
    unk = vocab[UNK]
    for b, (raw, norm) in enumerate(zip(raw_tokens, norm_tokens)):
        n = len(raw)
        for t, (rtok, ntok) in enumerate(zip(raw, norm)):
            words[b, t] = vocab.get(word_key(ntok), unk)
            ids = token_ngrams(rtok)
            ngrams[b, t, :len(ids)] = ids
        mask[b, :n] = 1.0
        rev[b, :n] = np.arange(n - 1, -1, -1)
    return Batch(words, ngrams, mask, rev)
