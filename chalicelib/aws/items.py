"""Every kind of item in the one table, in one place: its key, its encoding, the page
tokens of its listings, and the table's definition.

One table, string hash key ``pk`` = ``<PREFIX>#<id...>``. Listed kinds also carry ``kind``
(their prefix) and ``created_key`` (``<created_at>#<id>``) for the ``by_time`` index; build
records carry ``status`` for ``by_status``. Every module that stores something names its
:class:`ItemKind` here and goes through :meth:`ItemKind.encode` / :meth:`ItemKind.decode`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.errors import RequestInvalidError

BY_TIME = "by_time"
BY_STATUS = "by_status"

# The attributes the table adds to a record: never part of the record itself.
KEY_FIELDS = ("pk", "kind", "created_key")
# A page token holds the last item's table key and its index's key attributes.
TOKEN_SHAPES = (
    frozenset({"pk", "kind", "created_key"}),  # by_time
    frozenset({"pk", "status", "created_key"}),  # by_status
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments; the CloudFormation template mirrors these (tested)."""
    projection = {"ProjectionType": "ALL"}
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "created_key", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": BY_TIME,
                "KeySchema": [
                    {"AttributeName": "kind", "KeyType": "HASH"},
                    {"AttributeName": "created_key", "KeyType": "RANGE"},
                ],
                "Projection": projection,
            },
            {
                "IndexName": BY_STATUS,
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created_key", "KeyType": "RANGE"},
                ],
                "Projection": projection,
            },
        ],
    }


def to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    # DynamoDB wants Decimal for numbers and no None values; a JSON round trip gives both.
    plain = json.loads(json.dumps(data), parse_float=Decimal)
    return {k: _serializer.serialize(v) for k, v in plain.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    data = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return json.loads(json.dumps(data, default=_decimal))  # type: ignore[no-any-return]


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not serialisable: {type(value).__name__}")


def encode_token(key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(from_item(key)).encode()).decode()


def decode_token(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        # What encode_token writes: the item's key and an index's key, all strings. Checked
        # here as DynamoDB refuses any other start key (moto takes it).
        if (
            not isinstance(data, dict)
            or frozenset(data) not in TOKEN_SHAPES
            or not all(isinstance(v, str) and len(v) <= 1024 for v in data.values())
        ):
            raise ValueError("not a key of ours")
        return to_item(data)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise RequestInvalidError("is not a token this API returned", field="next") from exc


@dataclass(frozen=True)
class ItemKind:
    prefix: str
    # Listed kinds are in the by_time index (kind + created_key).
    listed: bool

    def key(self, *parts: str) -> str:
        return "#".join((self.prefix, *parts))

    def encode(self, data: Mapping[str, Any], *, created_at: str, ident: str) -> dict[str, Any]:
        """``data`` as this kind's item (without ``pk``: the store adds it)."""
        item = dict(data)
        if self.listed:
            item.update(kind=self.prefix, created_key=f"{created_at}#{ident}")
        return item

    @staticmethod
    def decode(item: Mapping[str, Any]) -> dict[str, Any]:
        """The record's own fields of an item."""
        return {k: v for k, v in item.items() if k not in KEY_FIELDS}


BUILD = ItemKind("BUILD", listed=True)
SPEC = ItemKind("SPEC", listed=False)  # spec hash -> its current build
RUNTIME = ItemKind("RUNTIME", listed=True)  # proven runtime layers
RELEASE = ItemKind("RELEASE", listed=True)  # R releases the scheduler has seen
SUBSCRIPTION = ItemKind("SUB", listed=True)
SLACK_REQUEST = ItemKind("SLACKREQ", listed=False)  # replay markers (ttl)
# caller -> the builds it started that may still run (at most the stage's limit).
CALLER = ItemKind("CALLER", listed=False)
# architecture, R X.Y and package set -> its current build per patch release (the resolver).
LATEST = ItemKind("LATEST", listed=False)
# A release check run that POST /releases/check started (ttl), and the one item naming the
# run that holds the check (so two requests never run two checks at once).
RELEASE_CHECK = ItemKind("RELCHECK", listed=False)
RELEASE_CHECK_LOCK = ItemKind("RELCHECKLOCK", listed=False)
