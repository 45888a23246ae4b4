"""Build backends: where the buildspec phases run.

``get_backend(settings)`` picks one by ``settings.build_backend``. CodeBuild and EC2 are built in;
other backends register themselves (:func:`register_backend`): the local one lives with the
developer tools (``rlayer.builders.local``), which this package never imports, so the Lambda
package does not carry it.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.builders.base import BuildBackend
from chalicelib.errors import ConfigurationError
from chalicelib.settings import Settings

BackendFactory = Callable[[Settings], BuildBackend]
_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _FACTORIES[name] = factory


def get_backend(settings: Settings) -> BuildBackend:
    name = settings.build_backend
    if name == "codebuild":
        from chalicelib.builders.codebuild import CodeBuildBackend

        return CodeBuildBackend(settings)
    if name == "ec2":
        from chalicelib.builders.ec2 import Ec2Backend

        return Ec2Backend(settings)
    factory = _FACTORIES.get(name)
    if factory is None:
        hint = " (it comes with the rlayer tools: rlayer serve)" if name == "local" else ""
        raise ConfigurationError(f"unknown build backend {name!r}{hint}")
    return factory(settings)
