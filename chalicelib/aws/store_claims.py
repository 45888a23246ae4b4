"""Single-item claims on the table: one holder at a time (the release check runs).

A lock item names its holder; every change to it is conditional on who holds it, and the
item it guards is written or settled in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.items import from_item, to_item
from chalicelib.aws.store_table import (
    IF_ABSENT,
    Table,
    condition_failed,
    if_unchanged,
    set_expression,
)
from chalicelib.models import utcnow


class Claims(Table):
    """Claims and conditional updates of single items."""

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
        lock = {"pk": lock_pk, "holder": holder, "updated_at": utcnow()}
        return self.transact(
            [
                self.put_write(lock, if_unchanged("holder", expect_holder)),
                self.put_write({**data, "pk": pk}, IF_ABSENT),
            ]
        )

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
            if condition_failed(exc):
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
        update = set_expression(fields, names, values)
        writes: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": {"S": pk}},
                    "UpdateExpression": update,
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
        return self.transact(writes)

    def update_if(
        self, pk: str, fields: Mapping[str, Any], *, expect: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Set ``fields`` on an item whose attributes still equal ``expect``: the item as
        written, or None when it is absent or no longer matches."""
        condition, names, values = _equal_all(expect)
        update = set_expression(fields, names, values)
        try:
            resp = self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": pk}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                **_expression_attributes(names, values),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return from_item(resp["Attributes"])


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
