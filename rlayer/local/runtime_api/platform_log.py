"""Lambda's own lines in a function's log (START, END, REPORT), in its log format: text, or
with ``AWS_LAMBDA_LOG_FORMAT=JSON`` the JSON system log records (platform.start,
platform.runtimeDone, platform.report) that CloudWatch shows for such a function."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


def is_json_format(env: Mapping[str, str]) -> bool:
    return env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"


def timestamp() -> str:
    """Now, as Lambda stamps its own lines: RFC 3339, UTC, milliseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _record(kind: str, record: dict[str, object]) -> str:
    return json.dumps({"time": timestamp(), "type": f"platform.{kind}", "record": record})


def start_line(request_id: str, json_format: bool, version: str = "$LATEST") -> str:
    if json_format:
        return _record("start", {"requestId": request_id, "version": version})
    return f"START RequestId: {request_id} Version: {version}"


@dataclass(frozen=True)
class Report:
    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None
    error_type: str | None  # the function's error or the platform's failure, if any
    platform_failure: bool = False  # a timeout, an exit, memory: not the function's answer


def end_lines(report: Report, json_format: bool) -> list[str]:
    """END and REPORT (text), or platform.runtimeDone and platform.report (JSON)."""
    billed = max(1, math.ceil(report.duration_ms))
    if json_format:
        status = "success"
        if report.error_type == "Sandbox.Timedout":
            status = "timeout"
        elif report.error_type is not None:
            status = "error" if report.platform_failure else "failure"
        metrics: dict[str, object] = {
            "durationMs": round(report.duration_ms, 2),
            "billedDurationMs": billed,
            "memorySizeMB": report.memory_mb,
            "maxMemoryUsedMB": report.max_memory_mb,
        }
        if report.init_ms is not None:
            metrics["initDurationMs"] = round(report.init_ms, 2)
        done: dict[str, object] = {"requestId": report.request_id, "status": status}
        summary: dict[str, object] = {**done, "metrics": metrics}
        if report.error_type is not None:
            done["errorType"] = summary["errorType"] = report.error_type
        return [_record("runtimeDone", done), _record("report", summary)]
    text = (
        f"REPORT RequestId: {report.request_id}\tDuration: {report.duration_ms:.2f} ms\t"
        f"Billed Duration: {billed} ms\tMemory Size: {report.memory_mb} MB\t"
        f"Max Memory Used: {report.max_memory_mb} MB"
    )
    if report.init_ms is not None:
        text += f"\tInit Duration: {report.init_ms:.2f} ms"
    return [f"END RequestId: {report.request_id}", text]
