"""Fuzz the parser (hypothesis, 10k inputs): no exception, every output contract-valid."""

from hypothesis import given, HealthCheck, settings, strategies as st
from lepton_robot.interfaces import dumps, validate_intent
from lepton_robot.parser.runtime import CommandParser, default_model_path
import pytest

pytestmark = pytest.mark.skipif(not default_model_path().is_file(),
                                reason='no shipped parser model')

_PARSER = None


def _parser():
    global _PARSER
    if _PARSER is None:
        _PARSER = CommandParser()
    return _PARSER


_WORDS = st.sampled_from(['stop', 'e-stop', 'pick', 'part', '#12', 'bin', 'two', 'grey',
                          'forty', '%', 'scrached', 'the', 'please', "don't", 'um', '0.4',
                          'sensitivity', 'emergency', 'home', '\x00', '\u202e', '🤖'])
INPUTS = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=200),
    st.lists(_WORDS, max_size=30).map(' '.join),
    st.text(alphabet=st.characters(codec='utf-8', categories=['Cc', 'Cf', 'Zs', 'Lu']),
            max_size=60),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=8), st.integers(60, 140000)),
    st.builds(lambda s, n: s * n, st.binary(min_size=1, max_size=8), st.integers(1, 5000)),
)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(INPUTS)
def test_fuzz_never_raises_and_output_is_valid(raw):
    result = _parser().parse(raw)
    validate_intent(result)
    dumps(result).encode('utf-8')  # publishable as std_msgs/String


def test_batch_with_bad_inputs():
    bad = [b'\xff' * 10, '', 'x' * (1 << 20), '\x00\x01', None, 'stop\x07', 3.5]
    results = _parser().parse_batch(bad + ['pick part 7'])
    for result in results:
        validate_intent(result)
    assert [r['intent'] for r in results[:5]] == ['unknown'] * 5
    assert all('reason' in r for r in results[:5])
    assert results[5]['intent'] == 'stop'  # the safety scan still reads it
    assert results[7]['intent'] == 'pick' and results[7]['slots'] == {'part_id': 7}
