"""Parsing the R release feed, the first-run baseline and what counts as unseen (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.errors import ConfigurationError, FeedError
from chalicelib.releases.check import baseline_covers, unseen
from chalicelib.releases.feed import parse_feed

# The shape of https://api.r-hub.io/rversions/r-versions (abridged), deliberately unsorted.
R_VERSIONS: list[dict[str, Any]] = [
    {"version": "0.60", "date": "1997-12-04T08:47:58.000000Z", "nickname": None},
    {"version": "1.0", "date": "2000-02-29T08:55:23.000000Z", "nickname": None},
    {"version": "3.6.3", "date": "2020-02-29T08:05:16.744223Z", "nickname": "Holding the Windsock"},
    {"version": "4.4.1", "date": "2024-06-14T07:10:04.000000Z", "nickname": "Race for Your Life"},
    {"version": "4.0.0", "date": "2020-04-24T07:05:34.612930Z", "nickname": "Arbor Day"},
    {"version": "4.10.0", "date": "2030-04-24T07:05:34.000000Z", "nickname": None},
    {"version": "4.4.0", "date": "2024-04-24T07:06:04.000000Z", "nickname": "Puppy Cup"},
]


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def test_a_version_list_gives_r4_releases_in_version_order() -> None:
    releases = parse_feed(body(R_VERSIONS))
    # Numeric, not string, order: 4.10.0 is newer than 4.4.1.
    assert [r.version for r in releases] == ["4.0.0", "4.4.0", "4.4.1", "4.10.0"]
    assert releases[2].nickname == "Race for Your Life"
    assert releases[2].date == "2024-06-14T07:10:04.000000Z"


def test_a_single_release_object_is_accepted() -> None:
    release = {"version": "4.4.1", "date": "2024-06-14", "nickname": "x", "URL": "ignored"}
    assert [r.version for r in parse_feed(body(release))] == ["4.4.1"]


def test_repeated_entries_count_once() -> None:
    entries = [{"version": "4.4.1"}, {"version": "4.4.1", "nickname": "again"}]
    assert [r.version for r in parse_feed(body(entries))] == ["4.4.1"]


GARBAGE = [
    (b"<!DOCTYPE html><html><body>Service Unavailable</body></html>", "not a JSON"),
    (b"", "not a JSON"),
    (b"{not json", "not a JSON"),
    (body([]), "no releases"),
    (body({}), "not a JSON"),
    (body(["4.4.1"]), "not a JSON"),
    (body([{"version": 441}]), "not a JSON"),
    (body([{"date": "2024-06-14"}]), "not a JSON"),
    (body([*R_VERSIONS, {"version": "latest"}]), "'latest'"),
    (body([*R_VERSIONS, {"version": "4.5"}]), "X.Y.Z"),
    (body([*R_VERSIONS, {"version": "4.5.0-rc1"}]), "4.5.0-rc1"),
    (body([{"version": "4.4.1; rm -rf /"}]), "not a release number"),
    (body([{"version": "3.6.3"}, {"version": "2.15.3"}]), "4.0.0 or newer"),
    (body({"version": "4.4.1", "nickname": ["not", "a", "string"]}), "not a JSON"),
]


@pytest.mark.parametrize(("raw", "reason"), GARBAGE)
def test_garbage_is_a_feed_error_as_a_whole(raw: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed(raw)
    assert reason in caught.value.message


FEED = parse_feed(body(R_VERSIONS))


def test_baseline_current_covers_every_release_in_the_feed() -> None:
    assert [r.version for r in baseline_covers(FEED, "current")] == [
        "4.0.0",
        "4.4.0",
        "4.4.1",
        "4.10.0",
    ]


def test_baseline_none_covers_nothing() -> None:
    assert baseline_covers(FEED, "none") == []


def test_baseline_version_covers_up_to_and_including_it() -> None:
    assert [r.version for r in baseline_covers(FEED, "4.4.0")] == ["4.0.0", "4.4.0"]
    assert [r.version for r in baseline_covers(FEED, "4.3.9")] == ["4.0.0"]


def test_baseline_older_than_r4_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        baseline_covers(FEED, "3.6.3")


def test_unseen_keeps_release_order_and_catches_late_patches() -> None:
    # 4.4.0 appearing after 4.10.0 was seen (a late patch of an older branch) is still new.
    seen = {"4.0.0", "4.10.0"}
    assert [r.version for r in unseen(FEED, seen)] == ["4.4.0", "4.4.1"]
    assert unseen(FEED, {r.version for r in FEED}) == []
