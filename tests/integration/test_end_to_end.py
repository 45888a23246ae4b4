"""`make demo` as a test: the local stack, a real build through the HTTP API, the canary.

One stack for the module (127.0.0.1, free ports, stopped at the end). R's compile is
cached under RLAYER_CACHE_DIR, so once it has run this takes a few minutes; with a cold
cache the first build compiles R (the timeout allows for it).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from chalicelib.aws.session import client
from chalicelib.builders.base import artifact_prefix
from chalicelib.errors import NotFoundError, RequestInvalidError
from chalicelib.models import BuildRecord, BuildRequest, BuildStatus, LayerManifest
from chalicelib.pipeline.locations import zip_name
from rlayer.builders.sources import LocalSources, ensure_local_sources
from rlayer.client import ApiClient
from rlayer.client.progress import follow
from rlayer.local.stack import LocalStack, StackOptions

pytestmark = pytest.mark.integration

# A cold cache compiles R (about 6 minutes alone on 2 cores, more when shared).
FIRST_BUILD_TIMEOUT_S = 45 * 60
BUILD_TIMEOUT_S = 15 * 60
PACKAGES = ["jsonlite", "digest"]  # digest has C code


@pytest.fixture(scope="module")
def sources() -> LocalSources:
    return ensure_local_sources()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sources: LocalSources) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("stack")
    with (data / "stack.log").open("w") as log:
        stack = LocalStack(
            StackOptions(
                api_port=0,
                data_dir=data,
                run_schedules=False,
                log_stream=log,
                poll_interval_s=1,
            )
        )
        with stack:
            yield stack


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> ApiClient:
    return ApiClient(stack.api_url)


def run_to_end(api: ApiClient, request: BuildRequest, timeout: float) -> BuildRecord:
    submitted = api.create_build(request)
    assert submitted.created, "a fresh stack has no earlier build of this spec"
    return follow(api, submitted.build_id, console=Console(quiet=True), interval=2, timeout=timeout)


def repo_versions(sources: LocalSources) -> dict[str, str]:
    """Package versions in the file:// repository, from its PACKAGES index."""
    index = Path(sources.cran_repo.removeprefix("file://")) / "src/contrib/PACKAGES"
    text = index.read_text()
    return dict(re.findall(r"^Package: (\S+)\nVersion: (\S+)$", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def built(api: ApiClient, sources: LocalSources) -> BuildRecord:
    request = BuildRequest(r_version=sources.r_version, packages=PACKAGES)
    return run_to_end(api, request, FIRST_BUILD_TIMEOUT_S)


def test_the_build_succeeds_with_both_layers_and_a_canary_that_ran_them(
    built: BuildRecord, sources: LocalSources
) -> None:
    assert built.status is BuildStatus.SUCCEEDED, built.error
    assert [layer.kind for layer in built.layers] == ["runtime", "packages"]
    assert built.layers[0].name == built.spec.runtime_layer_name
    assert built.layers[1].name == built.spec.packages_layer_name
    assert built.canary is not None
    # R's own report from inside the sandbox, and the versions it loaded.
    assert built.canary.r_version == sources.r_version
    versions = repo_versions(sources)
    for package in PACKAGES:
        assert built.canary.packages[package] == versions[package]
    assert sorted(built.steps, key=built.steps.__getitem__) == [
        "QUEUED",
        "BUILDING",
        "VALIDATING",
        "PUBLISHING",
        "TESTING",
        "SUCCEEDED",
    ]


def test_the_layer_versions_exist_in_lambda_with_the_zips_sha256(built: BuildRecord) -> None:
    lam, s3 = client("lambda"), client("s3")
    bucket = get_bucket()
    for layer in built.layers:
        version = lam.get_layer_version(LayerName=layer.name, VersionNumber=layer.version)
        assert version["LayerVersionArn"] == layer.arn
        key = artifact_prefix(built.build_id) + zip_name(layer.kind)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        digest = hashlib.sha256(body).digest()
        assert digest.hex() == layer.sha256
        assert version["Content"]["CodeSha256"] == base64.b64encode(digest).decode()
        assert version["Content"]["CodeSize"] == len(body) == layer.zipped_bytes
        assert version["CompatibleArchitectures"] == [built.spec.architecture.value]


def test_the_same_spec_again_answers_with_the_first_build(
    api: ApiClient, built: BuildRecord
) -> None:
    again = api.create_build(
        BuildRequest(r_version=built.spec.r_version, packages=list(reversed(PACKAGES)))
    )
    assert (again.created, again.build_id, again.status) == (
        False,
        built.build_id,
        BuildStatus.SUCCEEDED,
    )


def test_a_package_not_in_the_repository_is_refused_at_the_request_and_nothing_starts(
    api: ApiClient, built: BuildRecord
) -> None:
    before = (published_versions(), [b.build_id for b in api.list_builds(limit=100).builds])
    request = BuildRequest(r_version=built.spec.r_version, packages=["jsonlite", "nosuchpkg"])
    with pytest.raises(RequestInvalidError) as refused:
        api.create_build(request)
    assert refused.value.field == "packages"
    assert "'nosuchpkg' is not in the repository" in refused.value.message
    # Neither a record nor a layer version appeared.
    assert (published_versions(), [b.build_id for b in api.list_builds(limit=100).builds]) == before


def published_versions() -> dict[str, list[int]]:
    lam = client("lambda")
    return {
        layer["LayerName"]: sorted(
            v["Version"]
            for v in lam.list_layer_versions(LayerName=layer["LayerName"])["LayerVersions"]
        )
        for layer in lam.list_layers()["Layers"]
    }


def get_bucket() -> str:
    from chalicelib.settings import get_settings

    return get_settings().artifact_bucket


def test_an_unknown_build_is_404(api: ApiClient) -> None:
    with pytest.raises(NotFoundError):
        api.get_build("20990101T000000-00000000")


def other_r_versions() -> list[str]:
    prepared = ensure_local_sources()
    return [v for v in prepared.r_versions if v != prepared.r_version]


@pytest.mark.parametrize("r_version", ["4.5.0", "4.6.1"])
def test_current_r_builds_and_the_canary_reports_that_very_version(
    api: ApiClient, sources: LocalSources, built: BuildRecord, r_version: str
) -> None:
    assert r_version in other_r_versions(), "make local-sources prepares R 4.5.0 and 4.6.1"
    # Its own repository: bookworm's jsonlite 1.8.4 no longer installs on R >= 4.4.
    request = BuildRequest(r_version=r_version, packages=PACKAGES)
    record = run_to_end(api, request, FIRST_BUILD_TIMEOUT_S)
    assert record.status is BuildStatus.SUCCEEDED, record.error
    assert record.canary is not None and record.canary.r_version == r_version
    index = Path(sources.repo_for(r_version).removeprefix("file://")) / "src/contrib/PACKAGES"
    versions = dict(
        re.findall(r"^Package: (\S+)\nVersion: (\S+)$", index.read_text(), flags=re.MULTILINE)
    )
    for package in PACKAGES:
        assert record.canary.packages[package] == versions[package]
    # R >= 4.5 links libdeflate (not in Lambda's image) and ships its BLAS as a library.
    body = (
        client("s3")
        .get_object(
            Bucket=get_bucket(), Key=artifact_prefix(record.build_id) + zip_name("runtime")
        )["Body"]
        .read()
    )
    names = set(zipfile.ZipFile(io.BytesIO(body)).namelist())
    assert {"lib/libdeflate.so.0", "R/lib/R/lib/libRblas.so"} <= names


def test_an_r_the_stack_has_no_source_for_is_refused_at_the_request(
    api: ApiClient, sources: LocalSources
) -> None:
    with pytest.raises(RequestInvalidError) as refused:
        api.create_build(BuildRequest(r_version="4.4.1", packages=PACKAGES))
    assert refused.value.field == "r_version"
    assert ", ".join(sources.r_versions) in refused.value.message


def test_a_package_linking_a_system_library_builds_on_current_r_and_passes_its_check(
    api: ApiClient, sources: LocalSources, built: BuildRecord
) -> None:
    # xml2 links libxml2: the build root gets libxml2-dev (system_libraries.json), the
    # closure step bundles libxml2 (Lambda's image has none), the canary parses XML with it.
    request = BuildRequest(r_version="4.5.0", packages=["xml2"])
    record = run_to_end(api, request, FIRST_BUILD_TIMEOUT_S)
    assert record.status is BuildStatus.SUCCEEDED, record.error
    assert record.canary is not None and record.canary.r_version == "4.5.0"
    assert record.canary.checked == ["xml2"]
    # The whole runtime closure loaded: xml2 imports cli and rlang.
    assert {"xml2", "cli", "rlang"} <= set(record.canary.packages)
    # The local backend's artifact directory (only the zips go to S3, for Lambda).
    assert record.artifact_location is not None
    where = Path(record.artifact_location.removeprefix("file://"))
    manifest = LayerManifest.model_validate_json((where / "packages.manifest.json").read_text())
    assert manifest.pulled_in_by["xml2"] == ["(requested)"]
    assert manifest.pulled_in_by["rlang"] == manifest.pulled_in_by["cli"] == ["xml2"]
    assert "libxml2.so.2" in manifest.shared_libraries
