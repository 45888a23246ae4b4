"""The package closure a request needs, and what is refused before any build."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from chalicelib.errors import PackageIndexError, RequestInvalidError
from chalicelib.models import BuildSpec, parse_packages
from chalicelib.packages import closure_for
from chalicelib.packages.closure import REQUESTED, resolve
from chalicelib.packages.dcf import parse_paragraphs
from chalicelib.packages.index import forget_indexes, parse_index, read_index

# A slice of a real repository's PACKAGES, continuation lines and all.
PACKAGES = """\
Package: dplyr
Version: 1.1.4
Depends: R (>= 3.5.0)
Imports: cli (>= 3.4.0), generics, glue (>= 1.3.2), lifecycle (>= 1.0.3),
        magrittr (>= 1.5), methods, R6, rlang (>= 1.1.0), utils
NeedsCompilation: yes

Package: cli
Version: 3.6.4
Depends: R (>= 3.4)
Imports: utils

Package: generics
Version: 0.1.3
Depends: R (>= 3.2)
Imports: methods

Package: glue
Version: 1.8.0
Depends: R (>= 3.6)

Package: lifecycle
Version: 1.0.4
Imports: cli (>= 3.4.0), glue, rlang (>= 1.1.0)

Package: magrittr
Version: 2.0.3

Package: R6
Version: 2.6.1

Package: rlang
Version: 1.1.5
Depends: R (>= 3.5.0)

Package: xml2
Version: 1.3.8
Imports: cli, methods, rlang (>= 1.1.0)
SystemRequirements: libxml2: libxml2-dev (deb), libxml2-devel (rpm)

Package: ranger
Version: 0.17.0
Imports: Rcpp (>= 0.11.2), Matrix
LinkingTo: Rcpp, RcppEigen

Package: Rcpp
Version: 1.0.14
Imports: methods, utils

Package: RcppEigen
Version: 0.3.4.0.2
Imports: Rcpp (>= 0.11.0), stats, utils
LinkingTo: Rcpp

Package: Matrix
Version: 1.7-3
Depends: R (>= 4.4), methods
Imports: grDevices, graphics, grid, lattice, stats, utils

Package: lattice
Version: 0.22-7
Depends: R (>= 4.0.0)

Package: sf
Version: 1.0-19
Imports: DBI
SystemRequirements: GDAL (>= 2.0.1), GEOS (>= 3.4.0), PROJ (>= 4.8.0), sqlite3

Package: DBI
Version: 1.2.3

Package: RPostgreSQL
Version: 0.7-7
Depends: R (>= 3.4.0), methods, DBI (>= 0.3)

Package: odd
Version: 1.0
SystemRequirements: a flux capacitor
"""
INDEX = parse_index("file:///repo/src/contrib/PACKAGES", PACKAGES, {"rlang": ("1.0.6",)})


def closure(packages: list[str], r_version: str = "4.5.0"):  # type: ignore[no-untyped-def]
    return resolve(INDEX, parse_packages(packages), r_version)


def refusal(packages: list[str], r_version: str = "4.5.0") -> str:
    with pytest.raises(RequestInvalidError) as caught:
        closure(packages, r_version)
    assert caught.value.field == "packages"
    return caught.value.message


def test_dcf_continuation_lines_belong_to_their_field() -> None:
    dplyr = parse_paragraphs(PACKAGES)[0]
    assert dplyr["Imports"].endswith("utils")
    assert "magrittr (>= 1.5)" in dplyr["Imports"]


def test_the_runtime_closure_follows_depends_and_imports_and_says_who_pulled_what() -> None:
    found = closure(["dplyr"])
    names = [e.name for e in found.runtime]
    assert names == ["cli", "dplyr", "generics", "glue", "lifecycle", "magrittr", "R6", "rlang"]
    pulled = {e.name: e.pulled_in_by for e in found.runtime}
    assert pulled["dplyr"] == (REQUESTED,)
    assert set(pulled["rlang"]) == {"dplyr", "lifecycle"}
    assert found.build_only == ()
    assert found.libraries == ()


def test_linking_to_packages_are_for_the_build_only() -> None:
    found = closure(["ranger"])
    assert [e.name for e in found.runtime] == ["lattice", "Matrix", "ranger", "Rcpp"]
    assert [e.name for e in found.build_only] == ["RcppEigen"]


def test_a_dependency_that_needs_a_newer_r_is_refused_naming_both() -> None:
    message = refusal(["ranger"], "4.2.2")
    assert "Matrix 1.7-3 needs R (>= 4.4)" in message
    assert "R 4.2.2" in message


def test_system_libraries_map_to_dnf_and_apt_packages() -> None:
    found = closure(["xml2"])
    assert [lib.library for lib in found.libraries] == ["libxml2"]
    assert found.os_packages("dnf") == ("libxml2-devel",)
    assert found.os_packages("apt") == ("libxml2-dev",)


def test_a_package_known_to_need_a_library_without_saying_so_gets_it() -> None:
    # RPostgreSQL's DESCRIPTION states no SystemRequirements; the table names it.
    assert closure(["RPostgreSQL"]).os_packages("dnf") == ("libpq-devel",)


def test_libraries_amazon_linux_2023_lacks_are_refused_naming_package_and_library() -> None:
    message = refusal(["sf"])
    for lib in ("GDAL", "GEOS", "PROJ"):
        assert f"sf needs {lib}, which Amazon Linux 2023" in message


def test_unrecognised_system_requirements_are_logged_and_the_build_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert closure(["odd"]).libraries == ()
    assert "unrecognised SystemRequirements" in caplog.messages


def test_unknown_packages_are_refused_with_a_suggestion() -> None:
    message = refusal(["dplr", "xml2"])
    assert "'dplr' is not in the repository (did you mean dplyr?)" in message
    assert "xml2" not in message


def test_pins_are_honoured_from_the_archive_or_refused_with_the_versions_there_are() -> None:
    assert {e.name: e.version for e in closure(["rlang==1.0.6"]).runtime} == {"rlang": "1.0.6"}
    message = refusal(["rlang==9.9.9"])
    assert "rlang==9.9.9 is not available; the repository has rlang 1.1.5, 1.0.6" in message


def test_a_pin_that_breaks_a_dependency_constraint_is_refused() -> None:
    message = refusal(["dplyr", "rlang==1.0.6"])
    assert "dplyr needs rlang (>= 1.1.0); the build would get rlang 1.0.6" in message


def test_pins_pass_to_the_build_when_the_archive_cannot_be_listed() -> None:
    cran = parse_index("https://cran.example/src/contrib/PACKAGES", PACKAGES, None)
    found = resolve(cran, parse_packages(["glue==1.6.2"]), "4.5.0")
    assert [(e.name, e.version) for e in found.runtime] == [("glue", "1.6.2")]


def _repo(tmp_path: Path, *, gz: bool = False) -> str:
    contrib = tmp_path / "src" / "contrib"
    (contrib / "Archive" / "rlang").mkdir(parents=True)
    (contrib / "Archive" / "rlang" / "rlang_1.0.6.tar.gz").write_bytes(b"")
    if gz:
        (contrib / "PACKAGES").write_bytes(gzip.compress(PACKAGES.encode()))
    else:
        (contrib / "PACKAGES").write_text(PACKAGES)
    return tmp_path.as_uri()


def test_a_file_repository_is_read_with_its_archive(tmp_path: Path) -> None:
    index = read_index(_repo(tmp_path, gz=True))
    assert index.versions("rlang") == ("1.1.5", "1.0.6")
    assert index.packages["xml2"].system_requirements is not None


def test_an_unreadable_index_is_an_upstream_error(tmp_path: Path) -> None:
    with pytest.raises(PackageIndexError, match="package index"):
        read_index((tmp_path / "absent").as_uri())


def test_closure_for_reads_the_repository_of_the_r_version(tmp_path: Path) -> None:
    forget_indexes()
    (tmp_path / "repo-4.5.0").mkdir()
    repo = _repo(tmp_path / "repo-4.5.0")
    template = repo.replace("4.5.0", "{version}")
    found = closure_for(BuildSpec(r_version="4.5.0", packages=["xml2"]), template)
    assert found is not None and found.os_packages("apt") == ("libxml2-dev",)
    with pytest.raises(RequestInvalidError):
        closure_for(BuildSpec(r_version="4.5.0", packages=["nopkg"]), template)


def test_without_an_index_the_checks_are_left_to_the_build(tmp_path: Path) -> None:
    forget_indexes()
    spec = BuildSpec(r_version="4.5.0", packages=["nopkg"])
    assert closure_for(spec, (tmp_path / "none").as_uri()) is None
    assert closure_for(BuildSpec(r_version="4.5.0", packages=[]), "file:///x") is None
