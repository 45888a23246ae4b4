"""Wiring only: the Chalice app, its blueprints, task functions, schedules, middleware."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice

from chalicelib.api.builds import builds
from chalicelib.observability import logger, metrics

app = Chalice(app_name="rlayer")
app.register_blueprint(builds)


@app.middleware("all")
def observability(event: Any, get_response: Any) -> Any:
    # A fresh log context per event: keys (the build id) never leak between invocations.
    logger.clear_state()
    try:
        return get_response(event)
    finally:
        metrics.flush_metrics(raise_on_empty_metrics=False)
