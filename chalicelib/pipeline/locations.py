"""Reading a build's artifacts wherever the backend left them: S3 or a local directory.

``s3://bucket/prefix/`` (CodeBuild) or a directory path / ``file://`` URI (local backend).
Files are ``<kind>.zip`` and ``<kind>.manifest.json`` for kind runtime and packages.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from chalicelib.aws import s3
from chalicelib.errors import ArtifactInvalidError
from chalicelib.pipeline.layer_view import Kind

KINDS: tuple[Kind, ...] = ("runtime", "packages")


def zip_name(kind: Kind) -> str:
    return f"{kind}.zip"


def manifest_name(kind: Kind) -> str:
    return f"{kind}.manifest.json"


@dataclass(frozen=True)
class Location:
    """Either an S3 prefix (bucket + key prefix) or a local directory."""

    bucket: str | None = None
    prefix: str = ""
    directory: Path | None = None

    @classmethod
    def parse(cls, location: str) -> Location:
        if location.startswith("s3://"):
            bucket, key = s3.split_uri(location)
            return cls(bucket=bucket, prefix=key if not key or key.endswith("/") else key + "/")
        if location.startswith("file://"):
            return cls(directory=Path(unquote(urlsplit(location).path)))
        if "://" in location:
            raise ArtifactInvalidError(f"artifact location {location!r} is neither S3 nor local")
        return cls(directory=Path(location))

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.is_s3 else str(self.directory)

    def read(self, name: str) -> bytes | None:
        if self.bucket is not None:
            return s3.get_bytes(self.bucket, self.prefix + name)
        assert self.directory is not None
        path = self.directory / name
        return path.read_bytes() if path.is_file() else None

    def fetch(self, name: str, dest: Path) -> bool:
        """Copy one file to ``dest``; False when it is not there."""
        if self.bucket is not None:
            return s3.download(self.bucket, self.prefix + name, dest)
        assert self.directory is not None
        path = self.directory / name
        if not path.is_file():
            return False
        shutil.copyfile(path, dest)
        return True

    def exists(self, name: str) -> bool:
        if self.bucket is not None:
            return s3.exists(self.bucket, self.prefix + name)
        assert self.directory is not None
        return (self.directory / name).is_file()


def present_kinds(location: Location) -> list[Kind]:
    """The layers the build produced: a kind counts when its zip or manifest exists.

    A build without packages may leave no packages layer at all; half a layer (a zip
    without its manifest or the reverse) is reported by the validator.
    """
    return [k for k in KINDS if location.exists(zip_name(k)) or location.exists(manifest_name(k))]
