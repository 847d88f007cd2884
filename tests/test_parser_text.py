"""Unit tests of the parser core: sanitation, tokenisation, typo correction, slot values."""

from lepton_robot.parser import safety, text, values
from lepton_robot.parser.pipeline import _implied_slots, bio_spans, negated_command
import pytest


@pytest.mark.parametrize('raw, reason_part', [
    ('', 'empty'),
    ('   \t\n ', 'only whitespace'),
    ('x' * (1024 * 1024), 'too long'),
    (b'\xff\xfe\x00stop', 'invalid UTF-8'),
    ('pick\x00 part 3', 'control'),
    ('\x1b[31mstart', 'control'),
    ('\ud800abc', 'control'),
    (12, 'not text'),
    (None, 'not text'),
])
def test_sanitize_rejects_with_reason(raw, reason_part):
    clean = text.sanitize(raw)
    assert clean.text is None
    assert reason_part in clean.reason


@pytest.mark.parametrize('raw, expected', [
    ('  stop   the line ', 'stop the line'),
    ('pick\tpart\n3', 'pick part 3'),
    ('\ufeffstart\u200b', 'start'),
    (b'r\xc3\xa9sum\xc3\xa9', 'résumé'),
])
def test_sanitize_cleans(raw, expected):
    clean = text.sanitize(raw)
    assert clean.reason is None
    assert clean.text == expected


def test_sanitize_keeps_scan_text_for_control_characters():
    clean = text.sanitize('stop\x00\x00')
    assert clean.text is None and clean.scan == 'stop'


@pytest.mark.parametrize('raw, scan', [
    ('stop the line ' + 'blah ' * 400, 'stop the line blah'),       # too long
    (b'stop the line \xff\xfe', 'stop the line'),                   # invalid UTF-8
])
def test_rejected_input_keeps_its_stop_for_the_safety_scan(raw, scan):
    """Too long or badly encoded input is refused, but a stop in it still stops (session 12)."""
    clean = text.sanitize(raw)
    assert clean.text is None and clean.scan.startswith(scan)
    assert len(clean.scan) <= text.MAX_CHARS


@pytest.mark.parametrize('raw, tokens', [
    ('Put ALL scratched parts in bin #2!', ['put', 'all', 'scratched', 'parts', 'in', 'bin',
                                            '#', '2']),
    ('e-stop', ['e', 'stop']),
    ("don't stop", ["don't", 'stop']),
    ('speed 0.4, then 40%', ['speed', '0.4', 'then', '40', '%']),
    ('Grey CYLINDER…', ['grey', 'cylinder']),
    # a proper fraction becomes its decimal, which values read as a percentage
    ('speed to 3/4', ['speed', 'to', '0.75']), ('1 / 2 speed', ['0.5', 'speed']),
    ('4/4', ['1.0']), ('2/3', ['0.6667']),
    ('12/5', ['12', '5']), ('0/0', ['0', '0']), ('3/4/5', ['3', '4', '5']),
    ('2.5/4', ['2.5', '4']), ('part x3/4', ['part', 'x', '3', '4']),
])
def test_tokenize(raw, tokens):
    assert text.tokenize(raw) == tokens


@pytest.mark.parametrize('typo, word', [
    ('scrached', 'scratched'), ('cylindr', 'cylinder'), ('stpo', 'stop'), ('sto', 'stop'),
    ('kil', 'kill'),
    ('emergancy', 'emergency'), ('sensitivty', 'sensitivity'), ('speeed', 'speed'),
    ('paus', 'pause'), ('inspcet', 'inspect'), ('yelow', 'yellow'), ('scap', 'scrap'),
])
def test_typos_are_corrected(typo, word):
    assert text.normalize_token(typo) == word


@pytest.mark.parametrize('word', ['shop', 'the', 'weather', 'joke', '12', 'a', 'hello',
                                  # session 12: everyday words that were read as domain words
                                  'give', 'pull', 'come', 'case', 'skill', 'bill', 'quite',
                                  'sorting', 'started', 'picking', 'flag', 'smart', 'salt'])
def test_common_words_are_not_corrected(word):
    assert text.normalize_token(word) == word


@pytest.mark.parametrize('word, domain', [('homign', 'homing'), ('bsae', 'base'),
                                          ('stoww', 'stow'), ('sens', 'sensitivity')])
def test_home_words_and_abbreviations(word, domain):
    """``homing``, ``base``, ``stow`` are domain words (before: ``coming``, ``ease``, ``slow``)."""
    assert text.normalize_token(word) == domain


@pytest.mark.parametrize('words, value', [
    ('forty', 40), ('0.4', 40), ('40 percent', 40), ('40 %', 40), ('half', 50), ('full', 100),
    ('max', 100), ('forty five', 45), ('seventy five percent', 75), ('one hundred', 100),
    ('a hundred', 100), ('0,5', 50), ('three quarters', 75), ('a quarter', 25), ('zero', 0),
    ('12.5 percent', 12.5), ('150', None), ('lots', None),
])
def test_canonical_value(words, value):
    assert values.canonical_value(words.split()) == value


@pytest.mark.parametrize('words, part_id', [
    ('12', 12), ('twelve', 12), ('# 12', 12), ('part twelve', 12), ('0012', 12),
    ('one hundred and five', 105), ('twenty three', 23), ('0', 0), ('3.5', None),
])
def test_canonical_part_id(words, part_id):
    assert values.canonical_part_id(words.split()) == part_id


@pytest.mark.parametrize('words, bin_', [
    ('bin two', 'reject'), ('second bin', 'reject'), ('scrap bin', 'reject'),
    ('bin 2', 'reject'), ('good bin', 'accept'), ('pass bin', 'accept'), ('bin one', 'accept'),
    ('first bin', 'accept'), ('bin 3', 'rework'), ('third bin', 'rework'),
    ('rework', 'rework'), ('trash', 'reject'), ('bin 4', None),
])
def test_canonical_bin(words, bin_):
    assert values.canonical_bin(words.split()) == bin_


@pytest.mark.parametrize('slot, words, value', [
    ('color', 'grey', 'gray'), ('color', 'gray', 'gray'), ('color', 'red', 'red'),
    ('shape', 'cube', 'block'), ('shape', 'box', 'block'), ('shape', 'can', 'cylinder'),
    ('shape', 'round', 'cylinder'), ('shape', 'tube', 'cylinder'), ('shape', 'flat', 'plate'),
    ('shape', 'tile', 'plate'), ('shape', 'cub', 'block'),
    ('defect', 'scratched', 'scratch'), ('defect', 'cracked', 'crack'),
    ('defect', 'defective', 'any'), ('defect', 'faulty', 'any'), ('defect', 'good', 'none'),
    ('defect', 'flawless', 'none'), ('defect', 'no defects', 'none'),
    ('defect', 'chipped', 'chip'), ('defect', 'stained', 'stain'),
    ('position', 'closest', 'nearest'), ('position', 'previous', 'last'),
    ('position', 'leftmost', 'left'), ('position', 'next', 'next'),
    ('direction', 'faster', 'up'), ('direction', 'speed up', 'up'),
    ('direction', 'slow down', 'down'), ('direction', 'more strict', 'up'),
    ('direction', 'less strict', 'down'), ('direction', 'pickier', 'up'),
    ('direction', 'relax', 'down'), ('direction', 'too picky', 'down'),
    ('direction', 'not strict enough', 'up'), ('direction', 'too fast', 'down'),
    ('query', 'how many', 'counts'), ('query', 'scrap rate', 'defect_rate'),
    ('query', 'running', 'state'), ('query', 'last part', 'last_part'),
])
def test_canonicalize(slot, words, value):
    assert values.canonicalize(slot, words.split()) == value


@pytest.mark.parametrize('utterance, expected', [
    ('stop', 'stop'), ('STOP THE LINE', 'stop'), ('halt', 'stop'), ('freeze!', 'stop'),
    ('please stop the conveyor, it is jamming', 'stop'), ('stpo', 'stop'),
    ("don't go, stop!", 'stop'), ('no, stop!', 'stop'), ('why did you stop?', 'stop'),
    ('put scratched parts in rework and then stop', 'stop'),
    ('emergency stop', 'emergency_stop'), ('e-stop', 'emergency_stop'),
    ('E STOP NOW', 'emergency_stop'), ('estop', 'emergency_stop'),
    ('kill it now', 'emergency_stop'), ('abort abort', 'emergency_stop'),
    ('emergancy', 'emergency_stop'), ('stop, emergency!', 'emergency_stop'),
    ('stp the line', 'stop'), ('cut the power now', 'emergency_stop'),
    ("don't stop", None), ('do not stop the line', None), ('never stop', None),
    ('no need to stop', None), ("it's not an emergency, just pause", None),
    ('is the line stopped?', None), ('put scratched parts in rework', None), ('shop', None),
    # switching the cell off is a stop
    ('shut it down', 'stop'), ('please shut the line down', 'stop'), ('shut off', 'stop'),
    ('power down the cell', 'stop'), ('power off everything', 'stop'),
    ('turn everything off', 'stop'), ('switch the conveyor belt off', 'stop'),
    ('swtich it off', 'stop'), ('quit', 'stop'), ('knock it off', 'stop'),
    ('cut it out', 'stop'), ('shut the conveyor off, emergency!', 'emergency_stop'),
    ("don't turn it off", None), ('do not shut it down', None), ("don't quit", None),
    ('turn the speed down', None), ('turn on the line', None), ('switch on the belt', None),
    ('cut out the scratched parts', None), ('power up the cell', None),
    ('turn the belt up, the parts are piling off the end', None),
    ('STO MOVING WHEN YOU CAN.', 'stop'), ('kil it', 'emergency_stop'),
    ('in that case carry on', None), ('the mill is loud', None),      # case/mill: cease/kill
    ('you have the skill', None), ('quite fast please', None),
])
def test_safety_scan(utterance, expected):
    hit = safety.scan(utterance)
    assert (hit[0] if hit else None) == expected


@pytest.mark.parametrize('intent, words, slots, expected', [
    ('set_speed', 'slow the belt a bit', {}, {'direction': 'down'}),
    ('set_speed', 'the belt is going way too fast', {}, {'direction': 'down'}),
    ('set_speed', 'not fast enough', {}, {'direction': 'up'}),
    ('set_sensitivity', 'be a bit harsher', {}, {'direction': 'up'}),
    ('set_speed', 'slow down to 30', {'value': 30}, {'value': 30}),        # has a value
    ('set_speed', 'faster', {'direction': 'up'}, {'direction': 'up'}),    # already tagged
    ('set_speed', 'change the speed', {}, {}),                            # nothing implies one
    ('status', 'are we running right now', {}, {'query': 'state'}),
    ('status', 'what fraction are defective', {}, {'query': 'defect_rate'}),
    ('status', 'status report', {}, {}),
    ('status', "what's the status mate", {}, {}),        # "mate" is not typo-read as "rate"
    ('status', 'what is the quantity of reject piece', {}, {'query': 'counts'}),
    ('status', 'how much scrap so far', {}, {'query': 'counts'}),
    ('pick', 'grab the slow one', {}, {}),                                # not its slot
])
def test_implied_slots(intent, words, slots, expected):
    """A slot the tagger missed is filled only where a word clearly implies it."""
    slots = dict(slots)
    _implied_slots(intent, text.tokenize(words), slots)
    assert slots == expected


@pytest.mark.parametrize('tags, spans', [
    (['O', 'B-color', 'B-shape', 'O'], [('color', 1, 2), ('shape', 2, 3)]),
    (['B-bin', 'I-bin', 'O'], [('bin', 0, 2)]),
    (['O', 'I-value', 'I-value'], [('value', 1, 3)]),
    (['B-value', 'I-bin'], [('value', 0, 1), ('bin', 1, 2)]),
    (['O', 'O'], []),
])
def test_bio_spans(tags, spans):
    assert bio_spans(tags) == spans


@pytest.mark.parametrize('utterance, negation', [
    ("don't put scratched parts in rework", "don't"),
    ('never send cracked ones to accept', 'never'),
    ('ok please do not pick the red one', 'do not'), ('no need to home the arm', 'no need'),
    ("let's not inspect part 5", "let's not"), ('dont go home', 'dont'),
    ("don't stop, keep going", None), ('do not pause', None),      # left to the model
    ('no, put them in rework', None), ('not so fast', None),
    ('parts with no defects go to accept', None), ('put them in rework, never mind', None),
])
def test_negated_command(utterance, negation):
    """A command that opens with a negation is found (leading fillers skipped)."""
    assert negated_command(text.tokenize(utterance)) == negation
