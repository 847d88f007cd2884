"""
The model-free safety fast path: a clearly stated stop or e-stop is never missed.

The scan runs on every utterance before and independently of the model, and wins over it.
Rules (documented in the README):

- ``emergency``, ``e-stop``/``estop``/``e stop``, ``abort``, ``kill``, ``cut (the) power`` give
  ``emergency_stop``; ``stop``, ``halt``, ``freeze``, ``cease``, ``quit`` give ``stop`` (after
  typo correction, so ``stpo`` and ``emergancy`` count). An e-stop word beats a stop word.
- Switching the cell off is a stop too: ``shut``/``power`` with ``down``/``off`` and
  ``turn``/``switch`` with ``off`` within the next four words (``shut it down``, ``power
  down the cell``, ``turn everything off``, ``switch the conveyor belt off``), and
  ``knock it off``, ``cut it out``.
- Only the imperative base forms count: ``stopped``/``stopping`` (status questions) do not.
- A trigger negated within the two words before it, in the same clause (``don't stop``,
  ``do not stop``, ``never stop``, ``no need to stop``, ``not an emergency``), does not
  count. Punctuation and ``but``/``then``/``actually`` start a new clause, so
  ``don't go, stop!`` is a stop. Other words around a trigger never hide it.
- Questions that contain a trigger (``why did you stop?``) still stop: a stop too many is
  the safe error.
"""

import re
from typing import List, Optional, Tuple

from lepton_robot.parser import text as textmod

EMERGENCY = 'emergency_stop'
STOP = 'stop'

_EMERGENCY_WORDS = frozenset({'emergency', 'estop', 'abort', 'kill', 'mayday'})
_STOP_WORDS = frozenset({'stop', 'halt', 'freeze', 'cease', 'quit'})
#: verb -> the particles that make it "switch the cell off", looked for in the next words
_OFF_VERBS = {'shut': ('down', 'off'), 'power': ('down', 'off'), 'turn': ('off',),
              'switch': ('off',)}
_OFF_REACH = 4
#: idioms: verb -> the exact words after it
_OFF_IDIOMS = {'knock': ('it', 'off'), 'cut': ('it', 'out')}
_NEGATIONS = frozenset({"don't", 'not', 'never', "didn't", "doesn't", 'without', 'non',
                        "won't", "shouldn't", "mustn't", 'cannot', "can't", "needn't",
                        "wouldn't", "isn't", "aren't"})
_CLAUSE_BREAK = re.compile(r'[.,;:!?()\[\]{}"]+|\s[-\u2013\u2014]+\s')
_CLAUSE_WORDS = frozenset({'but', 'then', 'actually', 'instead', 'wait', 'no', 'now',
                           'and', 'or', 'please'})


def _clauses(text: str) -> List[List[str]]:
    out: List[List[str]] = []
    for piece in _CLAUSE_BREAK.split(text):
        clause: List[str] = []
        for tok in textmod.normalize_tokens(textmod.tokenize(piece)):
            if tok in _CLAUSE_WORDS:
                if clause:
                    out.append(clause)
                clause = []
                if tok == 'no':
                    # "no need to stop" negates; a bare "no, stop" does not
                    clause = ['no']
                continue
            clause.append(tok)
        if clause:
            out.append(clause)
    return out


def _negated(clause: List[str], i: int) -> bool:
    before = clause[max(0, i - 2):i]
    if any(t in _NEGATIONS for t in before):
        return True
    # "no need to stop", "no reason to stop", "not an emergency"
    window = clause[max(0, i - 4):i]
    return window[:1] == ['no'] and len(window) >= 2 and window[1] in ('need', 'reason')


def scan(text: str) -> Optional[Tuple[str, str]]:
    """
    Look for a clearly stated stop or emergency stop.

    :param text: sanitised text (or the safety-scan text of rejected input).
    :return: ``(intent, matched words)`` with intent ``emergency_stop`` or ``stop``, or
        None when the utterance asks for neither.
    """
    found: Optional[Tuple[str, str]] = None
    for clause in _clauses(text):
        for i, tok in enumerate(clause):
            if tok == 'e' and i + 1 < len(clause) and clause[i + 1] == 'stop':
                if not _negated(clause, i):
                    return EMERGENCY, 'e stop'
                continue
            if (tok == 'cut' and 'power' in clause[i + 1:i + 4]
                    and not _negated(clause, i)):
                return EMERGENCY, 'cut power'
            if tok in _EMERGENCY_WORDS:
                if tok == 'kill' and i + 1 < len(clause) and clause[i + 1] in ('time',):
                    continue
                if not _negated(clause, i):
                    return EMERGENCY, tok
            elif tok in _STOP_WORDS and found is None:
                if i > 0 and clause[i - 1] == 'e':
                    continue
                if not _negated(clause, i):
                    found = (STOP, tok)
            elif found is None and not _negated(clause, i):
                words = _switch_off(clause, i)
                if words:
                    found = (STOP, words)
    return found


def _switch_off(clause: List[str], i: int) -> Optional[str]:
    """Return the words of "switch the cell off" starting at ``clause[i]``, or None."""
    tok = clause[i]
    if tok in _OFF_VERBS:
        for particle in clause[i + 1:i + 1 + _OFF_REACH]:
            if particle in _OFF_VERBS[tok]:
                return f'{tok} {particle}'
    idiom = _OFF_IDIOMS.get(tok)
    if idiom and tuple(clause[i + 1:i + 1 + len(idiom)]) == idiom:
        return ' '.join((tok,) + idiom)
    return None
