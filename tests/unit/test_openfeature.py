"""The OpenFeature provider, through the SDK's own client, over a router cache with a
settable clock; and the flagd export's shape (flagd's flags.json v0 rules)."""

from __future__ import annotations

from collections.abc import Iterator

import jsonschema
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from riskstream.core.routing import RoutingFlag
from riskstream.flagd import flagd_document
from riskstream.openfeature_provider import RiskstreamProvider
from riskstream.router import FlagCache


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cache() -> FlagCache:
    return FlagCache(default_version=None, max_staleness_s=5.0, clock=Clock())


@pytest.fixture
def client(cache: FlagCache) -> Iterator[OpenFeatureClient]:
    api.set_provider_and_wait(RiskstreamProvider(cache, watch_interval_s=0.05), domain="unit")
    yield api.get_client("unit")
    api.shutdown()


def flipped() -> RoutingFlag:
    return RoutingFlag(
        "support-bot", "sb-2.9", "human-review", 0.5, "incident", "inc-7",
        "riskstream/containment", revision=3,
    )  # fmt: skip


def test_before_the_router_reaches_redis_the_callers_default_comes_back_as_an_error(
    client: OpenFeatureClient,
) -> None:
    d = client.get_string_details("support-bot.version", "sb-3.1")
    assert (d.value, d.reason, d.error_code) == (
        "sb-3.1",
        Reason.ERROR,
        ErrorCode.PROVIDER_NOT_READY,
    )


def test_a_contained_model_reads_as_containment_left_it(
    client: OpenFeatureClient, cache: FlagCache
) -> None:
    cache.offer(flipped())
    cache.mark_refreshed()
    d = client.get_string_details("support-bot.version", "sb-3.1")
    assert (d.value, d.reason, d.variant) == ("sb-2.9", Reason.CACHED, "human-review")
    assert d.flag_metadata["revision"] == 3 and d.flag_metadata["incident_id"] == "inc-7"
    assert client.get_string_value("support-bot.mode", "normal") == "human-review"
    assert client.get_boolean_value("support-bot.human_review", False) is True
    assert client.get_boolean_value("support-bot.blocked", True) is False
    assert client.get_float_value("support-bot.traffic_fraction", 1.0) == 0.5
    assert client.get_integer_value("support-bot.revision", 0) == 3
    whole = client.get_object_details("support-bot", {})
    assert whole.value["version"] == "sb-2.9" and whole.value["mode"] == "human-review"
    assert whole.reason == Reason.CACHED


def test_a_model_nothing_contained_is_the_default(
    client: OpenFeatureClient, cache: FlagCache
) -> None:
    cache.mark_refreshed()
    d = client.get_string_details("other.version", "o-1")
    assert (d.value, d.reason, d.error_code) == ("o-1", Reason.DEFAULT, None)
    assert client.get_string_value("other.mode", "?") == "normal"


def test_past_max_staleness_the_last_decision_is_served_as_stale(
    client: OpenFeatureClient, cache: FlagCache
) -> None:
    cache.offer(flipped())
    cache.mark_refreshed()
    cache._clock.now += 6  # type: ignore[attr-defined]  # Redis silent for 6 s > 5 s
    d = client.get_string_details("support-bot.version", "sb-3.1")
    assert (d.value, d.reason, d.flag_metadata["stale"]) == ("sb-2.9", Reason.STALE, True)


def test_a_wrong_type_is_a_type_mismatch(client: OpenFeatureClient, cache: FlagCache) -> None:
    cache.offer(flipped())
    cache.mark_refreshed()
    d = client.get_boolean_details("support-bot.version", False)
    assert (d.value, d.reason, d.error_code) == (False, Reason.ERROR, ErrorCode.TYPE_MISMATCH)


# flagd's flags.json (v0) rules that an export must keep, written out as a JSON Schema.
_VARIANTS = {
    kind: {"type": "object", "minProperties": 1, "additionalProperties": {"type": kind}}
    for kind in ("boolean", "string", "number", "object")
}
FLAGD_RULES = {
    "type": "object",
    "required": ["flags"],
    "properties": {
        "flags": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["state", "variants", "defaultVariant"],
                "properties": {
                    "state": {"enum": ["ENABLED", "DISABLED"]},
                    "defaultVariant": {"type": ["string", "null"]},
                    "variants": {"anyOf": list(_VARIANTS.values())},
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                },
            },
        },
        "metadata": {
            "type": "object",
            "properties": {"flagSetId": {"type": "string"}, "version": {"type": "string"}},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
    },
}


def test_the_flagd_export_keeps_flagds_rules_and_the_providers_keys() -> None:
    doc = flagd_document({"support-bot": flipped()}, "prod")
    jsonschema.validate(doc, FLAGD_RULES)
    for key, flag in doc["flags"].items():
        assert flag["defaultVariant"] in flag["variants"], key
    value = {k: f["variants"][f["defaultVariant"]] for k, f in doc["flags"].items()}
    assert value["support-bot.version"] == "sb-2.9"
    assert value["support-bot.human_review"] is True and value["support-bot.blocked"] is False
    assert value["support-bot"]["incident_id"] == "inc-7"
    assert doc["metadata"] == {"flagSetId": "riskstream/prod", "version": "3"}


def test_the_targeting_key_keeps_one_user_on_one_side_of_a_shift(
    client: OpenFeatureClient, cache: FlagCache
) -> None:
    from openfeature.evaluation_context import EvaluationContext

    cache.offer(
        RoutingFlag("support-bot", "sb-2.9", traffic_fraction=0.5, previous_version="sb-3.0",
                    revision=4)
    )  # fmt: skip
    cache.mark_refreshed()
    seen = {
        user: client.get_string_value("support-bot.version", "x", EvaluationContext(user))
        for user in (f"user-{n}" for n in range(40))
    }
    assert set(seen.values()) == {"sb-2.9", "sb-3.0"}
    assert all(
        client.get_string_value("support-bot.version", "x", EvaluationContext(u)) == v
        for u, v in seen.items()
    )
