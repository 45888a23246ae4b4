"""PUBLIC_CATALOG: the stage decides when the app loads whether the catalog's read-only
routes and page need IAM; every other route does either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json
from app import app
from chalicelib.api.openapi import document
auth = {f"{m} {p}": type(e.authorizer).__name__ if e.authorizer else None
        for p, methods in app.routes.items() for m, e in methods.items()}
security = {f"{m.upper()} {p}": op["security"] for p, item in document()["paths"].items()
            for m, op in item.items()}
print(json.dumps({"auth": auth, "security": security}))
"""
CATALOG = {"GET /layers", "GET /layers/latest", "GET /catalog"}


def routes(public: str | None) -> dict[str, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k != "PUBLIC_CATALOG"}
    if public is not None:
        env["PUBLIC_CATALOG"] = public
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    found: dict[str, dict[str, object]] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_the_catalog_is_public_only_where_the_stage_says() -> None:
    closed = routes(None)
    assert all(closed["auth"][r] == "IAMAuthorizer" for r in CATALOG)
    opened = routes("true")
    for route, auth in opened["auth"].items():
        if route in CATALOG:
            assert auth is None and opened["security"][route] == [], route
        elif route != "POST /slack/commands":
            assert auth == "IAMAuthorizer", route
            assert opened["security"][route] == [{"sigv4": []}], route
