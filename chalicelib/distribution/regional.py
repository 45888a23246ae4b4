"""One layer version in one region: staged, published, checked, or adopted.

Lambda reads a layer's zip from S3 in its own region only (or up to 50 MB inline), so each
region of a build has a staging bucket (``Settings.staging_bucket``); the artifact is copied
there and published from it, so zips of any size Lambda takes work in every region.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from chalicelib.aws import lambdas, s3
from chalicelib.distribution.principals import RegionalVersion
from chalicelib.errors import PublishError
from chalicelib.observability import logger
from chalicelib.settings import Settings


@dataclass(frozen=True)
class Publication:
    """What to publish: the same for every region."""

    name: str
    description: str
    architecture: str
    license_info: str
    marker: str
    # The validated artifact in the stack's region, and its sha256 (hex, from the manifest).
    bucket: str
    key: str
    sha256: str


def sha_b64(hex_digest: str) -> str:
    """Lambda's CodeSha256: base64 of the digest (not of its hex)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _adopt(pub: Publication, region: str) -> tuple[str, str] | None:
    """A version this build published in an attempt that died before recording it."""
    earlier = [
        v
        for v in lambdas.list_layer_versions(pub.name, region)
        if pub.marker in v.get("Description", "")
    ]
    if not earlier:
        return None
    newest = max(earlier, key=lambda v: int(v["Version"]))
    arn = str(newest["LayerVersionArn"])
    found: dict[str, Any] = lambdas.get_layer_version(arn) or {}
    logger.info("adopting a version published by an earlier attempt", extra={"arn": arn})
    return arn, str(found.get("Content", {}).get("CodeSha256", ""))


def _stage(pub: Publication, region: str, settings: Settings) -> tuple[str, str]:
    if region == settings.aws_region:
        return pub.bucket, pub.key
    bucket = settings.staging_bucket(region)
    s3.copy_to_region(pub.bucket, pub.key, bucket, pub.key, region)
    return bucket, pub.key


def publish_in(pub: Publication, region: str, settings: Settings) -> RegionalVersion:
    """Publish (or adopt) the version in ``region``; PublishError, with the version deleted
    again, when Lambda measured other bytes than those validated."""
    adopted = _adopt(pub, region)
    if adopted is not None:
        arn, code_sha = adopted
    else:
        bucket, key = _stage(pub, region, settings)
        published = lambdas.publish_layer_version(
            name=pub.name,
            bucket=bucket,
            key=key,
            description=pub.description,
            architecture=pub.architecture,
            license_info=pub.license_info,
            region=region,
        )
        arn, code_sha = published.arn, published.code_sha256_b64
    expected = sha_b64(pub.sha256)
    if code_sha != expected:
        # Not the bytes that were validated (the object changed on the way): withdraw it.
        lambdas.delete_layer_version(pub.name, int(arn.rpartition(":")[2]), region)
        raise PublishError(
            f"{arn}: Lambda measured sha256 {code_sha}, the validated artifact is "
            f"{expected}; the version was deleted"
        )
    logger.info("layer published", extra={"arn": arn, "region": region})
    return RegionalVersion(arn=arn)


def reusable(arn: str | None, sha256: str) -> bool:
    """Whether a proven version still exists with the artifact's bytes."""
    if not arn:
        return False
    found = lambdas.get_layer_version(arn)
    if found is None:
        logger.warning("proven runtime layer was deleted; publishing", extra={"arn": arn})
        return False
    return str(found.get("Content", {}).get("CodeSha256", "")) == sha_b64(sha256)
