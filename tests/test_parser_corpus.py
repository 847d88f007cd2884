"""Tests of the seeded corpus generator (reproducible, aligned labels, separate splits)."""

from lepton_robot.interfaces import INTENTS, make_intent
from lepton_robot.parser import corpus, text, values
from lepton_robot.parser.pipeline import bio_spans


def test_same_seed_same_corpus():
    assert corpus.generate_split('train', 300) == corpus.generate_split('train', 300)


def test_validation_split_differs_from_training():
    train = {ex['text'].lower() for ex in corpus.generate_split('train', 3000)}
    val = [ex['text'].lower() for ex in corpus.generate_split('val', 1000)]
    overlap = sum(1 for t in val if t in train)
    # short commands ("stop", "pause") repeat by nature; most of the split must be new
    assert overlap / len(val) < 0.35


def test_held_out_templates_only_in_validation():
    train = corpus.CorpusGenerator(1, 'train')
    val = corpus.CorpusGenerator(1, 'val')
    for intent in INTENTS:
        held_out = set(val.templates[intent]) - set(train.templates[intent])
        if len(val.templates[intent]) >= corpus.HELD_OUT_EVERY:
            assert held_out, intent


def test_examples_are_consistent_and_valid():
    examples = corpus.generate_split('train', 2000, seed=5)
    assert {ex['intent'] for ex in examples} == set(INTENTS)
    agree = 0
    for ex in examples:
        assert ex['tokens'] == text.tokenize(ex['text'])
        assert len(ex['tags']) == len(ex['tokens'])
        make_intent(ex['text'], ex['intent'], ex['slots'], 1.0)  # contract-valid labels
        norm = text.normalize_tokens(ex['tokens'])
        got = {}
        for slot, start, end in bio_spans(ex['tags']):
            value = values.canonicalize(slot, norm[start:end])
            if value is not None:
                got.setdefault(slot, value)
        agree += got == ex['slots']
    # tags and canonicaliser agree except where random typos destroy a word
    assert agree / len(examples) > 0.99


def test_variety():
    examples = corpus.generate_split('train', 3000, seed=9)
    texts = {ex['text'] for ex in examples}
    assert len(texts) > 0.8 * len(examples)
    assert any(ex['text'].isupper() for ex in examples)
    assert any(t not in text.lexicon.domain_words() and text.normalize_token(t) != t
               for ex in examples for t in ex['tokens'])  # typos present
    assert sum(len(ex['slots']) >= 3 for ex in examples) > 50  # multi-slot combos
