"""A request's regions and sharing, resolved against the stage's settings at submission."""

from __future__ import annotations

from chalicelib.aws.store import Store
from chalicelib.distribution.principals import MAX_REGIONS, MAX_SHARE, PUBLIC, check_share
from chalicelib.distribution.sharing import share_layer
from chalicelib.errors import ConfigurationError, RequestInvalidError
from chalicelib.models import BuildRecord, BuildRequest, BuildStatus
from chalicelib.observability import logger
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


def share_proven(
    store: Store, record: BuildRecord, regions: list[str], share: list[str]
) -> BuildRecord:
    """A proven build in every region asked, shared with the principals it lacks (each
    version in each region, as when it was proven); unchanged if it lacks a region."""
    if not set(regions) <= set(record.regions or regions[:1]) or set(share) <= set(record.share):
        return record
    wanted = list(dict.fromkeys([*record.share, *share]))
    if len(wanted) > 2 * MAX_SHARE:
        raise RequestInvalidError(
            f"share: build {record.build_id} is shared with {len(record.share)} principals; "
            f"one build is shared with at most {2 * MAX_SHARE}",
            field="share",
        )
    layers = [share_layer(la, wanted) for la in record.layers]
    logger.info("shared a proven build", extra={"build": record.build_id, "share": wanted})
    return store.update_build(
        record.build_id,
        {"share": wanted, "layers": [la.model_dump(mode="json") for la in layers]},
        expect=BuildStatus.SUCCEEDED,
    )


def covers(record: BuildRecord, regions: list[str], share: list[str]) -> bool:
    """Whether an existing build of the spec already goes everywhere this request asks
    (records from before regions were recorded are in the stack's region only)."""
    have = set(record.regions or regions[:1])
    return set(regions) <= have and set(share) <= set(record.share)
