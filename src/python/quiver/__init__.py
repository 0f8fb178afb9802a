"""Quiver for Python: the same engine, client and numbers as Quiver's C++ production code.

In-process inference with ONNX Runtime's call shape (existing code switches by changing the import)::

    import quiver as ort
    sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    scores, = sess.run(None, {"input": x})

Any model Quiver loads works the same way: ONNX, XGBoost (JSON/UBJ), LightGBM (text), TMVA BDTs (XML).
``sess.get_modelmeta()`` adds Quiver's provenance (model SHA-256, version, backend, device).

Remote inference through ``quiver serve`` or Triton, with balancing, failover, local fallback and
coalescing::

    with quiver.Client("grpc://server1:8001,server2:8001", fallback_repository="/models") as client:
        result = client.infer("particlenet", {"pf_points": pts, ...})
        scores = result["output"]; result.provenance.server

Errors are quiver.Error subclasses naming what was wrong and where (quiver.InvalidArgument, quiver.NotFound,
quiver.Unavailable, quiver.DeadlineExceeded, ...).
"""
from ._quiver import *  # noqa: F401,F403
from ._quiver import __version__  # noqa: F401

__all__ = [name for name in dir() if not name.startswith("_")]
