"""Slash command text -> validated models, and the texts rlayer shows (no I/O)."""

from __future__ import annotations

import pytest

from chalicelib.aws.secrets import locate
from chalicelib.errors import RequestInvalidError
from chalicelib.models import (
    Architecture,
    BuildRecord,
    BuildSpec,
    BuildStatus,
    CanaryResult,
    ErrorInfo,
    LayerRef,
    NotifyTarget,
)
from chalicelib.settings import Settings
from chalicelib.slack import commands, messages
from chalicelib.slack.commands import SlashCommand
from chalicelib.slack.config import slack_config


def test_build_words_become_the_http_api_request() -> None:
    parsed = commands.split("build 4.4.1 jsonlite data.table arm64")
    assert parsed.name == "build"
    request = commands.build_request(parsed.args)
    assert request.r_version == "4.4.1"
    assert request.packages == ["jsonlite", "data.table"]
    assert request.architecture is Architecture.ARM64
    assert request.force is False


def test_build_options_quotes_commas_and_pins() -> None:
    request = commands.build_request(
        commands.split(
            "BUILD 4.3.2 jsonlite,data.table, digest==0.6.35 layer=team-r "
            'description="two words" --force arch=x86_64'
        ).args
    )
    assert request.packages == ["jsonlite", "data.table", "digest==0.6.35"]
    assert request.layer_name == "team-r"
    assert request.description == "two words"
    assert request.force is True
    assert request.architecture is Architecture.X86_64


def test_double_dash_options_keep_their_values() -> None:
    request = commands.build_request(["4.4.1", "--layer-name=my-layer", "--description=a-b"])
    assert request.layer_name == "my-layer"
    assert request.description == "a-b"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("build 4.4 jsonlite", "r_version"),
        ("build 4.4.1 'x;rm'", "packages"),
        ("build 4.4.1 '$(curl x)'", "packages"),
        ("build", "r_version"),
        ("build latest", "r_version"),
        ("build 4.4.1 jsonlite jsonlite", "packages"),
        ("build 4.4.1 arm64 x86_64", "architecture"),
        ("build 4.4.1 arch=sparc", "architecture"),
        ("build 4.4.1 --arch", "architecture"),
        ("build 4.4.1 layer='my layer!'", "layer_name"),
        ("build 4.4.1 colour=red", "colour"),
        ("build 4.4.1 --force=yes", "force"),
        ("build 4.4.1 'unclosed", "text"),
        ("status", "build_id"),
        ("status a b", "build_id"),
        ("status ../../etc", "build_id"),
        ("list DONE", "status"),
        ("list 0", "limit"),
        ("list 1000", "limit"),
        ("layers 4.4", "r_version"),
        ("layers 4.4.1 4.4.2", "r_version"),
        ("frobnicate 4.4.1", "subcommand"),
    ],
)
def test_bad_text_names_the_field(text: str, field: str) -> None:
    with pytest.raises(RequestInvalidError) as caught:
        parsed = commands.split(text)
        if parsed.name == "build":
            commands.build_request(parsed.args)
        elif parsed.name == "status":
            commands.build_id(parsed.args)
        elif parsed.name == "list":
            commands.list_query(parsed.args)
        elif parsed.name == "layers":
            commands.layers_query(parsed.args)
    assert caught.value.field == field
    assert field in caught.value.message or field == "subcommand"


def test_empty_text_is_help_and_list_and_layers_parse() -> None:
    assert commands.split("   ").name == "help"
    query = commands.list_query(["failed", "5"])
    assert query.status is BuildStatus.FAILED and query.limit == 5
    layers = commands.layers_query(["ARM64", "4.4.1"])
    assert layers.r_version == "4.4.1" and layers.architecture is Architecture.ARM64


def test_form_accepts_slack_hooks_only() -> None:
    ok = SlashCommand.from_form(
        b"team_id=T1&channel_id=C1&user_id=U1&text=build+4.4.1&command=%2Frlayer"
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx"
    )
    assert ok.text == "build 4.4.1" and ok.command == "/rlayer"
    for url in ("http://hooks.slack.com/x", "https://169.254.169.254/", "https://evil.com/"):
        with pytest.raises(RequestInvalidError) as caught:
            SlashCommand.from_form(f"team_id=T&channel_id=C&user_id=U&response_url={url}".encode())
        assert caught.value.field == "response_url"
    with pytest.raises(RequestInvalidError) as missing:
        SlashCommand.from_form(b"text=help&channel_id=C1&user_id=U1")
    assert missing.value.field == "team_id"


def _record(status: BuildStatus, **extra: object) -> BuildRecord:
    return BuildRecord.model_validate(
        {
            "build_id": "20250101T000000-abcdef01",
            "spec_hash": "0" * 16,
            "spec": BuildSpec(r_version="4.4.1", packages=("jsonlite", "data.table")),
            "status": status,
            "notify": NotifyTarget(channel_id="C1", user_id="U1"),
            **extra,
        }
    )


def _layer(kind: str, arn: str, zipped: int, unzipped: int) -> LayerRef:
    return LayerRef.model_validate(
        {
            "kind": kind,
            "name": f"r-4_4_1-x86_64{'-pkgs' if kind == 'packages' else ''}",
            "arn": arn,
            "version": 3,
            "sha256": "f" * 64,
            "zipped_bytes": zipped,
            "unzipped_bytes": unzipped,
            "reused": kind == "runtime",
        }
    )


def test_success_text_has_arns_to_paste_sizes_and_canary() -> None:
    record = _record(
        BuildStatus.SUCCEEDED,
        layers=[
            _layer("packages", "arn:aws:lambda:us-east-1:1:layer:pkgs:3", 3 * 1048576, 9437184),
            _layer("runtime", "arn:aws:lambda:us-east-1:1:layer:r:3", 14155776, 20971520),
        ],
        canary=CanaryResult(
            r_version="4.4.1",
            packages={"jsonlite": "1.8.9", "data.table": "1.15.4"},
            init_ms=312.4,
            duration_ms=45.0,
        ),
    )
    text = messages.record_text(record, mention="U1")
    assert text.startswith(":white_check_mark: <@U1> build `20250101T000000-abcdef01`")
    assert (
        "```arn:aws:lambda:us-east-1:1:layer:r:3\narn:aws:lambda:us-east-1:1:layer:pkgs:3```"
        in text
    )
    assert "13.5 MB zipped, 20.0 MB unzipped, reused" in text
    assert "3.0 MB zipped, 9.0 MB unzipped" in text
    assert "*Canary:* R 4.4.1 · data.table 1.15.4, jsonlite 1.8.9 · init 312 ms" in text


def test_failure_text_names_the_step_and_reason_escaped() -> None:
    record = _record(
        BuildStatus.FAILED,
        error=ErrorInfo(step="CheckBuild", error_type="BuildFailedError", message="a <!channel>"),
        log_url="https://logs.example/1",
    )
    text = messages.record_text(record)
    assert text.startswith(":x: build")
    assert "*Failed at* `CheckBuild` (BuildFailedError): a &lt;!channel&gt;" in text
    assert "<!channel>" not in text
    assert "https://logs.example/1" in text


def test_problem_reply_puts_the_reason_before_help_and_clips() -> None:
    reply = messages.problem("packages: 'x;rm' is not a CRAN package name", "/r")
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(":warning: packages: 'x;rm'")
    assert "`/r build 4.4.1 jsonlite data.table [arm64]`" in reply["text"]
    long = messages.ephemeral("x" * 10000)["text"]
    assert len(long) <= messages.MAX_TEXT and long.endswith("(truncated)")


def test_config_reads_allow_lists_and_refuses_others() -> None:
    config = slack_config(
        Settings(
            slack_signing_secret="s", slack_allowed_teams=" T1, T2 ,", slack_allowed_channels=""
        )
    )
    assert config.allowed_teams == {"T1", "T2"}
    assert config.allows("T1", "anything") is None
    assert config.allows("T3", "C1") is not None
    only = slack_config(Settings(slack_allowed_channels="C9"))
    assert only.allows("T3", "C9") is None
    assert "channel" in (only.allows("T3", "C1") or "")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("/rlayer/slack", ("ssm", "/rlayer/slack")),
        ("ssm:rlayer-slack", ("ssm", "rlayer-slack")),
        ("arn:aws:ssm:us-east-1:1:parameter/x", ("ssm", "arn:aws:ssm:us-east-1:1:parameter/x")),
        ("secretsmanager:rlayer/slack", ("secretsmanager", "rlayer/slack")),
        (
            "arn:aws-us-gov:secretsmanager:us-gov-west-1:1:secret:s-AbC",
            ("secretsmanager", "arn:aws-us-gov:secretsmanager:us-gov-west-1:1:secret:s-AbC"),
        ),
    ],
)
def test_secret_references_name_their_store(reference: str, expected: tuple[str, str]) -> None:
    assert locate(reference) == expected


def test_a_running_build_lists_its_steps_in_time_order() -> None:
    record = _record(
        BuildStatus.BUILDING,
        steps={"BUILDING": "2025-01-01T00:01:00.000000Z", "QUEUED": "2025-01-01T00:00:00.000000Z"},
        updated_at="2025-01-01T00:01:00.000000Z",
    )
    text = messages.record_text(record)
    assert "is *BUILDING* (since 2025-01-01 00:01:00 UTC; steps: QUEUED → BUILDING)" in text
