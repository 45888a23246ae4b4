"""The runtime's event helpers (runtime/bootstrap/events.R) on sample events of each
source, with real R on the emulator; SQS partial batch answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlayer.local.runtime_api import RuntimeSession

pytestmark = pytest.mark.integration

EVENTS_R = r"""
handler <- function(event) {
  kind <- event_kind(event)
  switch(kind,
    api_gateway_v1 = , api_gateway_v2 = , function_url = {
      req <- http_request(event)
      if (identical(req$path, "/html")) return(http_html("<p>hi</p>", status = 201L))
      if (identical(req$path, "/bytes")) return(http_response(as.raw(c(0, 1, 254, 255))))
      http_json(list(kind = kind, method = req$method, path = req$path,
                     agent = req$headers[["user-agent"]], query = req$query,
                     params = req$path_params, cookies = I(req$cookies), body = req$body,
                     parsed = if (grepl("json", req$headers[["content-type"]]))
                       http_json_body(event)))
    },
    sqs = {
      records <- sqs_records(event)
      bodies <- vapply(records, function(r) r$body, "")
      # The ids of the messages that failed: the runtime answers batchItemFailures.
      vapply(records[bodies == "bad"], function(r) r$id, "")
    },
    sns = lapply(sns_messages(event), function(m) m[c("subject", "message", "attributes")]),
    s3 = lapply(s3_objects(event), function(o) o[c("bucket", "key", "size", "event_name")]),
    eventbridge = {
      e <- eventbridge_event(event)
      list(source = e$source, type = e$detail_type, order = e$detail$order)
    },
    list(kind = kind, encoded = base64_encode(event$text),
         roundtrip = rawToChar(base64_decode(base64_encode(event$text))))
  )
}
"""

V1 = {
    "resource": "/items/{id}",
    "path": "/items/42",
    "httpMethod": "POST",
    "headers": {"User-Agent": "curl/8", "Content-Type": "application/json"},
    "multiValueHeaders": {"User-Agent": ["curl/8"]},
    "queryStringParameters": {"tag": "b", "q": "x"},
    "multiValueQueryStringParameters": {"tag": ["a", "b"], "q": ["x"]},
    "pathParameters": {"id": "42"},
    "requestContext": {"resourcePath": "/items/{id}", "identity": {"sourceIp": "1.2.3.4"}},
    "body": base64.b64encode(json.dumps({"n": 5}).encode()).decode(),
    "isBase64Encoded": True,
}

V2 = {
    "version": "2.0",
    "routeKey": "GET /items/{id}",
    "rawPath": "/items/7",
    "rawQueryString": "tag=a&tag=b&q=x%2Cy+z&flag",
    "cookies": ["s=1", "t=2"],
    "headers": {"user-agent": "curl/8", "content-type": "text/plain"},
    "queryStringParameters": {"tag": "a,b", "q": "x,y z", "flag": ""},
    "pathParameters": {"id": "7"},
    "requestContext": {
        "domainName": "abc.execute-api.us-east-1.amazonaws.com",
        "http": {"method": "GET", "path": "/items/7", "sourceIp": "1.2.3.4"},
    },
    "body": "plain text",
    "isBase64Encoded": False,
}


def function_url(path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "text/plain"},
        "requestContext": {
            "domainName": "xyz.lambda-url.us-east-1.on.aws",
            "http": {"method": "GET", "path": path, "sourceIp": "1.2.3.4"},
        },
        "isBase64Encoded": False,
    }


def sqs(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": "r",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            }
            for i, body in enumerate(bodies)
        ]
    }


SNS = {
    "Records": [
        {
            "EventSource": "aws:sns",
            "Sns": {
                "MessageId": "id-1",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                "Subject": "greeting",
                "Message": "hello",
                "Timestamp": "2024-01-01T00:00:00.000Z",
                "MessageAttributes": {"colour": {"Type": "String", "Value": "blue"}},
            },
        }
    ]
}

S3 = {
    "Records": [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "awsRegion": "us-east-1",
            "s3": {
                "bucket": {"name": "my-bucket"},
                "object": {"key": "data/my+file%3D1%C3%A9.csv", "size": 1024, "eTag": "e"},
            },
        }
    ]
}

EVENTBRIDGE = {
    "version": "0",
    "id": "e-1",
    "detail-type": "Order Placed",
    "source": "com.example.shop",
    "account": "123456789012",
    "time": "2024-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"order": {"id": 9, "total": 12.5}},
}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory, host_r: Path) -> Iterator[RuntimeSession]:
    root = tmp_path_factory.mktemp("events")
    (root / "events.R").write_text(EVENTS_R)
    with RuntimeSession(task_root=root, handler="events.handler", timeout_s=5) as session:
        yield session


def call(session: RuntimeSession, event: dict[str, Any]) -> Any:
    result = session.invoke(json.dumps(event).encode())
    assert result.ok, result.payload
    return result.json_payload()


def test_rest_api_v1_request(events: RuntimeSession) -> None:
    response = call(events, V1)
    assert response["statusCode"] == 200
    assert response["headers"] == {"Content-Type": "application/json"}
    assert response["isBase64Encoded"] is False
    assert json.loads(response["body"]) == {
        "kind": "api_gateway_v1",
        "method": "POST",
        "path": "/items/42",
        "agent": "curl/8",
        "query": {"tag": ["a", "b"], "q": "x"},
        "params": {"id": "42"},
        "cookies": [],
        "body": '{"n": 5}',
        "parsed": {"n": 5},
    }


def test_http_api_v2_request(events: RuntimeSession) -> None:
    body = json.loads(call(events, V2)["body"])
    assert body["kind"] == "api_gateway_v2"
    assert (body["method"], body["path"], body["body"]) == ("GET", "/items/7", "plain text")
    # Repeated keys are vectors; a comma inside a value stays (read from rawQueryString).
    assert body["query"] == {"tag": ["a", "b"], "q": "x,y z", "flag": ""}
    assert body["cookies"] == ["s=1", "t=2"]
    assert body["parsed"] is None


def test_function_url_html_and_binary_responses(events: RuntimeSession) -> None:
    html = call(events, function_url("/html"))
    assert html["statusCode"] == 201
    assert html["headers"]["Content-Type"].startswith("text/html")
    assert html["body"] == "<p>hi</p>"
    binary = call(events, function_url("/bytes"))
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == bytes([0, 1, 254, 255])
    plain = json.loads(call(events, function_url("/other"))["body"])
    assert plain["kind"] == "function_url"


def test_sqs_failed_ids_become_batch_item_failures(events: RuntimeSession) -> None:
    assert call(events, sqs("ok", "bad", "ok", "bad")) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]
    }
    assert call(events, sqs("ok")) == {"batchItemFailures": []}


def test_sns_s3_and_eventbridge_records(events: RuntimeSession) -> None:
    assert call(events, SNS) == [
        {"subject": "greeting", "message": "hello", "attributes": {"colour": "blue"}}
    ]
    assert call(events, S3) == [
        {
            "bucket": "my-bucket",
            "key": "data/my file=1é.csv",
            "size": 1024,
            "event_name": "ObjectCreated:Put",
        }
    ]
    assert call(events, EVENTBRIDGE) == {
        "source": "com.example.shop",
        "type": "Order Placed",
        "order": {"id": 9, "total": 12.5},
    }


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "abcd", "é✓ and more"])
def test_base64_round_trips_and_matches_python(events: RuntimeSession, text: str) -> None:
    encoded = base64.b64encode(text.encode()).decode()
    assert call(events, {"text": text}) == {
        "kind": "unknown",
        "encoded": encoded,
        "roundtrip": text,
    }
