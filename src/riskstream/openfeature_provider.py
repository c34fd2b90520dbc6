"""riskstream's routing decisions through OpenFeature (the ``openfeature-sdk`` package).

Serving code that already reads flags through OpenFeature gets containment's
decisions without learning the :class:`~riskstream.router.Router`'s API::

    from openfeature import api
    from riskstream.openfeature_provider import RiskstreamProvider
    from riskstream.router import Router

    api.set_provider_and_wait(RiskstreamProvider(Router("redis://redis:6379/0", namespace="prod")))
    client = api.get_client()
    version = client.get_string_value("support-bot.version", "sb-3.1")
    details = client.get_object_details("support-bot", {})   # the whole decision

Flag keys are ``MODEL.FIELD``: ``version`` and ``mode`` (strings; ``incident_id``
too, empty when none), ``traffic_fraction`` (a float), ``revision`` (an integer),
``blocked`` and ``human_review`` (booleans: the mode is ``blocked`` /
``human-review``); a bare ``MODEL`` is the whole decision as an object.
Every answer is a local read of the router's cache: no I/O, never an exception.

Reasons, from the cache's freshness (what the router calls staleness):

===========================================  ==========================================
the router holds a flag for the model,        ``CACHED`` — riskstream's decision
confirmed against Redis within
``max_staleness_s``
the router holds no flag for the model        ``DEFAULT`` — nothing contained it: mode
(fresh)                                       ``normal``, version the router's
                                              ``default_version`` or the caller's default
the last confirmation is older than           ``STALE`` — the last known decision (Redis
``max_staleness_s`` (Redis unreachable)       is down or slow; serving goes on)
the router never reached Redis                ``ERROR`` with ``PROVIDER_NOT_READY``: the
                                              caller's default is returned
===========================================  ==========================================

``flag_metadata`` carries ``revision``, ``incident_id`` (when set), ``age_s`` and
``stale``; the ``variant`` is the decision's mode.  The provider's status follows
the cache too: it emits ``PROVIDER_STALE`` when the cache turns stale,
``PROVIDER_READY`` when it is fresh again, and ``PROVIDER_CONFIGURATION_CHANGED``
naming the models whose flags changed (checked every ``watch_interval_s``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "riskstream's OpenFeature provider needs the OpenFeature SDK: "
        "pip install 'riskstream[openfeature]' (or openfeature-sdk)"
    ) from exc

from riskstream.router import Decision

__all__ = ["FIELDS", "RiskstreamProvider"]

FIELDS = ("version", "mode", "traffic_fraction", "revision", "incident_id", "blocked",
          "human_review")  # fmt: skip
T = TypeVar("T")


class DecisionSource(Protocol):
    """What the provider reads: a :class:`~riskstream.router.Router` or its ``FlagCache``."""

    def route(self, model_id: str, key: str | None = None) -> Decision: ...


def _split(flag_key: str) -> tuple[str, str | None]:
    """``"support-bot.version"`` -> ``("support-bot", "version")``; a bare model -> None.

    >>> _split("support-bot.version"), _split("dx-2.0")
    (('support-bot', 'version'), ('dx-2.0', None))
    """
    model, _, field = flag_key.rpartition(".")
    if model and field in FIELDS:
        return model, field
    return flag_key, None


def _value(decision: Decision, field: str) -> Any:
    if field == "blocked":
        return decision.mode == "blocked"
    if field == "human_review":
        return decision.mode == "human-review"
    if field == "version":
        return decision.version
    if field == "incident_id":
        return decision.incident_id or ""
    return getattr(decision, field)


class RiskstreamProvider(AbstractProvider):
    """An OpenFeature provider answering from a router's local cache."""

    def __init__(
        self, router: DecisionSource, *, close_router: bool = False, watch_interval_s: float = 1.0
    ) -> None:
        super().__init__()
        self._router = router
        self._close_router = close_router
        self._watch_interval_s = watch_interval_s
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._seen: dict[str, int] = {}

    def get_metadata(self) -> Metadata:
        return Metadata(name="riskstream")

    # -- lifecycle and events ------------------------------------------------------

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, name="riskstream-openfeature", daemon=True
        )
        self._watcher.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self._close_router:
            close = getattr(self._router, "close", None)
            if callable(close):
                close()

    def _watch(self) -> None:
        was_stale: bool | None = None
        while not self._stop.wait(self._watch_interval_s):
            stale = bool(getattr(self._router, "stale", False))
            if stale != was_stale and was_stale is not None:
                if stale:
                    self.emit_provider_stale(ProviderEventDetails(message="cache is stale"))
                else:
                    self.emit_provider_ready(ProviderEventDetails(message="cache is fresh"))
            was_stale = stale
            changed = self._changed_models()
            if changed:
                self.emit_provider_configuration_changed(
                    ProviderEventDetails(flags_changed=changed, message="routing flags changed")
                )

    def _changed_models(self) -> list[str]:
        flags = getattr(self._router, "flags", None)
        if not callable(flags):
            return []
        now = {model: flag.revision for model, flag in flags().items()}
        changed = [m for m, rev in now.items() if self._seen.get(m) != rev]
        first = not self._seen
        self._seen = now
        return [] if first else sorted(changed)

    # -- resolution ---------------------------------------------------------------------

    def _resolve(
        self,
        flag_key: str,
        default: T,
        kind: type | tuple[type, ...],
        context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[T]:
        """During a progressive shift the context's targeting key picks the user's side
        (the router's stable hash), so one user keeps one version."""
        model, field = _split(flag_key)
        decision = self._router.route(model, context.targeting_key if context else None)
        if math.isinf(decision.age_s):
            return FlagResolutionDetails(
                default, ErrorCode.PROVIDER_NOT_READY,
                "riskstream's router has not reached Redis yet", Reason.ERROR,
            )  # fmt: skip
        if field is None:
            value: Any = {
                "model_id": decision.model_id, "version": decision.version, "mode": decision.mode,
                "traffic_fraction": decision.traffic_fraction, "revision": decision.revision,
                "incident_id": decision.incident_id,
            }  # fmt: skip
        else:
            value = _value(decision, field)
        if value is None:  # no flag and no default_version: the caller's own default
            value = default
        if kind == (float, int) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            return FlagResolutionDetails(
                default, ErrorCode.TYPE_MISMATCH,
                f"{flag_key} is a {type(value).__name__}, not a {getattr(kind, '__name__', kind)}",
                Reason.ERROR,
            )  # fmt: skip
        if decision.stale:
            reason = Reason.STALE
        elif decision.revision == 0:
            reason = Reason.DEFAULT
        else:
            reason = Reason.CACHED
        metadata: dict[str, bool | int | float | str] = {
            "revision": decision.revision, "age_s": round(decision.age_s, 3),
            "stale": decision.stale,
        }  # fmt: skip
        if decision.incident_id:
            metadata["incident_id"] = decision.incident_id
        return FlagResolutionDetails(cast(T, value), None, None, reason, decision.mode, metadata)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, bool, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, str, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, int, evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, (float, int), evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, (dict, list), evaluation_context)
