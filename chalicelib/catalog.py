"""The catalog of proven layers: builds that passed their canary, newest first."""

from __future__ import annotations

from chalicelib.aws.store import Store
from chalicelib.models import Architecture, BuildRecord, BuildStatus


def proven_builds(
    store: Store, *, r_version: str | None = None, architecture: Architecture | None = None
) -> list[BuildRecord]:
    return [
        record
        for record in store.iter_builds(BuildStatus.SUCCEEDED)
        if (not r_version or record.spec.r_version == r_version)
        and (not architecture or record.spec.architecture is architecture)
    ]
