"""The BuildBackend interface and the environment contract with buildspec/ scripts.

Every value from a request reaches the build scripts as an environment variable built here
from a validated :class:`BuildSpec`, never pasted into a command line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from chalicelib.errors import BuildStartError, RequestInvalidError
from chalicelib.models import BuildSpec
from chalicelib.packages import closure_for
from chalicelib.packages.system_libraries import PackageManager

# What a build sees of this repository: the local backend snapshots it, deploy/package.py
# zips it for CodeBuild (the scripts read the Lambda OS table from chalicelib/).
BUILD_SOURCE_DIRS = ("buildspec", "runtime")
BUILD_SOURCE_FILES = ("chalicelib/lambda_os.json", "chalicelib/system_libraries.json")


class BuildState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"


class BuildProgress(BaseModel):
    state: BuildState
    # Where the artifacts are: s3://bucket/prefix/ in AWS, a directory locally.
    artifact_location: str | None = None
    log_url: str | None = None
    reason: str | None = None
    log_tail: list[str] = []
    current_phase: str | None = None


class BuildBackend(Protocol):
    name: str

    def start_build(self, build_id: str, spec: BuildSpec) -> str:
        """Start the build; return the backend's reference for it."""
        ...

    def check_build(self, build_ref: str) -> BuildProgress: ...

    def stop_build(self, build_ref: str) -> None: ...


def artifact_prefix(build_id: str) -> str:
    """Key prefix (in the bucket or the local artifact directory) of a build's artifacts."""
    return f"artifacts/{build_id}/"


def build_environment(
    build_id: str,
    spec: BuildSpec,
    *,
    artifact_uri: str,
    r_source: str = "",
    cran_repo: str = "",
    system_packages: tuple[str, ...] = (),
) -> dict[str, str]:
    """The variables buildspec/ scripts read. Names are the contract; keep them in step
    with buildspec/buildspec.yml and buildspec/*.sh."""
    # Re-validate: the spec may have come from a state machine event.
    spec = BuildSpec.model_validate(spec.model_dump())
    env = {
        "RLAYER_BUILD_ID": build_id,
        "RLAYER_R_VERSION": spec.r_version,
        "RLAYER_ARCH": spec.architecture.value,
        # Space-separated; each item already matched the CRAN name (and version) pattern.
        "RLAYER_PACKAGES": " ".join(str(p) for p in spec.packages),
        "RLAYER_SPEC_HASH": spec.spec_hash,
        "RLAYER_RUNTIME_LAYER_NAME": spec.runtime_layer_name,
        "RLAYER_PACKAGES_LAYER_NAME": spec.packages_layer_name,
        "RLAYER_ARTIFACT_URI": artifact_uri,
    }
    if r_source:
        env["R_SOURCE"] = r_source
    if cran_repo:
        env["RLAYER_CRAN_REPO"] = cran_repo
    if system_packages:
        env["RLAYER_SYSTEM_PACKAGES"] = " ".join(system_packages)
    return env


def system_packages(spec: BuildSpec, cran_repo: str, manager: PackageManager) -> tuple[str, ...]:
    """The OS packages (dnf or apt names) the spec's package closure builds against, from
    the repository's index and system_libraries.json; none when the index cannot be read
    (a library then missing fails the install, naming it)."""
    try:
        closure = closure_for(spec, cran_repo)
    except RequestInvalidError as exc:
        # Checked at the request already: the repository changed since.
        raise BuildStartError(exc.message) from exc
    return closure.os_packages(manager) if closure is not None else ()
