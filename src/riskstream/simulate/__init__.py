"""Seeded simulators of the three situations riskstream must handle (docs/design/situations.md).

Each ``simulate_<name>(seed, *, scale, start, **options) -> Simulation`` returns the
Kafka records of one scenario — ``(topic_kind, key, event)`` in data-time order,
``topic_kind`` one of ``inference``, ``sensor``, ``label``, ``change`` (map it to a
topic name with ``config.topics``) — and its JSON-able ground truth: when the
failure starts, what fails, for whom, what caused it, and counts.  The same seed
gives the same records; every event matches its schema in ``schemas/``.

- ``chatbot``: an LLM support bot starts giving harmful answers to one group.
- ``manufacturing``: a temperature sensor drifts; the anomaly model fed by it
  goes silent, then the maintenance model downstream recommends stopping the line.
- ``medical``: a diagnostic model's recall for one subtype in one age band falls;
  true labels arrive days later.

>>> sim = SCENARIOS["chatbot"](seed=1, scale=0.01)
>>> sim.truth["failing_subjects"], sim.truth["affected_segment"]
(['support-bot'], {'group': 'group-c'})
>>> sorted(k for k, n in sim.counts().items() if n)
['change', 'inference']
"""

from __future__ import annotations

from collections.abc import Callable

from riskstream.simulate._common import KINDS, START, Simulation
from riskstream.simulate.chatbot import simulate_chatbot
from riskstream.simulate.manufacturing import simulate_manufacturing
from riskstream.simulate.medical import simulate_medical

__all__ = [
    "KINDS",
    "SCENARIOS",
    "START",
    "Simulation",
    "simulate_chatbot",
    "simulate_manufacturing",
    "simulate_medical",
]

SCENARIOS: dict[str, Callable[..., Simulation]] = {
    "chatbot": simulate_chatbot,
    "manufacturing": simulate_manufacturing,
    "medical": simulate_medical,
}
"""Scenario name -> its simulator."""
