"""S3 objects the pipeline reads and writes: artifacts and their manifests."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from chalicelib.aws.faults import error_code
from chalicelib.aws.session import client
from chalicelib.errors import RequestInvalidError

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/prefix`` -> (bucket, key); the key may be empty."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise RequestInvalidError(f"{uri!r} is not an s3://bucket/key URI", field="uri")
    return parts.netloc, parts.path.lstrip("/")


def uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def exists(bucket: str, key: str) -> bool:
    try:
        client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return False
        raise
    return True


def get_bytes(bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when there is no such key."""
    try:
        resp = client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return None
        raise
    data: bytes = resp["Body"].read()
    return data


def download(bucket: str, key: str, dest: Path) -> bool:
    """Stream the object to ``dest``; False when there is no such key."""
    try:
        client("s3").download_file(bucket, key, str(dest))
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return False
        raise
    return True


def upload(path: Path, bucket: str, key: str) -> None:
    client("s3").upload_file(str(path), bucket, key)


def put_bytes(bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
    extra = {"ContentType": content_type} if content_type else {}
    client("s3").put_object(Bucket=bucket, Key=key, Body=data, **extra)


def copy_to_region(bucket: str, key: str, dest_bucket: str, dest_key: str, region: str) -> None:
    """Copy an object into a bucket of another region (managed copy: multipart past 8 MB,
    so zips of any size Lambda takes go through)."""
    client("s3", region).copy({"Bucket": bucket, "Key": key}, dest_bucket, dest_key)


def presigned_get(bucket: str, key: str, expires_s: int) -> str:
    """A URL that reads this object without credentials until it expires."""
    url: str = client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
    )
    return url


def presigned_post(
    bucket: str, prefix: str, expires_s: int, max_bytes: int
) -> tuple[str, dict[str, str]]:
    """A form upload (URL, fields) allowed for any key under ``prefix``, each of at most
    ``max_bytes``: one grant for every file a build uploads. The form's ``key`` field is
    the caller's (one of the prefix's keys), its ``file`` field the content, given last."""
    resp = client("s3").generate_presigned_post(
        bucket,
        prefix + "${filename}",
        Conditions=[["starts-with", "$key", prefix], ["content-length-range", 0, max_bytes]],
        ExpiresIn=expires_s,
    )
    fields = {k: str(v) for k, v in resp["fields"].items() if k != "key"}
    return str(resp["url"]), fields
