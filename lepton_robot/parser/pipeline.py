"""
The parse pipeline around any joint intent + slot model: text in, ``lepton.intent/1`` out.

``sanitize -> tokenize -> normalise -> safety scan -> model -> BIO decode -> canonical slot
values -> confidence floor``. The model is a plain callable on a feature :class:`Batch`
(ONNX Runtime at run time, PyTorch in training and benchmarks), so every backend shares the
same pre- and post-processing. :meth:`ParserCore.parse` never raises.
"""

import logging
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from lepton_robot.interfaces import (INTENT_SLOTS, INTENTS, make_intent,
                                     REASON_NEGATED_COMMAND, REASON_NO_SUCH_PARTS,
                                     REASON_RULE_EDITING)
from lepton_robot.parser import lexicon, safety, text as textmod, values
from lepton_robot.parser.features import Batch, encode_batch, NUM, UNK, word_key
import numpy as np

LOG = logging.getLogger(__name__)

#: the model callable: batch -> (intent probabilities [B, I], tag probabilities [B, T, L])
Predictor = Callable[[Batch], Tuple[np.ndarray, np.ndarray]]

DEFAULT_CONFIDENCE_FLOOR = 0.5


def bio_spans(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """
    Return ``(slot, start, end)`` spans of a BIO tag sequence (end exclusive).

    An ``I-x`` that does not continue an ``x`` span starts a new one.
    """
    spans: List[Tuple[str, int, int]] = []
    current: Optional[List] = None
    for i, tag in enumerate(tags):
        if tag.startswith('B-') or (tag.startswith('I-') and
                                    (current is None or current[0] != tag[2:])):
            if current is not None:
                spans.append(tuple(current))
            current = [tag[2:], i, i + 1]
        elif tag.startswith('I-'):
            current[2] = i + 1
        else:
            if current is not None:
                spans.append(tuple(current))
            current = None
    if current is not None:
        spans.append(tuple(current))
    return spans


def _text_field(raw: object) -> str:
    """Return a printable, JSON-safe ``text`` for any input (rejected input included)."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)[:textmod.MAX_CHARS].decode('utf-8', errors='replace')
    elif not isinstance(raw, str):
        raw = f'<{type(raw).__name__}>'
    raw = raw[:textmod.MAX_CHARS]
    return raw.encode('utf-8', errors='replace').decode('utf-8')


class ParserCore:
    """
    Parse utterances with a joint intent + slot model and the model-free rules around it.

    :param predict: the model callable (see :data:`Predictor`).
    :param vocab: word -> id of the model.
    :param intents: intent label of each intent output.
    :param tags: BIO tag of each tag output.
    :param confidence_floor: below it the answer is ``unknown`` (0..1).
    """

    def __init__(self, predict: Predictor, vocab: Dict[str, int], intents: Sequence[str],
                 tags: Sequence[str], confidence_floor: float = DEFAULT_CONFIDENCE_FLOOR
                 ) -> None:
        unknown_labels = set(intents) - set(INTENTS)
        if unknown_labels:
            raise ValueError(f'model intents not in the contract: {sorted(unknown_labels)}')
        self._predict = predict
        self.vocab = dict(vocab)
        self.intents = list(intents)
        self.tags = list(tags)
        self.confidence_floor = float(confidence_floor)

    # -- public API --------------------------------------------------------------------
    def parse(self, raw: object) -> Dict[str, Any]:
        """Parse one utterance into a ``lepton.intent/1`` payload; never raises."""
        return self.parse_batch([raw])[0]

    def parse_batch(self, raws: Sequence[object]) -> List[Dict[str, Any]]:
        """Parse utterances in one model call; one payload per input, in order."""
        results: List[Optional[Dict[str, Any]]] = [None] * len(raws)
        todo: List[Tuple[int, str, List[str], List[str], Optional[Tuple[str, str]]]] = []
        for i, raw in enumerate(raws):
            try:
                early, prepared = self._prepare(raw)
            except Exception as exc:  # noqa: BLE001 - the parser must never raise to callers
                LOG.exception('parser pre-processing failed')
                early, prepared = self._unknown(raw, f'internal error: {exc}'), None
            if early is not None:
                results[i] = early
            else:
                todo.append((i, *prepared))
        if todo:
            self._run_model(raws, todo, results)
        return results

    # -- internals ---------------------------------------------------------------------
    def _is_word(self, token: str) -> bool:
        """Say whether a token is a known word that is not a number (``speed``, not ``40``)."""
        return (len(token) > 1 and token.isalpha() and token not in _NUMBER_WORDS
                and self.vocab.get(word_key(token), 0) not in (0, self.vocab.get(UNK)))

    def _unknown(self, raw: object, reason: str, confidence: float = 1.0) -> Dict[str, Any]:
        return make_intent(_text_field(raw), 'unknown', {}, min(max(confidence, 0.0), 1.0),
                           reason=reason)

    def _safety(self, raw: object, hit: Tuple[str, str]) -> Dict[str, Any]:
        intent, words = hit
        return make_intent(_text_field(raw), intent, {}, 1.0,
                           reason=f'safety rule: "{words}"')

    def _prepare(self, raw: object):
        clean = textmod.sanitize(raw)
        if clean.text is None:
            if clean.scan:
                hit = safety.scan(clean.scan)       # at most MAX_CHARS: sanitize cuts it
                if hit is not None:
                    return self._safety(raw, hit), None
            return self._unknown(raw, clean.reason), None
        hit = safety.scan(clean.text)
        tokens = textmod.tokenize(clean.text)
        if hit is not None:
            return self._safety(raw, hit), None
        if not tokens:
            return self._unknown(raw, 'no words'), None
        if len(tokens) > textmod.MAX_TOKENS:
            return self._unknown(raw, f'too many words ({len(tokens)}, limit '
                                      f'{textmod.MAX_TOKENS})'), None
        norm = textmod.normalize_tokens(tokens)
        if all(self.vocab.get(word_key(t), 0) in (0, self.vocab.get(UNK)) for t in norm):
            return self._unknown(raw, 'out of domain: no known words'), None
        if not any(self._is_word(t) for t in norm):
            # '42', '{0}', 'half': the model alone set the belt speed from them
            return self._unknown(raw, 'only numbers: say what to set (e.g. "speed to 40 '
                                      'percent")'), None
        return None, (clean.text, tokens, norm, hit)

    def _run_model(self, raws, todo, results) -> None:
        try:
            batch = encode_batch([t[2] for t in todo], [t[3] for t in todo], self.vocab)
            intent_probs, tag_probs = self._predict(batch)
        except Exception as exc:  # noqa: BLE001 - degrade to unknown, never raise
            LOG.exception('parser model failed')
            for i, *_ in todo:
                results[i] = self._unknown(raws[i], f'model error: {exc}')
            return
        for row, (i, _text, tokens, norm, _hit) in enumerate(todo):
            try:
                results[i] = self._decode(raws[i], _text, tokens, norm, intent_probs[row],
                                          tag_probs[row, :len(tokens)])
            except Exception as exc:  # noqa: BLE001 - degrade to unknown, never raise
                LOG.exception('parser decoding failed')
                results[i] = self._unknown(raws[i], f'internal error: {exc}')

    def _decode(self, raw: object, text: str, tokens: List[str], norm: List[str],
                intent_p: np.ndarray, tag_p: np.ndarray) -> Dict[str, Any]:
        if not np.all(np.isfinite(intent_p)):
            return self._unknown(raw, 'model output not finite')
        best = int(np.argmax(intent_p))
        intent = self.intents[best]
        conf = float(intent_p[best])
        if intent == 'unknown':
            negation = negated_command(tokens)
            if negation:        # the same answer as the guard below gives a negated action
                return self._unknown(raw, f'{REASON_NEGATED_COMMAND} ("{negation}"): not '
                                          'acted on', conf)
            return self._unknown(raw, 'out of domain', conf)
        if conf < self.confidence_floor:
            return self._unknown(raw, f'low confidence ({intent} {conf:.2f} < '
                                      f'{self.confidence_floor:.2f})', 1.0 - conf)
        if intent in NEGATABLE_INTENTS:
            refused = self._not_this_command(raw, text, tokens, intent)
            if refused is not None:
                return refused
        tags = [self.tags[int(k)] for k in np.argmax(tag_p, axis=-1)]
        slots: Dict[str, Any] = {}
        spans: Dict[str, Tuple[int, int]] = {}
        allowed = INTENT_SLOTS[intent]
        for slot, start, end in bio_spans(tags):
            if slot not in allowed or slot in slots:
                continue
            value = values.canonicalize(slot, norm[start:end])
            if slot == 'defect' and start > 0 and norm[start - 1] == 'non':
                value = _NON_DEFECT.get(value)      # non-defective: no defect
            if slot == 'bin' and not _names_a_bin(norm, start, end):
                value = None                        # 'the third one' is not bin three
            if value is not None:
                slots[slot] = value
                spans[slot] = (start, end)
        if 'value' in spans:
            _absolute_or_relative(tokens, norm, spans['value'], slots)
        _implied_slots(intent, tokens, slots)
        return make_intent(_text_field(raw), intent, slots, conf)

    def _not_this_command(self, raw: object, text: str, tokens: List[str],
                          intent: str) -> Optional[Dict[str, Any]]:
        """
        Return what to answer instead of the action ``intent``, or None to answer it.

        A question about the action is ``status``; a request to edit the rules, a sort, pick
        or inspect of a colour or shape the cell does not make, a negated command and a sort
        or pick that excludes parts are ``unknown``.
        """
        if asks_about(text, tokens):
            slots: Dict[str, Any] = {}
            _implied_slots('status', tokens, slots)
            return make_intent(_text_field(raw), 'status', slots, 1.0,
                               reason=f'a question, not a command ({intent} not acted on)')
        if rule_editing(tokens):
            return self._unknown(raw, f'{REASON_RULE_EDITING} is not in the command language '
                                      '(only "sort" adds a rule): not acted on')
        if intent in ('sort', 'pick', 'inspect'):
            other = _other_part(tokens)
            if other is not None:
                return self._unknown(raw, f'{REASON_NO_SUCH_PARTS}: "{other}" (colours: red, '
                                          'green, blue, yellow, gray; shapes: block, '
                                          'cylinder, plate): not acted on')
        negation = negated_command(tokens)
        if negation is None and intent in ('sort', 'pick'):
            negation = excluded_parts(tokens)
        if negation:
            return self._unknown(raw, f'{REASON_NEGATED_COMMAND} ("{negation}"): not acted on')
        return None


#: what a colour may describe other than a part: ``white stains``, ``black marks``
_MARKS = frozenset({'mark', 'marks', 'spot', 'spots', 'streak', 'streaks', 'residue',
                    'dust', 'dirt', 'smudge', 'smudges', 'line', 'lines'})


def _other_part(tokens: Sequence[str]) -> Optional[str]:
    """Return a colour or shape word that no part of this cell has (``orange``), or None."""
    for i, tok in enumerate(tokens):
        if tok in lexicon.OTHER_SHAPES:
            return tok
        if tok in lexicon.OTHER_COLORS:
            after = tokens[i + 1] if i + 1 < len(tokens) else ''
            if after not in _MARKS and after not in lexicon.DEFECT_WORDS:
                return tok
    return None


#: words that only say a number (``forty``, ``half``, ``percent``)
_NUMBER_WORDS = frozenset(lexicon.UNITS) | frozenset(lexicon.TENS) | frozenset(
    lexicon.VALUE_WORDS) | lexicon.PERCENT_WORDS | frozenset(lexicon.ORDINALS) | {'and', 'point'}

#: intents that a leading negation would turn into their opposite
NEGATABLE_INTENTS = frozenset({'start', 'pause', 'sort', 'pick', 'inspect', 'set_speed',
                               'set_sensitivity', 'home'})
_LEADING_FILLERS = frozenset({'please', 'ok', 'okay', 'so', 'um', 'uh', 'er', 'erm', 'hey',
                              'robot', 'lepton', 'alright', 'right', 'well', 'oh', 'just',
                              'and', 'but', 'then', 'now', 'kindly', 'actually'})
_NEGATION_STARTS = (("don't",), ('dont',), ('do', 'not'), ('never',), ('no', 'need'),
                    ("let's", 'not'), ('lets', 'not'), ('you', "don't"), ('you', 'dont'))
#: a negated stop or pause asks to go on: the model answers those (trained on them)
_HOLD_WORDS = frozenset({'stop', 'halt', 'freeze', 'cease', 'pause', 'wait', 'hold'})


def _first_word(tokens: Sequence[str]) -> int:
    """Return the index of the first token after the leading fillers (``ok please ...``)."""
    i = 0
    while i < len(tokens) and tokens[i] in _LEADING_FILLERS:
        i += 1
    return i


def negated_command(tokens: Sequence[str]) -> Optional[str]:
    """
    Return the negation that opens the command (``don't``, ``do not``, ``never``...), or None.

    ``don't put scratched parts in rework`` and ``never send cracked ones to accept`` ask
    for the opposite of the rule their other words state; a model that reads the words
    would set that rule. Such an utterance is ``unknown`` (the supervisor never acts on
    it), as a negated stop is. Leading fillers are skipped; a negated stop or pause (``don't
    stop, keep going``) is left to the model.
    """
    toks = [t for t in tokens if t not in ('#', '%')]
    i = _first_word(toks)
    for start in _NEGATION_STARTS:
        if tuple(toks[i:i + len(start)]) == start:
            rest = toks[i + len(start):]
            if rest[:1] and rest[0] in _HOLD_WORDS:
                return None
            return ' '.join(start)
    return None


#: how a question opens: a word, or a word and the words that may follow it (``when will``,
#: not ``when a part is scratched put it in rework``)
_QUESTION_OPENERS = {'did': None, 'was': None, 'were': None, 'why': None, 'where': None,
                     'has': None, 'is': None, 'are': None,
                     'when': {'will', 'did', 'do', 'does', 'are', 'is', 'can', 'would'},
                     'have': {'you', 'we', 'i', 'they'}, 'do': {'you', 'we', 'i'},
                     'how': {'do', 'did', 'does', 'can', 'is', 'are', 'come'},
                     'should': {'i', 'we'}}
_SENTENCE_BREAK = re.compile(r'[.!?;]\s*\w')


def asks_about(text: str, tokens: Sequence[str]) -> bool:
    """
    Return True when the utterance is one question (``did you pick part 4``).

    A question about an action is not the action: the model alone answered ``did you pick
    part 4`` with a pick of part 4 and ``when will you resume`` with a start. Such an
    utterance becomes ``status`` (it never moves anything). Requests phrased as questions
    (``can you pick part 4``, ``could you start``) are commands and are not matched; an
    utterance of more than one sentence (``is part 5 really bad? look again``) is left to
    the model.
    """
    if _SENTENCE_BREAK.search(text):
        return False
    toks = list(tokens)
    i = _first_word(toks)
    if i >= len(toks) or toks[i] not in _QUESTION_OPENERS:
        return False
    follow = _QUESTION_OPENERS[toks[i]]
    return follow is None or (i + 1 < len(toks) and toks[i + 1] in follow)


#: (not ``drop`` / ``scrap``: those sort parts, ``scrap bin``, ``drop them in rework``)
_EDIT_VERBS = frozenset({'clear', 'reset', 'remove', 'delete', 'forget', 'erase', 'cancel',
                         'undo', 'revert', 'restore', 'wipe'})
_RULE_WORDS = frozenset({'rule', 'rules', 'settings'})
_DEFAULT_WORDS = frozenset({'default', 'defaults'})


def rule_editing(tokens: Sequence[str]) -> bool:
    """
    Return True for a request to edit or reset the sorting rules.

    ``clear all rules``, ``remove the rule for scratched parts``, ``go back to default
    sorting``.

    The command language has no such intent; the model, which never saw one, read ``clear
    all rules`` as ``start`` and ``remove the rule for scratched parts`` as a ``sort``.
    """
    words = set(tokens)
    return bool(words & _DEFAULT_WORDS) or (bool(words & _EDIT_VERBS) and
                                            bool(words & (_RULE_WORDS | _DEFAULT_WORDS)))


_EXCLUDING_WORDS = frozenset({'not', 'never', "don't", 'dont', "doesn't", "shouldn't",
                              "mustn't", "won't", "isn't", "aren't", "can't", 'cannot',
                              'except', 'excluding', 'without'})
_EXCLUDING_PAIRS = (('no', 'longer'), ('other', 'than'), ('apart', 'from'), ('rather', 'than'))
#: ``non-defective`` is the ``none`` filter; ``non`` before a named defect is an exclusion
_NON_DEFECT = {'any': 'none', 'none': 'any'}


def excluded_parts(tokens: Sequence[str]) -> Optional[str]:
    """
    Return a negation or exception anywhere in a sorting or picking command, or None.

    ``scratched parts should not go to accept`` and ``everything except scratched parts in
    accept`` name the parts that must *not* go to the bin; the rule their words state is
    the opposite, and it would send defective parts to ``accept``. Those are ``unknown``.
    ``no defects`` and ``non-defective`` (the ``none`` filter) are not negations here;
    ``non`` before a named defect (``non-scratched``) is.
    """
    for i, tok in enumerate(tokens):
        if tok in _EXCLUDING_WORDS:
            return tok
        if tok == 'non' and i + 1 < len(tokens) and \
                lexicon.DEFECT_WORDS.get(tokens[i + 1]) not in ('any', 'none'):
            return ' '.join(tokens[i:i + 2])
        if tuple(tokens[i:i + 2]) in _EXCLUDING_PAIRS:
            return ' '.join(tokens[i:i + 2])
    return None


#: words after a number that make it a change, not a target (``10 percent faster``)
_COMPARATIVES = frozenset({'faster', 'slower', 'quicker', 'higher', 'lower', 'more', 'less',
                           'stricter', 'looser', 'up', 'down'})


def _absolute_or_relative(tokens: Sequence[str], norm: Sequence[str], span: Tuple[int, int],
                          slots: Dict[str, Any]) -> None:
    """
    Tell a target (``to 30 percent``) from a change (``by 10 percent``) for ``value``.

    This project's reading (the contract leaves it open), which the supervisor follows:
    ``value`` alone is the target; ``value`` with ``direction`` is a change of that many
    points in that direction. So a value after ``to``/``at`` loses any ``direction``
    (``slow down to 30 percent`` is 30), and a value after ``by``/``up``/``down``, or
    followed by a comparative (``10 percent faster``), keeps or gains the direction that
    the other words give (``speed up by 10 percent`` is up 10, not a target of 10). A
    change by a word rather than a number (``by half``) keeps only the direction, a plain
    step; a change with no direction word (``change the speed by 10``) keeps neither, and
    the supervisor asks. A negative number (``minus 5``, ``-5``) is no value at all.
    """
    start, end = span
    before = norm[start - 1] if start > 0 else ''
    after = norm[end] if end < len(norm) else ''
    if before in ('minus', 'negative') or 'minus' in norm[start:end]:
        # a negative percentage is no setting: the model kept the number (5 for -5)
        slots.pop('value', None)
        return
    if before in ('to', 'at'):
        slots.pop('direction', None)
        return
    if before not in ('by', 'up', 'down') and after not in _COMPARATIVES:
        return
    if 'direction' not in slots:
        rest = list(tokens[:start]) + list(tokens[end:])
        direction = values.canonical_direction(rest)
        if direction is not None:
            slots['direction'] = direction
    if 'direction' not in slots or values.parse_number(norm[start:end]) is None:
        slots.pop('value', None)


#: words that make a number or an ordinal a bin: ``bin two``, ``the third bin``
_BIN_NOUNS = frozenset({'bin', 'bins', 'pile', 'tray', 'bucket', 'container'})


def _names_a_bin(norm: Sequence[str], start: int, end: int) -> bool:
    """
    Say whether a ``bin`` span names a bin, not only a number or an ordinal.

    The contract numbers the bins (``bin two``, ``the second bin``), but a bare ordinal or
    number is a part, not a bin: ``take the third one`` must not send a part to ``rework``.
    A span passes when it holds a bin's name (``scrap``, ``rework``) or when a bin noun is in
    it or within two words after it.
    """
    if any(tok in lexicon.BIN_WORDS for tok in norm[start:end]):
        return True
    return any(tok in _BIN_NOUNS for tok in norm[start:end + 2])


def _implied_slots(intent: str, tokens: Sequence[str], slots: Dict[str, Any]) -> None:
    """
    Fill the one slot an intent needs when the tagger found none but a word clearly implies it.

    ``set_speed`` / ``set_sensitivity`` with neither ``value`` nor ``direction``: the
    direction the utterance's polarity words give (``slow the belt a bit`` is down);
    ``status`` without ``query``: the query its keywords give (``are we running`` is
    ``state``). Nothing is filled when no word implies a value. The words must be spelt
    as typed (``tokens``, not typo-corrected): without the tagger's context a corrected
    word is too weak a cue (``mate`` is one edit from ``rate``).
    """
    if intent in ('set_speed', 'set_sensitivity') and not {'value', 'direction'} & set(slots):
        direction = values.canonical_direction(tokens)
        if direction is not None:
            slots['direction'] = direction
    elif intent == 'status' and 'query' not in slots:
        query = values.canonical_query(tokens)
        if query is not None:
            slots['query'] = query


def known_fraction(norm_tokens: Sequence[str], vocab: Dict[str, int]) -> float:
    """Return the fraction of tokens the vocabulary knows (numbers count as known)."""
    if not norm_tokens:
        return 0.0
    unk = vocab.get(UNK)
    known = sum(1 for t in norm_tokens if vocab.get(word_key(t), unk) != unk
                or word_key(t) == NUM)
    return known / len(norm_tokens)
