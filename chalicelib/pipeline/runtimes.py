"""The proven runtime layers: ``RUNTIME#<version>#<arch>`` items, for reuse.

A runtime layer (R itself, the loop, jsonlite) takes minutes to build and is identical
for every package set, so a build whose runtime artifact matches the proven one (same
recipe and the same bytes) reuses that layer version instead of publishing another.
Written by RecordSuccess only, i.e. after a canary passed on the layer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.aws.items import RUNTIME
from chalicelib.aws.store import Store
from chalicelib.errors import ArtifactInvalidError
from chalicelib.models import Architecture, LayerRef, utcnow


class ProvenRuntime(BaseModel):
    model_config = ConfigDict(extra="ignore")

    r_version: str
    architecture: Architecture
    layer_name: str
    arn: str
    version: int
    sha256: str
    recipe_hash: str
    zipped_bytes: int
    unzipped_bytes: int
    build_id: str
    proven_at: str
    # The version in each region it was published in (the stack's own is ``arn``).
    arns: dict[str, str] = Field(default_factory=dict)

    def arn_in(self, region: str, home: str) -> str | None:
        return self.arns.get(region) or (self.arn if region == home else None)


def runtime_key(r_version: str, architecture: Architecture) -> str:
    return RUNTIME.key(r_version, architecture.value)


def get_proven(store: Store, r_version: str, architecture: Architecture) -> ProvenRuntime | None:
    item = store.get_item(runtime_key(r_version, architecture))
    return ProvenRuntime.model_validate(RUNTIME.decode(item)) if item else None


def put_proven(
    store: Store, *, r_version: str, architecture: Architecture, layer: LayerRef, build_id: str
) -> ProvenRuntime:
    if layer.recipe_hash is None:
        raise ArtifactInvalidError("a runtime layer needs its recipe hash to be reused")
    proven = ProvenRuntime(
        r_version=r_version,
        architecture=architecture,
        layer_name=layer.name,
        arn=layer.arn,
        version=layer.version,
        sha256=layer.sha256,
        recipe_hash=layer.recipe_hash,
        zipped_bytes=layer.zipped_bytes,
        unzipped_bytes=layer.unzipped_bytes,
        build_id=build_id,
        proven_at=utcnow(),
        arns={region: v.arn for region, v in layer.regions.items() if not v.retired},
    )
    # Listed (by_time): a catalog of runtimes.
    data = RUNTIME.encode(
        proven.model_dump(mode="json"),
        created_at=proven.proven_at,
        ident=f"{r_version}#{architecture.value}",
    )
    store.put(runtime_key(r_version, architecture), data)
    return proven
