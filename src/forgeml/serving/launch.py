"""Starting a model server: one process, or several sharing the port (``--workers``).

Workers are separate processes started by uvicorn; each loads the models itself (from
the verified local cache after the first), and all count metrics into one shared
directory so that ``/metrics`` from any of them describes the whole server.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

import orjson

from forgeml.errors import ForgeMLError
from forgeml.serving.spec import DeploymentSpec

CONFIG_ENV = "FORGEML_SERVE_CONFIG"


def create_app() -> object:
    """The ASGI application of one worker, configured by the launching process."""
    from forgeml.serving.app import ServingApp
    from forgeml.serving.server import ModelServer, Source

    # Three threads share the interpreter lock here: the event loop, the model calls and
    # the prediction-log writer. A request waits for the lock at each hand-over between
    # them, up to the switch interval each time; 1 ms instead of Python's 5 ms took the
    # p99 at 500 requests/s from 22 ms to 15 ms on two CPUs.
    sys.setswitchinterval(0.001)
    settings = orjson.loads(os.environ.get(CONFIG_ENV, "{}"))
    names = settings.get("deployments")
    specs = tuple(DeploymentSpec.from_dict(s) for s in settings.get("specs", []))
    # Named deployments, else ad-hoc models only, else every stored deployment.
    stored = bool(names) or not specs
    source = Source(names=tuple(names) if names else None, specs=specs, stored=stored)
    server = ModelServer(
        source,
        refresh_seconds=float(settings.get("refresh_seconds", 2.0)),
        log_predictions=bool(settings.get("log_predictions", True)),
    )
    return ServingApp(server, access_logs=bool(settings.get("access_log", True)))


def serve(
    deployments: Sequence[str] = (),
    models: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    refresh_seconds: float = 2.0,
    log_predictions: bool = True,
    access_log: bool = True,
    graceful_seconds: float = 30.0,
) -> None:
    """Serve stored deployments (all when none is named) and ad-hoc ``models`` URIs.

    An ad-hoc model is served as a single-policy deployment named after the model, and
    follows its alias: ``models:/fraud@champion`` swaps when the alias moves.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra is missing
        raise ForgeMLError("the model server needs uvicorn: pip install 'forgeml[serve]'") from exc
    from forgeml.registry.uri import parse_model_uri

    specs = [DeploymentSpec(name=parse_model_uri(uri).name, model=uri).to_dict() for uri in models]
    settings = {
        "deployments": list(deployments),
        "specs": specs,
        "refresh_seconds": refresh_seconds,
        "log_predictions": log_predictions,
        "access_log": access_log,
    }
    os.environ[CONFIG_ENV] = orjson.dumps(settings).decode()
    metrics_dir = None
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="forgeml-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    configure_logging()
    try:
        uvicorn.run(
            "forgeml.serving.launch:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="auto",
            http="auto",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=int(graceful_seconds),
            log_config=None,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def configure_logging() -> None:
    """JSON lines on stderr: access records and deployment events as they are."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("forgeml.access", "forgeml.serving.events"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    serving = logging.getLogger("forgeml.serving")
    serving.handlers[:] = [plain]
    serving.setLevel(logging.INFO)
    serving.propagate = False
