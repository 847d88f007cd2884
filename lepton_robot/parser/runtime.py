"""
Run-time command parser: ONNX Runtime (CPU) only, no torch.

The model file carries everything the runtime needs in its ``metadata_props``
(vocabulary, intent and tag labels, feature settings, version), read through
``session.get_modelmeta().custom_metadata_map``.
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from lepton_robot import paths
from lepton_robot.errors import ModelError
from lepton_robot.parser.features import (Batch, NGRAM_BUCKETS, NGRAM_SIZES,
                                          NGRAMS_PER_TOKEN, PAD, UNK)
from lepton_robot.parser.pipeline import DEFAULT_CONFIDENCE_FLOOR, ParserCore
import numpy as np

LOG = logging.getLogger(__name__)

MODEL_FILE = 'command_parser.onnx'
_REQUIRED_KEYS = ('vocab', 'intents', 'tags', 'version', 'features')


def default_model_path() -> Path:
    """Return the shipped model's path (``models/command_parser.onnx``)."""
    return paths.models_dir() / MODEL_FILE


def _metadata(sess, path: Path) -> Dict[str, Any]:
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f'{path}: not a command parser model (metadata lacks {missing})')
    try:
        out = {'vocab': json.loads(meta['vocab']), 'intents': json.loads(meta['intents']),
               'tags': json.loads(meta['tags']), 'features': json.loads(meta['features']),
               'version': meta['version'], 'created': meta.get('created', ''),
               'name': meta.get('name', '')}
    except ValueError as exc:
        raise ModelError(f'{path}: unreadable parser metadata: {exc}') from exc
    feats = out['features']
    expected = {'ngram_buckets': NGRAM_BUCKETS, 'ngrams_per_token': NGRAMS_PER_TOKEN,
                'ngram_sizes': list(NGRAM_SIZES)}
    if feats != expected:
        raise ModelError(f'{path}: model features {feats} do not match this runtime '
                         f'{expected}; retrain with this version')
    vocab = out['vocab']
    if vocab.get(PAD) != 0 or UNK not in vocab:
        raise ModelError(f'{path}: vocabulary lacks {PAD}=0 or {UNK}')
    return out


class CommandParser:
    """
    Parse operator utterances with the ONNX model; :meth:`parse` never raises.

    :param model_path: the ONNX file (default: the shipped model).
    :param confidence_floor: below it the answer is ``unknown`` (0..1).
    :param intra_op_threads: ONNX Runtime intra-op threads (1 keeps latency steady on
        small CPUs).
    :raises ModelError: if the model is missing, unreadable or not a parser model
        (at construction only: fail fast).
    """

    def __init__(self, model_path: Optional[Union[str, Path]] = None,
                 confidence_floor: float = DEFAULT_CONFIDENCE_FLOOR,
                 intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ModelError(f'parser model not found: {self.model_path} '
                             '(train one with: lepton-robot train parser)')
        if not 0.0 <= float(confidence_floor) <= 1.0:
            raise ModelError(f'confidence_floor must be in 0..1, got {confidence_floor}')
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(intra_op_threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=opts,
                                                 providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: BLE001 - ORT raises many types; report one
            raise ModelError(f'cannot load parser model {self.model_path}: {exc}') from exc
        self.providers = self._session.get_providers()
        meta = _metadata(self._session, self.model_path)
        self.version = meta['version']
        self.created = meta['created']
        self._core = ParserCore(self._predict, meta['vocab'], meta['intents'], meta['tags'],
                                confidence_floor)

    @property
    def confidence_floor(self) -> float:
        """Below this intent probability the answer is ``unknown``."""
        return self._core.confidence_floor

    @confidence_floor.setter
    def confidence_floor(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f'confidence_floor must be in 0..1, got {value}')
        self._core.confidence_floor = value

    @property
    def intents(self) -> List[str]:
        """Return the model's intent labels."""
        return list(self._core.intents)

    def _predict(self, batch: Batch) -> Tuple[np.ndarray, np.ndarray]:
        intent_probs, tag_probs = self._session.run(None, batch.as_feed())
        return intent_probs, tag_probs

    def warmup(self) -> None:
        """Run one utterance so the first real one is not slow."""
        self._core.parse('start the line')

    def parse(self, text: object) -> Dict[str, Any]:
        """Parse one utterance into a ``lepton.intent/1`` payload (never raises)."""
        return self._core.parse(text)

    def parse_batch(self, texts: Sequence[object]) -> List[Dict[str, Any]]:
        """Parse many utterances in one model call; results in input order."""
        return self._core.parse_batch(list(texts))
