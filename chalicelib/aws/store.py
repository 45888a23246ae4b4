"""The DynamoDB table's operations: generic items, build records and the spec index.

What the items are (keys, encoding, tokens, the table) is ``chalicelib.aws.items``. Status
changes are conditional writes, so a record only ever moves forward.

``Store`` is composed of what each module owns: ``store_table`` the generic items,
``store_claims`` the single-item claims, ``store_builds`` the build records.
"""

from __future__ import annotations

from chalicelib.aws.store_builds import BuildRecords, CallerSlot
from chalicelib.aws.store_claims import Claims

__all__ = ["CallerSlot", "Store"]


class Store(Claims, BuildRecords):
    """Typed access to the table. All writes that must not race are conditional."""
