"""Build backends: where the buildspec phases run (CodeBuild in AWS, local processes).

``get_backend(settings)`` picks one by ``settings.build_backend``; both implement
:class:`chalicelib.builders.base.BuildBackend`.
"""

from __future__ import annotations

from chalicelib.builders.base import BuildBackend
from chalicelib.errors import ConfigurationError
from chalicelib.settings import Settings


def get_backend(settings: Settings) -> BuildBackend:
    if settings.build_backend == "codebuild":
        from chalicelib.builders.codebuild import CodeBuildBackend

        return CodeBuildBackend(settings)
    if settings.build_backend == "local":
        # Imported lazily: the Lambda package never runs local builds.
        from chalicelib.builders.local import LocalBuildBackend

        return LocalBuildBackend(settings)
    raise ConfigurationError(f"unknown build backend {settings.build_backend!r}")
