"""Build records on the table: the spec index, the per-caller slot and status transitions.

Status changes are conditional writes, so a record only ever moves forward.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.items import (
    BUILD,
    BY_STATUS,
    BY_TIME,
    CALLER,
    SPEC,
    from_item,
    to_item,
)
from chalicelib.aws.store_table import (
    IF_ABSENT,
    Table,
    condition_failed,
    if_unchanged,
    set_expression,
)
from chalicelib.errors import ConflictError, NotFoundError, TransitionRejectedError
from chalicelib.models import MAX_WATCHERS, BuildRecord, BuildStatus, NotifyTarget, utcnow


@dataclass(frozen=True)
class CallerSlot:
    """A caller's builds that may still run, as read at ``version``; written back with
    the new build in the same transaction as the build, only if nobody changed it since."""

    caller: str
    version: int
    build_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        # Hashed: an IAM ARN may be 2,048 characters, as long as a whole key may be.
        return CALLER.key(hashlib.sha256(self.caller.encode()).hexdigest())


class BuildRecords(Table):
    """Build records, the spec index pointing at them and the callers' slots."""

    def caller_slot(self, caller: str) -> CallerSlot:
        """The builds ``caller`` started that may still run (some may have ended since)."""
        slot = CallerSlot(caller, 0, ())
        item = self.get_item(slot.key)
        if item is None:
            return slot
        return CallerSlot(caller, int(item["version"]), tuple(item.get("build_ids", [])))

    def create_build(
        self,
        record: BuildRecord,
        *,
        replaces: str | None,
        force: bool,
        caller: CallerSlot | None = None,
    ) -> None:
        """Write the build and point the spec index at it, atomically.

        The spec item is written only if there is none (``replaces`` None), if it still
        points at the failed build the caller saw (``replaces``), or when forced. Raises
        ConflictError when another request won the race; the caller re-reads.
        """
        spec = {
            "pk": SPEC.key(record.spec_hash),
            "build_id": record.build_id,
            "updated_at": record.created_at,
        }
        writes = [
            self.put_write(self._build_item(record), IF_ABSENT),
            self.put_write(spec, None if force else if_unchanged("build_id", replaces)),
        ]
        if caller is not None:
            # Only if no other request of this caller wrote it since it was read: two
            # racing requests cannot both take the last free place.
            writes.append(self._caller_put(caller, record.build_id))
        if not self.transact(writes):
            raise ConflictError("another build of this spec was just requested")

    def _caller_put(self, slot: CallerSlot, build_id: str) -> dict[str, Any]:
        item = {
            "pk": slot.key,
            "caller": slot.caller,
            "build_ids": [*slot.build_ids, build_id],
            "version": slot.version + 1,
            "updated_at": utcnow(),
        }
        # Version 0: the slot was not written yet.
        return self.put_write(item, if_unchanged("version", slot.version or None))

    @staticmethod
    def _build_item(record: BuildRecord) -> dict[str, Any]:
        data = BUILD.encode(
            record.model_dump(mode="json"), created_at=record.created_at, ident=record.build_id
        )
        data["pk"] = BUILD.key(record.build_id)
        return data

    def spec_build_id(self, spec_hash: str) -> str | None:
        item = self.get_item(SPEC.key(spec_hash))
        return str(item["build_id"]) if item else None

    def get_build(self, build_id: str) -> BuildRecord:
        item = self.get_item(BUILD.key(build_id))
        if item is None:
            raise NotFoundError(f"no build with id {build_id!r}", field="build_id")
        return BuildRecord.model_validate(BUILD.decode(item))

    def list_builds(
        self, *, status: BuildStatus | None, limit: int, token: str | None
    ) -> tuple[list[BuildRecord], str | None]:
        if status is None:
            items, nxt = self._query(
                BY_TIME, "kind", BUILD.prefix, limit=limit, token=token, desc=True
            )
        else:
            items, nxt = self._query(
                BY_STATUS, "status", status.value, limit=limit, token=token, desc=True
            )
        return [BuildRecord.model_validate(BUILD.decode(i)) for i in items], nxt

    def iter_builds(self, status: BuildStatus) -> Iterator[BuildRecord]:
        for item in self.iter_query(BY_STATUS, "status", status.value):
            yield BuildRecord.model_validate(BUILD.decode(item))

    def transition(
        self, build_id: str, to: BuildStatus, fields: Mapping[str, Any] | None = None
    ) -> BuildRecord:
        """Move a build forward to ``to`` (with extra fields), or raise.

        Conditional on the current status being strictly before ``to``: a late, repeated
        or backwards update raises TransitionRejectedError and changes nothing.
        """
        now = utcnow()
        names = {"#status": "status", "#to": to.value}
        values: dict[str, Any] = {":to": to.value, ":now": now}
        first = ["#status = :to", "updated_at = :now", "steps.#to = :now"]
        allowed = _status_placeholders(to.predecessors(), values)
        update = set_expression(fields or {}, names, values, first)
        return self._update(
            build_id,
            update=update,
            condition=f"attribute_exists(pk) AND #status IN ({allowed})",
            names=names,
            values=values,
            rejected=f"cannot move to {to.value}",
        )

    def add_watcher(self, build_id: str, target: NotifyTarget) -> BuildRecord:
        """Remember one more requester to tell when a build that is not final ends.

        Conditional on the build not being final yet: Notify reads the record after the
        final transition, so a watcher written before it is always told. Raises
        TransitionRejectedError when the build has ended (or holds MAX_WATCHERS already).
        """
        values: dict[str, Any] = {
            ":none": [],
            ":w": [target.model_dump()],
            ":now": utcnow(),
            ":max": MAX_WATCHERS,
        }
        # Not final: the statuses a build may fail from.
        running = _status_placeholders(BuildStatus.FAILED.predecessors(), values)
        return self._update(
            build_id,
            update="SET watchers = list_append(if_not_exists(watchers, :none), :w), "
            "updated_at = :now",
            condition=f"attribute_exists(pk) AND #status IN ({running}) "
            "AND (attribute_not_exists(watchers) OR size(watchers) < :max)",
            names={"#status": "status"},
            values=values,
            rejected="no more watchers are taken",
        )

    def update_build(
        self, build_id: str, fields: Mapping[str, Any], *, expect: BuildStatus
    ) -> BuildRecord:
        """Set fields on a build that is (still) in status ``expect``."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":expect": expect.value, ":now": utcnow()}
        return self._update(
            build_id,
            update=set_expression(fields, names, values, ["updated_at = :now"]),
            condition="attribute_exists(pk) AND #status = :expect",
            names=names,
            values=values,
            rejected=f"expected it to be {expect.value}",
        )

    def _update(
        self,
        build_id: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        rejected: str,
    ) -> BuildRecord:
        try:
            resp = self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": BUILD.key(build_id)}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            current = self.get_build(build_id)  # raises NotFoundError when absent
            raise TransitionRejectedError(
                f"build {build_id} is {current.status.value}; {rejected}", field="status"
            ) from exc
        return BuildRecord.model_validate(BUILD.decode(from_item(resp["Attributes"])))


def _status_placeholders(statuses: tuple[BuildStatus, ...], values: dict[str, Any]) -> str:
    """``:p0, :p1, ...`` for an ``IN (...)`` condition; their values go into ``values``."""
    for i, status in enumerate(statuses):
        values[f":p{i}"] = status.value
    return ", ".join(f":p{i}" for i in range(len(statuses)))
