"""
Text sanitation, tokenisation and typo-tolerant normalisation of operator utterances.

Nothing here raises on bad input: :func:`sanitize` turns anything (``str``, ``bytes``,
other objects) into either clean text or a human-readable reason why it is not text an
operator could have said.
"""

from dataclasses import dataclass
from functools import lru_cache
import re
from typing import Dict, List, Optional, Tuple
import unicodedata

from lepton_robot.parser import lexicon

#: longest utterance accepted (characters); spoken commands are far shorter
MAX_CHARS = 512
#: longest utterance accepted (tokens)
MAX_TOKENS = 64

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+(?:[.,]\d+)?|[#%]")
#: a proper fraction written with a slash: ``3/4``, ``1 / 2``
#: a minus sign that starts a number (``-10``, not ``10-20`` or ``e-stop``)
_MINUS_RE = re.compile(r'(?<![\w.,])-\s*(?=\d)')
_FRACTION_RE = re.compile(r'(?<![\w.,/])(\d{1,3})\s*/\s*(\d{1,3})(?![\w.,/])')

_WHITESPACE = {'\t', '\n', '\r', '\x0b', '\x0c'}

#: common spellings normalised before anything else
_ALIASES: Dict[str, str] = {
    'dont': "don't", 'pls': 'please', 'plz': 'please', 'u': 'you', 'ur': 'your',
    'thx': 'thanks', 'wanna': 'want', 'gonna': 'going', 'e': 'e', 'estop': 'estop',
    "e'stop": 'estop', 'whats': "what's", 'hows': "how's", 'im': "i'm", 'ya': 'you',
    'doesnt': "doesn't", 'didnt': "didn't", 'cant': "can't", 'wont': "won't",
    'colour': 'color', 'colours': 'color', 'color': 'color', 'colors': 'color',
    'cyl': 'cylinder', 'no.': 'number', 'nr': 'number', 'num': 'number', 'pc': 'piece',
    'sec': 'second', 'mins': 'minute', 'pct': 'percent', 'les': 'less', 'sens': 'sensitivity',
    # the safety words' commonest short typos (too short for the corrector)
    'stp': 'stop', 'sotp': 'stop', 'sto': 'stop', 'hlt': 'halt', 'kil': 'kill',
}


@dataclass(frozen=True)
class Sanitized:
    """
    The outcome of :func:`sanitize`.

    ``text`` is the cleaned utterance or None when it was rejected; ``reason`` says why it
    was rejected; ``scan`` is text the safety fast path may still read (control characters
    replaced by spaces, at most :data:`MAX_CHARS` characters) even when ``text`` is None.
    """

    text: Optional[str]
    reason: Optional[str]
    scan: Optional[str]


def sanitize(raw: object) -> Sanitized:
    """
    Clean one raw utterance, or say why it cannot be parsed.

    Accepts ``str`` or UTF-8 ``bytes``. Rejected with a reason: other types, invalid UTF-8,
    empty or whitespace-only text, text longer than :data:`MAX_CHARS`, text with control
    characters (other than tab/newline) or unassigned/private/surrogate code points.
    Zero-width format characters (BOM, ZWSP) are dropped silently.

    :param raw: what arrived (any object).
    :return: a :class:`Sanitized`; never raises.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode('utf-8')
        except UnicodeDecodeError as exc:
            # rejected, but a stop in it still counts (the safety scan reads what decodes)
            scan = bytes(raw)[:4 * MAX_CHARS].decode('utf-8', errors='replace')
            return Sanitized(None, f'invalid UTF-8 at byte {exc.start}', _scan_text(scan))
    if not isinstance(raw, str):
        return Sanitized(None, f'not text ({type(raw).__name__})', None)
    if len(raw) > MAX_CHARS:
        return Sanitized(None, f'too long ({len(raw)} characters, limit {MAX_CHARS})',
                         _scan_text(raw))
    text, bad = _clean(raw)
    if bad:
        return Sanitized(None, f'{bad} control or invalid character(s)', text or None)
    if not text:
        return Sanitized(None, 'empty' if not raw else 'only whitespace', None)
    return Sanitized(text, None, text)


def _clean(raw: str) -> Tuple[str, int]:
    """
    Return ``raw`` with whitespace runs collapsed and the number of bad characters in it.

    Control, surrogate, private-use and unassigned characters count as bad and become
    spaces; zero-width format characters (BOM, ZWSP) are dropped.
    """
    kept = []
    bad = 0
    for ch in raw:
        if ch in _WHITESPACE:
            kept.append(' ')
            continue
        cat = unicodedata.category(ch)
        if cat == 'Cf':
            continue
        if cat in ('Cc', 'Cs', 'Co', 'Cn'):
            bad += 1
            kept.append(' ')
            continue
        kept.append(ch)
    return ' '.join(''.join(kept).split()), bad


def _scan_text(raw: str) -> Optional[str]:
    """
    Return the first :data:`MAX_CHARS` characters, cleaned, for the safety scan.

    As much as an utterance may hold: the scan corrects typos word by word, and 4096
    random letters took 66 ms (a flood of long garbage must not stall the parser).
    """
    return _clean(raw[:MAX_CHARS])[0] or None


def _fraction_as_decimal(match: 're.Match') -> str:
    num, den = int(match.group(1)), int(match.group(2))
    if den == 0 or num > den:
        return match.group(0)
    text = f'{num / den:.4f}'.rstrip('0')
    return text + '0' if text.endswith('.') else text


def tokenize(text: str) -> List[str]:
    """
    Split clean text into lower-case tokens (words, numbers, ``#`` and ``%``).

    Punctuation other than ``#``/``%`` is dropped; hyphens split words (``e-stop`` gives
    ``e``, ``stop``); apostrophes stay inside words (``don't``). A proper fraction with a
    slash becomes its decimal (``3/4`` gives ``0.75``, which values read as 75 %); other
    slashes split numbers as any punctuation does. A minus sign that starts a number is the
    word ``minus`` (``-10`` gives ``minus``, ``10``), so that values can refuse it.

    :param text: cleaned text (see :func:`sanitize`).
    :return: the tokens.
    """
    text = unicodedata.normalize('NFKC', text).casefold().replace('\u2019', "'")
    if '/' in text:
        text = _FRACTION_RE.sub(_fraction_as_decimal, text)
    if '-' in text:
        text = _MINUS_RE.sub(' minus ', text)
    return _TOKEN_RE.findall(text)


def _deletes(word: str, depth: int) -> set:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        nxt = set()
        for w in frontier:
            for i in range(len(w)):
                nxt.add(w[:i] + w[i + 1:])
        out |= nxt
        frontier = nxt
    return out


def edit_distance(a: str, b: str) -> int:
    """Return the optimal-string-alignment edit distance of ``a`` and ``b``."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


class _Corrector:
    """Symmetric-delete index over the domain words (fast 1-2 edit typo correction)."""

    def __init__(self) -> None:
        self.words = lexicon.domain_words()
        # ties go to slot-value words first (they carry the meaning), then alphabetical
        slot_words = lexicon.slot_words()
        self.rank = {w: (0 if w in slot_words else 1, w) for w in self.words}
        self.index: Dict[str, List[str]] = {}
        for word in self.words:
            if len(word) < 4:
                continue
            for d in _deletes(word, _max_edits(len(word))):
                self.index.setdefault(d, []).append(word)

    def correct(self, token: str) -> str:
        if (token in self.words or token in lexicon.PROTECTED_WORDS
                or token in lexicon.COMMON_WORDS or len(token) < 4 or not token.isalpha()):
            return token
        limit = _max_edits(len(token))
        best: Tuple[int, tuple, str] = (limit + 1, (), token)
        for d in _deletes(token, limit):
            for cand in self.index.get(d, ()):
                if abs(len(cand) - len(token)) > limit:
                    continue
                dist = edit_distance(token, cand)
                if dist <= min(limit, _max_edits(len(cand))):
                    # a dropped letter is the commonest typo: prefer longer candidates
                    key = (dist, (0 if len(cand) > len(token) else 1, *self.rank[cand]),
                           cand)
                    if key < best:
                        best = key
        return best[2]


def _max_edits(length: int) -> int:
    return 1 if length < 7 else 2


_CORRECTOR: Optional[_Corrector] = None


@lru_cache(maxsize=8192)
def normalize_token(token: str) -> str:
    """
    Map one token to its normal form: alias table, then typo correction to a domain word.

    Tokens of 4-6 letters are corrected within one edit (insert, delete, substitute,
    transpose), longer ones within two; short tokens, numbers and protected common words
    are kept.

    :param token: a token from :func:`tokenize`.
    :return: the normalised token.
    """
    global _CORRECTOR
    token = _ALIASES.get(token, token)
    if _CORRECTOR is None:
        _CORRECTOR = _Corrector()
    return _CORRECTOR.correct(token)


def normalize_tokens(tokens: List[str]) -> List[str]:
    """Normalise every token (see :func:`normalize_token`)."""
    return [normalize_token(t) for t in tokens]
