"""
Inference backends behind one small interface: ``load()``, ``warmup()``, ``infer(batch)``.

- :class:`OnnxRuntimeBackend`: ONNX Runtime with execution providers tried in the order
  TensorRT -> CUDA -> CPU. ONNX Runtime silently falls back to CPU when a provider cannot
  start, so the providers the session actually kept (``session.get_providers()``) are what
  is reported and logged, never what was asked for.
- :class:`TensorRTBackend`: native TensorRT 10; the engine is built from the ONNX file in
  FP16 or INT8 (entropy calibration on part crops) and cached on disk under a key made of
  the model's hash, the TensorRT version, the GPU name and the precision: it is rebuilt
  only when that key changes. ``tensorrt`` and the CUDA bindings are imported lazily.
- :func:`create_backend` picks one (``auto``: native TensorRT if importable and a GPU is
  present, else ONNX Runtime with the best provider that works).

Every backend reads the model's metadata (class names, input size, normalisation) from the
ONNX file's ``metadata_props`` (JSON, never evaluated).
"""

import hashlib
import json
import logging
import os
from pathlib import Path
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from lepton_robot.detector.metadata import (INPUT_NAME, ModelMetadata, OUTPUT_NAMES,
                                            read_onnx_metadata)
from lepton_robot.errors import BackendError, ModelError
import numpy as np

LOG = logging.getLogger('lepton_robot.detector')

BACKENDS = ('auto', 'onnxruntime', 'onnxruntime-cpu', 'onnxruntime-cuda',
            'onnxruntime-tensorrt', 'tensorrt')
PRECISIONS = ('fp32', 'fp16', 'int8')
#: how ONNX Runtime's intra-op pool threads wait for work (:class:`OnnxRuntimeBackend`)
SPIN_MODES = ('run', 'never', 'always')

_ORT_PROVIDER_ORDER = ('TensorrtExecutionProvider', 'CUDAExecutionProvider',
                       'CPUExecutionProvider')
_ORT_SHORT = {'TensorrtExecutionProvider': 'tensorrt', 'CUDAExecutionProvider': 'cuda',
              'CPUExecutionProvider': 'cpu'}


def file_sha256(path: str) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


class InferenceBackend:
    """
    The interface every backend implements.

    :ivar name: what runs the model, e.g. ``onnxruntime-cpu`` or ``tensorrt-fp16`` (valid
        after :meth:`load`).
    :ivar metadata: the model's :class:`ModelMetadata` (valid after :meth:`load`).
    """

    name = 'none'

    def __init__(self, model_path: str) -> None:
        self.model_path = str(model_path)
        self.metadata: Optional[ModelMetadata] = None

    def load(self) -> 'InferenceBackend':
        """
        Load the model and prepare to run it.

        :return: self.
        :raises ModelError: if the model file is missing or invalid.
        :raises BackendError: if this backend cannot run on this machine.
        """
        raise NotImplementedError

    def infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """
        Run the model on a batch of normalised crops.

        :param batch: float32 ``N x 3 x S x S`` (S = ``metadata.input_size``), N >= 1.
        :return: ``{'condition': N x 5, 'color': N x 5, 'shape': N x 3}`` probabilities,
            in the class order of the metadata.
        :raises BackendError: if the batch does not fit the model or inference fails.
        """
        raise NotImplementedError

    def warmup(self, iterations: int = 3, batch_size: int = 1) -> float:
        """
        Run a few inferences on zeros so the first real frame is not slow.

        :return: the mean latency of the warm-up runs, in milliseconds.
        """
        size = self.metadata.input_size
        batch = np.zeros((batch_size, 3, size, size), np.float32)
        start = time.perf_counter()
        for _ in range(max(1, iterations)):
            self.infer(batch)
        return (time.perf_counter() - start) * 1000.0 / max(1, iterations)

    def close(self) -> None:
        """Release the backend's resources (idempotent)."""

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        size = self.metadata.input_size
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[0] < 1 \
                or batch.shape[1:] != (3, size, size):
            shape = getattr(batch, 'shape', None)
            raise BackendError(f'batch must be N x 3 x {size} x {size}, got {shape}')
        return np.ascontiguousarray(batch, dtype=np.float32)


def _spin_mode(spin: str) -> str:
    """Return ``spin`` if it is one of :data:`SPIN_MODES`; else raise BackendError."""
    if spin not in SPIN_MODES:
        raise BackendError(f'unknown spin mode {spin!r}; choose one of {SPIN_MODES}')
    return spin


def set_spin(opts: Any, spin: str) -> None:
    """
    Set how an ONNX Runtime session's pool threads wait for work (:data:`SPIN_MODES`).

    :param opts: an ``onnxruntime.SessionOptions``.
    :param spin: ``run``, ``never`` or ``always`` (see :class:`OnnxRuntimeBackend`).
    :raises BackendError: for another value.
    """
    allow = '0' if _spin_mode(spin) == 'never' else '1'
    opts.add_session_config_entry('session.intra_op.allow_spinning', allow)
    opts.add_session_config_entry('session.inter_op.allow_spinning', allow)
    if spin == 'run':
        opts.add_session_config_entry('session.force_spinning_stop', '1')


def _check_model_file(model_path: str) -> None:
    if not os.path.isfile(model_path):
        raise ModelError(f'model file not found: {model_path}')


class OnnxRuntimeBackend(InferenceBackend):
    """
    ONNX Runtime, providers tried TensorRT -> CUDA -> CPU (or the ones given).

    :param model_path: the ``.onnx`` file.
    :param providers: provider names to try in order (default: every available one of
        TensorRT, CUDA, CPU, in that order).
    :param threads: intra-op threads (0 = ONNX Runtime's default).
    :param spin: how the intra-op pool's threads wait for work (see :data:`SPIN_MODES`):
        ``run`` (default): they spin between the parallel parts of a run and stop when it
        returns; ``never``: they block at once; ``always``: ONNX Runtime's own default,
        they keep spinning after a run returns. Measured here (2 cores, the shipped FP32
        model, batch 1, 2 threads): back to back ``always`` 0.43 ms, ``run`` 0.45 ms,
        ``never`` 0.60 ms a call; 50 ms after a call, ``always`` had burnt 39 ms of CPU
        spinning, the others none. In the cell the detector shares the cores with the
        other nodes: that spinning held a core while the inspection went out and the
        supervisor woke to take it (``benchmarks/bench_transport.py``, separate processes
        on the single-threaded executor, 25-s runs: camera -> decision transport p50
        2.9 ms with ``always``, 1.9 ms with ``never``, 2.1 ms with ``run``).
    """

    def __init__(self, model_path: str, providers: Optional[Sequence[str]] = None,
                 threads: int = 0, spin: str = 'run') -> None:
        super().__init__(model_path)
        self.requested_providers = list(providers) if providers else None
        self.threads = int(threads)
        self.spin = _spin_mode(spin)        # refused here, before any model is loaded
        self.session = None
        self.providers: List[str] = []

    def load(self) -> 'OnnxRuntimeBackend':
        """Create the session; keep and log the providers that actually work."""
        _check_model_file(self.model_path)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f'onnxruntime is not installed: {exc}') from exc
        available = ort.get_available_providers()
        wanted = self.requested_providers or list(_ORT_PROVIDER_ORDER)
        providers = [p for p in wanted if p in available]
        if not providers:
            raise BackendError(f'none of the providers {wanted} is available '
                               f'(ONNX Runtime has {available})')
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads > 0:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        set_spin(opts, self.spin)
        session, last_error = None, None
        # A provider that fails to start can make the whole session fail: drop it and retry.
        for i in range(len(providers)):
            try:
                session = ort.InferenceSession(self.model_path, opts, providers=providers[i:])
                break
            except Exception as exc:  # noqa: BLE001 - ORT raises untyped errors
                last_error = exc
                LOG.warning('ONNX Runtime provider %s failed (%s); trying the next one',
                            providers[i], exc)
        if session is None:
            raise ModelError(f'cannot load {self.model_path} with ONNX Runtime: {last_error}')
        self.session = session
        self.providers = list(session.get_providers())
        meta_props = dict(session.get_modelmeta().custom_metadata_map)
        self.metadata = ModelMetadata.from_props(meta_props, source=self.model_path)
        outputs = [o.name for o in session.get_outputs()]
        if [i.name for i in session.get_inputs()] != [INPUT_NAME] \
                or set(OUTPUT_NAMES) - set(outputs):
            raise ModelError(f'{self.model_path}: expected input {INPUT_NAME!r} and outputs '
                             f'{OUTPUT_NAMES}, got {outputs}')
        self.name = 'onnxruntime-' + _ORT_SHORT.get(self.providers[0], self.providers[0])
        if self.requested_providers is None and self.providers[0] != providers[0]:
            LOG.warning('ONNX Runtime fell back to %s (asked for %s)', self.providers,
                        providers)
        LOG.info('detector backend %s (providers %s), model %s', self.name, self.providers,
                 self.model_path)
        return self

    def infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the session."""
        batch = self._check_batch(batch)
        try:
            out = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        except Exception as exc:  # noqa: BLE001 - ORT raises untyped errors
            raise BackendError(f'ONNX Runtime inference failed: {exc}') from exc
        return dict(zip(OUTPUT_NAMES, out))

    def close(self) -> None:
        """Drop the session."""
        self.session = None


def engine_cache_dir() -> Path:
    """Return the TensorRT engine cache directory (``LEPTON_ROBOT_ENGINE_CACHE`` overrides)."""
    override = os.environ.get('LEPTON_ROBOT_ENGINE_CACHE')
    if override:
        return Path(override)
    return Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / \
        'lepton_robot' / 'engines'


def engine_cache_key(model_sha256: str, trt_version: str, gpu_name: str,
                     precision: str) -> Dict[str, str]:
    """Return the key that identifies a built engine (any change means a rebuild)."""
    return {'model_sha256': model_sha256, 'tensorrt': trt_version, 'gpu': gpu_name,
            'precision': precision}


def engine_cache_path(cache_dir: Path, model_path: str, key: Dict[str, str]) -> Path:
    """Return the engine file for ``key`` (the key's hash is in the name)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f'{Path(model_path).stem}-{key["precision"]}-{digest}.engine'


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError('TensorRT is not installed (it comes with JetPack on a Jetson or '
                           'the NVIDIA TensorRT wheels on a GPU machine); use the '
                           f'onnxruntime backend instead ({exc})') from exc
    return trt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise BackendError('the TensorRT backend needs the CUDA Python bindings '
                               f'(pip install cuda-python): {exc}') from exc
    return cudart


def _cuda_check(result):
    err = result[0]
    if int(err) != 0:
        raise BackendError(f'CUDA error {err}')
    return result[1] if len(result) == 2 else result[1:]


class _EntropyCalibratorFactory:
    """Build an ``IInt8EntropyCalibrator2`` over calibration crops (TensorRT imported late)."""

    @staticmethod
    def create(trt, cudart, data: np.ndarray, cache_file: Path, batch_size: int = 16):
        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.data = np.ascontiguousarray(data, np.float32)
                self.batch_size = batch_size
                self.index = 0
                self.device = _cuda_check(cudart.cudaMalloc(
                    self.data[:batch_size].nbytes))

            def get_batch_size(self):
                return self.batch_size

            def get_batch(self, names):
                if self.index + self.batch_size > len(self.data):
                    return None
                chunk = self.data[self.index:self.index + self.batch_size]
                self.index += self.batch_size
                _cuda_check(cudart.cudaMemcpy(self.device, chunk.ctypes.data, chunk.nbytes,
                                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
                return [int(self.device)]

            def read_calibration_cache(self):
                return cache_file.read_bytes() if cache_file.is_file() else None

            def write_calibration_cache(self, cache):
                cache_file.write_bytes(bytes(cache))

        return Calibrator()


class TensorRTBackend(InferenceBackend):
    """
    Native TensorRT 10 engine built from the ONNX file, cached per model/TRT/GPU/precision.

    :param model_path: the ``.onnx`` file (metadata and the network come from it).
    :param precision: ``fp16``, ``int8`` or ``fp32``.
    :param calibration: for ``int8``: a callable returning float32 N x 3 x S x S crops
        (only called when an engine has to be built).
    :param cache_dir: engine cache (default :func:`engine_cache_dir`).
    :param max_batch: the largest batch the engine's optimisation profile accepts.
    :param force_rebuild: build even when a cached engine matches.
    """

    def __init__(self, model_path: str, precision: str = 'fp16',
                 calibration: Optional[Callable[[], np.ndarray]] = None,
                 cache_dir: Optional[str] = None, max_batch: int = 32,
                 force_rebuild: bool = False) -> None:
        super().__init__(model_path)
        if precision not in PRECISIONS:
            raise BackendError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        self.precision = precision
        self.calibration = calibration
        self.cache_dir = Path(cache_dir) if cache_dir else engine_cache_dir()
        self.max_batch = int(max_batch)
        self.force_rebuild = force_rebuild
        self.engine_path: Optional[Path] = None
        self.built = False
        self._trt = self._cudart = None
        self._engine = self._context = self._stream = None
        self._buffers: Dict[str, tuple] = {}

    def load(self) -> 'TensorRTBackend':
        """Load the cached engine or build it; allocate device buffers."""
        trt = self._trt = _import_tensorrt()
        cudart = self._cudart = _import_cudart()
        _check_model_file(self.model_path)
        self.metadata = ModelMetadata.from_props(read_onnx_metadata(self.model_path),
                                                 source=self.model_path)
        props = _cuda_check(cudart.cudaGetDeviceProperties(0))
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        key = engine_cache_key(file_sha256(self.model_path), trt.__version__,
                               gpu.strip('\x00'), self.precision)
        self.engine_path = engine_cache_path(self.cache_dir, self.model_path, key)
        key_file = self.engine_path.with_suffix('.json')
        logger = trt.Logger(trt.Logger.WARNING)
        serialized = None
        if not self.force_rebuild and self.engine_path.is_file() and key_file.is_file():
            try:
                if json.loads(key_file.read_text()) == key:
                    serialized = self.engine_path.read_bytes()
            except (OSError, ValueError):
                serialized = None
        if serialized is None:
            serialized = self._build(trt, cudart, logger)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.engine_path.with_suffix('.tmp')
            tmp.write_bytes(serialized)
            os.replace(tmp, self.engine_path)
            key_file.write_text(json.dumps(key, sort_keys=True))
            self.built = True
            LOG.info('built TensorRT engine %s', self.engine_path)
        runtime = trt.Runtime(logger)
        self._engine = runtime.deserialize_cuda_engine(serialized)
        if self._engine is None:
            raise BackendError(f'TensorRT could not deserialise {self.engine_path}')
        self._context = self._engine.create_execution_context()
        self._stream = _cuda_check(cudart.cudaStreamCreate())
        self.name = f'tensorrt-{self.precision}'
        LOG.info('detector backend %s on %s, engine %s', self.name, key['gpu'],
                 self.engine_path)
        return self

    def _build(self, trt, cudart, logger) -> bytes:
        builder = trt.Builder(logger)
        network = builder.create_network(0)   # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        with open(self.model_path, 'rb') as f:
            if not parser.parse(f.read()):
                errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise ModelError(f'TensorRT cannot parse {self.model_path}: {errors}')
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
        size = self.metadata.input_size
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, (1, 3, size, size), (min(8, self.max_batch), 3, size, size),
                          (self.max_batch, 3, size, size))
        config.add_optimization_profile(profile)
        if self.precision in ('fp16', 'int8'):
            config.set_flag(trt.BuilderFlag.FP16)
        if self.precision == 'int8':
            if self.calibration is None:
                raise BackendError('an INT8 engine needs calibration crops '
                                   '(lepton-robot export --engine --precision int8 --data DIR)')
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_calibration_profile(profile)
            cache = self.engine_path.with_suffix('.calib')
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            config.int8_calibrator = _EntropyCalibratorFactory.create(
                trt, cudart, self.calibration(), cache)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f'TensorRT failed to build an engine for {self.model_path}')
        return bytes(serialized)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                self._cudart.cudaFree(ptr)
            ptr = _cuda_check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return int(ptr)

    def infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """Copy in, execute on the stream, copy out (batches above max_batch are chunked)."""
        batch = self._check_batch(batch)
        if len(batch) > self.max_batch:
            parts = [self.infer(batch[i:i + self.max_batch])
                     for i in range(0, len(batch), self.max_batch)]
            return {k: np.concatenate([p[k] for p in parts]) for k in OUTPUT_NAMES}
        trt, cudart, ctx = self._trt, self._cudart, self._context
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ctx.set_input_shape(INPUT_NAME, batch.shape)
        ptr = self._buffer(INPUT_NAME, batch.nbytes)
        _cuda_check(cudart.cudaMemcpyAsync(ptr, batch.ctypes.data, batch.nbytes, h2d,
                                           self._stream))
        ctx.set_tensor_address(INPUT_NAME, ptr)
        outputs = {}
        for name in OUTPUT_NAMES:
            shape = tuple(ctx.get_tensor_shape(name))
            dtype = trt.nptype(self._engine.get_tensor_dtype(name))
            host = np.empty(shape, dtype)
            outputs[name] = host
            ctx.set_tensor_address(name, self._buffer(name, host.nbytes))
        if not ctx.execute_async_v3(self._stream):
            raise BackendError('TensorRT execution failed')
        for name, host in outputs.items():
            _cuda_check(cudart.cudaMemcpyAsync(host.ctypes.data, self._buffers[name][0],
                                               host.nbytes, d2h, self._stream))
        _cuda_check(cudart.cudaStreamSynchronize(self._stream))
        return {k: v.astype(np.float32, copy=False) for k, v in outputs.items()}

    def close(self) -> None:
        """Free device buffers and the stream."""
        if self._cudart is not None:
            for ptr, _ in self._buffers.values():
                self._cudart.cudaFree(ptr)
            if self._stream is not None:
                self._cudart.cudaStreamDestroy(self._stream)
        self._buffers.clear()
        self._stream = self._context = self._engine = None


def tensorrt_available() -> Optional[str]:
    """Return None when native TensorRT can run here, else the reason it cannot."""
    try:
        _import_tensorrt()
        cudart = _import_cudart()
        count = _cuda_check(cudart.cudaGetDeviceCount())
    except BackendError as exc:
        return str(exc)
    if int(count) < 1:
        return 'no CUDA GPU is visible'
    return None


def create_backend(model_path: str, backend: str = 'auto', precision: str = 'fp16',
                   threads: int = 0,
                   calibration: Optional[Callable[[], np.ndarray]] = None,
                   warmup: bool = True, spin: str = 'run') -> InferenceBackend:
    """
    Create, load and (optionally) warm up a backend.

    :param model_path: the ``.onnx`` file.
    :param backend: one of :data:`BACKENDS`. ``auto`` tries native TensorRT (when
        importable with a GPU), then ONNX Runtime with TensorRT -> CUDA -> CPU providers.
    :param precision: TensorRT engine precision.
    :param threads: ONNX Runtime intra-op threads (0 = default).
    :param calibration: INT8 calibration crops for TensorRT.
    :param warmup: run a few inferences before returning.
    :param spin: how ONNX Runtime's pool threads wait for work (see
        :class:`OnnxRuntimeBackend`).
    :raises ConfigError: never; unknown names raise BackendError.
    :raises BackendError: if the chosen backend cannot run here.
    :raises ModelError: if the model is missing or invalid.
    """
    if backend not in BACKENDS:
        raise BackendError(f'unknown backend {backend!r}; choose one of {BACKENDS}')
    if backend == 'auto':
        reason = tensorrt_available()
        if reason is None:
            try:
                return create_backend(model_path, 'tensorrt', precision, threads,
                                      calibration, warmup)
            except BackendError as exc:
                LOG.warning('native TensorRT unavailable (%s); using ONNX Runtime', exc)
        else:
            LOG.info('native TensorRT not used: %s', reason)
        backend = 'onnxruntime'
    if backend == 'tensorrt':
        impl: InferenceBackend = TensorRTBackend(model_path, precision, calibration)
    elif backend == 'onnxruntime':
        impl = OnnxRuntimeBackend(model_path, threads=threads, spin=spin)
    else:
        provider = {'onnxruntime-cpu': 'CPUExecutionProvider',
                    'onnxruntime-cuda': 'CUDAExecutionProvider',
                    'onnxruntime-tensorrt': 'TensorrtExecutionProvider'}[backend]
        impl = OnnxRuntimeBackend(model_path, providers=[provider], threads=threads,
                                  spin=spin)
    impl.load()
    if backend.startswith('onnxruntime-') and impl.name != backend:
        raise BackendError(f'asked for {backend} but ONNX Runtime runs {impl.name}')
    if warmup:
        impl.warmup()
    return impl
