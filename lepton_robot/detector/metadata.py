"""
Model metadata carried inside the ONNX file (``metadata_props``), parsed as JSON, never eval'd.

Keys written by the exporter (every value is a string; structured values are JSON):

=================  ===============================================================
``lepton.model``   ``defect_detector`` (what this file is)
``version``        model version string
``input_size``     crop side in pixels (the network input is N x 3 x S x S, float32)
``crop_px``        crop side in source-image pixels before resizing to ``input_size``
``mean``/``std``   JSON lists of 3 floats, RGB order, applied to pixel/255
``conditions``     JSON list of condition names (order of the ``condition`` output)
``colors``         JSON list of color names (order of the ``color`` output)
``shapes``         JSON list of shape names (order of the ``shape`` output)
``ok_threshold``   probability of ``ok`` needed to call a part ok at sensitivity 50
``segmentation``   JSON of :class:`~lepton_robot.detector.segmentation.SegmentationConfig`
``part_heights``   JSON object shape -> height in metres (for world positions)
``shape_fusion``   optional JSON: logistic-regression head over blob geometry + the CNN's
                   shape log-probabilities (``mean``, ``std``, ``W``, ``b``)
``tta``            test-time augmentation the runtime applies (and ``ok_threshold`` was
                   calibrated for): ``none`` (absent: none) or ``flip`` (each crop and its
                   mirror image, probabilities averaged)
=================  ===============================================================
"""

from dataclasses import dataclass, field
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

from lepton_robot.detector.segmentation import SegmentationConfig
from lepton_robot.errors import ConfigError, ModelError
from lepton_robot.interfaces import COLORS, CONDITIONS, SHAPES

MODEL_KIND = 'defect_detector'
OUTPUT_NAMES = ('condition', 'color', 'shape')
#: Test-time augmentations the runtime knows (metadata ``tta``).
TTA_MODES = ('none', 'flip')
INPUT_NAME = 'crops'

#: Approximate part heights (metres) used when the model carries none.
DEFAULT_PART_HEIGHTS = {'block': 0.045, 'cylinder': 0.04, 'plate': 0.01}


@dataclass
class ModelMetadata:
    """What the runtime needs to know about a detector model (see the module docstring)."""

    version: str = '0'
    input_size: int = 64
    crop_px: int = 64
    mean: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: Tuple[float, float, float] = (0.25, 0.25, 0.25)
    conditions: Tuple[str, ...] = CONDITIONS
    colors: Tuple[str, ...] = COLORS
    shapes: Tuple[str, ...] = SHAPES
    ok_threshold: float = 0.5
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    part_heights: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PART_HEIGHTS))
    shape_fusion: Optional[Dict[str, Any]] = None
    tta: str = 'none'
    extra: Dict[str, str] = field(default_factory=dict)

    def to_props(self) -> Dict[str, str]:
        """Return the metadata as ONNX ``metadata_props`` (string -> string)."""
        props = {
            'lepton.model': MODEL_KIND,
            'version': str(self.version),
            'input_size': str(int(self.input_size)),
            'crop_px': str(int(self.crop_px)),
            'mean': json.dumps([float(v) for v in self.mean]),
            'std': json.dumps([float(v) for v in self.std]),
            'conditions': json.dumps(list(self.conditions)),
            'colors': json.dumps(list(self.colors)),
            'shapes': json.dumps(list(self.shapes)),
            'ok_threshold': repr(float(self.ok_threshold)),
            'segmentation': self.segmentation.to_json(),
            'part_heights': json.dumps(self.part_heights),
            'tta': str(self.tta),
        }
        if self.shape_fusion is not None:
            props['shape_fusion'] = json.dumps(self.shape_fusion)
        props.update({k: str(v) for k, v in self.extra.items() if k not in props})
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = 'model') -> 'ModelMetadata':
        """
        Parse ``metadata_props`` written by :meth:`to_props`.

        :param props: the string map from the ONNX file.
        :param source: the file name, for error messages.
        :raises ModelError: if a key is missing or malformed, or the class lists differ
            from the contract's vocabularies.
        """
        if props.get('lepton.model') != MODEL_KIND:
            raise ModelError(f'{source}: not a lepton_robot defect detector model '
                             f'(metadata lepton.model={props.get("lepton.model")!r})')
        try:
            meta = cls(
                version=props.get('version', '0'),
                input_size=int(props['input_size']),
                crop_px=int(props.get('crop_px', props['input_size'])),
                mean=_floats(props['mean'], 3),
                std=_floats(props['std'], 3),
                conditions=tuple(_strings(props['conditions'])),
                colors=tuple(_strings(props['colors'])),
                shapes=tuple(_strings(props['shapes'])),
                ok_threshold=float(props.get('ok_threshold', '0.5')),
                segmentation=SegmentationConfig.from_mapping(
                    json.loads(props.get('segmentation', '{}'))),
                part_heights={str(k): float(v) for k, v in
                              json.loads(props.get('part_heights', '{}')).items()}
                or dict(DEFAULT_PART_HEIGHTS),
                shape_fusion=_fusion(props.get('shape_fusion')),
                tta=props.get('tta', 'none'),
                extra={k: v for k, v in props.items() if k not in _KNOWN},
            )
        except (KeyError, ValueError, TypeError, AttributeError, ConfigError) as exc:
            raise ModelError(f'{source}: bad model metadata: {type(exc).__name__}: {exc}') \
                from exc
        if set(meta.conditions) != set(CONDITIONS) or set(meta.colors) != set(COLORS) \
                or set(meta.shapes) != set(SHAPES):
            raise ModelError(f'{source}: class names differ from the cell contract')
        if not 8 <= meta.input_size <= 1024 or meta.crop_px < 8:
            raise ModelError(f'{source}: implausible input_size {meta.input_size}')
        if any(s <= 0 for s in meta.std):
            raise ModelError(f'{source}: std must be positive')
        if not 0.0 < meta.ok_threshold < 1.0:
            raise ModelError(f'{source}: ok_threshold must be in (0, 1)')
        if meta.tta not in TTA_MODES:
            raise ModelError(f'{source}: unknown test-time augmentation tta={meta.tta!r} '
                             f'(known: {", ".join(TTA_MODES)})')
        return meta


_KNOWN = {'lepton.model', 'version', 'input_size', 'crop_px', 'mean', 'std', 'conditions',
          'colors', 'shapes', 'ok_threshold', 'segmentation', 'part_heights', 'shape_fusion',
          'tta'}


def _fusion(text: Optional[str]) -> Optional[Dict[str, Any]]:
    """Parse and check the shape fusion head (sizes must agree)."""
    if not text:
        return None
    obj = json.loads(text)
    mean, std = [float(v) for v in obj['mean']], [float(v) for v in obj['std']]
    weights = [[float(v) for v in row] for row in obj['W']]
    bias = [float(v) for v in obj['b']]
    if len(mean) != len(std) or len(weights) != len(bias) \
            or any(len(row) != len(mean) for row in weights):
        raise ValueError('shape_fusion sizes disagree')
    return {'mean': mean, 'std': std, 'W': weights, 'b': bias}


def _floats(text: str, n: int) -> Tuple[float, ...]:
    values = json.loads(text)
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f'expected a list of {n} numbers, got {text!r}')
    return tuple(float(v) for v in values)


def _strings(text: str) -> List[str]:
    values = json.loads(text)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f'expected a list of strings, got {text!r}')
    return values


def read_onnx_metadata(path: str) -> Dict[str, str]:
    """
    Read the ``metadata_props`` of an ONNX file without running it.

    Uses ONNX Runtime (a runtime dependency) so that the ``onnx`` package is not needed.

    :raises ModelError: if the file is missing or not a loadable ONNX model.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a runtime dependency
        raise ModelError(f'onnxruntime is needed to read {path}: {exc}') from exc
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
        raise ModelError(f'cannot load ONNX model {path}: {exc}') from exc
    return dict(session.get_modelmeta().custom_metadata_map)


def describe(meta: ModelMetadata) -> Dict[str, Any]:
    """Return a short JSON-able summary of the metadata (for logs and ``info``)."""
    return {'version': meta.version, 'input_size': meta.input_size, 'crop_px': meta.crop_px,
            'ok_threshold': meta.ok_threshold}
