"""A request's regions and sharing, resolved against the stage's settings at submission."""

from __future__ import annotations

from chalicelib.distribution.principals import MAX_REGIONS, PUBLIC, check_share
from chalicelib.errors import ConfigurationError, RequestInvalidError
from chalicelib.models import BuildRecord, BuildRequest
from chalicelib.settings import Settings


def stage_share(settings: Settings) -> list[str]:
    listed = [p.strip() for p in settings.share.split(",") if p.strip()]
    try:
        check_share(listed)
    except ValueError as exc:
        raise ConfigurationError(f"SHARE: {exc}") from exc
    if PUBLIC in listed and not settings.allow_public_share:
        raise ConfigurationError("SHARE names public but ALLOW_PUBLIC_SHARE is off")
    return listed


def resolve(request: BuildRequest, settings: Settings) -> tuple[list[str], list[str]]:
    """(regions, share) of a build: the regions asked for (all of the stage's when none
    were), the stack's own first; the principals asked for and the stage's."""
    offered = settings.publish_regions()
    if len(offered) > MAX_REGIONS:
        raise ConfigurationError(f"REGIONS: at most {MAX_REGIONS} regions per stage")
    outside = [r for r in request.regions if r not in offered]
    if outside:
        raise RequestInvalidError(
            f"regions: {', '.join(outside)} is not among this stage's regions "
            f"({', '.join(offered)})",
            field="regions",
        )
    asked = request.regions or list(offered)
    # The canary proves the layers in the stack's region: they are always published there.
    regions = [offered[0], *(r for r in asked if r != offered[0])]
    if PUBLIC in request.share and not settings.allow_public_share:
        raise RequestInvalidError("share: this stage does not share layers publicly", field="share")
    share = list(dict.fromkeys([*stage_share(settings), *request.share]))
    return regions, share


def covers(record: BuildRecord, regions: list[str], share: list[str]) -> bool:
    """Whether an existing build of the spec already goes everywhere this request asks
    (records from before regions were recorded are in the stack's region only)."""
    have = set(record.regions or regions[:1])
    return set(regions) <= have and set(share) <= set(record.share)
