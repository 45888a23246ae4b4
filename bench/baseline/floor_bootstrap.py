#!/usr/bin/env python3
"""The floor for bench/runtime's warm round trip: the smallest Runtime API client there is,
in Python, one keep-alive connection, no handler (every event answers {"ok":true}). What
our R loop costs beyond this is the loop's own time."""

import http.client
import os
import socket

host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].partition(":")
base = "/2018-06-01/runtime/invocation/"
conn = http.client.HTTPConnection(host, int(port or 80))
conn.connect()
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as our loop does
while True:
    conn.request("GET", base + "next")
    got = conn.getresponse()
    got.read()
    request_id = got.headers["Lambda-Runtime-Aws-Request-Id"]
    conn.request(
        "POST",
        base + request_id + "/response",
        body=b'{"ok":true}',
        headers={"Content-Type": "application/json"},
    )
    conn.getresponse().read()
