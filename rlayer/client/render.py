"""How the CLI shows builds and layers: summaries, tables, the live progress panel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from chalicelib.models import BuildRecord, BuildStatus, LayerRef

# The steps a build walks through, in order (FAILED can end any of them).
STEPS: tuple[BuildStatus, ...] = (
    BuildStatus.QUEUED,
    BuildStatus.BUILDING,
    BuildStatus.VALIDATING,
    BuildStatus.PUBLISHING,
    BuildStatus.TESTING,
)
STYLE = {BuildStatus.SUCCEEDED: "bold green", BuildStatus.FAILED: "bold red"}


def parse_time(stamp: str) -> datetime:
    # ISO 8601 as the app writes it (…Z) and as Step Functions does ($$.State.EnteredTime).
    parsed = datetime.fromisoformat(stamp)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def spec_line(record: BuildRecord) -> str:
    spec = record.spec
    packages = " ".join(str(p) for p in spec.packages) or "(no packages)"
    return f"R {spec.r_version} {spec.architecture.value} · {packages}"


def elapsed(record: BuildRecord, now: datetime | None = None) -> float:
    """Seconds from request to the final step (or to now while it runs)."""
    start = parse_time(record.created_at)
    if record.status.is_final:
        end = parse_time(record.steps.get(record.status.value, record.updated_at))
    else:
        end = now or datetime.now(UTC)
    return (end - start).total_seconds()


def _step_durations(record: BuildRecord, now: datetime) -> dict[BuildStatus, float]:
    """How long each reached step lasted (the running one: until now)."""
    reached = sorted(
        ((BuildStatus(k), parse_time(v)) for k, v in record.steps.items()), key=lambda kv: kv[1]
    )
    out: dict[BuildStatus, float] = {}
    for i, (status, started) in enumerate(reached):
        ended = reached[i + 1][1] if i + 1 < len(reached) else now
        out[status] = (ended - started).total_seconds()
    return out


def progress_view(
    record: BuildRecord, log_lines: list[str], now: datetime | None = None
) -> RenderableType:
    """The live panel: every step with its time, the running one spinning, the log tail."""
    now = now or datetime.now(UTC)
    durations = _step_durations(record, now)
    steps = Table.grid(padding=(0, 2))
    steps.add_column(width=2)
    steps.add_column(min_width=11)
    steps.add_column(justify="right")
    # The step a failed build was in when it failed: the last one it reached.
    reached = [step for step in STEPS if step in durations]
    failed_in = reached[-1] if record.status is BuildStatus.FAILED and reached else None
    for step in STEPS:
        if step is record.status:
            mark: RenderableType = Spinner("dots", style="cyan")
            steps.add_row(mark, Text(step.value, style="bold"), duration(durations.get(step, 0)))
        elif step is failed_in:
            steps.add_row(Text("✗", style="red"), step.value, duration(durations[step]))
        elif step in durations:
            steps.add_row(Text("✓", style="green"), step.value, duration(durations[step]))
        else:
            steps.add_row("", Text(step.value, style="dim"), "")
    if record.status.is_final:
        steps.add_row("", Text(record.status.value, style=STYLE[record.status]), "")
    header = Text.assemble(
        (f"build {record.build_id}", "bold"),
        "  ",
        spec_line(record),
        "  ",
        (f"elapsed {duration(elapsed(record, now))}", "cyan"),
    )
    parts: list[RenderableType] = [header, steps]
    if log_lines:
        log = Text("\n".join(line[:200] for line in log_lines), style="dim", no_wrap=True)
        parts.append(Panel(log, title="build log (last lines)", title_align="left"))
    return Group(*parts)


def layer_lines(layer: LayerRef) -> list[str]:
    reused = "  (reused)" if layer.reused else ""
    # Published in more regions: each region's ARN (the versions differ between regions).
    others = [v.arn for r, v in sorted(layer.regions.items()) if v.arn != layer.arn]
    shared = [f"    shared with {', '.join(layer.shared_with)}"] if layer.shared_with else []
    return [
        f"  {layer.kind:<9} {layer.name}  v{layer.version}  "
        f"{megabytes(layer.zipped_bytes)} zipped, {megabytes(layer.unzipped_bytes)} unzipped"
        f"{reused}",
        f"    {layer.arn}",
        *(f"    {arn}" for arn in others),
        f"    sha256 {layer.sha256}",
        *shared,
    ]


def summary(record: BuildRecord) -> list[tuple[str, str]]:
    """(text, style) lines of a build's outcome, for the end of `rlayer build` and `status`."""
    status = record.status
    head = f"build {record.build_id} {status.value}"
    if status.is_final:
        head += f" in {duration(elapsed(record))}"
    lines: list[tuple[str, str]] = [(head, STYLE.get(status, "bold")), (spec_line(record), "")]
    if record.layers:
        arch = record.spec.architecture.value
        lines.append((f"layers (add them to a provided.al2023 {arch} function):", "bold"))
        lines.extend((line, "") for layer in record.layers for line in layer_lines(layer))
    if record.canary:
        canary = record.canary
        pkgs = ", ".join(f"{k} {v}" for k, v in sorted(canary.packages.items()))
        timing = []
        if canary.init_ms is not None:
            timing.append(f"init {canary.init_ms:.0f} ms")
        if canary.duration_ms is not None:
            timing.append(f"invoke {canary.duration_ms:.0f} ms")
        text = f"canary: R {canary.r_version}" + (f"; {pkgs}" if pkgs else "")
        if timing:
            text += f" ({', '.join(timing)})"
        lines.append((text, "green"))
    if record.error:
        err = record.error
        lines.append((f"failed at {err.step}: {err.error_type}", "red"))
        lines.extend((f"  {line}", "") for line in err.message.splitlines() or [""])
    if record.log_url:
        lines.append((f"build log: {record.log_url}", "dim"))
    return lines


def builds_table(records: list[BuildRecord]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("build", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("R")
    table.add_column("arch")
    table.add_column("packages", overflow="fold")
    table.add_column("requested", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    for r in records:
        took = duration(elapsed(r)) if r.status.is_final else "…"
        table.add_row(
            r.build_id,
            Text(r.status.value, style=STYLE.get(r.status, "")),
            r.spec.r_version,
            r.spec.architecture.value,
            " ".join(str(p) for p in r.spec.packages),
            r.created_at[:19].replace("T", " "),
            took,
        )
    return table


def catalog_lines(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for entry in entries:
        pkgs = ", ".join(f"{k} {v}" for k, v in sorted((entry.get("packages") or {}).items()))
        built = str(entry.get("built_at", ""))[:19].replace("T", " ")
        lines.append(
            (
                f"R {entry.get('r_version')} {entry.get('architecture')}  build "
                f"{entry.get('build_id')}  {built}",
                "bold",
            )
        )
        if pkgs:
            lines.append((f"  packages: {pkgs}", ""))
        for arn in entry.get("layer_arns") or []:
            lines.append((f"  {arn}", ""))
    return lines
