"""
Seeded, reproducible training corpus for the command parser.

Utterances are built from per-intent templates with a small template language:
``[a|b c|]`` picks one alternative (an empty alternative makes it optional) and
``{slot}`` inserts a slot phrase drawn from synonym tables (which also yields the
canonical value and the BIO tags of the slot's words). Noise is then added: fillers and
politeness, casing, punctuation, 1-2 letter typos. Out-of-domain negatives (chit-chat,
near misses that reuse domain words, negated stops, keyboard garbage) are labelled
``unknown``.

The validation split uses another seed and, in addition, templates that the training
split never sees (every :data:`HELD_OUT_EVERY`-th template of each intent).

Each example is a dict ``{"text", "tokens", "tags", "intent", "slots"}``; ``tokens`` is
exactly ``text.tokenize(text)``.
"""

import json
from pathlib import Path
import random
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from lepton_robot.parser import lexicon, text as textmod

HELD_OUT_EVERY = 6
TRAIN_SEED = 1234
VAL_SEED = 98765

Word = Tuple[str, str]  # (token, BIO tag)
_DOMAIN = lexicon.domain_words()

# --- slot phrase generators -----------------------------------------------------------

_NUM_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
              'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen',
              'seventeen', 'eighteen', 'nineteen']
_TENS_WORDS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty',
               'ninety']


def number_words(n: int) -> List[str]:
    """Spell an integer 0..999 in English words."""
    if n < 20:
        return [_NUM_WORDS[n]]
    if n < 100:
        tens, unit = divmod(n, 10)
        return [_TENS_WORDS[tens]] + ([_NUM_WORDS[unit]] if unit else [])
    hundreds, rest = divmod(n, 100)
    out = ['a' if hundreds == 1 and rest == 0 else _NUM_WORDS[hundreds], 'hundred']
    if rest:
        out += ['and'] + number_words(rest)
    return out


def _tag(words: Sequence[str], slot: str) -> List[Word]:
    return [(w, ('B-' if i == 0 else 'I-') + slot) for i, w in enumerate(words)]


def _plain(phrase: str) -> List[Word]:
    return [(w, 'O') for w in phrase.split()]


DEFECT_ADJ = {
    'scratch': ['scratched', 'scratched', 'scratchy', 'scuffed'],
    'crack': ['cracked', 'cracked', 'fractured'],
    'stain': ['stained', 'stained', 'dirty', 'smudged', 'discolored'],
    'chip': ['chipped', 'chipped', 'nicked'],
    'any': ['defective', 'bad', 'faulty', 'damaged', 'broken', 'flawed', 'failed', 'nok'],
    'none': ['good', 'ok', 'okay', 'flawless', 'clean', 'perfect', 'fine', 'intact',
             'undamaged'],
}
DEFECT_NOUN = {
    'scratch': ['scratches', 'a scratch', 'scratch marks', 'scuffs'],
    'crack': ['cracks', 'a crack', 'fractures'],
    'stain': ['stains', 'a stain', 'smudges', 'dirt'],
    'chip': ['chips', 'a chip', 'chipped edges', 'nicks'],
    'any': ['defects', 'a defect', 'damage', 'any defect', 'faults', 'flaws'],
    'none': ['no defects', 'no damage', 'no flaws', 'no faults'],
}
COLOR_SURF = {'red': ['red'], 'green': ['green'], 'blue': ['blue'], 'yellow': ['yellow'],
              'gray': ['gray', 'grey', 'grey', 'silver']}
SHAPE_SURF = {
    'block': ['block', 'block', 'cube', 'box', 'brick', 'cuboid'],
    'cylinder': ['cylinder', 'cylinder', 'can', 'tube', 'round one', 'rod', 'puck'],
    'plate': ['plate', 'plate', 'flat one', 'sheet', 'tile', 'slab', 'panel'],
}
SHAPE_PLURAL = {
    'block': ['blocks', 'cubes', 'boxes', 'bricks'],
    'cylinder': ['cylinders', 'cans', 'tubes', 'round ones', 'rods'],
    'plate': ['plates', 'flat ones', 'sheets', 'tiles', 'slabs'],
}
# (pre words untagged, tagged words, post words untagged)
BIN_SURF = {
    'accept': [('', 'bin one', ''), ('', 'bin 1', ''), ('the', 'first bin', ''),
               ('the', 'accept bin', ''), ('', 'accept', ''), ('the', 'good bin', ''),
               ('the', 'pass bin', ''), ('the', 'ok bin', ''), ('', 'bin number one', ''),
               ('the', 'accepted bin', ''), ('the', 'good parts bin', ''),
               ('', 'bin #1', ''), ('the', 'keep bin', '')],
    'reject': [('', 'bin two', ''), ('', 'bin 2', ''), ('the', 'second bin', ''),
               ('the', 'reject bin', ''), ('', 'reject', ''), ('the', 'scrap bin', ''),
               ('', 'scrap', ''), ('the', 'trash', ''), ('the', 'rejects bin', ''),
               ('the', 'reject pile', ''), ('', 'bin number two', ''), ('', 'rejects', ''),
               ('the', 'garbage bin', ''), ('the', 'waste bin', ''), ('', 'bin #2', '')],
    'rework': [('', 'bin three', ''), ('', 'bin 3', ''), ('the', 'third bin', ''),
               ('the', 'rework bin', ''), ('', 'rework', ''), ('the', 'repair bin', ''),
               ('', 'bin number three', ''), ('the', 'rework pile', ''), ('', 'repair', ''),
               ('the', 'bin for rework', ''), ('', 'bin #3', ''), ('the', 'fix bin', '')],
}
POSITION_SURF = {
    'next': [('the', 'next', 'one'), ('the', 'next', 'part'), ('the', 'next', 'piece'),
             ('the', 'upcoming', 'part'), ('the', 'following', 'one'), ('the', 'next', '')],
    'last': [('the', 'last', 'one'), ('the', 'last', 'part'), ('the', 'previous', 'one'),
             ('the', 'previous', 'part'), ('the', 'prior', 'part'), ('that', 'last', 'one')],
    'left': [('the one on the', 'left', ''), ('the', 'leftmost', 'part'),
             ('the', 'left', 'one'), ('the part on the', 'left', ''),
             ('the', 'left', 'part')],
    'right': [('the one on the', 'right', ''), ('the', 'rightmost', 'part'),
              ('the', 'right', 'one'), ('the part on the', 'right', ''),
              ('the', 'right', 'part')],
    'nearest': [('the', 'nearest', 'one'), ('the', 'closest', 'part'),
                ('the', 'nearest', 'part'), ('the', 'closest', 'one'),
                ('the one', 'closest', 'to you'), ('the part', 'nearest', 'the arm')],
}
QUERY_SURF = {
    'counts': ['how many parts were rejected', 'how many did you reject',
               'how many parts have been inspected', 'how many have you sorted',
               'how many went to rework', 'give me the counts', 'what are the counts',
               'how many parts so far', 'count of rejected parts', 'total number of parts',
               'how many parts did you inspect', 'number of rejects'],
    'defect_rate': ['what is the defect rate', "what's the scrap rate", 'reject rate',
                    'what percentage are defective', 'current defect rate',
                    'what is the failure rate', 'what is the yield', 'defect ratio',
                    'how is the reject rate looking', 'what fraction are defective',
                    'what percentage is bad', 'what proportion is scrap',
                    'fraction of bad parts', 'what percentage got rejected'],
    'state': ['are you running', 'is the line running', 'what state are you in',
              'are you paused', 'is the conveyor stopped', 'what are you doing',
              'is the line working', 'are you busy', 'what mode are you in',
              'is the robot idle', 'current state of the cell', 'are we running',
              'is it running', 'are we paused', 'is everything running',
              'is the cell running', 'are we moving', 'what condition is the cell in'],
    'last_part': ['what was the last part', 'what about the previous part',
                  'what happened to the last part', 'tell me about the last part',
                  'last part result', 'where did the last piece go',
                  'what was the most recent part', 'result of the previous part'],
}
# which words of a query phrase carry the slot tag
_QUERY_KEYS = {
    'counts': {'how', 'many', 'counts', 'count', 'total', 'number'},
    'defect_rate': {'defect', 'scrap', 'reject', 'failure', 'rate', 'percentage', 'yield',
                    'ratio', 'fraction', 'proportion'},
    'state': {'running', 'state', 'paused', 'stopped', 'doing', 'working', 'busy', 'mode',
              'idle', 'moving', 'condition'},
    'last_part': {'last', 'previous', 'part', 'piece', 'most', 'recent'},
}


class _Gen:
    """One random stream for one split."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # -- slot phrases --------------------------------------------------------------------
    def defect_adj(self, value: Optional[str] = None) -> Tuple[List[Word], str]:
        value = value or self.pick(DEFECT_ADJ)
        return _tag(self.pick(DEFECT_ADJ[value]).split(), 'defect'), value

    def defect_noun(self, value: Optional[str] = None) -> Tuple[List[Word], str]:
        value = value or self.pick(DEFECT_NOUN)
        return _tag(self.pick(DEFECT_NOUN[value]).split(), 'defect'), value

    def color(self) -> Tuple[List[Word], str]:
        value = self.pick(COLOR_SURF)
        return _tag([self.pick(COLOR_SURF[value])], 'color'), value

    def shape(self, plural: bool = False) -> Tuple[List[Word], str]:
        value = self.pick(SHAPE_SURF)
        words = self.pick((SHAPE_PLURAL if plural else SHAPE_SURF)[value]).split()
        tagged = _tag(words[:1], 'shape') + [(w, 'O') for w in words[1:]]
        return tagged, value

    def bin_(self) -> Tuple[List[Word], str]:
        value = self.pick(BIN_SURF)
        pre, span, post = self.pick(BIN_SURF[value])
        if pre == 'the' and self.chance(0.3):
            pre = self.pick(['', 'that', 'the'])
        return _plain(pre) + _tag(span.split(), 'bin') + _plain(post), value

    def position(self) -> Tuple[List[Word], str]:
        value = self.pick(POSITION_SURF)
        pre, span, post = self.pick(POSITION_SURF[value])
        return _plain(pre) + _tag(span.split(), 'position') + _plain(post), value

    def number_phrase(self, n: int, slot: str) -> List[Word]:
        if self.chance(0.55):
            return _tag([str(n)], slot)
        return _tag(number_words(n), slot)

    def part_id(self) -> Tuple[List[Word], int]:
        n = self.rng.choice([self.rng.randint(0, 20), self.rng.randint(0, 99),
                             self.rng.randint(100, 999)])
        style = self.rng.random()
        num = self.number_phrase(n, 'part_id')
        if style < 0.4:
            pre = self.pick(['part', 'part', 'piece', 'item', 'part number', 'part no',
                             'number', 'id', 'part id', 'object'])
            return _plain(pre) + num, n
        if style < 0.6:
            return [('#', 'O')] + _tag([str(n)], 'part_id'), n
        if style < 0.75:
            return _plain(self.pick(['part', 'piece', 'item'])) + [('#', 'O')] + \
                _tag([str(n)], 'part_id'), n
        return _plain(self.pick(['part', 'part', 'number', 'piece'])) + num, n

    def value(self) -> Tuple[List[Word], Any]:
        r = self.rng.random()
        if r < 0.12:
            word, n = self.pick([('half', 50), ('full', 100), ('max', 100),
                                 ('maximum', 100), ('minimum', 0), ('a quarter', 25),
                                 ('three quarters', 75)])
            words = word.split()
            return _tag(words, 'value'), n
        n = self.rng.choice([self.rng.randint(0, 100), self.rng.randrange(0, 101, 5),
                             self.rng.randrange(10, 100, 10)])
        if r < 0.22:
            text = self.pick([f'0.{n // 10}' if n % 10 == 0 and n < 100 else f'0.{n:02d}'])
            if n == 100:
                text = '1.0'
            return _tag([text], 'value'), n
        words = self.number_phrase(n, 'value')
        suffix = self.pick(['', '', 'percent', 'percent', '%', 'per cent', 'pct'])
        if suffix:
            words = words + _tag(suffix.split(), 'value')
            words = [(w, 'I-value') if i else (w, 'B-value') for i, (w, _) in enumerate(words)]
        return words, n

    def query(self) -> Tuple[List[Word], str]:
        value = self.pick(QUERY_SURF)
        words = self.pick(QUERY_SURF[value]).split()
        keys = _QUERY_KEYS[value]
        out: List[Word] = []
        prev = False
        for w in words:
            if w in keys:
                out.append((w, ('I-' if prev else 'B-') + 'query'))
                prev = True
            else:
                out.append((w, 'O'))
                prev = False
        return out, value


# --- templates --------------------------------------------------------------------------
# [a|b] alternatives ('' = optional); {slot} placeholders (see _Gen.fill)

TEMPLATES: Dict[str, List[str]] = {
    'start': [
        '[start|begin|start up|turn on|switch on|kick off|fire up] '
        '[the line|the conveyor|the belt|sorting|the cell|working|]',
        '[resume|continue|unpause] [the line|sorting|work|operation|]',
        '[go ahead|go|carry on|proceed|keep going|get going]',
        "[let's|lets] [go|get started|start|begin|roll|get going|resume]",
        '[begin|start] [sorting|inspection|inspecting|the run|production] [now|again|]',
        '[turn on|switch on|fire up|kick off|spin up] [the line|the conveyor|the belt|the cell]',
        '[ok|okay|alright|right] [you can|you may|] [start|go|resume|continue] [now|]',
        '[restart|run] [the line|the belt|everything|it]',
        '[back to work|resume operations|start the run|get the belt moving]',
        "[we're|we are] [good to go|ready|clear] [start|go|resume|]",
        '[start|resume] [running|moving] [the parts|the conveyor|]',
        '[all clear|clear to start|green light] [go ahead|start|resume|]',
        "[we're|we are|you're|you are|all] [good|fine|set|clear] [continue|carry on|go on|go]",
        '[off you go|let it run|get back to it|back at it|start it up again|unpause it]',
        '[ok|alright|fine|good] [continue|resume|carry on] [please|now|sorting|]',
        '[go on|keep going|keep sorting|continue sorting|resume sorting] [please|then|]',
        '[time to|you can|ready to] [start|begin|resume|continue] [the line|work|sorting|]',
        '[get|set] [the line|the belt|the conveyor|things|it|everything] '
        '[moving|running|going|rolling] [again|]',
        '[start|restart|resume|run|please to start] the [machine|machines|equipment] '
        '[now|again|please|]',
        '[start|fire|power|spin|crank] [it|her|things|the line|the belt] [up|back up] [again|]',
    ],
    'pause': [
        '[pause|hold|hold on|hold it|wait]',
        '[pause|hold] [the line|the conveyor|the belt|sorting|everything|for a second]',
        '[wait|hold on|hang on] [a moment|a second|a sec|a minute|one moment]',
        '[take a break|pause|hold] after [this one|the current part|this pick|this part]',
        '[finish|complete] [this pick|the current part|this one] [and|then] [pause|hold|wait]',
        '[give me|i need] [a moment|a minute|a second|a break]',
        "[let's|lets] [take a break|pause|hold for a bit|wait a bit]",
        '[pause|hold] [for now|for a bit|a moment|until i say so]',
        '[put|place] [the line|everything|it] on hold',
        '[hold up|one sec|just a moment|not so fast]',
        '[suspend|pause] [operation|operations|the run|sorting]',
        '[wait|pause] [till|until] i [come back|get back|say go]',
        '[finish|complete|do] [this|the current|the] [part|pick|one] [and|then|and then] '
        '[hold|wait|pause|take a break|rest]',
        '[pause|hold|wait] [after|once you finish|when you are done with] '
        '[this part|the current pick|this one|that one]',
        '[hold|wait|pause] [there|here|right there|a bit|please]',
        '[can you|could you|please|] [hold|wait|pause] [for|] [a bit|a minute|a while|now|]',
        '[just|] [give me|i need|allow me|grant me] [a moment|a minute|a second|a sec|'
        'some time|a few minutes] [please|]',
        '[one moment|just a moment|wait a moment|hang on|one sec] [please|] [i need to|let me|'
        'i have to] [check something|look at something|fix something|grab something]',
    ],
    'stop': [
        '[stop|halt|freeze]',
        '[stop|halt] [the line|the conveyor|the belt|everything|sorting|the robot|the arm|it]',
        '[stop|halt] [now|right now|immediately|please]',
        '[stop|halt|freeze] [the line|everything] [now|right now|]',
        '[everybody|everything|everyone] [freeze|stop|halt]',
        'stop [stop|it|that|moving|working|right there]',
        '[i said|please|just] [stop|halt]',
        '[bring|bring the line|bring everything] to a [halt|stop]',
        '[halt|stop] [all motion|all movement|operation|operations|the cell]',
        '[stop|freeze] [the arm|the conveyor] [and the belt|and the arm|]',
        '[whoa|hey|wait] [stop|halt|freeze]',
        'come to a [stop|halt]',
        '[shut down|shut off|power down|power off|turn off|switch off] [the line|the conveyor|'
        'the belt|everything|the cell|the robot|it all|the system|]',
        '[shut|power] [it|everything|the line|the cell|the system|the conveyor] [down|off]',
        '[turn|switch] [it|everything|the line|the conveyor|the belt|the cell] off [now|]',
        '[quit|quit it|cut it out|knock it off] [now|please|right now|]',
        '[stop|halt|shut down|switch off] the [machine|machines|equipment] [now|please|]',
    ],
    'emergency_stop': [
        '[emergency stop|e stop|estop|emergency]',
        '[emergency stop|e stop|estop] [now|right now|immediately|the line|the robot|]',
        '[abort|abort abort|abort everything|abort now|abort mission]',
        '[kill it|kill it now|kill the line|kill everything|kill power|kill the power]',
        '[hit|press|push] the [e stop|estop|emergency stop|emergency button|kill switch]',
        '[emergency|this is an emergency] [stop everything|stop|halt|shut it down]',
        '[trigger|engage|activate] [the emergency stop|the e stop|estop|the kill switch]',
        '[emergency stop|e stop] [emergency stop|e stop|]',
        '[emergency|emergency halt|emergency shutdown] [please|now|]',
        '[someone is|somebody is|there is someone] [hurt|in the cell] [emergency stop|e '
        'stop|abort]',
        'abort [the run|the cycle|operation|it]',
        '[kill|cut] [the power|it] [emergency|now]',
    ],
    'sort': [
        '[put|place|send|move|drop] [all|the|any|] {defect_adj} [parts|ones|pieces|items|] '
        '[in|into|to] {bin}',
        '{defect_adj} [parts|ones|pieces|items] [go|should go|belong|go straight] [in|into|to] '
        '{bin}',
        '[send|route|sort|move|direct] [all|every|any|] [parts|pieces|items] with {defect_noun} '
        '[to|into] {bin}',
        '[anything|everything|all parts|parts] with {defect_noun} [goes|go|should go] '
        '[to|in|into] {bin}',
        '[put|send|sort] [all|the|] {color} [parts|ones|pieces|] [in|into|to] {bin}',
        '[put|send|sort] [all|the|] {shape_pl} [in|into|to] {bin}',
        '[put|send|sort|move] [all|the|] {defect_adj} {color} {shape_pl} [in|into|to] {bin}',
        '[put|send|sort] [all|the|] {color} {shape_pl} [in|into|to] {bin}',
        '[sort|put|send] [the|all|] {defect_adj} {shape_pl} [in|into|to|over to] {bin}',
        '{bin} [for|gets|takes] [all|the|] {defect_adj} [parts|ones|pieces]',
        '[send|put|move|sort] [every|each|any] {color} {shape} [to|into|in] {bin}',
        '{bin_verb} [all|the|any|every|] {defect_adj} [parts|ones|pieces|items|]',
        '{bin_verb} [all|the|any|] [parts|ones|pieces] with {defect_noun}',
        '[always|from now on|] {bin_verb} [the|all|] {defect_adj} {shape_pl}',
        '[send|put|move|sort] [every|each|any] {defect_adj} {shape} [to|into|in] {bin}',
        'from now on [put|send] {defect_adj} [parts|ones] [in|into|to] {bin}',
        '[if|when] a part is {defect_adj} [put|send|throw] it [in|into|to] {bin}',
        '[new rule|rule] {defect_adj} [parts|ones] [to|go to|into] {bin}',
        '[throw|toss|dump|chuck] [the|all|any|] {defect_adj} [parts|ones|stuff] [in|into] {bin}',
        '[sort|separate] [the|] {defect_adj} [parts|ones] into {bin}',
        '[any|every] {color} {shape} with {defect_noun} [goes|should go] [to|into] {bin}',
        '[make sure|ensure] {defect_adj} [parts|ones] [go|end up] in {bin}',
        '[i want|i need] [all|the|] {defect_adj} [parts|ones] [in|sent to] {bin}',
        '[route|divert] {defect_adj} [items|parts|pieces] to {bin}',
        '[all|the|] {color} [ones|parts] [go|should go] [to|in|into] {bin}',
        '[sort|send] [parts|pieces] with {defect_noun} [to|into] {bin} [from now on|going '
        'forward|]',
        '{defect_adj} [ones|parts] [in|into|to] {bin}',
    ],
    'pick': [
        '[pick|pick up|grab|take|get|fetch|lift] {obj}',
        '[pick|pick up|grab|take|move] {obj} [and put it|and place it|and drop it|] '
        '[in|into|to] {bin}',
        '[can you|could you|please|] [pick up|grab|take] {obj} [for me|]',
        '[take|move|put|place] {obj} [to|in|into] {bin}',
        '[remove|pull|take out] {obj} [from the belt|off the conveyor|off the line|]',
        '[grab|get] {obj} [and|] [drop it|put it|throw it] [in|into] {bin}',
        '[i want|i need] [you to|] [pick|grab] {obj}',
        '[pick|grab] {part_id}',
        '[pick|grab|take] {part_id} [and put it|] [in|into|to] {bin}',
        '[lift|collect] {obj} [please|now|]',
        '[next|] [pick|grab] [the|that] {color} {shape}',
        '[pick|take|grab] [out|] {obj} [and send it|and move it] to {bin}',
        '[go|go and] [get|grab|pick up] {obj}',
        '[send|move] {part_id} to {bin}',
        '{bin_verb} {part_id}',
        '{bin_verb} [the|that|this] {color} {shape} [please|]',
        '[snag|nab|retrieve|collect|pluck|scoop up] {obj}',
        '[bring me|hand me|fetch me] {obj}',
        '[take|grab|pick|get|pick up|fetch] the [first|second|third|fourth|other] [one|part|'
        'piece] [please|now|]',
    ],
    'inspect': [
        '[inspect|check|examine|look at|scan|analyze|analyse|run an inspection on|'
        'do an inspection of] {obj_i}',
        '[inspect|check|examine|look at|scan] {obj_i} again',
        '[re inspect|reinspect|recheck|re check|double check|rescan|re scan] {obj_i}',
        '[can you|could you|please|] [take a look at|have a look at|check] {obj_i}',
        '[inspect|check|examine] {part_id} [again|once more|one more time|]',
        '[run an inspection on|run inspection on|do an inspection of] {obj_i}',
        '[look|look again] at {part_id}',
        '[give|give me] {obj_i} [another look|a second look|a closer look]',
        '[verify|confirm] {obj_i} [is ok|is good|]',
        '[inspect|check] [the|that] {color} {shape} [please|again|]',
        '[is|was] {part_id} [ok|good|really defective|fine]? [check it|inspect it|look again]',
        '[scan|analyse|analyze] {obj_i} [again|for defects|]',
    ],
    'set_speed': [
        '[set|change|adjust|put] [the|] [speed|conveyor speed|belt speed|line speed] to {value}',
        '[speed|conveyor speed|belt speed] [to|at] {value}',
        '[run|go|move] [the belt|the conveyor|the line|] at {value} [speed|]',
        '{value} speed',
        '[make it|set it to|go] {value} [speed|]',
        '{dir_speed}',
        '[go|run|move] {dir_speed_adj} [please|]',
        '[can you|could you|please|] {dir_speed} [the belt|the conveyor|the line|a bit|a little|]',
        '[make|set] the [belt|conveyor|line] {dir_speed_adj}',
        '[speed|conveyor] {value}',
        '[increase|raise|decrease|lower|reduce|bump|drop] the speed to {value}',
        '[the belt|the conveyor|it|the line] is {too_speed}',
        '[a bit|a little|much|] {dir_speed_adj} [please|]',
        '[belt|conveyor|line] [speed|] {dir_speed_adj}',
        '[slow|speed] [it|the belt|things|everything] {dir_part}',
        '[take|set|bring] the [belt|conveyor|speed] [down|up|] to {value}',
        '{dir_speed_verb} [it|the belt|the conveyor|the line|things|everything] '
        '[a bit|a little|a touch|slightly|]',
        '[please|] {value} [on the belt|for the conveyor|belt speed|line speed]',
        '[the|] [belt|conveyor|line] [is|] [going|running|moving] [way|much|far|a bit|a little|] '
        '{too_speed_bare}',
    ],
    'set_sensitivity': [
        '[set|change|adjust|put] [the|] [sensitivity|detection sensitivity|defect '
        'sensitivity|threshold] to {value}',
        '[sensitivity|detection threshold] [to|at] {value}',
        '[be|get] {dir_sens}',
        '{dir_sens} [please|]',
        '[make|set] [the detector|detection|inspection|the inspection|it] {dir_sens}',
        '[be|get] {dir_sens} [about defects|with the parts|when inspecting|]',
        '[increase|raise|decrease|lower|reduce] [the|] [sensitivity|detection '
        'sensitivity|threshold] to {value}',
        '{dir_verb} [the|] [sensitivity|detection sensitivity|defect sensitivity]',
        '{dir_verb} [the|] [inspection|detector|detection] [sensitivity|threshold|]',
        '{dir_sens_verb} [the|] [inspection|checks|detector|detection|rules] [a bit|a little|]',
        '[can you|please|could you|] {dir_sens_verb} [up|] [the|] [inspection|checks|]',
        '{value} sensitivity',
        "[you're|you are|it's|it is|the detector is] {too_sens}",
        '[flag|reject] [more|fewer|less] [parts|defects|stuff]',
        '[turn|crank|dial] [the|] sensitivity {dir_part}',
        '[sensitivity|strictness] {dir_word}',
    ],
    'status': [
        '{query}',
        '[status|status report|status update|report|give me a status report|give me a report]',
        "[what is|whats|what's|tell me] the status",
        "[how's it going|how are we doing|how is it going|any news|how are things]",
        '[tell me|show me|can you tell me] {query}',
        '{query} [so far|today|right now|at the moment|]',
        '[quick|] [status|report] [please|]',
        '[give me|show me|print] [the|some|] [stats|statistics|numbers|summary]',
    ],
    'home': [
        '[go|move|return|head] home',
        '[park|home|retract|stow] [the arm|the robot|it|]',
        '[go|move|return|send the arm|send the robot] [back|] to [home|the home position|home '
        'position|the rest position|its home pose]',
        '[return|go back|move back] to [the|your|] [home|start|starting|rest|] [position|pose]',
        '[home|homing] [position|the arm|the robot|sequence|routine]',
        '[home|send|bring] [the arm|the robot|it] [home|back home|]',
        '[do|run|start] [a|the] [homing|home] [sequence|routine|move]',
        '[go|move|head] [back|] [to|] home [please|now|position]',
        '[arm|robot] [home|go home|to home|back home]',
        '[move|bring] the [arm|robot] [back|] [home|to home|to rest|out of the way]',
        '[please|can you|could you] [park|home] [the arm|yourself|the robot]',
        '[rest|reset] [position|pose]',
        '[get|move] [out of the way|clear] and [go home|park]',
        '[arm|robot|go|move|return|send the arm|bring the arm] [back|] to [base|the base|base '
        'position]',
    ],
    'unknown': [],
}

# near misses and chit-chat: out of domain, some reuse domain words
OOD = [
    "what's the weather [like|today|tomorrow|]", 'tell me a [joke|story|secret]',
    'who [made|built|are] you', 'what time is it', '[play|put on] some [music|jazz|songs]',
    '[turn|switch] on the [lights|radio|tv|heating]', 'book a meeting [for tomorrow|at noon|]',
    'how are you [today|doing|]', 'good morning', 'thanks [a lot|]', 'thank you',
    '[order|get me] [a pizza|lunch|coffee|some food]', 'what is the capital of [france|spain]',
    'sort my [emails|files|photos] [by date|alphabetically|]', 'pick a [movie|song|number]',
    'check my [email|calendar|messages]', 'start the [car|dishwasher|washing machine|microwave]',
    'set an alarm [for seven|for 7 am|]', 'speed dating', 'how old are you', 'i love you',
    'what is your name', 'send an email to [bob|alice|the team]', 'call [mom|john|the office]',
    'where is the [bathroom|kitchen|exit]', 'open the [door|window|garage]',
    'what is [two|2] plus [two|2]', 'translate [hello|this] to french', 'hello', 'hi there',
    'remind me to buy milk', 'who won the game [last night|]', 'i am hungry',
    "[let's|lets] [eat|have lunch]", 'what does this button do', 'read me the news',
    'is it going to rain', 'the sky is blue', 'my car is red', 'i like green tea',
    'the box is on the table', 'blue is my favourite color', 'can you dance',
    'sing a song', 'write a poem', 'what is the meaning of life', 'bananas are yellow',
    'shop is closed', 'take a picture', 'show me a cat', 'lol', 'hmm', 'ok', 'yes', 'no',
    'maybe later', 'nothing', 'never mind', 'forget it', 'cancel that', 'what',
    "[don't|do not|never] [stop|halt]", "[don't|do not] stop [the line|now|]",
    'no need to stop', "it's not an emergency", "[don't|do not] [abort|kill it]",
    'stock prices today', 'what is the score', 'print the report on paper',
    'start a timer for [ten|5] minutes', 'set the temperature to [twenty|70] degrees',
    'turn the volume up', 'speed up the download', 'pause the music',
    'inspect the [car|engine|house]', 'how many [people|cats|days] [are there|]',
    'what is the rate of inflation', 'park the car', 'go to the store',
    'home sweet home', 'i am going home', 'the second one is nice',
    'the [conveyor|belt|conveyor belt|robot|arm|cell] is [blue|new|loud|noisy|dusty|old|'
    'long|shiny|pretty]',
    '[this|that|the] [belt|conveyor|line|robot] [looks|seems|sounds] [nice|old|new|loud|'
    'clean|great]',
    "[i'm|im|i am] [going|heading|off] [for a coffee|for coffee|to lunch|for lunch|for a smoke|"
    'on break|on my break|to the toilet]',
    '[going|off|gone] [on break|for lunch|for a coffee|on my break|for a smoke]',
    "[back|be back|i'll be back|ill be back|i will be back] in [ten|five|a minute|a few minutes|"
    'an hour|10 minutes|a bit]',
    '[see you|catch you] [later|tomorrow|after lunch|after the break|in a bit]',
    "[i'm|im|i am] [back|here|tired|hungry|cold|off now]",
    '[is it|is it still] [raining|snowing|sunny|cold|hot|windy] [outside|today|]',
]

_FILLER_PRE = ['um', 'uh', 'er', 'hey', 'ok', 'okay', 'so', 'please', 'could you', 'can you',
               'would you', 'hey robot', 'robot', 'lepton', 'alright', 'right', 'now',
               'ok so', 'um please', 'i need you to', 'go ahead and', 'kindly',
               'would you please', 'could you please', 'can you please', 'hmm', 'well',
               'uh could you', 'yo', 'listen', 'quick one']
_FILLER_POST = ['please', 'thanks', 'thank you', 'now', 'right away', 'for me', 'ok',
                'okay', 'if you can', 'when you can', 'asap', 'thx', 'pls', 'cheers',
                'mate', 'buddy', 'now please', 'will you', 'when you have a moment',
                'when you get a chance', 'if you have a second']


def _expand(template: str, gen: '_Gen') -> List[Any]:
    out: List[Any] = []
    for piece in re.findall(r'\[[^\]]*\]|\{[a-z_]+\}|[^\s\[\]{}]+', template):
        if piece.startswith('['):
            choice = gen.pick(piece[1:-1].split('|'))
            out.extend(_plain(choice))
        elif piece.startswith('{'):
            out.append(piece[1:-1])
        else:
            out.extend(_plain(piece))
    return out


class CorpusGenerator:
    """
    Generate labelled utterances for one split.

    :param seed: random seed (the same seed gives the same corpus).
    :param split: ``train`` uses all but the held-out templates, ``val`` uses all.
    """

    def __init__(self, seed: int, split: str = 'train') -> None:
        if split not in ('train', 'val'):
            raise ValueError(f'split must be train or val, not {split!r}')
        self.gen = _Gen(seed)
        self.split = split
        self.templates: Dict[str, List[str]] = {}
        for intent, temps in TEMPLATES.items():
            if split == 'train':
                temps = [t for i, t in enumerate(temps)
                         if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
            self.templates[intent] = temps
        ood = OOD
        if split == 'train':
            ood = [t for i, t in enumerate(OOD) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
        self.ood = ood

    # -- object phrases --------------------------------------------------------------------
    def _obj(self, allow_defect: bool) -> Tuple[List[Word], Dict[str, Any]]:
        g = self.gen
        slots: Dict[str, Any] = {}
        r = g.rng.random()
        if r < 0.2:
            words, slots['part_id'] = g.part_id()
            return words, slots
        if r < 0.4:
            words, slots['position'] = g.position()
            return words, slots
        det = g.pick(['the', 'the', 'that', 'a', 'this', 'one'])
        words: List[Word] = _plain(det)
        if g.chance(0.3) and 'position' not in slots:
            w, slots['position'] = g.pick([lambda: _pos_adj(g)])()
            words += w
        if allow_defect and g.chance(0.2):
            w, slots['defect'] = g.defect_adj(g.pick(['scratch', 'crack', 'stain', 'chip',
                                                      'any']))
            words += w
        if g.chance(0.7):
            w, slots['color'] = g.color()
            words += w
        if g.chance(0.75) or not slots:
            w, slots['shape'] = g.shape()
            words += w
        else:
            words += _plain(g.pick(['part', 'one', 'piece']))
        if g.chance(0.12) and 'position' not in slots:
            words += _plain(g.pick(['on the', 'at the', 'to the']))
            side = g.pick(['left', 'right'])
            words += _tag([side], 'position')
            slots['position'] = side
        return words, slots

    def _fill(self, intent: str, template: str) -> Tuple[List[Word], Dict[str, Any]]:
        g = self.gen
        words: List[Word] = []
        slots: Dict[str, Any] = {}
        for item in _expand(template, g):
            if isinstance(item, tuple):
                words.append(item)
                continue
            name = item
            if name == 'defect_adj':
                w, v = g.defect_adj()
                slot = 'defect'
            elif name == 'defect_noun':
                w, v = g.defect_noun()
                slot = 'defect'
            elif name == 'color':
                w, v = g.color()
                slot = 'color'
            elif name == 'shape':
                w, v = g.shape()
                slot = 'shape'
            elif name == 'shape_pl':
                w, v = g.shape(plural=True)
                slot = 'shape'
            elif name == 'bin':
                w, v = g.bin_()
                slot = 'bin'
            elif name == 'bin_verb':
                value = g.pick(['reject', 'rework', 'accept'])
                verb = g.pick({'reject': ['reject', 'scrap', 'trash', 'discard'],
                               'rework': ['rework', 'repair'],
                               'accept': ['accept', 'keep', 'pass']}[value])
                w, v = _tag([verb], 'bin'), value
                slot = 'bin'
            elif name == 'part_id':
                w, v = g.part_id()
                slot = 'part_id'
            elif name == 'value':
                w, v = g.value()
                slot = 'value'
            elif name == 'query':
                w, v = g.query()
                slot = 'query'
            elif name in ('obj', 'obj_i'):
                w, more = self._obj(allow_defect=(name == 'obj'))
                for key, val in more.items():
                    slots.setdefault(key, val)
                words += w
                continue
            elif name.startswith('dir_') or name.startswith('too_'):
                w, v = self._direction(name)
                slot = 'direction'
            else:
                raise KeyError(name)
            if slot in slots:
                # a second phrase for a filled slot would make the label ambiguous
                w = [(t, 'O') for t, _ in w]
            else:
                slots[slot] = v
            words += w
        return words, slots

    def _direction(self, kind: str) -> Tuple[List[Word], str]:
        g = self.gen
        up = g.chance(0.5)
        if kind == 'dir_speed':
            phrase = g.pick(['speed up', 'go faster', 'faster', 'increase the speed',
                             'raise the speed', 'hurry up', 'pick up the pace',
                             'boost the speed', 'crank it up'] if up else
                            ['slow down', 'go slower', 'slower', 'decrease the speed',
                             'reduce the speed', 'lower the speed', 'ease off',
                             'take it easy', 'ease up'])
            keys = {'up', 'faster', 'increase', 'raise', 'hurry', 'pace', 'boost',
                    'slow', 'down', 'slower', 'decrease', 'reduce', 'lower', 'ease', 'easy'}
        elif kind == 'dir_speed_adj':
            phrase = g.pick(['faster', 'quicker', 'a bit faster', 'more quickly', 'speedier']
                            if up else ['slower', 'more slowly', 'a bit slower', 'slowly',
                                        'gentler'])
            keys = {'faster', 'quicker', 'quickly', 'slower', 'slowly', 'gentler', 'more',
                    'speedier'}
        elif kind == 'dir_part':
            phrase = g.pick(['up']) if up else g.pick(['down'])
            keys = {'up', 'down'}
        elif kind == 'dir_verb':
            phrase = g.pick(['increase', 'raise', 'bump up', 'turn up', 'boost']) if up else \
                g.pick(['decrease', 'lower', 'reduce', 'turn down', 'drop'])
            keys = {'increase', 'raise', 'bump', 'up', 'boost', 'decrease', 'lower', 'reduce',
                    'down', 'drop'}
        elif kind == 'dir_sens_verb':
            phrase = g.pick(['tighten', 'tighten up', 'toughen up']) if up else \
                g.pick(['relax', 'loosen', 'loosen up', 'ease off', 'ease up on'])
            keys = {'tighten', 'up', 'relax', 'loosen', 'ease', 'off', 'toughen'}
        elif kind == 'too_sens':
            phrase = g.pick(['not strict enough', 'too lenient', 'missing defects',
                             'letting bad parts through', 'too relaxed']) if up else \
                g.pick(['too picky', 'too strict', 'rejecting too much', 'too sensitive',
                        'flagging too many'])
            keys = {'strict', 'enough', 'lenient', 'missing', 'letting', 'relaxed', 'picky',
                    'rejecting', 'sensitive', 'flagging', 'too', 'not', 'much', 'many'}
        elif kind == 'too_speed':
            # "too fast" asks for slower
            phrase = g.pick(['too slow', 'going too slow', 'too sluggish']) if up \
                else g.pick(['too fast', 'going too fast', 'way too quick'])
            keys = {'too', 'slow', 'sluggish', 'fast', 'quick'}
        elif kind == 'dir_speed_verb':
            phrase = g.pick(['speed up', 'hurry up', 'accelerate', 'step up']) if up else \
                g.pick(['slow', 'slow down', 'decelerate', 'ease off'])
            keys = {'up', 'hurry', 'accelerate', 'slow', 'down', 'decelerate', 'ease'}
        elif kind == 'too_speed_bare':
            phrase = g.pick(['too slow', 'too sluggish', 'too slowly']) if up \
                else g.pick(['too fast', 'too quick', 'too quickly'])
            keys = {'too', 'slow', 'sluggish', 'slowly', 'fast', 'quick', 'quickly'}
        elif kind == 'dir_word':
            phrase = g.pick(['up', 'higher', 'increase']) if up else \
                g.pick(['down', 'lower', 'decrease'])
            keys = {'up', 'higher', 'increase', 'down', 'lower', 'decrease'}
        else:  # dir_sens
            phrase = g.pick(['more strict', 'stricter', 'more sensitive', 'pickier',
                             'more picky', 'more careful', 'tighter', 'harsher',
                             'less lenient', 'less forgiving', 'fussier'] if up else
                            ['less strict', 'less picky', 'more lenient', 'less sensitive',
                             'relax', 'more relaxed', 'looser', 'more forgiving',
                             'less fussy', 'more tolerant', 'chill out'])
            keys = {'more', 'less', 'strict', 'stricter', 'sensitive', 'pickier', 'picky',
                    'careful', 'tighter', 'harsher', 'lenient', 'forgiving', 'fussier',
                    'relax', 'relaxed', 'looser', 'fussy', 'tolerant', 'chill'}
        words: List[Word] = []
        prev = False
        for w in phrase.split():
            if w in keys:
                words.append((w, ('I-' if prev else 'B-') + 'direction'))
                prev = True
            else:
                words.append((w, 'O'))
                prev = False
        return words, 'up' if up else 'down'

    # -- noise -----------------------------------------------------------------------------
    def _typo(self, word: str) -> str:
        g = self.gen
        if len(word) < 4 or not word.isalpha():
            return word
        for _ in range(1 if len(word) < 7 or g.chance(0.6) else 2):
            i = g.rng.randrange(len(word))
            op = g.rng.random()
            letters = 'abcdefghijklmnopqrstuvwxyz'
            if op < 0.3:
                word = word[:i] + word[i + 1:]
            elif op < 0.5:
                word = word[:i] + g.pick(letters) + word[i:]
            elif op < 0.75:
                word = word[:i] + g.pick(letters) + word[i + 1:]
            elif i < len(word) - 1:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            else:
                word = word + word[-1]
        return word

    def _noise(self, words: List[Word]) -> List[Word]:
        g = self.gen
        if g.chance(0.35):
            words = _plain(g.pick(_FILLER_PRE)) + words
        if g.chance(0.25):
            words = words + _plain(g.pick(_FILLER_POST))
        if g.chance(0.08) and len(words) > 2:
            i = g.rng.randrange(1, len(words))
            if not words[i][1].startswith('I-'):  # never inside a slot phrase
                words = words[:i] + _plain(g.pick(['um', 'uh', 'like', 'er', 'erm'])) + \
                    words[i:]
        rate = g.pick([0.0, 0.0, 0.04, 0.08, 0.15])
        out: List[Word] = []
        for w, tag in words:
            if rate and g.chance(rate):
                typo = self._typo(w)
                # a typo that spells another domain word, or a common English word that is
                # never corrected (``halt`` -> ``salt``), would teach a wrong meaning
                norm = textmod.normalize_token(typo)
                if norm == textmod.normalize_token(w) or (
                        norm not in _DOMAIN and norm not in lexicon.COMMON_WORDS
                        and norm not in lexicon.PROTECTED_WORDS):
                    w = typo
            out.append((w, tag))
        return out

    def _render(self, words: List[Word]) -> str:
        g = self.gen
        parts: List[str] = []
        for i, (w, _) in enumerate(words):
            if i and words[i - 1][0] == '#':
                parts[-1] += w
            elif i and w == '%' and g.chance(0.7):
                parts[-1] += w
            elif i and w == 'stop' and words[i - 1][0] == 'e' and g.chance(0.6):
                parts[-1] += '-' + w
            else:
                parts.append(w)
        if len(parts) > 3 and g.chance(0.15):
            i = g.rng.randrange(1, len(parts) - 1)
            parts[i] += ','
        case = g.rng.random()
        text = ' '.join(parts)
        if case < 0.15:
            text = text.upper()
        elif case < 0.45:
            text = text[:1].upper() + text[1:]
        elif case < 0.5:
            text = text.title()
        text += g.pick(['', '', '', '.', '!', '?', '!!', '...'])
        return text

    # -- public ------------------------------------------------------------------------------
    def example(self, intent: str) -> Dict[str, Any]:
        """Generate one labelled example of ``intent``."""
        g = self.gen
        if intent == 'unknown':
            words, slots = self._unknown_words(), {}
        else:
            words, slots = self._fill(intent, g.pick(self.templates[intent]))
        words = [(w, t) for w, t in words if w]
        words = self._noise(words)
        text = self._render(words)
        tokens = textmod.tokenize(text)
        tags = [t for _, t in words]
        if len(tokens) != len(tags):  # a rendering the tokenizer splits differently
            return self.example(intent)
        return {'text': text, 'tokens': tokens, 'tags': tags, 'intent': intent,
                'slots': slots}

    def _unknown_words(self) -> List[Word]:
        g = self.gen
        r = g.rng.random()
        if r < 0.75:
            return [(w, 'O') for w, _ in _expand(g.pick(self.ood), g)]
        if r < 0.95:
            n = g.rng.randint(1, 6)
            return [(''.join(g.pick('asdfghjklqwertyuiopzxcvbnm')
                             for _ in range(g.rng.randint(2, 9))), 'O') for _ in range(n)]
        # a little word salad of chit-chat words only: salad made of domain words would
        # teach the model that any unfamiliar order of domain words is out of domain
        pool = [w for t in OOD for w in re.findall(r'[a-z]+', t)
                if w not in _DOMAIN and w not in lexicon.NEGATIONS]
        n = g.rng.randint(2, 7)
        return [(g.pick(pool), 'O') for _ in range(n)]

    def generate(self, count: int) -> Iterator[Dict[str, Any]]:
        """Yield ``count`` examples with a fixed intent mix."""
        weights = {'start': 1.0, 'pause': 1.0, 'stop': 1.0, 'emergency_stop': 1.0,
                   'sort': 2.5, 'pick': 2.5, 'inspect': 2.0, 'set_speed': 1.8,
                   'set_sensitivity': 1.6, 'status': 1.4, 'home': 1.0, 'unknown': 1.8}
        intents = list(weights)
        cum = [weights[i] for i in intents]
        for _ in range(count):
            yield self.example(self.gen.rng.choices(intents, weights=cum)[0])


def _pos_adj(g: _Gen) -> Tuple[List[Word], str]:
    value = g.pick(['next', 'last', 'left', 'right', 'nearest'])
    word = {'next': ['next', 'upcoming'], 'last': ['last', 'previous'],
            'left': ['left', 'leftmost'], 'right': ['right', 'rightmost'],
            'nearest': ['nearest', 'closest']}[value]
    return _tag([g.pick(word)], 'position'), value


def generate_split(split: str, count: int, seed: Optional[int] = None
                   ) -> List[Dict[str, Any]]:
    """
    Return the examples of one split (``train`` or ``val``).

    :param split: which split (its default seed and template set).
    :param count: how many examples.
    :param seed: override the split's default seed.
    """
    seed = seed if seed is not None else (TRAIN_SEED if split == 'train' else VAL_SEED)
    return list(CorpusGenerator(seed, split).generate(count))


def write_jsonl(examples: Sequence[Dict[str, Any]], path: Path) -> None:
    """Write examples as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as fh:
        for ex in examples:
            fh.write(json.dumps(ex, ensure_ascii=False) + '\n')
