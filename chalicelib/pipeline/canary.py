"""RunCanary: prove the build's layers by invoking an R function that uses them.

One canary function per architecture (``<prefix>-<arch>``), updated per build: its code is
``runtime/canary/`` (handler ``canary.handler``), its layers this build's. Builds may run
at the same time, so the canary is invoked through a version published for this build,
after checking that the version carries exactly this build's layers: a concurrent update
by another build shows up as a mismatch and the task is retried (TransientError).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from chalicelib.aws import lambdas
from chalicelib.errors import CanaryFailedError, ConfigurationError, TransientError
from chalicelib.models import BuildRecord, BuildStatus, CanaryResult
from chalicelib.observability import logger
from chalicelib.pipeline.contracts import CanaryOutput, TaskInput
from chalicelib.pipeline.task import Deps, advance, build_marker, task
from chalicelib.settings import Settings

CANARY_RUNTIME = "provided.al2023"
CANARY_HANDLER = "canary.handler"
CANARY_FILES = ("canary.R",)
# Fixed zip timestamps: the same canary.R gives the same CodeSha256, so an unchanged
# canary is not re-uploaded on every build.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_REPORT = {
    "init_ms": re.compile(r"Init Duration: ([\d.]+) ms"),
    "duration_ms": re.compile(r"(?<!Billed )Duration: ([\d.]+) ms"),
    "max_memory_mb": re.compile(r"Max Memory Used: (\d+) MB"),
}


def canary_dir(settings: Settings) -> Path:
    if settings.canary_code_dir:
        return Path(settings.canary_code_dir)
    return Path(__file__).resolve().parents[2] / "runtime" / "canary"


def canary_code(settings: Settings) -> bytes:
    """The canary's deployment zip, byte-for-byte reproducible."""
    directory = canary_dir(settings)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in CANARY_FILES:
            path = directory / name
            if not path.is_file():
                raise ConfigurationError(f"the canary handler {path} is missing")
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def function_name(settings: Settings, record: BuildRecord) -> str:
    return f"{settings.canary_function_prefix}-{record.spec.architecture.value}"


def parse_report(log_tail: str) -> dict[str, float | int | None]:
    """The numbers of the last REPORT line of a Lambda log tail."""
    lines = [line for line in log_tail.splitlines() if line.startswith("REPORT ")]
    found: dict[str, float | int | None] = dict.fromkeys(_REPORT)
    if not lines:
        return found
    for key, pattern in _REPORT.items():
        match = pattern.search(lines[-1])
        if match:
            found[key] = int(match.group(1)) if key == "max_memory_mb" else float(match.group(1))
    return found


def judge(record: BuildRecord, invocation: lambdas.Invocation) -> CanaryResult:
    """The canary's verdict on the layers, or CanaryFailedError saying why not."""
    spec = record.spec
    try:
        payload: Any = json.loads(invocation.payload or b"null")
    except ValueError:
        payload = None
    if invocation.function_error:
        if isinstance(payload, dict):
            what = f"{payload.get('errorType', 'Unhandled')}: {payload.get('errorMessage', '')}"
        else:
            what = invocation.payload[:500].decode("utf-8", "replace")
        raise CanaryFailedError(f"the canary raised {what.strip()}")
    if not isinstance(payload, dict):
        raise CanaryFailedError(f"the canary answered {invocation.payload[:200]!r}, not an object")
    r_version = payload.get("r_version")
    if r_version != spec.r_version:
        raise CanaryFailedError(f"the canary ran R {r_version!r}, not {spec.r_version}")
    loaded = payload.get("packages") or {}
    failed = payload.get("failed") or {}
    if not isinstance(loaded, dict) or not isinstance(failed, dict):
        raise CanaryFailedError("the canary's packages/failed are not objects")
    missing = [p.name for p in spec.packages if p.name not in loaded]
    if failed or missing:
        reasons = [f"{name}: {why}" for name, why in sorted(failed.items())]
        reasons += [f"{name}: not loaded" for name in missing if name not in failed]
        raise CanaryFailedError("packages failed to load: " + "; ".join(reasons))
    for pkg in spec.packages:
        if pkg.version and str(loaded[pkg.name]) != pkg.version:
            raise CanaryFailedError(
                f"{pkg.name} loaded as version {loaded[pkg.name]}, not the pinned {pkg.version}"
            )
    report = parse_report(invocation.log_tail)
    timings = payload.get("timings") if isinstance(payload.get("timings"), dict) else {}
    result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
    checks = (result or {}).get("checks")
    return CanaryResult(
        r_version=str(r_version),
        packages={str(k): str(v) for k, v in loaded.items()},
        checked=sorted(str(k) for k in checks) if isinstance(checks, dict) else [],
        init_ms=report["init_ms"],
        duration_ms=report["duration_ms"],
        max_memory_mb=int(report["max_memory_mb"]) if report["max_memory_mb"] else None,
        timings={
            str(k): float(v) for k, v in (timings or {}).items() if isinstance(v, int | float)
        },
    )


def _deploy(record: BuildRecord, settings: Settings, layers: list[str]) -> tuple[str, str]:
    """Create or update the canary with these layers; return (name, version for this build)."""
    if not settings.canary_role_arn:
        raise ConfigurationError("CANARY_ROLE_ARN is not set: the canary function needs a role")
    name = function_name(settings, record)
    arch = record.spec.architecture.value
    code = canary_code(settings)
    description = f"rlayer canary {build_marker(record.build_id)}"
    common = {"memory_mb": settings.canary_memory_mb, "timeout_s": settings.canary_timeout_s}
    current = lambdas.function_configuration(name)
    if current is None:
        lambdas.create_function(
            name=name,
            role=settings.canary_role_arn,
            runtime=CANARY_RUNTIME,
            handler=CANARY_HANDLER,
            code=code,
            architecture=arch,
            layers=layers,
            description=description,
            **common,
        )
        lambdas.wait_active(name)
    else:
        lambdas.wait_updated(name)  # another build's update may still be running
        code_sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
        if current.get("CodeSha256") != code_sha or current.get("Architectures") != [arch]:
            lambdas.update_function_code(name, code, arch)
            lambdas.wait_updated(name)
        lambdas.update_function_configuration(
            name=name,
            role=settings.canary_role_arn,
            runtime=CANARY_RUNTIME,
            handler=CANARY_HANDLER,
            layers=layers,
            description=description,
            **common,
        )
        lambdas.wait_updated(name)
    version = lambdas.publish_version(name, build_marker(record.build_id))
    published = lambdas.function_configuration(name, version) or {}
    actual = [layer.get("Arn") for layer in published.get("Layers", [])]
    if actual != layers:
        lambdas.delete_function_version(name, version)
        raise TransientError(
            f"the canary was updated by another build while publishing ({actual} != {layers})"
        )
    return name, version


def run(data: TaskInput, deps: Deps) -> CanaryOutput:
    record = advance(deps.store, data.build_id, BuildStatus.TESTING)
    layers = [layer.arn for layer in record.layers if not layer.retired]
    if not layers:
        raise CanaryFailedError("the build has no published layers to test")
    name, version = _deploy(record, deps.settings, layers)
    event = {
        "expected_r_version": record.spec.r_version,
        "packages": record.spec.package_names(),
    }
    try:
        invocation = lambdas.invoke(
            name,
            json.dumps(event).encode(),
            qualifier=version,
            timeout_s=deps.settings.canary_timeout_s,
        )
    finally:
        # The version existed for this invocation only (versions count against storage).
        lambdas.delete_function_version(name, version)
    try:
        result = judge(record, invocation)
    except CanaryFailedError:
        logger.warning("canary failed", extra={"log_tail": invocation.log_tail[-2000:]})
        raise
    deps.store.update_build(
        record.build_id, {"canary": result.model_dump(mode="json")}, expect=BuildStatus.TESTING
    )
    logger.info("canary passed", extra={"init_ms": result.init_ms, "version": version})
    return CanaryOutput(
        r_version=result.r_version,
        packages=result.packages,
        init_ms=result.init_ms,
        duration_ms=result.duration_ms,
        max_memory_mb=result.max_memory_mb,
    )


handler = task("RunCanary", TaskInput, run)
