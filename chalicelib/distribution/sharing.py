"""Sharing layer versions with other accounts, an organization, or everyone.

Grants are resource policies on each version in each region (AddLayerVersionPermission),
one statement per principal, added once (an earlier attempt's statements are read back).

The runtime layer is one version per (R, architecture, recipe) that every spec of those
reuses, so its grants are the union of what every build using it asked for: sharing it
for one request shares it for all of them, and the records of each show that union as
their runtime's ``shared_with`` (read back from the version's policy). Deletion follows
the opposite rule (``chalicelib.distribution.retention``): a version goes only when no
current build refers to it.
"""

from __future__ import annotations

from chalicelib.aws import lambdas
from chalicelib.distribution.principals import (
    ORGANIZATION_RE,
    PUBLIC,
    permission,
    statement_id,
)
from chalicelib.models import LayerRef
from chalicelib.observability import logger


def principals_of(policy: dict[str, object] | None) -> list[str]:
    """Who a version's policy lets in, in the terms a request uses."""
    found: list[str] = []
    statements = policy.get("Statement", []) if policy else []
    for statement in statements if isinstance(statements, list) else []:
        sid = str(statement.get("Sid", ""))
        if sid.startswith("rlayer-"):
            found.append(sid.removeprefix("rlayer-"))
    return found


def share_version(arn: str, principals: list[str]) -> list[str]:
    """Grant ``principals`` on one version; return everyone it is shared with now."""
    have = principals_of(lambdas.layer_policy(arn))
    for principal in principals:
        if principal in have:
            continue
        lambdas.add_layer_permission(arn, statement_id(principal), permission(principal))
        have.append(principal)
        logger.info("layer shared", extra={"arn": arn, "principal": principal})
    return have


def share_layer(layer: LayerRef, principals: list[str]) -> LayerRef:
    """Grant on the layer's version in each of its regions; the layer as now shared."""
    # A record from before regions were recorded: its one version.
    arns = [v.arn for v in layer.regions.values() if not v.retired] or [layer.arn]
    shared: list[str] = []
    for arn in arns:
        for principal in share_version(arn, principals):
            if principal not in shared:
                shared.append(principal)
    return layer.model_copy(update={"shared_with": sorted(shared, key=_order)})


def _order(principal: str) -> tuple[int, str]:
    # Public first, then organizations, then accounts: the widest grant reads first.
    rank = 0 if principal == PUBLIC else 1 if ORGANIZATION_RE.match(principal) else 2
    return rank, principal
