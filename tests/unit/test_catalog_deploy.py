"""The deployed API's stage throttling: what bounds the catalog routes a stage opens."""

from __future__ import annotations

from tests.unit.test_deploy import merged


def test_every_route_of_the_stage_is_throttled_by_parameters() -> None:
    tpl = merged("prod")
    (setting,) = tpl["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    for key, parameter in (
        ("ThrottlingRateLimit", "ApiThrottleRate"),
        ("ThrottlingBurstLimit", "ApiThrottleBurst"),
    ):
        assert setting[key] == {"Ref": parameter}
        declared = tpl["Parameters"][parameter]
        assert declared["Type"] == "Number" and declared["MinValue"] >= 1
