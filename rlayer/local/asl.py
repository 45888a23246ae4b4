"""state_machine.asl.json and its ``${Placeholders}``: one way to fill them everywhere.

The file stays valid JSON with its placeholders (numbers go through
``States.StringToJson('${MaxPolls}')``), so it can be read and linted as it is. Deployment
passes :func:`substitutions` as ``DefinitionSubstitutions``; the local stack and the tests
call :func:`render`. Placeholder names are a contract with the deployment: keep them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.errors import ConfigurationError
from chalicelib.pipeline import PLACEHOLDER_RE, TASK_FUNCTIONS

ASL_PATH = Path(__file__).resolve().parents[2] / "state_machine.asl.json"
# Defaults for AWS: a 30 s poll, and 3 hours before a build still running is stopped.
DEFAULT_POLL_INTERVAL_S = 30
DEFAULT_MAX_POLLS = 360
OTHER_PLACEHOLDERS = ("TableName", "PollIntervalSeconds", "MaxPolls")


def template(path: Path = ASL_PATH) -> str:
    return path.read_text()


def placeholders(text: str | None = None) -> set[str]:
    return set(PLACEHOLDER_RE.findall(template() if text is None else text))


def substitutions(
    function_arns: Mapping[str, str],
    *,
    table_name: str,
    poll_interval_s: int = DEFAULT_POLL_INTERVAL_S,
    max_polls: int = DEFAULT_MAX_POLLS,
) -> dict[str, str]:
    """Every placeholder's value. ``function_arns`` maps the Chalice function names of
    :data:`chalicelib.pipeline.TASK_FUNCTIONS` (``start_build``, ...) to ARNs."""
    missing = sorted(set(TASK_FUNCTIONS.values()) - set(function_arns))
    if missing:
        raise ConfigurationError(f"no ARN for the task functions {missing}")
    if poll_interval_s < 0 or max_polls < 1:
        raise ConfigurationError("the poll interval must be >= 0 and max polls >= 1")
    subs = {placeholder: function_arns[name] for placeholder, name in TASK_FUNCTIONS.items()}
    subs.update(
        TableName=table_name,
        PollIntervalSeconds=str(int(poll_interval_s)),
        MaxPolls=str(int(max_polls)),
    )
    return subs


def render(subs: Mapping[str, str], text: str | None = None) -> str:
    """The definition with every placeholder filled; an unknown or unused name is an error."""
    text = template() if text is None else text
    found = placeholders(text)
    missing, unused = sorted(found - set(subs)), sorted(set(subs) - found)
    if missing or unused:
        raise ConfigurationError(
            f"ASL placeholders without a value: {missing}; values without a placeholder: {unused}"
        )
    for key, value in subs.items():
        if not isinstance(value, str) or not value or '"' in value or "\\" in value:
            raise ConfigurationError(f"placeholder {key} needs a plain, non-empty string")
    rendered = PLACEHOLDER_RE.sub(lambda m: subs[m.group(1)], text)
    json.loads(rendered)  # still JSON (raises ValueError otherwise)
    return rendered


def definition(subs: Mapping[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render(subs))
    return loaded
