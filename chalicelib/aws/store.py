"""The DynamoDB table's operations: generic items, build records and the spec index.

What the items are (keys, encoding, tokens, the table) is ``chalicelib.aws.items``. Status
changes are conditional writes, so a record only ever moves forward.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.faults import error_code
from chalicelib.aws.items import (
    BUILD,
    BY_STATUS,
    BY_TIME,
    CALLER,
    SPEC,
    decode_token,
    encode_token,
    from_item,
    to_item,
)
from chalicelib.aws.session import client
from chalicelib.errors import (
    ConflictError,
    NotFoundError,
    RequestInvalidError,
    TransitionRejectedError,
)
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


def _condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class Store:
    """Typed access to the table. All writes that must not race are conditional."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._ddb = client("dynamodb")

    # -- generic items -----------------------------------------------------------------
    def get_item(self, pk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        resp = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=consistent
        )
        return from_item(resp["Item"]) if "Item" in resp else None

    def put_new(self, pk: str, data: Mapping[str, Any]) -> bool:
        """Write an item only if none exists with that key; False when one did."""
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item=to_item({**data, "pk": pk}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def put(self, pk: str, data: Mapping[str, Any]) -> None:
        self._ddb.put_item(TableName=self.table_name, Item=to_item({**data, "pk": pk}))

    def set_in_map(
        self, pk: str, field: str, key: str, value: Any, *, unless: tuple[str, str] | None = None
    ) -> None:
        """Set (``value``) or remove (None) one entry of a map attribute, leaving the others
        as concurrent writers left them. ``unless``: (attribute of the entry, value) that the
        entry must still have for a removal; else nothing changes."""
        names = {"#f": field, "#k": key}
        self._ddb.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET #f = if_not_exists(#f, :empty)",
            ExpressionAttributeNames={"#f": field},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        args: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": pk}},
            "ExpressionAttributeNames": names,
        }
        if value is None:
            args["UpdateExpression"] = "REMOVE #f.#k"
            if unless is not None:
                names["#u"] = unless[0]
                args["ConditionExpression"] = "#f.#k.#u = :u"
                args["ExpressionAttributeValues"] = to_item({":u": unless[1]})
        else:
            args["UpdateExpression"] = "SET #f.#k = :v"
            args["ExpressionAttributeValues"] = to_item({":v": value})
        try:
            self._ddb.update_item(**args)
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    def delete(self, pk: str) -> None:
        self._ddb.delete_item(TableName=self.table_name, Key={"pk": {"S": pk}})

    def query_kind(
        self,
        kind: str,
        *,
        limit: int | None = None,
        token: str | None = None,
        newest_first: bool = True,
    ) -> tuple[list[dict[str, Any]], str | None]:
        return self._query(BY_TIME, "kind", kind, limit=limit, token=token, desc=newest_first)

    def _query(
        self,
        index: str,
        attr: str,
        value: str,
        *,
        limit: int | None,
        token: str | None,
        desc: bool,
    ) -> tuple[list[dict[str, Any]], str | None]:
        args: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": "#a = :v",
            "ExpressionAttributeNames": {"#a": attr},
            "ExpressionAttributeValues": {":v": {"S": value}},
            "ScanIndexForward": not desc,
        }
        if limit:
            args["Limit"] = limit
        start = decode_token(token)
        if start:
            args["ExclusiveStartKey"] = start
        try:
            resp = self._ddb.query(**args)
        except ClientError as exc:
            # A token that decodes but is no key of this index (made up, or from another
            # listing): DynamoDB refuses the start key. The caller's mistake, not ours.
            if start and error_code(exc) == "ValidationException":
                raise RequestInvalidError("is not a token this API returned", field="next") from exc
            raise
        items = [from_item(i) for i in resp.get("Items", [])]
        return items, encode_token(resp.get("LastEvaluatedKey"))

    def iter_query(self, index: str, attr: str, value: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            items, token = self._query(index, attr, value, limit=None, token=token, desc=True)
            yield from items
            if not token:
                return

    # -- claims: one holder at a time (the release check runs) ---------------------------
    def claim(
        self,
        lock_pk: str,
        holder: str,
        *,
        expect_holder: str | None,
        pk: str,
        data: Mapping[str, Any],
    ) -> bool:
        """Write the new item ``data`` at ``pk`` and point ``lock_pk`` at ``holder``, in one
        transaction: only if the lock is absent (``expect_holder`` None) or still names
        ``expect_holder``. False when another writer changed the lock since it was read."""
        lock_put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": to_item({"pk": lock_pk, "holder": holder, "updated_at": utcnow()}),
        }
        if expect_holder is None:
            lock_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            lock_put["ConditionExpression"] = "holder = :h"
            lock_put["ExpressionAttributeValues"] = {":h": {"S": expect_holder}}
        item_put = {
            "TableName": self.table_name,
            "Item": to_item({**data, "pk": pk}),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        return self._transact([{"Put": lock_put}, {"Put": item_put}])

    def lock_holder(self, lock_pk: str) -> str | None:
        item = self.get_item(lock_pk)
        return str(item["holder"]) if item else None

    def release(self, lock_pk: str, holder: str) -> bool:
        """Drop the lock if it still names ``holder``; False when it does not."""
        try:
            self._ddb.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": lock_pk}},
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":h": {"S": holder}},
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def settle_claim(
        self,
        lock_pk: str,
        holder: str,
        *,
        pk: str,
        fields: Mapping[str, Any],
        expect: Mapping[str, Any],
    ) -> bool:
        """Set ``fields`` on the item a :meth:`claim` wrote and drop the lock, in one
        transaction (both or neither): only if the item still has ``expect`` and the lock
        still names ``holder``."""
        condition, names, values = _equal_all(expect)
        sets = []
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        writes: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": {"S": pk}},
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": condition,
                    **_expression_attributes(names, values),
                }
            },
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": {"pk": {"S": lock_pk}},
                    "ConditionExpression": "holder = :h",
                    "ExpressionAttributeValues": {":h": {"S": holder}},
                }
            },
        ]
        return self._transact(writes)

    def update_if(
        self, pk: str, fields: Mapping[str, Any], *, expect: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Set ``fields`` on an item whose attributes still equal ``expect``: the item as
        written, or None when it is absent or no longer matches."""
        condition, names, values = _equal_all(expect)
        sets = []
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        try:
            resp = self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": pk}},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                **_expression_attributes(names, values),
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        return from_item(resp["Attributes"])

    def _transact(self, writes: list[dict[str, Any]]) -> bool:
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise
        return True

    # -- builds ------------------------------------------------------------------------
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
        spec_put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": to_item(
                {
                    "pk": SPEC.key(record.spec_hash),
                    "build_id": record.build_id,
                    "updated_at": record.created_at,
                }
            ),
        }
        if not force:
            if replaces is None:
                spec_put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                spec_put["ConditionExpression"] = "build_id = :stale"
                spec_put["ExpressionAttributeValues"] = {":stale": {"S": replaces}}
        build_put = {
            "TableName": self.table_name,
            "Item": to_item(self._build_item(record)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        writes = [{"Put": build_put}, {"Put": spec_put}]
        if caller is not None:
            # Only if no other request of this caller wrote it since it was read: two
            # racing requests cannot both take the last free place.
            writes.append({"Put": self._caller_put(caller, record.build_id)})
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise ConflictError("another build of this spec was just requested") from exc
            raise

    def _caller_put(self, slot: CallerSlot, build_id: str) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": to_item(
                {
                    "pk": slot.key,
                    "caller": slot.caller,
                    "build_ids": [*slot.build_ids, build_id],
                    "version": slot.version + 1,
                    "updated_at": utcnow(),
                }
            ),
        }
        if slot.version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(slot.version)}}
        return put

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
        sets = ["#status = :to", "updated_at = :now", "steps.#to = :now"]
        allowed = _status_placeholders(to.predecessors(), values)
        for i, (key, value) in enumerate((fields or {}).items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        return self._update(
            build_id,
            update="SET " + ", ".join(sets),
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
        sets = ["updated_at = :now"]
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        return self._update(
            build_id,
            update="SET " + ", ".join(sets),
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
            if not _condition_failed(exc):
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


def _equal_all(expect: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition that the item exists and each attribute of ``expect`` has its value."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    terms = ["attribute_exists(pk)"]
    for i, (key, value) in enumerate(expect.items()):
        names[f"#e{i}"] = key
        values[f":e{i}"] = value
        terms.append(f"#e{i} = :e{i}")
    return " AND ".join(terms), names, values


def _expression_attributes(names: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    # DynamoDB refuses an empty map for either.
    out: dict[str, Any] = {}
    if names:
        out["ExpressionAttributeNames"] = names
    if values:
        out["ExpressionAttributeValues"] = to_item(values)
    return out
