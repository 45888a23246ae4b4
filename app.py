"""Wiring only: the Chalice app, its blueprints, task functions, schedules, middleware."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Rate

from chalicelib.api import context
from chalicelib.api.builds import builds
from chalicelib.api.catalog_routes import catalog_routes
from chalicelib.api.openapi import docs
from chalicelib.api.releases import releases
from chalicelib.api.responses import with_request_id
from chalicelib.api.slack import slack
from chalicelib.api.subscriptions import subscriptions
from chalicelib.builders.ec2_reaper import REAP_EVERY_MINUTES, reap
from chalicelib.distribution.retention import EXPIRE_EVERY_HOURS, expire
from chalicelib.observability import logger, publish_metrics, tracer
from chalicelib.pipeline import HANDLERS
from chalicelib.releases import schedule_rate_hours
from chalicelib.releases.runs import on_check_event

app = Chalice(app_name="rlayer")
app.register_blueprint(builds)
app.register_blueprint(slack)
app.register_blueprint(subscriptions)
app.register_blueprint(releases)
app.register_blueprint(docs)
app.register_blueprint(catalog_routes)


@app.schedule(Rate(schedule_rate_hours(), unit=Rate.HOURS), name="check_releases")
def check_releases(event: CloudWatchEvent) -> dict[str, Any]:
    # EventBridge's schedule, or a check POST /releases/check recorded (invoked as an event).
    return on_check_event(event.to_dict(), context.store(), context.settings())


@app.schedule(Rate(REAP_EVERY_MINUTES, unit=Rate.MINUTES), name="reap_build_instances")
def reap_build_instances(event: Any) -> dict[str, Any]:
    # EC2 build instances an execution stopped from outside left behind.
    return reap(context.settings()).model_dump(mode="json")


@app.schedule(Rate(EXPIRE_EVERY_HOURS, unit=Rate.HOURS), name="expire_layers")
def expire_layers(event: Any) -> dict[str, Any]:
    # Superseded versions past their expiry; a failed deletion is retried on the next run.
    return expire(context.store(), context.settings()).model_dump(mode="json")


# ---- the state machine's task functions: one per row of chalicelib.pipeline.TASKS (tested)


@app.lambda_function(name="start_build")
def start_build(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["start_build"](event)


@app.lambda_function(name="check_build")
def check_build(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["check_build"](event)


@app.lambda_function(name="stop_build")
def stop_build(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["stop_build"](event)


@app.lambda_function(name="validate_artifact")
def validate_artifact(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["validate_artifact"](event)


@app.lambda_function(name="publish_layers")
def publish_layers(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["publish_layers"](event)


@app.lambda_function(name="run_canary")
def run_canary(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["run_canary"](event)


@app.lambda_function(name="retire_layers")
def retire_layers(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["retire_layers"](event)


@app.lambda_function(name="record_success")
def record_success(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["record_success"](event)


@app.lambda_function(name="record_failure")
def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["record_failure"](event)


@app.lambda_function(name="notify")
def notify(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return HANDLERS["notify"](event)


@app.middleware("all")
def observability(event: Any, get_response: Any) -> Any:
    # A fresh log context per event: keys (the build id) never leak between invocations.
    logger.clear_state()
    try:
        with tracer.provider.in_subsegment(f"## {type(event).__name__}"):
            return get_response(event)
    finally:
        publish_metrics()


@app.middleware("http")
def request_ids(event: Any, get_response: Any) -> Any:
    return with_request_id(event, get_response)
