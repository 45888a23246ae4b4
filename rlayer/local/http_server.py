"""Serving the Chalice app over HTTP on this machine, in a thread, with the routes it has
in AWS (Chalice's own local API Gateway emulation: ``chalice.local``)."""

from __future__ import annotations

import functools
import threading
import warnings
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    LocalChalice,
    LocalDevServer,
    create_local_server,
)

from chalicelib.observability import logger

LAMBDA_TIMEOUT_S = 60
LAMBDA_MEMORY_MB = 512


class _QuietHandler(ChaliceRequestHandler):
    """Request lines go to our logger instead of http.server's bare stderr prints."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("api request", extra={"client": self.address_string(), "line": format % args})


class ApiServer:
    """The Chalice app on ``host:port`` (port 0 picks a free one) until :meth:`stop`."""

    def __init__(self, app: Chalice, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = Config.create(
            chalice_stage="dev",
            app_name=app.app_name,
            function_name="api_handler",
            lambda_timeout=LAMBDA_TIMEOUT_S,
            lambda_memory_size=LAMBDA_MEMORY_MB,
        )
        if isinstance(app, LocalChalice):
            # Already made thread-safe by an earlier server (a second call would loop).
            self._server = LocalDevServer(app, config, host, port, handler_cls=_QuietHandler)
        else:
            # create_local_server makes current_request thread-local (the server is threaded).
            self._server = create_local_server(app, config, host, port)
            self._server.server.RequestHandlerClass = functools.partial(
                _QuietHandler, app_object=app, config=config
            )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        # Said once by whoever starts the stack; Chalice would repeat it on every request.
        warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode")
        self._thread = threading.Thread(
            target=self._server.server.serve_forever, name="rlayer-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server.server_close()
