"""CodeBuild's buildspec format, the part the local backend executes (PyYAML-parsed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.errors import ConfigurationError
from rlayer.builders.sources import REPO_ROOT

BUILDSPEC = REPO_ROOT / "buildspec" / "buildspec.yml"
PHASE_ORDER = ("install", "pre_build", "build", "post_build")


class BuildspecPhase(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    commands: list[str] = Field(default_factory=list)
    on_failure: str = Field(default="ABORT", alias="on-failure")


class Buildspec(BaseModel):
    """The part of CodeBuild's buildspec format the local backend executes."""

    model_config = ConfigDict(extra="allow")

    version: float
    env: dict[str, Any] = Field(default_factory=dict)
    phases: dict[str, BuildspecPhase]

    @classmethod
    def load(cls, path: Path = BUILDSPEC) -> Buildspec:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        return cls.model_validate(data)

    def default_variables(self) -> dict[str, str]:
        variables = self.env.get("variables") or {}
        return {str(k): str(v) for k, v in variables.items()}

    def ordered_phases(self) -> list[tuple[str, list[str]]]:
        unknown = set(self.phases) - set(PHASE_ORDER)
        if unknown:
            raise ConfigurationError(f"buildspec has unknown phases: {sorted(unknown)}")
        return [(p, self.phases[p].commands) for p in PHASE_ORDER if p in self.phases]
