"""
Slot values: from the words of a tagged span to the canonical values of commands.md.

Every function takes normalised tokens (see :mod:`lepton_robot.parser.text`) and returns
the canonical value or None when the words do not state one; nothing raises.
"""

from typing import Callable, Dict, List, Optional, Sequence, Union

from lepton_robot.parser import lexicon

Number = Union[int, float]


def parse_number(tokens: Sequence[str]) -> Optional[Number]:
    """
    Read the first number in ``tokens``: digits (``40``, ``0.4``, ``4,5``) or words.

    Number words: ``forty five``, ``fifty-five`` (already split), ``one hundred``,
    ``a hundred``, ``hundred and five``, ``twelve``. ``oh`` counts as zero only next to
    other number words.

    :param tokens: normalised tokens.
    :return: the number, or None when there is none.
    """
    for i, tok in enumerate(tokens):
        if tok[:1].isdigit():
            try:
                return _digits(tok)
            except ValueError:
                return None
        if tok in lexicon.UNITS or tok in lexicon.TENS or tok == 'hundred':
            if tok == 'oh' and not _is_number_word(tokens, i + 1):
                continue
            return _words_number(tokens, i)
    return None


def _digits(tok: str) -> Number:
    tok = tok.replace(',', '.')
    if '.' in tok:
        return float(tok)
    return int(tok)


def _is_number_word(tokens: Sequence[str], i: int) -> bool:
    return i < len(tokens) and (tokens[i] in lexicon.UNITS or tokens[i] in lexicon.TENS)


def _words_number(tokens: Sequence[str], start: int) -> int:
    total = 0
    current = 0
    i = start
    seen = False
    while i < len(tokens):
        tok = tokens[i]
        if tok in lexicon.UNITS:
            if seen and current % 10 == 0 and current >= 20 and lexicon.UNITS[tok] < 10:
                current += lexicon.UNITS[tok]
            elif seen and current and current % 100 != 0:
                break
            else:
                current += lexicon.UNITS[tok]
        elif tok in lexicon.TENS:
            if seen and current % 100 != 0:
                break
            current += lexicon.TENS[tok]
        elif tok == 'hundred':
            current = (current or 1) * 100
        elif tok == 'and' and seen and i + 1 < len(tokens) and _is_number_word(tokens, i + 1):
            pass
        else:
            break
        seen = True
        i += 1
    return total + current


def canonical_value(tokens: Sequence[str]) -> Optional[Number]:
    """
    Return a percentage 0..100 from a value span.

    ``40``, ``forty``, ``40 percent`` give 40; a decimal fraction up to 1 (``0.4``) is a
    fraction (40); ``half`` 50, ``full``/``max`` 100, ``quarter`` 25, ``three quarters``
    75. Out-of-range numbers give None.
    """
    toks = list(tokens)
    num = parse_number(toks)
    if any(t in ('quarter', 'quarters') for t in toks):
        num = 75 if any(t in ('three', '3') for t in toks) else 25
    elif num is None:
        for tok in toks:
            if tok in lexicon.VALUE_WORDS:
                num = lexicon.VALUE_WORDS[tok]
                break
    elif isinstance(num, float) and num <= 1.0 and not _says_percent(toks):
        num = num * 100.0
    if num is None or not 0 <= num <= 100:
        return None
    if isinstance(num, float):
        num = round(num, 2)
        if num == int(num):
            num = int(num)
    return num


def _says_percent(tokens: Sequence[str]) -> bool:
    return any(t in lexicon.PERCENT_WORDS for t in tokens)


def canonical_part_id(tokens: Sequence[str]) -> Optional[int]:
    """Return a part number (integer >= 0) from a span like ``#12`` or ``part twelve``."""
    num = parse_number(tokens)
    if num is None or isinstance(num, float) and num != int(num):
        return None
    num = int(num)
    return num if num >= 0 else None


def canonical_bin(tokens: Sequence[str]) -> Optional[str]:
    """Return the bin of a span: bin 1/2/3 by number or ordinal, else by name."""
    for tok in tokens:
        if tok in lexicon.ORDINALS and lexicon.ORDINALS[tok] in lexicon.BIN_NUMBERS:
            return lexicon.BIN_NUMBERS[lexicon.ORDINALS[tok]]
    num = parse_number(tokens)
    if num is not None:
        return lexicon.BIN_NUMBERS.get(num)
    for tok in tokens:
        if tok in lexicon.BIN_WORDS:
            return lexicon.BIN_WORDS[tok]
    return None


def canonical_defect(tokens: Sequence[str]) -> Optional[str]:
    """Return the defect of a span; a negation (``no defects``, ``not damaged``) is ``none``."""
    negated = any(t in lexicon.NEGATIONS for t in tokens)
    for tok in tokens:
        value = lexicon.DEFECT_WORDS.get(tok)
        if value is not None:
            if negated and value == 'any':
                return 'none'
            return value
    return None


def _lookup(table: Dict[str, str]) -> Callable[[Sequence[str]], Optional[str]]:
    def find(tokens: Sequence[str]) -> Optional[str]:
        for tok in tokens:
            if tok in table:
                return table[tok]
        return None
    return find


canonical_color = _lookup(lexicon.COLOR_WORDS)
canonical_shape = _lookup(lexicon.SHAPE_WORDS)
canonical_position = _lookup(lexicon.POSITION_WORDS)


def canonical_direction(tokens: Sequence[str]) -> Optional[str]:
    """
    Return ``up``/``down`` from a span of polarity words.

    ``less`` flips (``less strict`` is down); ``too`` asks for the opposite (``too fast``
    is down, ``too picky`` is down); ``not ... enough`` keeps it (``not strict enough`` is
    up).
    """
    toks = list(tokens)
    words = [lexicon.DIRECTION_WORDS[t] for t in toks
             if t in lexicon.DIRECTION_WORDS and t not in ('more', 'less')]
    sign = words[0] if words else 0
    if 'less' in toks:
        sign = -sign if sign else -1
    elif 'more' in toks and not sign:
        sign = 1
    if 'enough' not in toks and ('too' in toks or 'not' in toks):
        sign = -sign
    if sign > 0:
        return 'up'
    if sign < 0:
        return 'down'
    return None


def canonical_query(tokens: Sequence[str]) -> Optional[str]:
    """Return the status query of a span (``how many`` counts, ``scrap rate``...)."""
    found: List[str] = [lexicon.QUERY_WORDS[t] for t in tokens if t in lexicon.QUERY_WORDS]
    for preferred in ('defect_rate', 'counts', 'last_part', 'state'):
        if preferred in found:
            return preferred
    return None


CANONICALIZERS: Dict[str, Callable[[Sequence[str]], object]] = {
    'defect': canonical_defect,
    'color': canonical_color,
    'shape': canonical_shape,
    'bin': canonical_bin,
    'position': canonical_position,
    'part_id': canonical_part_id,
    'value': canonical_value,
    'direction': canonical_direction,
    'query': canonical_query,
}


def canonicalize(slot: str, tokens: Sequence[str]) -> Optional[object]:
    """
    Return the canonical value of ``slot`` stated by ``tokens``, or None.

    :param slot: a slot name of commands.md.
    :param tokens: the normalised tokens of the tagged span.
    """
    func = CANONICALIZERS.get(slot)
    if func is None:
        return None
    value = func(tokens)
    if value is None and slot in _FUZZY_TABLES:
        # the tagger marked words the typo corrector left alone ("cub", "scap"): accept
        # one edit against this slot's own words
        value = func([_closest(t, _FUZZY_TABLES[slot]) for t in tokens])
    return value


_FUZZY_TABLES = {
    'defect': tuple(lexicon.DEFECT_WORDS), 'color': tuple(lexicon.COLOR_WORDS),
    'shape': tuple(lexicon.SHAPE_WORDS), 'bin': tuple(lexicon.BIN_WORDS),
    'position': tuple(lexicon.POSITION_WORDS), 'direction': tuple(lexicon.DIRECTION_WORDS),
}


def _closest(token: str, words: Sequence[str]) -> str:
    if len(token) < 3 or not token.isalpha():
        return token
    from lepton_robot.parser.text import edit_distance
    for word in words:
        if abs(len(word) - len(token)) <= 1 and edit_distance(token, word) <= 1:
            return word
    return token
