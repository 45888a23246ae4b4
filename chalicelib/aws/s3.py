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
