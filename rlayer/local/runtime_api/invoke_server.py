"""Lambda's Invoke endpoints over a session, as AWS's runtime interface emulator serves them."""

from __future__ import annotations

import base64
import queue
import re
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType

from chalicelib.errors import PayloadTooLargeError
from rlayer.local.runtime_api import eventstream
from rlayer.local.runtime_api.broker import INVOKE_PATH, MAX_PAYLOAD_BYTES, Reply
from rlayer.local.runtime_api.results import InvokeResult
from rlayer.local.runtime_api.server import HTTPService, StreamReply
from rlayer.local.runtime_api.session import RuntimeSession

STREAM_INVOKE_PATH = re.compile(r"^/2021-11-15/functions/([^/]+)/response-streaming-invocations$")


class InvokeServer(HTTPService):
    """``POST /2015-03-31/functions/function/invocations`` over a :class:`RuntimeSession`,
    answered like Lambda's Invoke: 200 with the payload, ``X-Amz-Function-Error`` on a
    function error, ``X-Amz-Log-Result`` (base64) when asked with ``X-Amz-Log-Type: Tail``.
    ``POST /2021-11-15/functions/function/response-streaming-invocations`` answers like
    InvokeWithResponseStream: PayloadChunk events as the function streams, then
    InvokeComplete (boto3's ``invoke_with_response_stream`` reads it).
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
    ) -> Reply | StreamReply | None:
        route = path.split("?")[0]
        streaming = STREAM_INVOKE_PATH.match(route) is not None
        if method != "POST" or not (streaming or INVOKE_PATH.match(route)):
            return Reply.json(404, {"message": f"no route {method} {path}"})
        client_context = headers.get("x-amz-client-context")
        if client_context:
            client_context = base64.b64decode(client_context).decode()
        tenant_id = headers.get("x-amz-tenant-id")
        tail = headers.get("x-amz-log-type", "").lower() == "tail"
        if len(body) > MAX_PAYLOAD_BYTES:
            return _too_large(
                f"request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the "
                f"InvokeFunction operation (got {len(body)})"
            )
        if streaming:
            return self._stream(body or b"{}", client_context, tenant_id, tail)
        try:
            result = self.session.invoke(
                body or b"{}", client_context=client_context, tenant_id=tenant_id
            )
        except PayloadTooLargeError as exc:
            return _too_large(exc.message)
        reply_headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            reply_headers["X-Amz-Function-Error"] = result.function_error
        if tail:
            reply_headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail.encode()).decode()
        return Reply(200, result.payload, reply_headers)

    def _stream(
        self, payload: bytes, client_context: str | None, tenant_id: str | None, tail: bool
    ) -> StreamReply:
        """Invoke on a thread; each chunk the function streams becomes a PayloadChunk."""
        events: queue.Queue[bytes | InvokeResult | BaseException] = queue.Queue()

        def run() -> None:
            try:
                events.put(
                    self.session.invoke(
                        payload,
                        client_context=client_context,
                        tenant_id=tenant_id,
                        on_chunk=events.put,
                    )
                )
            except BaseException as exc:  # handed to the answer's writer, which raises it
                events.put(exc)

        threading.Thread(target=run, daemon=True).start()

        def frames() -> Iterator[bytes]:
            while True:
                item = events.get()
                if isinstance(item, bytes):
                    yield eventstream.payload_chunk(item)
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield from _completion(item, tail)
                return

        reply_headers = {
            "Content-Type": "application/vnd.amazon.eventstream",
            "X-Amz-Executed-Version": "$LATEST",
        }
        return StreamReply(200, reply_headers, frames())


def _completion(result: InvokeResult, tail: bool) -> Iterator[bytes]:
    """A buffered answer as one chunk (errors are no payload), then InvokeComplete."""
    if not result.streamed and result.function_error is None and result.payload:
        yield eventstream.payload_chunk(result.payload)
    details = None
    if result.function_error is not None:
        details = (result.stream_error or result.payload).decode(errors="replace")
    yield eventstream.invoke_complete(
        error_code=result.error_type if result.function_error else None,
        error_details=details,
        log_result=base64.b64encode(result.log_tail.encode()).decode() if tail else None,
    )


def _too_large(message: str) -> Reply:
    return Reply.json(
        413, {"Type": "User", "message": message}, {"x-amzn-ErrorType": "RequestTooLargeException"}
    )
