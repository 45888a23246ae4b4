"""Every text rlayer shows in Slack. Values from users or builds are escaped first."""

from __future__ import annotations

from typing import Any

from chalicelib.models import BuildRecord, BuildStatus, LayerRef
from chalicelib.subscriptions import Subscription

# Slack renders a text over ~40k characters truncated; stay well below it.
MAX_TEXT = 3900
MIB = 1024 * 1024  # Lambda's "250 MB" layer limit is 250 MiB; sizes use the same unit


def escape(text: str) -> str:
    """Slack's mrkdwn escaping (slack_sdk has no helper for it): &, < and > only.

    Without it a package name or error message like ``<!channel>`` would ping everyone.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": _clip(text)}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 20] + "\n… (truncated)"


def help_text(command: str = "/rlayer") -> str:
    c = escape(command)
    return "\n".join(
        [
            "*rlayer* builds R runtime layers for AWS Lambda.",
            f"`{c} build 4.4.1 jsonlite data.table [arm64]` request a build "
            '(options: `layer=NAME`, `description="..."`, `--force`, pins like `jsonlite==1.8.9`)',
            f"`{c} status BUILD_ID` where a build is",
            f"`{c} list [STATUS] [N]` the latest builds",
            f"`{c} layers [4.4.1] [arm64]` proven layers, ready to use",
            f"`{c} subscribe jsonlite data.table [x86_64] [arm64]` rebuild on every new R "
            "release, results in this channel",
            f"`{c} subscriptions` and `{c} unsubscribe SUBSCRIPTION_ID`",
            f"`{c} help` this text",
        ]
    )


def problem(reason: str, command: str = "/rlayer") -> dict[str, Any]:
    """A refused command: the reason first, then how to use rlayer."""
    return ephemeral(f":warning: {escape(reason)}\n\n{help_text(command)}")


def spec_text(record: BuildRecord) -> str:
    spec = record.spec
    text = f"R {spec.r_version} ({spec.architecture.value})"
    if spec.packages:
        text += " with " + ", ".join(escape(str(p)) for p in spec.packages)
    return text


def summary_line(record: BuildRecord) -> str:
    return (
        f"`{escape(record.build_id)}` {_status_emoji(record.status)} "
        f"{record.status.value} · {spec_text(record)} · {record.created_at[:16].replace('T', ' ')}"
    )


def _status_emoji(status: BuildStatus) -> str:
    if status is BuildStatus.SUCCEEDED:
        return ":white_check_mark:"
    if status is BuildStatus.FAILED:
        return ":x:"
    return ":hourglass_flowing_sand:"


def live_layers(record: BuildRecord) -> list[LayerRef]:
    """Layers that still exist (a failed build's published layers are retired)."""
    return [layer for layer in record.layers if not layer.retired]


def _size(layer: LayerRef) -> str:
    reused = ", reused" if layer.reused else ""
    return (
        f"{layer.kind} `{escape(layer.name)}` v{layer.version}: "
        f"{layer.zipped_bytes / MIB:.1f} MB zipped, "
        f"{layer.unzipped_bytes / MIB:.1f} MB unzipped{reused}"
    )


def record_text(record: BuildRecord, *, mention: str | None = None) -> str:
    """A build in full: ARNs to paste when it succeeded, the failing step when it failed."""
    who = f"<@{escape(mention)}> " if mention else ""
    head = f"build `{escape(record.build_id)}` of {spec_text(record)}"
    if record.status is BuildStatus.SUCCEEDED:
        lines = [f":white_check_mark: {who}{head} succeeded."]
        runtime_first = sorted(live_layers(record), key=lambda layer: layer.kind != "runtime")
        if runtime_first:
            arns = "\n".join(escape(layer.arn) for layer in runtime_first)
            lines += ["*Layer ARNs* (runtime first):", f"```{arns}```"]
            lines += ["*Sizes:* " + " · ".join(_size(layer) for layer in runtime_first)]
        if record.canary:
            canary = record.canary
            versions = ", ".join(
                f"{escape(name)} {escape(version)}"
                for name, version in sorted(canary.packages.items())
            )
            text = f"*Canary:* R {escape(canary.r_version)}"
            if versions:
                text += f" · {versions}"
            if canary.init_ms is not None:
                text += f" · init {canary.init_ms:.0f} ms"
            if canary.duration_ms is not None:
                text += f" · run {canary.duration_ms:.0f} ms"
            lines.append(text)
        return _clip("\n".join(lines))
    if record.status is BuildStatus.FAILED:
        lines = [f":x: {who}{head} failed."]
        if record.error:
            err = record.error
            lines.append(
                f"*Failed at* `{escape(err.step)}` ({escape(err.error_type)}): "
                f"{escape(err.message)}"
            )
        if record.log_url:
            lines.append(f"*Log:* {escape(record.log_url)}")
        return _clip("\n".join(lines))
    # DynamoDB does not keep a map's order; the timestamps do.
    steps = " → ".join(escape(step) for step in sorted(record.steps, key=record.steps.__getitem__))
    return _clip(
        f":hourglass_flowing_sand: {who}{head} is *{record.status.value}* "
        f"(since {record.updated_at[:19].replace('T', ' ')} UTC; steps: {steps})."
    )


def queued(record: BuildRecord, command: str) -> dict[str, Any]:
    return ephemeral(
        f":rocket: Queued {spec_text(record)} as build `{escape(record.build_id)}`. "
        f"The result will be posted in this channel; `{escape(command)} status "
        f"{escape(record.build_id)}` shows where it is."
    )


def duplicate(record: BuildRecord, command: str) -> dict[str, Any]:
    if record.status is BuildStatus.SUCCEEDED:
        return ephemeral("This exact spec was already built:\n" + record_text(record))
    return ephemeral(
        f":recycle: This exact spec is already being built: build "
        f"`{escape(record.build_id)}` is {record.status.value}. "
        f"`{escape(command)} status {escape(record.build_id)}` shows where it is; "
        "you will be told here when it ends."
    )


def build_list(records: list[BuildRecord]) -> dict[str, Any]:
    if not records:
        return ephemeral("No builds yet.")
    return ephemeral("*Latest builds*\n" + "\n".join(summary_line(r) for r in records))


def layer_list(records: list[BuildRecord], *, shown: int) -> dict[str, Any]:
    if not records:
        return ephemeral("No proven layers match.")
    lines = ["*Proven layers* (newest first)"]
    for record in records[:shown]:
        arns = "\n".join(escape(layer.arn) for layer in live_layers(record)) or "(no layers)"
        lines += [summary_line(record), f"```{arns}```"]
    if len(records) > shown:
        lines.append(f"… and {len(records) - shown} more; narrow by version or architecture.")
    return ephemeral("\n".join(lines))


def _subscription_line(subscription: Subscription) -> str:
    packages = ", ".join(escape(p) for p in subscription.packages) or "no packages"
    arches = ", ".join(a.value for a in subscription.architectures)
    return f"`{escape(subscription.subscription_id)}` {packages} ({arches})"


def subscribed(subscription: Subscription, command: str) -> dict[str, Any]:
    return ephemeral(
        f":bell: subscribed: {_subscription_line(subscription)}. Every new R release builds "
        f"it and reports here. `{escape(command)} unsubscribe "
        f"{escape(subscription.subscription_id)}` stops it."
    )


def subscription_list(subscriptions: list[Subscription]) -> dict[str, Any]:
    if not subscriptions:
        return ephemeral("No subscriptions yet.")
    return ephemeral("\n".join(_subscription_line(s) for s in subscriptions))
