"""The DynamoDB table's generic item operations: get, put, update a map entry, delete, query.

What the items are (keys, encoding, tokens, the table) is ``chalicelib.aws.items``; the
claims (``store_claims``) and build records (``store_builds``) are written with these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.faults import error_code
from chalicelib.aws.items import BY_TIME, decode_token, encode_token, from_item, to_item
from chalicelib.aws.session import client
from chalicelib.errors import RequestInvalidError


def condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


# A write's condition: no item at its key yet.
IF_ABSENT: Mapping[str, str] = {"ConditionExpression": "attribute_not_exists(pk)"}


def if_unchanged(attr: str, value: str | int | None) -> Mapping[str, Any]:
    """A write's condition: the item's ``attr`` still has the ``value`` it was read with;
    ``value`` None (no item was read): there is no item yet."""
    if value is None:
        return IF_ABSENT
    return {
        "ConditionExpression": f"{attr} = :was",
        "ExpressionAttributeValues": to_item({":was": value}),
    }


class Table:
    """Generic items of the table, by key."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._ddb = client("dynamodb")

    def get_item(self, pk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        resp = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=consistent
        )
        return from_item(resp["Item"]) if "Item" in resp else None

    def put_new(self, pk: str, data: Mapping[str, Any]) -> bool:
        """Write an item only if none exists with that key; False when one did."""
        try:
            self._ddb.put_item(
                TableName=self.table_name, Item=to_item({**data, "pk": pk}), **IF_ABSENT
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def put(self, pk: str, data: Mapping[str, Any]) -> None:
        self._ddb.put_item(TableName=self.table_name, Item=to_item({**data, "pk": pk}))

    def put_write(
        self, item: Mapping[str, Any], condition: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One Put of a transaction (:meth:`transact`), on ``condition`` if given."""
        return {"Put": {"TableName": self.table_name, "Item": to_item(item), **(condition or {})}}

    def transact(self, writes: list[dict[str, Any]]) -> bool:
        """All ``writes`` or none; False when a condition of one failed."""
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise
        return True

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
            if not condition_failed(exc):
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


def set_expression(
    fields: Mapping[str, Any],
    names: dict[str, str],
    values: dict[str, Any],
    first: Sequence[str] = (),
) -> str:
    """An update expression: the ``first`` assignments, then one setting each of
    ``fields`` (their placeholders added to ``names`` and ``values``)."""
    sets = list(first)
    for i, (key, value) in enumerate(fields.items()):
        names[f"#f{i}"] = key
        values[f":f{i}"] = value
        sets.append(f"#f{i} = :f{i}")
    return "SET " + ", ".join(sets)
