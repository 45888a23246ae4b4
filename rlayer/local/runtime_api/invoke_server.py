"""Lambda's Invoke endpoint over a session, as AWS's runtime interface emulator serves it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import TracebackType

from chalicelib.errors import PayloadTooLargeError
from rlayer.local.runtime_api.broker import INVOKE_PATH, Reply
from rlayer.local.runtime_api.server import HTTPService
from rlayer.local.runtime_api.session import RuntimeSession


class InvokeServer(HTTPService):
    """``POST /2015-03-31/functions/function/invocations`` over a :class:`RuntimeSession`,
    answered like Lambda's Invoke: 200 with the payload, ``X-Amz-Function-Error`` on a
    function error, ``X-Amz-Log-Result`` (base64) when asked with ``X-Amz-Log-Type: Tail``.
    """

    def __init__(self, session: RuntimeSession, host: str = "127.0.0.1", port: int = 0) -> None:
        self.session = session
        super().__init__(self.dispatch, host, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations"

    def __enter__(self) -> InvokeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def dispatch(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        if method != "POST" or not INVOKE_PATH.match(path.split("?")[0]):
            return Reply.json(404, {"message": f"no route {method} {path}"})
        client_context = headers.get("x-amz-client-context")
        if client_context:
            client_context = base64.b64decode(client_context).decode()
        try:
            result = self.session.invoke(
                body or b"{}",
                client_context=client_context,
                tenant_id=headers.get("x-amz-tenant-id"),
            )
        except PayloadTooLargeError as exc:
            return Reply.json(
                413,
                {"Type": "User", "message": exc.message},
                {"x-amzn-ErrorType": "RequestTooLargeException"},
            )
        reply_headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            reply_headers["X-Amz-Function-Error"] = result.function_error
        if headers.get("x-amz-log-type", "").lower() == "tail":
            reply_headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail.encode()).decode()
        return Reply(200, result.payload, reply_headers)
