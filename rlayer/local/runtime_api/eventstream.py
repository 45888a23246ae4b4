"""The events of InvokeWithResponseStream, in AWS's event stream encoding.

Hand-written (why: botocore only decodes this encoding; the emulator must write it, and
boto3's own decoder reads it back in the tests). A message is its total and headers
lengths, a CRC32 of those, the headers, the payload, and a CRC32 of all before it.
"""

from __future__ import annotations

import json
import struct
import zlib

_STRING = 7  # header value type: a UTF-8 string with a 2-byte length


def _headers(fields: dict[str, str]) -> bytes:
    out = b""
    for name, value in fields.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return out


def message(event_type: str, content_type: str, payload: bytes) -> bytes:
    """One event message."""
    headers = _headers(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack("!I", zlib.crc32(body))


def payload_chunk(chunk: bytes) -> bytes:
    return message("PayloadChunk", "application/octet-stream", chunk)


def invoke_complete(
    error_code: str | None = None, error_details: str | None = None, log_result: str | None = None
) -> bytes:
    fields = {"ErrorCode": error_code, "ErrorDetails": error_details, "LogResult": log_result}
    doc = {key: value for key, value in fields.items() if value is not None}
    return message("InvokeComplete", "application/json", json.dumps(doc).encode())
