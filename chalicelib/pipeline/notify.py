"""Notify: tell whoever asked how the build ended. A notification never fails a build.

The seam: a notifier is any ``Callable[[BuildRecord], None]``. Register one with
:func:`register` (usable as a decorator) at import time of its module, or list the module's
``"package.module:function"`` in :data:`BUILTIN_NOTIFIERS` so the Notify Lambda imports it.
Every notifier is called with the final record; whatever it raises is logged and
swallowed, so one broken channel neither fails the build nor silences the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from chalicelib.models import BuildRecord
from chalicelib.observability import logger
from chalicelib.pipeline.contracts import FinalOutput, TaskInput
from chalicelib.pipeline.task import Deps, task

Notifier = Callable[[BuildRecord], None]

# Imported lazily on the first Notify, so this module does not depend on them.
BUILTIN_NOTIFIERS: tuple[str, ...] = ("chalicelib.slack.notifier:notify_slack",)

_registry: list[Notifier] = []


def register(notifier: Notifier) -> Notifier:
    if notifier not in _registry:
        _registry.append(notifier)
    return notifier


def unregister(notifier: Notifier) -> None:
    if notifier in _registry:
        _registry.remove(notifier)


def log_notifier(record: BuildRecord) -> None:
    """Always on: one structured line per finished build (CloudWatch, `rlayer serve`)."""
    logger.info(
        "build finished",
        extra={
            "status": record.status.value,
            "r_version": record.spec.r_version,
            "architecture": record.spec.architecture.value,
            "layers": [la.arn for la in record.layers if not la.retired],
            "error": record.error.model_dump() if record.error else None,
        },
    )


def _load_builtins() -> list[Notifier]:
    found: list[Notifier] = []
    for ref in BUILTIN_NOTIFIERS:
        module, _, name = ref.partition(":")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            logger.exception("notifier not available", extra={"notifier": ref})
    return found


def notifiers() -> list[Notifier]:
    builtins = [n for n in _load_builtins() if n not in _registry]
    return [log_notifier, *builtins, *_registry]


def notify_all(record: BuildRecord, targets: list[Notifier] | None = None) -> list[str]:
    """Call every notifier; return the names of those that raised (already logged)."""
    failed: list[str] = []
    for notifier in notifiers() if targets is None else targets:
        name = getattr(notifier, "__qualname__", repr(notifier))
        try:
            notifier(record)
        except Exception:  # a notification failure never fails the build
            logger.exception("notifier failed", extra={"notifier": name})
            failed.append(name)
    return failed


def run(data: TaskInput, deps: Deps) -> FinalOutput:
    record = deps.store.get_build(data.build_id)
    notify_all(record)
    return FinalOutput(status=record.status)


handler = task("Notify", TaskInput, run)
