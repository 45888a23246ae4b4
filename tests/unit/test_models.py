"""Request validation and spec normalisation (no I/O)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.models import BuildRequest, BuildStatus, PackageSpec


def test_spec_hash_ignores_package_order() -> None:
    a = BuildRequest(r_version="4.4.1", packages=["jsonlite", "data.table==1.15.4"]).spec()
    b = BuildRequest(r_version="4.4.1", packages=["data.table==1.15.4", "jsonlite"]).spec()
    assert a.spec_hash == b.spec_hash
    assert a.packages_layer_name == f"r-4_4_1-x86_64-pkgs-{a.spec_hash}"


def test_spec_hash_depends_on_version_architecture_and_pins() -> None:
    base = BuildRequest(r_version="4.4.1", packages=["jsonlite"]).spec().spec_hash
    assert base != BuildRequest(r_version="4.4.2", packages=["jsonlite"]).spec().spec_hash
    assert (
        base
        != BuildRequest(r_version="4.4.1", packages=["jsonlite"], architecture="arm64")  # type: ignore[arg-type]
        .spec()
        .spec_hash
    )
    assert base != BuildRequest(r_version="4.4.1", packages=["jsonlite==1.8.9"]).spec().spec_hash


@pytest.mark.parametrize("name", ["data.table", "R6", "jsonlite", "Rcpp", "x1"])
def test_cran_names_are_accepted(name: str) -> None:
    assert PackageSpec.parse(name).name == name


@pytest.mark.parametrize(
    "text",
    ["a", "1abc", "abc.", "ab_c", "ab-c", "ab c", "ab;c", "`id`", "ab==", "ab==x", "ab==1"],
)
def test_non_cran_names_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        PackageSpec.parse(text)


def test_strict_types() -> None:
    with pytest.raises(ValidationError):
        BuildRequest.model_validate_json('{"r_version": "4.4.1", "force": "true"}')


def test_forward_order() -> None:
    assert BuildStatus.BUILDING.predecessors() == (BuildStatus.QUEUED,)
    assert BuildStatus.SUCCEEDED.predecessors()[-1] is BuildStatus.TESTING
    assert BuildStatus.SUCCEEDED not in BuildStatus.FAILED.predecessors()
