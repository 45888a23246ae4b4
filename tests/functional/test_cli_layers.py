"""`rlayer layers --latest` (plain, JSON, SAM, Terraform, CDK) and `rlayer catalog --html`
against the app served over real HTTP, on moto."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.aws.store import Store
from chalicelib.models import Architecture, BuildRecord
from chalicelib.observability import logger
from rlayer.cli import main
from rlayer.local.http_server import ApiServer
from tests.catalog_seed import proven

EU = "eu-west-1"


@pytest.fixture
def api(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from app import app

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    level = logger.log_level
    logger.setLevel("WARNING")
    server = ApiServer(app, port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        logger.setLevel(level)


@pytest.fixture
def build(store: Store) -> BuildRecord:
    return proven(
        store,
        "4.5.1",
        packages={"dplyr": "1.1.4", "data.table": "1.16.0"},
        architecture=Architecture.ARM64,
        regions=("us-east-1", EU),
        shared_with=["o-abcdef123456"],
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


LATEST = ("layers", "--latest", "--r-version", "4.5", "--arch", "arm64", "--region", EU)
PACKAGES = ("--packages", "dplyr,data.table")


def eu_arns(build: BuildRecord) -> list[str]:
    return [la.regions[EU].arn for la in build.layers]


def test_latest_prints_the_arns_in_attach_order(
    api: str, build: BuildRecord, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, *LATEST, *PACKAGES, "--api", api)
    assert status == 0
    runtime, packages = eu_arns(build)
    assert f"1. runtime  {runtime}" in out and f"2. packages {packages}" in out
    assert "R 4.5.1 arm64 in eu-west-1" in out and "o-abcdef123456" in out

    status, out, _ = run(capsys, *LATEST, *PACKAGES, "--json", "--api", api)
    assert json.loads(out)["arns"] == eu_arns(build)

    status, _, err = run(capsys, *LATEST, "--packages", "ggplot2", "--api", api)
    assert status == 1
    assert "NotFoundError" in err and "no proven layers for R 4.5" in err


def test_latest_as_snippets(
    api: str, build: BuildRecord, capsys: pytest.CaptureFixture[str]
) -> None:
    arns = eu_arns(build)
    _, out, _ = run(capsys, *LATEST, *PACKAGES, "--format", "sam", "--api", api)
    props = yaml.safe_load(out)["Resources"]["RFunction"]["Properties"]
    assert props["Layers"] == arns
    assert (props["Runtime"], props["Architectures"]) == ("provided.al2023", ["arm64"])

    _, out, _ = run(capsys, *LATEST, *PACKAGES, "--format", "terraform", "--api", api)
    assert re.findall(r'^    "(arn:[^"]+)",$', out, re.M) == arns
    assert 'architectures = ["arm64"]' in out and out.count("{") == out.count("}")

    _, out, _ = run(capsys, *LATEST, *PACKAGES, "--format", "cdk", "--api", api)
    compile(out, "snippet.py", "exec")  # valid Python
    assert re.findall(r'from_layer_version_arn\(self, "\w+", "([^"]+)"\)', out) == arns
    assert "Architecture.ARM_64" in out


def test_catalog_html_is_one_file_with_the_catalog_inside(
    api: str, build: BuildRecord, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "catalog.html"
    status, out, _ = run(capsys, "catalog", "--html", str(target), "--api", api)
    assert status == 0 and "1 proven builds" in out
    html = target.read_text()
    data = re.search(
        r'<script id="catalog-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert data is not None
    embedded = json.loads(data.group(1))
    assert [e["build_id"] for e in embedded["layers"]] == [build.build_id]
    assert "<link" not in html and "src=" not in html  # nothing to fetch besides itself


def test_status_shows_each_region_s_arn_and_who_may_use_them(
    api: str, build: BuildRecord, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "status", build.build_id, "--api", api)
    assert status == 0
    for layer in build.layers:
        for version in layer.regions.values():
            assert version.arn in out
    assert out.count("shared with o-abcdef123456") == len(build.layers)
