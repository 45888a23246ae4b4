"""The runtime's JSON (runtime/bootstrap/json.R and native/) against jsonlite, on a corpus.

The loop reads events and writes values with to_json()/from_json() and loads jsonlite only
when they hand something to it; the contract is that the results are jsonlite's. The corpus:
events as Lambda's sources send them, nested lists, NA, NULL, unicode (raw and escaped),
numbers at the edges, invalid texts (same error or same value), and payloads of about 6 MB;
values as handlers return them, hand-picked and generated. json_corpus.R runs the
comparison with host R and jsonlite (r-cran-jsonlite); every text is read from its bytes (as
the loop reads an event) and from a string, and also given to the native reader alone, so
that what it answers and what it hands to jsonlite are both held to jsonlite.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, RUNTIME_SRC

pytestmark = pytest.mark.integration

API_GATEWAY_V2 = {
    "version": "2.0",
    "routeKey": "POST /items/{id}",
    "rawPath": "/items/42",
    "rawQueryString": "a=1&b=%C3%A9",
    "cookies": ["s=1", "t=2"],
    "headers": {"content-type": "application/json", "x-forwarded-port": "443"},
    "queryStringParameters": {"a": "1", "b": "é"},
    "pathParameters": {"id": "42"},
    "requestContext": {
        "accountId": "123456789012",
        "http": {"method": "POST", "path": "/items/42", "sourceIp": "203.0.113.1"},
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "stage": "$default",
        "timeEpoch": 1583348638390,
    },
    "body": "eyJhIjogMX0=",
    "isBase64Encoded": True,
}
API_GATEWAY_V1 = {
    "resource": "/{proxy+}",
    "path": "/hello/world",
    "httpMethod": "GET",
    "headers": {"Accept": "*/*", "CloudFront-Is-Mobile-Viewer": "false"},
    "multiValueHeaders": {"Accept": ["*/*"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"proxy": "hello/world"},
    "stageVariables": None,
    "requestContext": {"resourceId": "123456", "requestTimeEpoch": 1428582896000},
    "body": None,
    "isBase64Encoded": False,
}
SQS = {
    "Records": [
        {
            "messageId": f"059f36b4-87a3-44ab-83d2-66197507519{i}",
            "body": json.dumps({"n": i, "text": "héllo"}),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "awsRegion": "us-east-1",
        }
        for i in range(3)
    ]
}
S3 = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventTime": "1970-01-01T00:00:00.000Z",
            "s3": {
                "bucket": {"name": "example-bucket", "arn": "arn:aws:s3:::example-bucket"},
                "object": {"key": "test%2Fkey+with+space", "size": 1024, "eTag": "0123456789"},
            },
        }
    ]
}
EVENTBRIDGE = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "time": "2017-12-22T18:43:48Z",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"},
}

# Written as they are (Python would normalise them): edges of JSON itself.
RAW_TEXTS = [
    "null", "true", "false", "0", "-0", "-0.0", "1.0", "1e2", "1E+2", "1e-2", "1E400",
    "-1e-400", "2147483647", "2147483648", "-2147483647", "-2147483648", "9999999999",
    "12345678901234567890", "1700000000", "0.1", "1.7976931348623157e308",
    "5e-324", "2.2250738585072014e-308", "9007199254740993", '""', '"x"',
    "[]", "{}", "[[]]", "[{}]", "[null]", "[null,null]", '["NA"]', '["NA","x"]', '["NA",1]',
    '["Inf",1]', '["NaN","-Inf"]', "[true,1]", '[true,"a"]', "[1,1.5]", '[1,"a"]',
    '[null,"a"]', "[[1,2],[]]", "[[],[]]", "[[1],[]]", '[[],["a"]]', "[[],[true]]",
    "[[],[null]]", "[[1,2],[3]]", '[{},{"a":1}]', '[[],{"a":1}]', "[[],[[1]]]", "[1,[2,3]]",
    '[{"a":1},{"a":2}]', '{"a":null}', '{"a":[null]}', "[[null]]", '{"a":1,"a":2}',
    ' [ 1 , 2 ] \n', '{"a" : 1, "b"  :[ ]}', '{"$date": 1000}', '[{"$date": 1000}]',
    '"\\u00e9\\ud83d\\ude00"', '"a\\/b"', '"a\\\\/b"', '"\\\\u00e9"', '"\\b\\f\\n\\r\\t\\"\\\\"',
    '"\\u0000"', '"ab\\udc00"', '"\\ud83d"', '"\\u2028\\u2029"', '{"k\\u00e9y": "ü😀"}',
    '{"a b":{"c":[1,2,{"d":null}]},"é":"ü","e\\nf":"\\t\\"x\\""}',
    '{"nested": ' + "[" * 60 + "1" + "]" * 60 + "}",
    # Invalid: jsonlite's error, whoever reads them.
    "", "   ", "[1,2,]", '{"a"}', "[01]", '{"a":"b":1}', "tru", "[1 2]", '{"":1}',
    "[.5]", "[1.]", "[+1]", "[-]", "NaN", "[Infinity]", "'x'", '"tab\there"', "[1]\n[2]",
    '{"a":1}{"b":2}', '["a":1]', "[null:1]", '{1:2}', '"\\x41"', '"\\u12"', '"unterminated',
    "\ufeff[1]",
    # Arrays of scalars of mixed types, and empty arrays beside others.
    '[1.5,"a"]', '[1e5,"x",true]', '[0.1,null,"s",-2]', '["NA",null]', '["Inf",null,"NaN"]',
    '["NA",true]', "[[],[1.5]]", "[[],null]", "[null,[]]", '[[],"a"]', '[[],{}]', "[[],[],[2]]",
    '[2147483647,-2147483647,2147483648,-2147483648]', "[1,2,3e0]",
    "[" * 600 + "]" * 600,
]  # fmt: skip


# Valid texts the native reader hands to jsonlite on purpose (json.R says why): integers
# past 15 digits, numbers past the largest double, "$date" objects, escapes R strings cannot
# hold or jsonlite reads its own way, an empty key, a byte-order mark.
HANDED_RAW = [
    "1E400", "12345678901234567890", "9007199254740993", '{"$date": 1000}',
    '[{"$date": 1000}]', '"\\u0000"', '"ab\\udc00"', '"\\ud83d"', '{"":1}', "\ufeff[1]",
]  # fmt: skip


def texts(rng: random.Random) -> dict[str, bytes]:
    """name -> the bytes of one JSON text."""
    out = {f"raw-{i:03d}": t.encode() for i, t in enumerate(RAW_TEXTS)}
    events = {
        "apigw-v1": API_GATEWAY_V1,
        "apigw-v2": API_GATEWAY_V2,
        "sqs": SQS,
        "s3": S3,
        "eventbridge": EVENTBRIDGE,
    }
    for name, event in events.items():
        out[f"event-{name}"] = json.dumps(event, ensure_ascii=False).encode()
        out[f"event-{name}-ascii"] = json.dumps(event).encode()  # \u escapes
    numbers = [rng.uniform(-1, 1) * 10 ** rng.randint(-320, 308) for _ in range(2000)] + [
        float(rng.randint(-(2**40), 2**40)) for _ in range(200)
    ]
    out["numbers-array"] = json.dumps(numbers).encode()
    out["numbers-objects"] = json.dumps([{"x": n} for n in numbers[:300]]).encode()
    out["integers"] = json.dumps([rng.randint(-(2**33), 2**33) for _ in range(2000)]).encode()
    words = ["plain", "é", "中文", "😀", "\u2028", "tab\t", 'q"', "b\\", "NA", "", "/"]
    nested = [
        {
            "id": i,
            "name": rng.choice(words) + str(i),
            "tags": rng.sample(words, rng.randint(0, 3)),
            "flags": [rng.choice([True, False, None]) for _ in range(rng.randint(0, 3))],
            "child": {"v": rng.choice([None, 1, 2.5, "x", [], {}]), "w": [[1, 2], []]},
        }
        for i in range(300)
    ]
    out["nested"] = json.dumps(nested, ensure_ascii=False).encode()
    out["nested-ascii"] = json.dumps(nested).encode()
    # About 6 MB each: one long string, many records, many numbers.
    out["big-string"] = json.dumps(
        {"body": "ab\u00e9\U0001f600" * 700_000}, ensure_ascii=False
    ).encode()
    out["big-records"] = json.dumps(
        [{"id": i, "name": f"item-{i}-é", "ok": i % 2 == 0, "v": None} for i in range(110_000)],
        ensure_ascii=False,
    ).encode()
    out["big-numbers"] = json.dumps([rng.random() * 1e6 for _ in range(300_000)]).encode()
    return out


def test_runtime_json_gives_what_jsonlite_gives(
    host_r: Path, runtime_layer: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "texts"
    corpus.mkdir()
    made = texts(random.Random(16))
    for name, data in made.items():
        (corpus / name).write_bytes(data)
    sizes = [len(d) for n, d in made.items() if n.startswith("big-")]
    assert min(sizes) > 5_000_000, sizes
    done = subprocess.run(
        [
            str(host_r.parent / "Rscript"),
            str(REPO / "tests" / "integration" / "json_corpus.R"),
            str(RUNTIME_SRC / "json.R"),
            str(runtime_layer / "runtime" / "native.so"),
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    sys.stderr.write(done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    assert "MISMATCH" not in report, report[:6000]
    match = re.search(r"^COUNTS (.*)$", report, re.MULTILINE)
    assert match, report[-2000:]
    counts = dict(pair.split("=") for pair in match.group(1).split())
    counts_int = {k: int(v) for k, v in counts.items()}
    assert counts_int["texts"] == len(made)
    assert counts_int["mismatches"] == 0
    assert counts_int["mutations"] > 3000, counts_int
    # The native reader answered every valid text but those it hands to jsonlite on purpose.
    handed = set(re.findall(r"^HANDED (\S+)", report, re.MULTILINE))
    expected = {f"raw-{RAW_TEXTS.index(t):03d}" for t in HANDED_RAW}
    assert handed == expected
    assert counts_int["base_reader"] >= 80, counts_int
    # And the native writer wrote all values itself but jsonlite's classes.
    assert counts_int["base_writer"] >= counts_int["values"] - 20, counts_int
