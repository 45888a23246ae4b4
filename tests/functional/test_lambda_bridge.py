"""The Lambda bridge: moto's Invoke answered by Python handlers and by real runtimes."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.errors import ArtifactInvalidError, ConfigurationError
from chalicelib.models import BuildSpec
from rlayer.local.lambda_bridge import LambdaBridge
from tests.layerkit import HOST_R_VERSION, Artifacts, host_version

REGION = "us-east-1"
CANARY = Path(__file__).resolve().parents[2] / "runtime" / "canary" / "canary.R"


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def lam() -> Iterator[Any]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client = boto3.client("lambda", region_name=REGION)
        client.role = role
        yield client


def _python_function(lam: Any, name: str) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=lam.role,
        Handler="app.handler",
        Code={"ZipFile": _zip({"app.py": b"# run by the bridge\n"})},
        Timeout=30,
    )


def _invoke(lam: Any, name: str, payload: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload), LogType="Tail", **kwargs)
    return json.loads(resp["Payload"].read()), resp


def _report(resp: dict[str, Any]) -> str:
    log = base64.b64decode(resp["LogResult"]).decode()
    return next(line for line in log.splitlines() if line.startswith("REPORT "))


def test_a_python_handler_answers_in_process(lam: Any) -> None:
    seen: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append((context.function_name, context.get_remaining_time_in_millis()))
        return {"doubled": event["n"] * 2}

    _python_function(lam, "double")
    with LambdaBridge({"double": handler}):
        payload, resp = _invoke(lam, "double", {"n": 21})
    assert payload == {"doubled": 42}
    assert "FunctionError" not in resp
    assert seen[0][0] == "double" and 0 < seen[0][1] <= 30_000
    assert re.search(r"Duration: [\d.]+ ms", _report(resp))


def test_an_exception_comes_back_as_lambda_reports_it(lam: Any) -> None:
    def handler(event: dict[str, Any], context: Any) -> None:
        raise ArtifactInvalidError("runtime.zip: bootstrap is missing")

    _python_function(lam, "validate")
    with LambdaBridge({"validate": handler}) as bridge:
        payload, resp = _invoke(lam, "validate", {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ArtifactInvalidError"
    assert payload["errorMessage"] == "runtime.zip: bootstrap is missing"
    assert isinstance(payload["stackTrace"], list) and payload["stackTrace"]
    assert [c.error_type for c in bridge.calls] == ["ArtifactInvalidError"]


def test_throttling_answers_429_the_given_number_of_times(lam: Any) -> None:
    _python_function(lam, "busy")
    # A client that does not retry by itself, as Step Functions' is configured.
    once = boto3.client(
        "lambda", region_name=REGION, config=Config(retries={"total_max_attempts": 1})
    )
    with LambdaBridge({"busy": lambda event, context: "ok"}) as bridge:
        bridge.throttle("busy", 2)
        for _ in range(2):
            with pytest.raises(ClientError) as caught:
                once.invoke(FunctionName="busy", Payload=b"{}")
            assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert _invoke(lam, "busy", {})[0] == "ok"


def test_an_event_invocation_is_answered_at_once_and_runs_in_the_background(lam: Any) -> None:
    _python_function(lam, "later")
    started, release = threading.Event(), threading.Event()
    seen: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        started.set()
        release.wait(10)
        seen.append(event)
        if event.get("fail"):
            raise ValueError("no")

    with LambdaBridge({"later": handler}) as bridge:
        resp = lam.invoke(FunctionName="later", InvocationType="Event", Payload=b'{"n": 1}')
        assert resp["StatusCode"] == 202 and resp["Payload"].read() == b""
        assert started.wait(10) and seen == []  # answered while the handler still runs
        release.set()
        assert bridge.wait_idle(10)
        assert seen == [{"n": 1}]
        lam.invoke(FunctionName="later", InvocationType="Event", Payload=b'{"fail": true}')
    # Uninstalling waited for it; a failure is only recorded, as Lambda only logs it.
    assert [(c.kind, c.error_type) for c in bridge.calls] == [
        ("python-event", None),
        ("python-event", "ValueError"),
    ]


def test_uninstalling_puts_moto_back_and_one_bridge_at_a_time(lam: Any) -> None:
    _python_function(lam, "echo")
    bridge = LambdaBridge({"echo": lambda event, context: "bridged"}).install()
    try:
        with pytest.raises(ConfigurationError, match="already installed"):
            LambdaBridge({}).install()
        assert _invoke(lam, "echo", {"a": 1})[0] == "bridged"
    finally:
        bridge.uninstall()
    assert _invoke(lam, "echo", {"a": 1})[0] == {"a": 1}  # moto's echo again
    assert not bridge.work_dir.exists()


def test_functions_the_bridge_does_not_know_keep_motos_behaviour(lam: Any) -> None:
    _python_function(lam, "other")
    with LambdaBridge({}):
        assert _invoke(lam, "other", {"x": 1})[0] == {"x": 1}


def _layer(lam: Any, spec: BuildSpec, kind: str, broken: dict[str, str] | None = None) -> str:
    files = Artifacts.host(spec, broken=broken).files()
    arn: str = lam.publish_layer_version(
        LayerName=f"test-{kind}", Content={"ZipFile": files[f"{kind}.zip"]}
    )["LayerVersionArn"]
    return arn


def _canary(lam: Any, name: str, layers: list[str], **extra: Any) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=lam.role,
        Handler="canary.handler",
        Code={"ZipFile": _zip({"canary.R": CANARY.read_bytes()})},
        Layers=layers,
        Timeout=30,
        MemorySize=512,
        **extra,
    )


def test_a_provided_runtime_runs_for_real_and_stays_warm(lam: Any) -> None:
    spec = BuildSpec(r_version=HOST_R_VERSION, packages=["jsonlite"])  # type: ignore[arg-type]
    layers = [_layer(lam, spec, "runtime"), _layer(lam, spec, "packages")]
    _canary(lam, "canary", layers)
    event = {"expected_r_version": HOST_R_VERSION, "packages": ["jsonlite"]}
    with LambdaBridge({}) as bridge:
        first, resp1 = _invoke(lam, "canary", event)
        second, resp2 = _invoke(lam, "canary", event)
        # A configuration change is a new execution environment: cold again.
        lam.update_function_configuration(
            FunctionName="canary", Environment={"Variables": {"R_DEFAULT_PACKAGES": "base"}}
        )
        _, resp3 = _invoke(lam, "canary", event)
    assert first["r_version"] == HOST_R_VERSION
    assert first["packages"] == {"jsonlite": host_version("jsonlite")}
    assert first["result"]["json_roundtrip"] is True
    assert second["packages"] == first["packages"]
    assert "Init Duration" in _report(resp1)
    assert "Init Duration" not in _report(resp2)  # warm
    assert "Init Duration" in _report(resp3)
    assert re.search(r"Max Memory Used: [1-9]\d* MB", _report(resp1))
    assert [c.kind for c in bridge.calls] == ["provided"] * 3


def test_a_runtime_error_is_a_function_error(lam: Any) -> None:
    spec = BuildSpec(r_version=HOST_R_VERSION, packages=["nopkg"])  # type: ignore[arg-type]
    layers = [_layer(lam, spec, "runtime", {"nopkg": "1.0"})]
    layers.append(_layer(lam, spec, "packages", {"nopkg": "1.0"}))
    _canary(lam, "canary-broken", layers)
    with LambdaBridge({}):
        payload, resp = _invoke(
            lam, "canary-broken", {"expected_r_version": HOST_R_VERSION, "packages": ["nopkg"]}
        )
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "CanaryError"
    assert "nopkg" in payload["errorMessage"]


def test_a_function_for_another_architecture_says_so(lam: Any) -> None:
    spec = BuildSpec(r_version=HOST_R_VERSION)
    _canary(lam, "canary-arm", [_layer(lam, spec, "runtime")], Architectures=["arm64"])
    with LambdaBridge({}):
        payload, resp = _invoke(lam, "canary-arm", {})
    assert resp["FunctionError"] == "Unhandled"
    assert "cannot run a arm64 function" in payload["errorMessage"]
