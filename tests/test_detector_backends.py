"""Tests of the inference backends (ONNX Runtime here; TensorRT where a GPU has it)."""

from pathlib import Path

from detector_helpers import needs_model, SHIPPED_MODEL
from lepton_robot.detector import backends
from lepton_robot.detector.backends import (create_backend, engine_cache_key,
                                            engine_cache_path, OnnxRuntimeBackend,
                                            tensorrt_available, TensorRTBackend)
from lepton_robot.errors import BackendError, ModelError
import numpy as np
import pytest

TRT_REASON = tensorrt_available()
needs_trt = pytest.mark.skipif(TRT_REASON is not None,
                               reason=f'native TensorRT cannot run here: {TRT_REASON}')


@pytest.fixture(scope='module')
def ort_cpu():
    """Load the shipped model on ONNX Runtime's CPU provider."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f'{SHIPPED_MODEL} not trained yet')
    backend = OnnxRuntimeBackend(str(SHIPPED_MODEL), providers=['CPUExecutionProvider'],
                                 threads=2).load()
    yield backend
    backend.close()


@needs_model
def test_ort_reports_the_providers_the_session_kept(ort_cpu):
    """The backend name and providers come from session.get_providers(), not the request."""
    assert ort_cpu.providers == ort_cpu.session.get_providers()
    assert ort_cpu.providers[0] == 'CPUExecutionProvider'
    assert ort_cpu.name == 'onnxruntime-cpu'


@needs_model
@pytest.mark.parametrize('batch', [1, 3, 8])
def test_ort_infer_gives_probabilities(ort_cpu, batch):
    """Each head returns N rows of probabilities in the metadata's class order."""
    size = ort_cpu.metadata.input_size
    x = np.random.default_rng(batch).normal(0, 1, (batch, 3, size, size)).astype(np.float32)
    out = ort_cpu.infer(x)
    assert out['condition'].shape == (batch, len(ort_cpu.metadata.conditions))
    assert out['color'].shape == (batch, len(ort_cpu.metadata.colors))
    assert out['shape'].shape == (batch, len(ort_cpu.metadata.shapes))
    for head in out.values():
        assert np.allclose(head.sum(axis=1), 1.0, atol=1e-4)


@needs_model
@pytest.mark.parametrize('shape', [(3, 64, 64), (1, 1, 64, 64), (0, 3, 64, 64),
                                   (2, 3, 32, 32)])
def test_ort_rejects_wrong_batches(ort_cpu, shape):
    """A batch of the wrong shape raises BackendError before reaching ONNX Runtime."""
    with pytest.raises(BackendError):
        ort_cpu.infer(np.zeros(shape, np.float32))


@needs_model
@pytest.mark.parametrize('spin,allow,stop', [('run', '1', '1'), ('never', '0', ''),
                                             ('always', '1', '')])
def test_ort_pool_threads_spin_as_asked(spin, allow, stop):
    """Spin modes map onto the session's config; the default spins within a run only."""
    kwargs = {} if spin == 'run' else {'spin': spin}
    backend = create_backend(str(SHIPPED_MODEL), 'onnxruntime-cpu', threads=2, warmup=False,
                             **kwargs)
    opts = backend.session.get_session_options()
    assert opts.get_session_config_entry('session.intra_op.allow_spinning') == allow
    assert opts.get_session_config_entry('session.inter_op.allow_spinning') == allow
    if stop:
        assert opts.get_session_config_entry('session.force_spinning_stop') == stop
    else:
        with pytest.raises(RuntimeError, match='does not have'):
            opts.get_session_config_entry('session.force_spinning_stop')
    size = backend.metadata.input_size
    out = backend.infer(np.zeros((2, 3, size, size), np.float32))
    assert out['condition'].shape[0] == 2


def test_unknown_spin_mode_is_refused():
    """A spin mode that does not exist is a BackendError naming the valid ones."""
    with pytest.raises(BackendError, match='never'):
        OnnxRuntimeBackend(str(SHIPPED_MODEL), spin='sometimes')


@needs_model
def test_warmup_returns_latency(ort_cpu):
    """warmup() runs the model and returns a positive mean latency."""
    assert ort_cpu.warmup(iterations=2, batch_size=2) > 0.0


def test_missing_model_is_a_model_error(tmp_path):
    """A missing model file fails fast with ModelError on every backend."""
    with pytest.raises(ModelError, match='not found'):
        create_backend(str(tmp_path / 'nope.onnx'), 'onnxruntime')
    with pytest.raises((ModelError, BackendError)):
        TensorRTBackend(str(tmp_path / 'nope.onnx')).load()


def test_garbage_file_is_a_model_error(tmp_path):
    """A file that is not ONNX raises ModelError."""
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a model')
    with pytest.raises(ModelError):
        create_backend(str(bad), 'onnxruntime-cpu')


@needs_model
def test_model_without_metadata_is_refused(tmp_path):
    """An ONNX file without the detector's metadata is refused (never guessed)."""
    onnx = pytest.importorskip('onnx')
    proto = onnx.load(str(SHIPPED_MODEL))
    del proto.metadata_props[:]
    path = tmp_path / 'plain.onnx'
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match='not a lepton_robot defect detector'):
        create_backend(str(path), 'onnxruntime-cpu')


def test_unknown_backend_name():
    """An unknown backend name raises BackendError listing the valid ones."""
    with pytest.raises(BackendError, match='unknown backend'):
        create_backend(str(SHIPPED_MODEL), 'openvino')


@needs_model
def test_auto_picks_what_works_here():
    """Fall back to ONNX Runtime (backend auto) when native TensorRT cannot run."""
    backend = create_backend(str(SHIPPED_MODEL), 'auto')
    try:
        if TRT_REASON is None:
            assert backend.name.startswith('tensorrt')
        else:
            assert backend.name.startswith('onnxruntime-')
            assert backend.name == 'onnxruntime-' + {
                'CPUExecutionProvider': 'cpu', 'CUDAExecutionProvider': 'cuda',
                'TensorrtExecutionProvider': 'tensorrt'}[backend.providers[0]]
    finally:
        backend.close()


@needs_model
def test_unavailable_ort_provider_is_an_error():
    """Asking for a provider this ONNX Runtime does not have raises BackendError."""
    import onnxruntime as ort
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('this ONNX Runtime has CUDA')
    with pytest.raises(BackendError):
        create_backend(str(SHIPPED_MODEL), 'onnxruntime-cuda')


@needs_model
def test_failing_provider_falls_back_to_the_next(monkeypatch):
    """
    A provider that cannot start is dropped and the next one is used and reported.

    Steps: pretend CUDA is available but make sessions asking for it fail; the backend
    must end on CPU and say so.
    """
    import onnxruntime as ort
    real_session = ort.InferenceSession

    def session(path, opts=None, providers=None):
        if providers and providers[0] == 'CUDAExecutionProvider':
            raise RuntimeError('CUDA driver not found')
        return real_session(path, opts, providers=providers)

    monkeypatch.setattr(ort, 'get_available_providers',
                        lambda: ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    monkeypatch.setattr(ort, 'InferenceSession', session)
    backend = OnnxRuntimeBackend(str(SHIPPED_MODEL)).load()
    assert backend.providers == ['CPUExecutionProvider']
    assert backend.name == 'onnxruntime-cpu'


def test_engine_cache_key_changes_with_each_component(tmp_path):
    """The engine file changes with the model hash, TensorRT version, GPU or precision."""
    base = engine_cache_key('aa', '10.3.0', 'Orin', 'fp16')
    paths = {engine_cache_path(tmp_path, 'm.onnx', base)}
    for change in [{'model_sha256': 'bb'}, {'tensorrt': '10.4.0'}, {'gpu': 'RTX 4090'},
                   {'precision': 'int8'}]:
        paths.add(engine_cache_path(tmp_path, 'm.onnx', {**base, **change}))
    assert len(paths) == 5
    assert engine_cache_path(tmp_path, 'm.onnx', dict(base)) in paths


def test_file_hash_is_content_based(tmp_path):
    """The model hash depends on content only (a rebuilt identical model reuses its engine)."""
    a, b = tmp_path / 'a.onnx', tmp_path / 'b.onnx'
    a.write_bytes(b'x' * 10)
    b.write_bytes(b'x' * 10)
    assert backends.file_sha256(str(a)) == backends.file_sha256(str(b))
    b.write_bytes(b'y' * 10)
    assert backends.file_sha256(str(a)) != backends.file_sha256(str(b))


@pytest.mark.skipif(TRT_REASON is None, reason='TensorRT is present here')
def test_tensorrt_absent_is_a_clear_error():
    """Without TensorRT the native backend says why and what to use instead."""
    with pytest.raises(BackendError, match='TensorRT|CUDA'):
        TensorRTBackend(str(SHIPPED_MODEL)).load()


@needs_trt
@needs_model
@pytest.mark.parametrize('precision', ['fp16', 'fp32'])
def test_tensorrt_engine_is_cached_and_matches_ort(tmp_path, ort_cpu, precision):
    """
    The engine is built once, reused from the cache, and agrees with ONNX Runtime.

    Steps: build into an empty cache (built=True), load again (built=False, same file),
    compare class decisions with ONNX Runtime CPU on random crops.
    """
    first = TensorRTBackend(str(SHIPPED_MODEL), precision, cache_dir=str(tmp_path)).load()
    assert first.built and Path(first.engine_path).is_file()
    second = TensorRTBackend(str(SHIPPED_MODEL), precision, cache_dir=str(tmp_path)).load()
    assert not second.built and second.engine_path == first.engine_path
    size = ort_cpu.metadata.input_size
    x = np.random.default_rng(1).normal(0, 1, (5, 3, size, size)).astype(np.float32)
    want, got = ort_cpu.infer(x), second.infer(x)
    for head in want:
        assert np.allclose(want[head], got[head], atol=2e-2)
    first.close()
    second.close()
