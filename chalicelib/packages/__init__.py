"""Packages a request asks for: the repository's index, their closure, their system libraries.

``closure_for`` is what the API (before a record exists) and the backends (to name the
system packages a build installs) call.
"""

from __future__ import annotations

from chalicelib.errors import PackageIndexError
from chalicelib.models import BuildSpec
from chalicelib.observability import logger
from chalicelib.packages.closure import Closure, resolve
from chalicelib.packages.index import cached_index


def repo_for(cran_repo: str, r_version: str) -> str:
    """The repository a build of this R uses (the local stack's setting is a template)."""
    return cran_repo.replace("{version}", r_version)


def closure_for(spec: BuildSpec, cran_repo: str) -> Closure | None:
    """The spec's package closure, RequestInvalidError when it cannot build, or None when
    there is nothing to check (no packages) or the index cannot be read now: the build's
    install step then judges, naming the package."""
    if not spec.packages:
        return None
    repo = repo_for(cran_repo, spec.r_version)
    try:
        index = cached_index(repo)
    except PackageIndexError as exc:
        logger.warning(
            "package index unavailable; checks left to the build", extra={"reason": str(exc)}
        )
        return None
    return resolve(index, spec.packages, spec.r_version)
