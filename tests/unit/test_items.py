"""The table's item kinds (chalicelib.aws.items): one key scheme, one encoding."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.aws.items import BUILD, KEY_FIELDS, SLACK_REQUEST, SPEC, SUBSCRIPTION

REPO = Path(__file__).resolve().parents[2]


def test_listed_kinds_carry_their_index_fields_and_decode_drops_them() -> None:
    item = SUBSCRIPTION.encode({"subscription_id": "sub-1"}, created_at="2026", ident="sub-1")
    assert item == {"subscription_id": "sub-1", "kind": "SUB", "created_key": "2026#sub-1"}
    assert SUBSCRIPTION.decode({**item, "pk": SUBSCRIPTION.key("sub-1")}) == {
        "subscription_id": "sub-1"
    }
    assert SPEC.encode({"build_id": "b"}, created_at="2026", ident="x") == {"build_id": "b"}
    assert set(KEY_FIELDS) == {"pk", "kind", "created_key"}


def test_keys_are_prefix_and_parts() -> None:
    assert BUILD.key("b-1") == "BUILD#b-1"
    assert SLACK_REQUEST.key("v0=abc") == "SLACKREQ#v0=abc"


def test_the_state_machine_writes_the_build_key_the_store_reads() -> None:
    # MarkBuilding updates the record directly: its key must be BUILD's.
    asl = json.loads((REPO / "state_machine.asl.json").read_text())
    key = asl["States"]["MarkBuilding"]["Parameters"]["Key"]["pk"]["S.$"]
    assert key == f"States.Format('{BUILD.key('{}')}', $.build_id)"


def test_mark_buildings_direct_update_follows_the_stores_transition_rule() -> None:
    from chalicelib.models import BuildStatus

    params = json.loads((REPO / "state_machine.asl.json").read_text())["States"]["MarkBuilding"][
        "Parameters"
    ]
    values = params["ExpressionAttributeValues"]
    assert values[":to"] == {"S": BuildStatus.BUILDING.value}
    assert params["ExpressionAttributeNames"]["#to"] == BuildStatus.BUILDING.value
    # Store.transition allows a move from the statuses strictly before the target only.
    assert [values[":from"]["S"]] == [s.value for s in BuildStatus.BUILDING.predecessors()]
    assert params["ConditionExpression"] == "attribute_exists(pk) AND #status = :from"
    assert params["UpdateExpression"] == "SET #status = :to, updated_at = :now, steps.#to = :now"
