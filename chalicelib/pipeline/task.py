"""How a task function runs: parse the input, bind the build id, map failures.

Each task module defines ``run(input, deps) -> output`` (pure logic; AWS through the
adapters) and exposes ``handler = task("StateName", InputModel, run)``, which is what the
Chalice ``@app.lambda_function`` calls. Errors leave as our exception classes, whose names
become Lambda's ``errorType`` and are matched by the ASL's ``Retry``/``Catch``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel

from chalicelib.aws.faults import error_code, is_aws_error, is_transient
from chalicelib.aws.store import Store
from chalicelib.builders import get_backend
from chalicelib.builders.base import BuildBackend, artifact_prefix
from chalicelib.errors import RLayerError, TransientError, TransitionRejectedError, UpstreamError
from chalicelib.models import BuildRecord, BuildStatus
from chalicelib.observability import bind_build, logger
from chalicelib.settings import Settings, get_settings

In = TypeVar("In", bound=BaseModel)
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def backend_for(settings: Settings) -> BuildBackend:
    """The build backend tasks use (tests and the local stack replace this function)."""
    return get_backend(settings)


@dataclass
class Deps:
    """What a task reaches the world through; built fresh per invocation."""

    settings: Settings
    store: Store
    _backend: BuildBackend | None = field(default=None, repr=False)

    @property
    def backend(self) -> BuildBackend:
        if self._backend is None:
            self._backend = backend_for(self.settings)
        return self._backend

    def backend_named(self, name: str | None) -> BuildBackend:
        """The backend a record asked for (None or the stage's default: :attr:`backend`)."""
        if name is None or name == self.settings.build_backend:
            return self.backend
        return backend_for(self.settings.model_copy(update={"build_backend": name}))


def default_deps() -> Deps:
    settings = get_settings()
    return Deps(settings=settings, store=Store(settings.table_name))


def task(state: str, model: type[In], run: Callable[[In, Deps], BaseModel]) -> Handler:
    def handler(event: dict[str, Any]) -> dict[str, Any]:
        # Powertools' parser: the event is validated against the model or the task fails.
        data = parse(event=event, model=model)
        bind_build(str(getattr(data, "build_id", "")))
        logger.append_keys(state=state)
        try:
            result = run(data, default_deps())
        except RLayerError as exc:
            logger.warning(
                "task failed", extra={"error_type": type(exc).__name__, "reason": exc.message}
            )
            raise
        except Exception as exc:
            if is_aws_error(exc):
                code = error_code(exc) or type(exc).__name__
                if is_transient(exc):
                    logger.warning("transient AWS failure", extra={"code": code})
                    raise TransientError(f"{state}: {code}: {exc}") from exc
                logger.exception("AWS call failed", extra={"code": code})
                raise UpstreamError(f"{state}: {code}: {exc}") from exc
            raise
        return result.model_dump(mode="json")

    handler.__name__ = f"{state}_handler"
    handler.__qualname__ = handler.__name__
    return handler


def advance(
    store: Store, build_id: str, to: BuildStatus, fields: dict[str, Any] | None = None
) -> BuildRecord:
    """Move the build forward to ``to``; a retried task finding it there already goes on."""
    try:
        return store.transition(build_id, to, fields)
    except TransitionRejectedError:
        record = store.get_build(build_id)
        if record.status is to:
            logger.info("already in this status (retried task)", extra={"status": to.value})
            return record
        raise


def artifact_location(record: BuildRecord, settings: Settings) -> str:
    """Where the build's artifacts are: what the backend said, else the bucket's prefix."""
    return record.artifact_location or (
        f"s3://{settings.artifact_bucket}/{artifact_prefix(record.build_id)}"
    )


def build_marker(build_id: str) -> str:
    """Tag in a layer version's description naming the build that published it.

    Lets a retried PublishLayers adopt a version its first attempt published but could not
    record, and lets RetireLayers find such versions: Lambda has no idempotency token.
    """
    return f"[rlayer {build_id}]"
