# Type stubs of the package quiver (the compiled module quiver._quiver). tests/python/test_stubs.py
# checks that every public name and method here exists at run time and the other way round.
import concurrent.futures
import os
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_Feed = Mapping[str, Union[npt.NDArray[Any], Sequence[Any]]]
_Provider = Union[str, Tuple[str, Dict[str, Any]]]

# ---- errors: quiver::Error(code, message, {model, node, tensor, file, offset})
class Error(RuntimeError):
    """Base class of every Quiver error."""
    code: str
    message: str
    model: str
    node: str
    tensor: str
    file: str
    offset: Optional[int]

class InvalidArgument(Error, ValueError):
    """Bad input: an unknown or missing input, a wrong dtype or shape, a bad option."""

class NotFound(Error, LookupError):
    """An unknown model, version, tensor or file."""

class Unsupported(Error, NotImplementedError):
    """Valid but not implemented here: an operator, a dtype, an option this build does not have."""

class ParseError(Error, ValueError):
    """A malformed model or data file."""

class Unavailable(Error):
    """No server reachable and no fallback, or a model not ready."""

class DeadlineExceeded(Error):
    """The request's deadline passed."""

class ResourceExhausted(Error):
    """A queue was full or a message too large."""

class Cancelled(Error):
    """The request was cancelled (e.g. its client was closed)."""

class InternalError(Error):
    """A bug in Quiver."""

# ---- in-process inference, ONNX Runtime's surface
class GraphOptimizationLevel:
    """Accepted for compatibility: Quiver compiles every graph the same way."""
    ORT_DISABLE_ALL: ClassVar[GraphOptimizationLevel]
    ORT_ENABLE_BASIC: ClassVar[GraphOptimizationLevel]
    ORT_ENABLE_EXTENDED: ClassVar[GraphOptimizationLevel]
    ORT_ENABLE_ALL: ClassVar[GraphOptimizationLevel]
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class ExecutionMode:
    """Accepted for compatibility: parallelism comes from calling one session from many threads."""
    ORT_SEQUENTIAL: ClassVar[ExecutionMode]
    ORT_PARALLEL: ClassVar[ExecutionMode]
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class SessionOptions:
    """Options for loading a model. add_session_config_entry passes load parameters to the backend."""
    intra_op_num_threads: int
    inter_op_num_threads: int
    graph_optimization_level: GraphOptimizationLevel
    execution_mode: ExecutionMode
    log_severity_level: int
    log_verbosity_level: int
    logid: str
    numerics: str
    """'default' or 'reproducible' (load parameter 'numerics')."""
    def __init__(self) -> None: ...
    def add_session_config_entry(self, key: str, value: str) -> None: ...
    def get_session_config_entry(self, key: str) -> str: ...
    @property
    def config(self) -> Dict[str, str]: ...

class RunOptions:
    """Per-call options. terminate=True makes run() raise quiver.Cancelled instead of starting."""
    log_severity_level: int
    log_verbosity_level: int
    run_tag: str
    terminate: bool
    def __init__(self) -> None: ...
    def add_run_config_entry(self, key: str, value: str) -> None: ...
    def get_run_config_entry(self, key: str) -> str: ...

class NodeArg:
    """A model input or output."""
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> List[Union[int, str, None]]:
        """Fixed dims as ints, symbolic ones by name ('N', 'n_pf'), unknown ones as None."""
    @property
    def type(self) -> str:
        """ONNX Runtime's type string, e.g. 'tensor(float)'."""

class ModelMetadata:
    """ONNX Runtime's model metadata plus Quiver's provenance."""
    @property
    def producer_name(self) -> str: ...
    @property
    def graph_name(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def graph_description(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def custom_metadata_map(self) -> Dict[str, str]: ...
    @property
    def name(self) -> str: ...
    @property
    def sha256(self) -> str:
        """SHA-256 of the model file's bytes."""
    @property
    def model_version(self) -> str:
        """The repository version; '' for a model loaded from a file."""
    @property
    def backend(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def device(self) -> str:
        """'cpu', 'cuda:0', 'gpu-emulator', ..."""
    @property
    def path(self) -> str: ...

class InferenceSession:
    """A loaded model (ONNX, XGBoost, LightGBM, TMVA, '*.remote.json') with ONNX Runtime's surface.
    One session may be used from many threads at once; the GIL is released while the model runs."""
    def __init__(
        self,
        path_or_bytes: Union[_Path, bytes],
        sess_options: Optional[SessionOptions] = None,
        providers: Optional[Sequence[_Provider]] = None,
        provider_options: Optional[Sequence[Dict[str, Any]]] = None,
        *,
        backend: str = "",
    ) -> None: ...
    def run(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: _Feed,
        run_options: Optional[RunOptions] = None,
    ) -> List[npt.NDArray[Any]]:
        """Runs the model; returns the outputs (all, or those named, in that order) as numpy arrays."""
    def get_inputs(self) -> List[NodeArg]: ...
    def get_outputs(self) -> List[NodeArg]: ...
    def get_overridable_initializers(self) -> List[NodeArg]: ...
    def get_modelmeta(self) -> ModelMetadata: ...
    def get_providers(self) -> List[str]: ...
    def get_provider_options(self) -> Dict[str, Dict[str, str]]: ...
    def set_providers(
        self, providers: Optional[Sequence[_Provider]] = None, provider_options: Optional[Sequence[Dict[str, Any]]] = None
    ) -> None: ...
    def get_session_options(self) -> SessionOptions: ...

def get_available_providers() -> List[str]: ...
def get_all_providers() -> List[str]: ...
def get_device() -> str: ...

# ---- remote inference
class Provenance:
    """Where a result came from."""
    @property
    def server(self) -> str:
        """'host:port', or 'local:<repository>' when the fallback answered."""
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str:
        """SHA-256 of the model file, when the server or the cached model config reports it."""
    @property
    def fallback(self) -> bool: ...
    @property
    def attempts(self) -> int: ...

class InferResult(Dict[str, npt.NDArray[Any]]):
    """The outputs of one request, {output name: numpy array}, with where they came from."""
    provenance: Provenance
    request_id: str
    client_seconds: float

class RemoteModelMetadata:
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def platform(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def max_batch_size(self) -> int: ...
    @property
    def inputs(self) -> List[NodeArg]: ...
    @property
    def outputs(self) -> List[NodeArg]: ...

class Client:
    """KServe v2 gRPC client of `quiver serve` / Triton: balancing, failover, local fallback, coalescing."""
    def __init__(
        self,
        urls: Optional[Union[str, Sequence[str]]] = None,
        *,
        servers_file: Optional[_Path] = None,
        dns_names: Optional[Union[str, Sequence[str]]] = None,
        fallback_repository: Optional[_Path] = None,
        fallback: Optional[str] = None,
        tls: Optional[Union[bool, _Path, Dict[str, _Path]]] = None,
        timeout: Optional[float] = None,
        coalesce: bool = False,
        coalesce_max_delay: float = 0.0005,
        coalesce_max_batch: int = 0,
        shared_memory: bool = False,
        shared_memory_outputs: bool = False,
        startup_wait: float = 2.0,
        token_file: Optional[_Path] = None,
    ) -> None: ...
    def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        outputs: Optional[Sequence[str]] = None,
        version: Optional[Union[str, int]] = None,
        timeout: Optional[float] = None,
        priority: int = 0,
        request_id: Optional[str] = None,
    ) -> InferResult: ...
    def infer_async(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        outputs: Optional[Sequence[str]] = None,
        version: Optional[Union[str, int]] = None,
        timeout: Optional[float] = None,
        priority: int = 0,
        request_id: Optional[str] = None,
    ) -> "concurrent.futures.Future[InferResult]": ...
    def model_metadata(self, model: str, version: Optional[Union[str, int]] = None) -> RemoteModelMetadata: ...
    def report(self) -> Dict[str, Any]: ...
    def wait_for_serving(self, n: int = 1, timeout: float = 5.0) -> bool: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> "Client": ...
    def __exit__(self, *args: Any) -> None: ...
