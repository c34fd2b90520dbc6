"""Delayed labels: keep what a prediction said, and score it when the truth arrives.

Ground truth comes days after the prediction (a clinical follow-up, an audit), as
a label event naming the ``prediction_id``.  So the processor keeps a compact
:func:`prediction_record` of each inference event in a :class:`PredictionStore`
(with a TTL: truth that comes later than that is not waited for), and on a label
event :func:`join` s the record with it into a :class:`LabelOutcome`:

``error``
    1.0 if the predicted label is not the true one, else 0.0; its mean is the
    error rate (1 - accuracy).
``missed``
    For a true label that is one of the tracked ``positive`` classes: 1.0 if the
    prediction was not that class, else 0.0; its mean, per true class, is the
    miss rate (1 - recall, the false-negative rate).  ``None`` for any other true
    label: a negative case cannot be missed.
``latency_s``
    How long the truth took: label time minus prediction time.
``segment``
    The prediction's segment plus ``label``, the true label as text, so a monitor
    keyed by ``[model_id, segment.label, segment.age_band]`` tracks the recall of
    each subtype in each demographic.

:meth:`LabelOutcome.as_event` gives the outcome as an event — the label event's
fields plus ``predicted``, ``error``, ``missed``, ``latency_s`` and the segment —
so monitors select, key and read it with the field paths they use everywhere.

The store is read, never emptied, by a join: the same label can arrive twice
(Kafka delivers at least once; after a crash the processor replays every event
since its last checkpoint, and a replayed label must find its prediction again
to be applied exactly as the first time), and a prediction can be labelled twice
(an audit, then a correction).  Deleting on the first join would turn the first
into a silently dropped event and the second into lost truth.  The TTL bounds
the store instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from riskstream.core.timeutil import format_time, parse_time

__all__ = [
    "LabelOutcome",
    "PredictionStore",
    "join",
    "kept_segment",
    "label_text",
    "prediction_record",
]

Event = Mapping[str, Any]
Label = str | float | int | bool


def prediction_record(event: Event, segment: Sequence[str] | None = None) -> dict[str, Any]:
    """What to keep of an inference event until its label comes: model, version,
    predicted label and score, segment, and the time as epoch seconds.

    ``segment`` names the segment attributes to keep (``None``: all of them).
    Features are never kept: they are large, and for a medical or credit model
    they are exactly the personal data a store should not hold for weeks.
    Absent fields are left out, so the record stays small (about 100 bytes as
    JSON for a typical event).

    >>> prediction_record({
    ...     "event_id": "e1", "time": "2026-11-26T10:00:00.250Z", "model_id": "derm",
    ...     "model_version": "4.2", "prediction_id": "p1",
    ...     "prediction": {"label": "melanoma", "score": 0.93},
    ...     "features": {"lesion_mm": 7.5}, "segment": {"sex": "f", "age_band": "65+"},
    ... }, segment=["age_band"])  # doctest: +NORMALIZE_WHITESPACE
    {'model_id': 'derm', 'time': 1795687200.25, 'model_version': '4.2',
     'label': 'melanoma', 'score': 0.93, 'segment': {'age_band': '65+'}}
    """
    record: dict[str, Any] = {"model_id": event["model_id"], "time": parse_time(event["time"])}
    if (version := event.get("model_version")) is not None:
        record["model_version"] = version
    prediction = event.get("prediction")
    if isinstance(prediction, Mapping):
        if (label := prediction.get("label")) is not None:
            record["label"] = label
        if (score := prediction.get("score")) is not None:
            record["score"] = score
    seg = event.get("segment")
    if isinstance(seg, Mapping) and seg:
        if segment is not None:
            seg = {k: seg[k] for k in segment if k in seg}
        if seg:
            record["segment"] = dict(seg)
    return record


def kept_segment(paths: Iterable[str]) -> tuple[str, ...] | None:
    """The segment attributes a stored prediction must keep for monitors reading
    ``paths`` of the joined event (``None``: all, as a path reads the whole segment).

    A segment is personal data (sex, age band, region) held for as long as labels
    may come, 30 days by default: only what a label monitor reads is kept.  ``label``
    is never kept: the join sets it from the label event.

    >>> kept_segment(["missed", "model_id", "segment.label", "segment.age_band"])
    ('age_band',)
    >>> kept_segment(["error", "segment"]) is None
    True
    """
    kept: set[str] = set()
    for path in paths:
        head, _, rest = path.partition(".")
        if head != "segment":
            continue
        if not rest:
            return None
        kept.add(rest.partition(".")[0])
    kept.discard("label")
    return tuple(sorted(kept))


def label_text(label: Label) -> str:
    """A label as stream-key text: strings as they are, others as JSON (``true``, ``1``).

    >>> label_text("benign"), label_text(True), label_text(2), label_text(0.5)
    ('benign', 'true', '2', '0.5')
    """
    return label if isinstance(label, str) else orjson.dumps(label).decode()


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    """A label joined to its stored prediction; see the module's docstring.

    ``predicted`` is ``None`` for a score-only prediction, and then ``error`` and
    ``missed`` are ``None`` too (there is no predicted class to compare).  Labels
    compare as JSON values would, except that Python's ``1 == 1.0 == True`` holds.
    """

    prediction_id: str
    model_id: str
    model_version: str | None
    predicted: Label | None
    label: Label
    score: float | None
    error: float | None
    missed: float | None
    predicted_at: float
    labelled_at: float
    latency_s: float
    segment: Mapping[str, str]
    source: str | None

    def as_event(self) -> dict[str, Any]:
        """The outcome as an event for monitors: ``time`` is the label's time (the
        order labels arrive in), ``predicted_at`` the prediction's, both RFC 3339
        text to the millisecond as in every event; ``latency_s`` is exact."""
        return {
            "time": format_time(self.labelled_at),
            "prediction_id": self.prediction_id,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "label": self.label,
            "predicted": self.predicted,
            "score": self.score,
            "error": self.error,
            "missed": self.missed,
            "latency_s": self.latency_s,
            "predicted_at": format_time(self.predicted_at),
            "segment": dict(self.segment),
            "source": self.source,
        }


def join(
    record: Mapping[str, Any], label_event: Event, positive: Collection[Label] | None = None
) -> LabelOutcome:
    """Score a stored prediction against its label event.

    ``positive`` is the set of classes whose misses are tracked (``None``: every
    class, i.e. per-class recall).  A label event for another model than the
    prediction's raises :class:`ValueError`: one of the two producers is wrong,
    and scoring it would charge one model with the other's truth.

    >>> record = {"model_id": "derm", "time": 1795687200.0, "label": "benign",
    ...           "segment": {"age_band": "65+"}}
    >>> label = {"event_id": "l1", "time": "2026-11-30T10:00:00Z", "prediction_id": "p1",
    ...          "model_id": "derm", "label": "melanoma", "source": "biopsy"}
    >>> out = join(record, label, positive={"melanoma", "carcinoma"})
    >>> out.error, out.missed, out.latency_s / 86400, dict(out.segment)
    (1.0, 1.0, 4.0, {'age_band': '65+', 'label': 'melanoma'})
    >>> print(join(record, {**label, "label": "benign"}, positive={"melanoma"}).missed)
    None
    """
    model_id = label_event["model_id"]
    if record["model_id"] != model_id:
        raise ValueError(
            f"label event {label_event.get('event_id')!r} for prediction "
            f"{label_event.get('prediction_id')!r} names model {model_id!r}, but the stored "
            f"prediction was made by model {record['model_id']!r}"
        )
    true: Label = label_event["label"]
    predicted: Label | None = record.get("label")
    if predicted is None:
        error = missed = None
    else:
        error = 0.0 if predicted == true else 1.0
        missed = error if positive is None or true in positive else None
    predicted_at = float(record["time"])
    labelled_at = parse_time(label_event["time"])
    segment = dict(record.get("segment") or {})
    segment["label"] = label_text(true)
    return LabelOutcome(
        prediction_id=str(label_event["prediction_id"]),
        model_id=model_id,
        model_version=record.get("model_version"),
        predicted=predicted,
        label=true,
        score=record.get("score"),
        error=error,
        missed=missed,
        predicted_at=predicted_at,
        labelled_at=labelled_at,
        latency_s=labelled_at - predicted_at,
        segment=segment,
        source=label_event.get("source"),
    )


class PredictionStore(Protocol):
    """Prediction records by ``prediction_id``, each kept for a TTL.

    Records are JSON-able mappings, stored as JSON: what comes back is
    ``orjson.loads(orjson.dumps(record))`` (a tuple comes back a list), a copy
    that later changes to either side do not reach.  A put of an id that exists
    replaces it and its TTL (so replaying inference events is harmless).  Reads
    do not remove (see the module's docstring); an expired record reads as
    ``None``.  ``ttl_s`` must be > 0; stores keep at least millisecond precision.
    """

    def put(self, prediction_id: str, record: Mapping[str, Any], ttl_s: float) -> None: ...

    def put_many(self, records: Iterable[tuple[str, Mapping[str, Any]]], ttl_s: float) -> None:
        """Store many records with one TTL: on Redis, one round trip per few thousand."""
        ...

    def get(self, prediction_id: str) -> dict[str, Any] | None: ...

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The records found, by id (ids not found or expired are left out)."""
        ...

    def close(self) -> None: ...
