"""The containment service: incidents in, routing flags out, each action at most once.

It sees ports and the core only, so the faust worker, the embedded demo and the
tests run this same code.

At most once: every (incident, action) has a deterministic change id, and the flag
store refuses a change id it has applied before — so an incident redelivered after
a crash (the flag written, the offset not yet committed) finds its change already
applied, and changes nothing.

Announced once the broker takes it, whatever stops in between: each change's events
go to the flag store's outbox with the flag (:mod:`riskstream.services.announcer`).

Before a route-to-version or fallback action applies, its candidate targets are
checked (:mod:`riskstream.core.targets`, evidence from
:mod:`riskstream.services.target_evidence`); an action with ``steps`` moves its
first share and leaves the rest of the plan in the flag (``rollout``), which
:meth:`ContainmentService.advance_steps` (the worker's timer) carries on — after a
restart too, since the plan lives in the flag: an interrupted step is watched
again for its full dwell from the restart, so incidents that arrived meanwhile are
read before it is judged.  A step whose analysis fails (an open incident names the
target) is rolled back to the state before the shift, and opens an incident.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from riskstream.core.admission import Refused, TimeLimits, event_time
from riskstream.core.approvals import (
    GROUPED_MODEL,
    Member,
    PendingAction,
    carry_out_problem,
    check_decision,
)
from riskstream.core.audit import AuditEntry, AuditReport
from riskstream.core.incident_records import (
    Correlation,
    IncidentRecord,
    correlate,
    headline,
    join_group,
    note_action,
    record_incident,
    with_entry,
)
from riskstream.core.outbox import OutboxEvent
from riskstream.core.playbooks import (
    Action,
    Candidate,
    ContainmentPolicy,
    Playbook,
    candidates,
    gated_by_approval,
    last_known_good,
    select_playbook,
    target_flag,
)
from riskstream.core.routing import FlagChange, Rollout, RoutingFlag, change_id
from riskstream.core.storms import StormControl
from riskstream.core.targets import choose, explain, names_target
from riskstream.core.timeutil import format_time, parse_time
from riskstream.dead_letters import fitted
from riskstream.errors import BusError, ContainmentError, NotPermittedError, StateStoreError
from riskstream.metrics import ContainmentMetrics
from riskstream.ports import ApprovalStore, FlagStore, IncidentStore, Producer
from riskstream.services.announcer import Announcer, bus_outage
from riskstream.services.incident_intake import incident_rejection, unconfirmed_resolution
from riskstream.services.target_evidence import gather, open_naming
from riskstream.signing import RecordSigner
from riskstream.validation import validator_for

__all__ = [
    "CONTAINMENT_ACTOR",
    "RESERVED_ACTORS",
    "STEP_MONITOR",
    "ContainmentService",
]

log = logging.getLogger(__name__)

CONTAINMENT_ACTOR = "riskstream/containment"
TIMEOUT_ACTOR = "riskstream/timeout"
RESERVED_ACTORS = "riskstream"  # riskstream and riskstream/...: its own processes, no person
_INCIDENT_FIELDS = ("incident_id", "type", "severity", "subject", "onset_at", "summary")
STEP_MONITOR = "riskstream/step-analysis"  # the monitor of a failed step's own incident
_PICKS_TARGET = ("route-to-version", "fallback")
# Correlation reads at most this many incidents per related subject, the earliest in the
# window: the group to join is the earliest open one's, and a flood of incidents on one
# subject made each new one read (and check) all the others: 2,000 on one model took
# 102 ms of CPU per incident, the rate falling from 16.8 to 6.2 a second.
NEIGHBOURS_PER_SUBJECT = 32
# The timer's tasks, as riskstream_containment_timer_errors_total{task} names them.
_EXPIRE_TASK, _LAPSE_TASK, _STEPS_TASK = "expire approvals", "lapse flags", "progressive steps"
# Change ids (and counted outcomes) a worker remembers, the newest: what a retry of the
# same incident, or a timed change done again, finds (a retry comes within minutes).
REMEMBERED = 10_000


def _first(action: Action) -> str:
    return "fallback" if action.kind == "fallback" else str(action.version)


class _Stale(Exception):
    """A deploy older than the flag it would change (:meth:`ContainmentService.on_change_event`)."""

    def __init__(self, flag: RoutingFlag) -> None:
        super().__init__(flag.model_id)
        self.flag = flag


class ContainmentService:
    """Applies the containment policy to incidents: picks the playbook, changes routing
    flags (each change at most once), parks actions that need approval, reverts on
    resolve, and records every step on the incident and in the audit trail.

    It sees only ports, so the faust worker, the embedded demo and the tests share it.
    """

    def __init__(
        self,
        policy: ContainmentPolicy,
        flags: FlagStore,
        approvals: ApprovalStore,
        producer: Producer,
        metrics: ContainmentMetrics,
        clock: Callable[[], float] = time.time,
        incidents: IncidentStore | None = None,
        correlation: Correlation | None = None,
        signer: RecordSigner | None = None,
        time_limits: TimeLimits | None = None,
    ) -> None:
        self._policy = policy
        # How far ahead of the clock a change event may be dated (the processor's
        # processor.max_time_ahead_s): a deploy dated 2099 would date its flag there, and
        # every later deploy would read as older than it.  Old ones are kept as before
        # (a deploy older than its flag is not written over it: on_change_event).
        limits = time_limits or TimeLimits()
        self._time_limits = TimeLimits(max_age_s=float("inf"), max_ahead_s=limits.max_ahead_s)
        self._signer = signer  # None: incidents are believed unsigned (no key is set)
        self._flags = flags
        self._approvals = approvals
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._incidents = incidents
        self._correlation = correlation or Correlation()
        self._storms = StormControl(policy.limits.storms)
        self._announcer = Announcer(
            flags, producer, metrics, policy.routing_changes_topic, policy.incidents_topic
        )
        # The audit trail, read incrementally (it only grows) into the indexes that keep
        # each action's cost constant: entries by change id and by model, and the
        # models automatic containment changed within the limits' window.
        self._audit_seq = 0
        self._by_change: dict[str, AuditEntry] = {}
        self._by_model: dict[str, list[AuditEntry]] = {}
        self._touches: deque[tuple[float, str]] = deque()
        self._touched: Counter[str] = Counter()
        # Steps this process watches: (model, first change, step) -> (when it is judged,
        # the target).  A step found in a flag but not here was started before a restart.
        self._watching: dict[tuple[str, str, int], tuple[float, str]] = {}
        # Timed changes (a step, a rollback, a lapse) written but not finished: what
        # follows the write (the note on the incident's timeline, the failed step's
        # incident record) raised.  The flag may no longer say anything is left to do
        # (a rollback or a lapse clears what set it off), so each is kept here, by
        # change id, as (task, what, a call that does it again), and done again at
        # every tick until it goes through: the same change id comes back "duplicate"
        # from the store.  (Their events are in the outbox, which survives a restart;
        # this does not: a restart between a write and its note loses the note only.)
        self._unfinished: dict[str, tuple[str, str, Callable[[], str]]] = {}
        # Changes applied by a call that then raised (the broker did not take them, Redis
        # failed later on): the call is retried, and they come back "duplicate" from the
        # store, yet this very worker applied them for it.  ``_writing``: the changes of
        # the call in progress (None: none), forgotten once it returns.  And what the
        # counters counted: each incident event and each outcome of a change id once,
        # however often it is retried.
        self._applied_here: OrderedDict[str, None] = OrderedDict()
        self._writing: list[str] | None = None
        self._counted: OrderedDict[tuple[str, ...], None] = OrderedDict()

    # -- inputs -----------------------------------------------------------------

    def receive_incident(
        self, raw: bytes, headers: Sequence[tuple[str, bytes | str | None]] = ()
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """A record from the incidents topic, which any producer can write: its
        signature checked when this worker holds a key (:mod:`riskstream.signing`),
        then its content (:func:`~riskstream.services.incident_intake.incident_rejection`,
        the notifier's check too), then handled.  What is not an incident, or raises while handled,
        goes to the dead-letter topic with the reason and the worker goes on (``None``):
        this worker owns the dead letters of the incidents topic (the notifier only
        skips and counts).  StateStoreError propagates, for the caller to retry, and so
        does a BusError (the broker did not take a routing change or the dead letter)
        unless the broker refused the record itself (:func:`bus_outage`): an outage
        is not the incident's fault, and dead-lettered, its routing change would reach
        the routing-changes topic only if an update of the incident came."""
        if self._signer is not None:
            forged = self._signer.problem(self._policy.incidents_topic, raw, headers)
            if forged is not None:
                self._reject(raw, *forged)
                return None, []
        try:
            incident = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._reject(raw, "not_json", f"not JSON: {exc}")
            return None, []
        problem = incident_rejection(incident)
        if problem is not None:
            self._reject(raw, "not_incident", problem)
            return None, []
        if self._incidents is not None:
            problem = unconfirmed_resolution(incident, self._incidents)
            if problem is not None:
                self._reject(raw, "unconfirmed_resolution", problem)
                return None, []
        try:
            return incident, self.on_incident(incident)
        except StateStoreError:
            raise
        except BusError as exc:
            if bus_outage(exc):
                raise
            log.exception("incident %s: failed while handled", incident["incident_id"])
            why = f"incident {incident['incident_id']!r}: {type(exc).__name__}: {exc}"
            self._reject(raw, "apply_error", why)
            return None, []
        except Exception as exc:  # one incident's failure must not stop the worker
            log.exception("incident %s: failed while handled", incident["incident_id"])
            why = f"incident {incident['incident_id']!r}: {type(exc).__name__}: {exc}"
            self._reject(raw, "apply_error", why)
            return None, []

    def receive_change(self, raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
        """A record from the change-events topic: checked against its schema, then
        handled.  A bad one is skipped and counted (the processor, which reads the same
        topic, dead-letters it); StateStoreError propagates, and so does a BusError of a
        broker that is away (:func:`bus_outage`): the deploy's routing change is published
        when the event is handled again."""
        try:
            event = orjson.loads(raw)
            validator_for("change-event")(event)
            # Dated too far ahead, the processor dead-letters it (time_ahead): so do not
            # act on it here, nor list it on incidents.
            event_time(str(event["time"]), self._clock(), self._time_limits)
            return event, self.on_change_event(event)
        except StateStoreError:
            raise
        except BusError as exc:
            if bus_outage(exc):
                raise
            log.error("skipping a change event whose routing change the broker refuses: %s", exc)
            self._metrics.rejected.labels("change-event").inc()
            return None, None
        except Exception as exc:
            log.error("skipping a change event riskstream cannot use: %s: %s",
                      type(exc).__name__, exc)  # fmt: skip
            self._metrics.rejected.labels("change-event").inc()
            return None, None

    def _reject(self, raw: bytes, reason: str, message: str) -> None:
        log.error("incidents topic: %s: %s", reason, message)
        headers = [
            ("riskstream_reason", reason.encode()),
            ("riskstream_error", message.encode()[:1024]),
            ("riskstream_source", orjson.dumps({"topic": self._policy.incidents_topic})),
        ]
        value, _, cut = fitted(raw, None)  # one huge record stopped the worker
        self._producer.produce(self._policy.dead_letter_topic, value, None, headers + cut)
        self._producer.flush()
        self._metrics.rejected.labels(reason).inc()  # dead-lettered: not again at each retry

    def on_incident(self, incident: Mapping[str, Any]) -> list[str]:
        """Carry out the matching playbook; one outcome per action, in order.

        Every action is carried out (written) before the changes are published, so a
        broker that does not take them (BusError: call again, nothing is done twice)
        holds back no action of the incident, only its announcement."""
        received = self._clock()
        event = orjson.dumps(dict(incident), option=orjson.OPT_SORT_KEYS, default=str)
        if self._once("incident", hashlib.blake2b(event, digest_size=16).hexdigest()):
            self._metrics.incidents.inc()  # an event, not each try of it
        with self._retried():
            outcomes = self._contain(incident, received)
            self.publish_outbox()
        return outcomes

    @contextlib.contextmanager
    def _retried(self) -> Iterator[None]:
        """A call the worker retries when it raises: the changes it applied are this
        worker's when it comes again ("applied", not "duplicate"), until it returns."""
        if self._writing is not None:  # within another such call: that one decides
            yield
            return
        self._writing = []
        try:
            yield
            for cid in self._writing:  # returned: a redelivery is a duplicate again
                self._applied_here.pop(cid, None)
        finally:
            self._writing = None

    def _contain(self, incident: Mapping[str, Any], received: float) -> list[str]:
        incident_id = str(incident["incident_id"])
        new = self._record_new(incident_id, incident, received)
        if incident.get("status") == "resolved":
            return self.on_resolved(incident)
        if new:
            self._abort_named_by(incident)
        if incident.get("monitor") == STEP_MONITOR:
            return []  # containment's own report: a person decides, no playbook acts on it
        self._catch_up_deploys(incident)
        playbook = select_playbook(self._policy.playbooks, incident)
        if playbook is None:
            log.info("incident %s: no playbook matches", incident_id)
            return []
        # A storm counts incidents, not their updates; an update of an incident a storm
        # holds stays held (its group decides), whatever the count now.
        held = None if new else self._held_by(incident_id)
        storm = None
        if new:
            storm = self._storms.admit(str(incident.get("monitor") or ""), received)
        outcomes = []
        for index, action in enumerate(playbook.actions):
            if held is not None and action.changes_routing:
                outcome = f"pending: held in grouped action {held}"
            elif storm is not None and action.changes_routing:
                outcome = self._join_storm(storm, playbook, index, action, incident, received)
            else:
                outcome = self._start(index, action, incident)
            self._count(action.kind, outcome, change_id(incident_id, index))
            self._note_action(
                incident_id, CONTAINMENT_ACTOR, action.kind, outcome, change_id(incident_id, index)
            )
            outcomes.append(outcome)
        self._metrics.time_to_flag.observe(self._clock() - received)
        return outcomes

    def on_change_event(self, event: Mapping[str, Any]) -> str | None:
        """A deploy (or rollback) by someone else: record the new version in the flag.

        The audit trail of these changes is where "last known-good" comes from.  A
        deploy dated before the flag's last change ("stale": a change event that came
        late, out of order or again under another id) is not written over it: it
        would undo a newer rollback or fallback, and lift its incident's containment.
        One dated further ahead than the processor accepts is not recorded at all.
        """
        if event.get("kind") != "deploy" or not event.get("version"):
            return None
        model_id, version = str(event["subject"]), str(event["version"])
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in version + model_id):
            log.error(
                "deploy event %s: its subject or version holds control characters (%r, %r); "
                "not recorded: a serving layer would misread it",
                event.get("event_id"), model_id, version,
            )  # fmt: skip
            return None
        try:
            at = event_time(str(event["time"]), self._clock(), self._time_limits)
        except Refused as exc:
            log.error("deploy event %s: not recorded: %s", event.get("event_id"), exc)
            self._metrics.rejected.labels("change-event").inc()
            return None
        if over := self._over_flag_limit(model_id):
            log.error("deploy event %s: not recorded: %s", event.get("event_id"), over)
            self._metrics.rejected.labels("change-event").inc()
            return None
        actor = str(event.get("actor") or "unknown")
        reason = f"deploy {version} by {actor}: {event.get('description', '')}".strip(": ")
        cid = change_id(str(event["event_id"]), 0, "deploy")
        self._catch_up()
        applied = cid in self._by_change  # then the store says "duplicate", as it should

        def wanted(current: RoutingFlag | None) -> RoutingFlag:
            if not applied and current is not None and at < current.updated_at:
                raise _Stale(current)
            base = current or RoutingFlag(model_id=model_id, active_version=version)
            return base.evolve(
                active_version=version, mode="normal", traffic_fraction=1.0, reason=reason,
                incident_id=None, actor=actor, revision=base.revision + 1, updated_at=at,
                expires_at=None, previous_version=None, previous_mode=None, rollout=None,
            )  # fmt: skip

        with self._retried():
            try:
                outcome = self._write(cid, model_id, wanted, at)
            except _Stale as stale:
                log.warning(
                    "deploy event %s (%s %s, dated %s) is older than the flag's last change "
                    "(%s, %s: %s): not written over it",
                    event.get("event_id"), model_id, version, format_time(at),
                    format_time(stale.flag.updated_at), stale.flag.actor, stale.flag.reason,
                )  # fmt: skip
                return "stale"
            self.publish_outbox()
        return outcome

    def _over_flag_limit(self, model_id: str) -> str:
        """Why a deploy may not create ``model_id``'s flag ('' if it may): a model with
        no flag, not declared under ``models``, once ``limits.max_flags`` flags exist."""
        limit = self._policy.limits.max_flags
        if model_id in self._policy.models or self._flags.get(model_id) is not None:
            return ""
        if (count := self._flags.count()) < limit:
            return ""
        return (
            f"{model_id!r} has no routing flag and {count} flags exist, the most deploy "
            f"events may create (containment.limits.max_flags: {limit}); declare the model "
            "under containment.models, or raise the limit, if it is real"
        )

    def on_resolved(self, incident: Mapping[str, Any]) -> list[str]:
        """Undo the actions marked ``revert_on_resolve``, unless someone changed the flag since."""
        incident_id = str(incident["incident_id"])
        self._expire_actions_of(incident_id)
        playbook = select_playbook(self._policy.playbooks, incident)
        if playbook is None:
            return []
        self._catch_up()
        outcomes = []
        for index, action in enumerate(playbook.actions):
            applied = self._by_change.get(change_id(incident_id, index))
            if not action.revert_on_resolve or applied is None:
                continue
            last = self._last_step(applied.change_id, len(action.steps))
            current = self._flags.get(applied.model_id)
            if current is None or current.revision != last.after.get("revision"):
                outcomes.append("kept: the flag changed since; not reverting over it")
                continue
            before = applied.before
            revert_id = change_id(incident_id, index, "revert")

            def wanted(cur: RoutingFlag | None, before: Any = before) -> RoutingFlag:
                assert cur is not None
                restored = RoutingFlag.from_data(before) if before else cur.evolve(mode="normal")
                return restored.evolve(
                    reason=f"incident {incident_id} resolved: reverted",
                    actor=CONTAINMENT_ACTOR, revision=cur.revision + 1,
                    updated_at=self._clock(), incident_id=incident_id,
                )  # fmt: skip

            outcome = self._write(revert_id, applied.model_id, wanted, self._clock())
            self._count(action.kind, "reverted", revert_id)
            self._note_action(
                incident_id, CONTAINMENT_ACTOR, f"revert {action.kind}", outcome, revert_id
            )
            outcomes.append(f"reverted: {outcome}")
        self.publish_outbox()
        return outcomes

    # -- approvals ----------------------------------------------------------------

    def decide(self, action_id: str, status: str, by: str, note: str = "") -> PendingAction:
        """Approve or reject a pending action; an approved one is carried out at once.

        An action of an incident resolved meanwhile is not carried out: it expires.
        Approving an action approved but not applied completes it (:meth:`_complete`).
        """
        pending = self._approvals.get(action_id)
        if status == "approved" and pending is not None and pending.status == "approved":
            return self._complete(pending, by)
        if (
            status == "approved"
            and pending is not None
            and pending.group is None
            and self._resolved(pending.incident_id)
        ):
            self._expire_actions_of(pending.incident_id)
            raise ContainmentError(
                f"action {action_id} cannot be approved: its incident "
                f"{pending.incident_id} is resolved, so its pending actions expired"
            )
        if status == "approved" and pending is not None and pending.status == "pending":
            check_decision(pending, status, by)  # the rules first: they are about the person
            self._refuse_past_deadline(pending)
            self._refuse_unreadable(pending)
        decided = self._approvals.decide(action_id, status, by, self._clock(), note)
        self._metrics.actions.labels(decided.kind, status).inc()
        self._refresh_pending_gauge()
        self._decided(decided)
        if status == "approved" and decided.group is not None:
            self._carry_out_group(decided, actor=by)
        elif status == "approved":
            outcome = self._carry_out(decided, actor=by)
            if outcome.startswith("failed"):
                raise ContainmentError(f"approved, but not applied: {outcome[len('failed: ') :]}")
        return decided

    def _complete(self, approved: PendingAction, by: str) -> PendingAction:
        """Carry out again an action approved but not marked applied: the broker did not
        take its routing-change event, or the process stopped in between.

        The decision stands as recorded, its approver's, who stays the flag's actor.  Each
        flag change applies at most once (its change id), so this changes nothing twice:
        it writes what was not written, publishes what waits in the outbox (the event
        as first written, under its id), and marks the action applied.  ``by`` asked
        for it.
        """
        actor = approved.decided_by or by
        if approved.group is None and self._resolved(approved.incident_id):
            self._expire_actions_of(approved.incident_id)
            raise ContainmentError(
                f"action {approved.action_id} was approved by {actor} but not carried out "
                f"to the end, and its incident {approved.incident_id} is resolved since: "
                "nothing more is carried out for an incident that is over, so it expired"
            )
        self._refuse_unreadable(approved)
        log.info(
            "action %s, approved by %s but not applied: carried out again for %s",
            approved.action_id, actor, by,
        )  # fmt: skip
        if approved.group is not None:
            self._carry_out_group(approved, actor=actor)
        else:
            outcome = self._carry_out(approved, actor=actor)
            if outcome.startswith("failed"):
                raise ContainmentError(
                    f"approved by {actor}, but not applied: {outcome[len('failed: ') :]}"
                )
        return self._approvals.get(approved.action_id) or approved

    def _refuse_past_deadline(self, pending: PendingAction) -> None:
        """Refuse an approval that comes after the deadline of an action whose playbook
        rejects on timeout, and expire the action as the timer would have (it runs each
        second, but not while the worker is down or busy).  The policy gave people until
        then; a rollback approved later may no longer fit what the model serves.  (On
        ``on_timeout: apply`` a late approval does what the timer would do, with a
        person's name on it, so it stands; so does a late rejection, which changes
        nothing.)"""
        now = self._clock()
        if pending.expires_at is None or now < pending.expires_at:
            return
        if pending.on_timeout == "apply":
            return
        # decided meanwhile (the timer, another person): ContainmentError says by whom
        expired = self._approvals.decide(
            pending.action_id, "expired", TIMEOUT_ACTOR, now, "approval timed out"
        )
        self._metrics.actions.labels(pending.kind, "expired").inc()
        self._refresh_pending_gauge()
        self._decided(expired)
        raise ContainmentError(
            f"action {pending.action_id} cannot be approved: its approval timed out at "
            f"{format_time(pending.expires_at)} and its playbook says on_timeout: reject, "
            "so it expired now, with nothing carried out. If the model still needs the "
            "change, make it by hand (riskstream flags set, or PUT /api/v1/flags/{model})"
        )

    def _refuse_unreadable(self, pending: PendingAction) -> None:
        """Refuse, before anything is recorded, an approval its stored record could not
        carry out (written by something other than riskstream).  A member record that
        cannot be read refuses it too (StateStoreError, naming it): carried out, the
        action would skip that incident and still be marked applied."""
        members = self._approvals.members(pending.action_id, strict=True) if pending.group else []
        problem = carry_out_problem(pending, members)
        if problem is not None:
            raise StateStoreError(
                f"action {pending.action_id} cannot be approved: its stored record is not "
                f"what riskstream writes ({problem}), so it could not be carried out. "
                "Nothing was recorded. Reject it (a rejection carries nothing out) and "
                "change the flag by hand if it still needs changing, or repair the stored "
                "action and approve it again"
            )

    def expire_due(self) -> list[PendingAction]:
        """Expire pending actions past their deadline; apply those whose playbook says so.

        Each action on its own: one that raises is logged and counted, and the others
        expire (:meth:`_on_its_own`)."""
        now = self._clock()
        expired = []
        for pending in self._approvals.due(now):
            item = f"action {pending.action_id} of model {pending.model_id}"
            with self._on_its_own(_EXPIRE_TASK, item):
                try:
                    decided = self._approvals.decide(
                        pending.action_id, "expired", TIMEOUT_ACTOR, now, "approval timed out"
                    )
                except ContainmentError:  # decided meanwhile by a person: theirs stands
                    continue
                self._metrics.actions.labels(pending.kind, "expired").inc()
                self._decided(decided)
                if decided.on_timeout == "apply":
                    self._apply_on_timeout(decided)
                expired.append(decided)
        self._refresh_pending_gauge()
        return expired

    def run_due(self) -> list[str]:
        """Expire approvals, lapse flags and judge progressive steps that are due, each
        on its own; what happened, one line each, for the log.  Run by a timer.

        One of them failing (a record or state no check foresaw, a bug) must not stop
        the others, nor the worker: an exception out of a faust timer crashes the whole
        worker, and a restarted one would crash again at its first tick, leaving new
        incidents uncontained.  So it is logged with its traceback, counted in
        ``riskstream_containment_timer_errors_total{task}`` (which alerts), and tried
        again at the next tick.  Within a task each item (an action, a flag) runs on
        its own the same way (:meth:`_on_its_own`), so one bad flag does not hold back
        the others.  A StateStoreError is not about one task but Redis: it goes to
        the caller, which retries.
        """
        tasks: tuple[tuple[str, Callable[[], list[str]]], ...] = (
            (_EXPIRE_TASK, lambda: [
                f"approval for {p.action_id} expired" for p in self.expire_due()
            ]),
            (_LAPSE_TASK, lambda: [
                f"routing flag of {m} lapsed after its ttl: restored" for m in self.lapse_flags()
            ]),
            (_STEPS_TASK, lambda: [
                f"progressive shift: {outcome}" for outcome in self.advance_steps()
            ]),
        )  # fmt: skip
        said: list[str] = []
        for task, run in tasks:
            with self._on_its_own(task):
                said.extend(run())
        bus = self._metrics.bus
        try:  # this tick's changes, and whatever earlier ones (or another process) left
            sent = self.publish_outbox(everything=True)
        except BusError as exc:
            if not bus.failing:
                log.error("timer: the broker did not take the routing changes waiting in "
                          "the outbox; they are published at a later tick: %s", exc)  # fmt: skip
            bus.failed(str(exc))
        else:
            if sent and bus.failing:  # the broker took them: it answers again
                log.info("timer: the broker takes the routing changes again")
                bus.ok()
        return said

    @contextlib.contextmanager
    def _on_its_own(self, task: str, item: str = "") -> Iterator[None]:
        """Run a timed task, or one item of it (a flag, an action), on its own.

        Each task loops over items (due approvals, flags), and one item that raises
        (a stored record no check foresaw, a bug) would stop every later one of the
        tick, and of every tick after it, since it raises again each time: one bad
        flag would keep every other model's flag from lapsing or stepping on.  So the
        exception is logged with its traceback, naming the task and the item, and
        counted in ``riskstream_containment_timer_errors_total{task}``; the rest of
        the tick goes on.  A StateStoreError is about Redis, not the item: it goes to
        the caller, which retries.
        """
        try:
            yield
        except StateStoreError:
            raise
        except Exception:
            what = f"{task}: {item}" if item else task
            log.exception("timer: %s failed; the rest of the tick goes on", what)
            self._metrics.timer_errors.labels(task).inc()

    def _apply_on_timeout(self, expired: PendingAction) -> None:
        """Carry out an expired action whose playbook says ``on_timeout: apply``.

        Its stored record is checked first, as an approval's is: one that riskstream
        did not write (a hand edit, another tool) would raise half-way through, and
        stop every expiry, lapse and progressive step after it in this tick.  Nobody
        decided it, so nothing is applied: it counts as failed and says why on its
        incident's timeline, and a person changes the flag by hand if it needs it.
        """
        members = self._approvals.members(expired.action_id, strict=True) if expired.group else []
        problem = carry_out_problem(expired, members)
        if problem is not None:
            log.error(
                "action %s expired and its playbook says apply, but its stored record is "
                "not what riskstream writes (%s): not applied; change the flag of %s by "
                "hand (riskstream flags set) if it still needs changing",
                expired.action_id, problem, expired.model_id,
            )  # fmt: skip
            self._count(expired.kind, "failed", expired.action_id)
            outcome = f"failed: its stored record is not what riskstream writes ({problem})"
            self._note_action(
                expired.incident_id, TIMEOUT_ACTOR, expired.kind, outcome, expired.action_id
            )
        elif expired.group is not None:
            self._carry_out_group(expired, actor=TIMEOUT_ACTOR)
        elif not self._resolved(expired.incident_id):
            self._carry_out(expired, actor=TIMEOUT_ACTOR)

    def lapse_flags(self) -> list[str]:
        """Undo flag changes whose ``ttl`` has run out; the models whose flag was restored.

        The flag goes back to what it was before the change that set the expiry,
        unless someone changed it since (then it carries no expiry of ours any more).
        Each flag on its own: one that raises is logged and counted, and the others
        lapse (:meth:`_on_its_own`).
        """
        now = self._clock()
        restored = self._finish(_LAPSE_TASK)
        for model_id, flag in self._flags.all().items():
            if flag.expires_at is None or flag.expires_at > now:
                continue
            with self._on_its_own(_LAPSE_TASK, f"model {model_id}"):
                self._lapse(model_id, flag, now)
                restored.append(model_id)
        return restored

    def _finish(self, task: str) -> list[str]:
        """Do again, each on its own, the changes of ``task`` written but not
        finished (see ``_unfinished``); what came of those that went through."""
        said = []
        for _, (of, item, again) in list(self._unfinished.items()):
            if of == task:
                with self._on_its_own(task, f"{item} (written; finishing it)"):
                    said.append(again())
        return said

    def _lapse(self, model_id: str, flag: RoutingFlag, now: float) -> str:
        """Put back what the flag was before the change that set its expiry."""
        self._catch_up()
        setting = next(
            (e for e in reversed(self._by_model.get(model_id, ()))
             if e.after.get("revision") == flag.revision),
            None,
        )  # fmt: skip
        before = setting.before if setting is not None else None
        cid = f"{setting.change_id if setting else f'{model_id}:{flag.revision}'}:lapsed"

        def wanted(cur: RoutingFlag | None) -> RoutingFlag:
            assert cur is not None
            back = (
                RoutingFlag.from_data(before)
                if before
                else cur.evolve(
                    mode="normal", traffic_fraction=1.0, previous_version=None,
                    previous_mode=None, rollout=None,
                )
            )  # fmt: skip
            return back.evolve(
                reason=f"lapsed after its ttl: {flag.reason}", actor=CONTAINMENT_ACTOR,
                revision=cur.revision + 1, updated_at=now, expires_at=None,
                incident_id=flag.incident_id,
            )  # fmt: skip

        again = (_LAPSE_TASK, f"model {model_id}", lambda: self._lapse(model_id, flag, now))
        outcome = self._write(cid, model_id, wanted, now, again)
        if flag.incident_id:
            self._note_action(flag.incident_id, CONTAINMENT_ACTOR, "ttl lapsed", outcome, cid)
        self._unfinished.pop(cid, None)
        return model_id

    def advance_steps(self) -> list[str]:
        """Judge the progressive shifts whose step has dwelt its time: the next step if
        no open incident names the target, else a rollback (and an incident of its own).

        The plan is in the flag, so a worker that restarts finds it; a step it did not
        start itself is watched again for its full dwell from now (resumed, not judged
        at once, so the incidents that arrived while it was down are read first).
        Each shift on its own: one that raises is logged and counted, and the others
        go on (:meth:`_on_its_own`).
        """
        now = self._clock()
        outcomes = self._finish(_STEPS_TASK)
        in_flight, watched = set(), set(self._watching)
        for model_id, flag in self._flags.all().items():
            r = flag.rollout
            if r is None:
                continue
            in_flight.add((model_id, r.change, r.step))
            with self._on_its_own(_STEPS_TASK, f"model {model_id}, {r.describe()} of {r.change}"):
                outcome = self._judge_step(model_id, flag, r, now)
                if outcome is not None:
                    outcomes.append(outcome)
        for gone in watched - in_flight:  # reverted, overridden or redeployed meanwhile
            self._watching.pop(gone, None)
        return outcomes

    def _judge_step(self, model_id: str, flag: RoutingFlag, r: Rollout, now: float) -> str | None:
        """The step in flight on ``flag``: moved on or rolled back when its dwell is over
        (what came of it); watched again if this process did not start it (None)."""
        key = (model_id, r.change, r.step)
        due = self._watching.get(key, (None, ""))[0]
        if due is None:
            self._watching[key] = (now + r.dwell_s, flag.active_version)
            words = (
                f"{r.describe()} of the shift to {flag.active_version} was started before "
                f"a restart of the containment worker; watching it again for {r.dwell_s:g} s"
            )
            self._flags.record_event(
                f"{r.change}:{r.step}:resumed:{uuid.uuid4().hex}", model_id,
                CONTAINMENT_ACTOR, now,
                {"event": "step.resumed", "incident_id": r.incident_id, "note": words},
            )  # fmt: skip
            self._note_action(
                r.incident_id, CONTAINMENT_ACTOR, "step resumed", words, f"{key}:{now}"
            )
            return None
        if due > now:
            return None
        failure = self._step_failure(model_id, flag)
        if failure:
            return self._roll_back(model_id, flag, failure)
        return self._next_step(model_id, flag)

    def override(
        self,
        model_id: str,
        by: str,
        reason: str,
        *,
        version: str | None = None,
        mode: str | None = None,
        traffic_fraction: float | None = None,
        approver: bool = False,
    ) -> RoutingFlag:
        """A person sets a model's flag by hand: audited under their name, published.

        Only an ``approver`` may undo what a person approved, or make a change the
        playbooks allow only with approval: anyone else would get around human
        oversight with a manual override.
        """
        if not reason.strip():
            raise ContainmentError("a manual flag change needs a reason, for the audit trail")
        cid = f"manual:{model_id}:{uuid.uuid4().hex}"
        now = self._clock()

        def wanted(current: RoutingFlag | None) -> RoutingFlag:
            if current is None and version is None:
                raise ContainmentError(f"{model_id} has no flag yet: give a version to create one")
            if not approver:
                self._refuse_unapproved(model_id, current, by, version, mode)
            base = current or RoutingFlag(model_id=model_id, active_version=str(version))
            changes: dict[str, Any] = {"mode": mode, "traffic_fraction": traffic_fraction}
            changes["active_version"] = version
            return base.evolve(
                **{k: v for k, v in changes.items() if v is not None},
                reason=f"manual: {reason}", actor=by, incident_id=None,
                revision=base.revision + 1, updated_at=now, expires_at=None, rollout=None,
            )  # fmt: skip

        self._write(cid, model_id, wanted, now)
        self.publish_outbox()
        flag = self._flags.get(model_id)
        assert flag is not None
        return flag

    def record_event(self, model_id: str, event: dict[str, object], by: str, key: str) -> bool:
        """An operator's act (acknowledge, resolve…) in the hash-chained audit trail."""
        return self._flags.record_event(key, model_id, by, self._clock(), event)

    def flags(self) -> dict[str, RoutingFlag]:
        """Every model's routing flag as it stands."""
        return self._flags.all()

    def flag(self, model_id: str) -> RoutingFlag | None:
        """One model's routing flag, read alone (:meth:`flags` reads every model's)."""
        return self._flags.get(model_id)

    def pending(self) -> list[PendingAction]:
        """Actions waiting for a person."""
        return self._approvals.list("pending")

    def actions(
        self,
        status: str | None = None,
        incident_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[PendingAction]:
        """Actions held for approval, in any state (``None``: all), a page at a time."""
        return self._approvals.list(status, incident_id=incident_id, after=after, limit=limit)

    def members(self, action_id: str) -> list[Member]:
        """The incidents a grouped (storm) action holds, but for any whose stored record
        cannot be read (left out, with a warning naming it; approving the action is
        refused until it is repaired or deleted)."""
        return self._approvals.members(action_id)

    def action(self, action_id: str) -> PendingAction | None:
        return self._approvals.get(action_id)

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        return self._flags.audit(start, count)

    def verify_audit(self) -> AuditReport:
        return self._flags.verify_audit()

    # -- internals ----------------------------------------------------------------

    def _record(
        self, incident_id: str, change: Callable[[IncidentRecord | None], IncidentRecord | None]
    ) -> None:
        if self._incidents is not None:
            self._incidents.update(incident_id, change)

    def _catch_up_deploys(self, incident: Mapping[str, Any]) -> None:
        """Record the subject's suspected deploys this worker has not read yet.

        Incidents and change events come on different topics, so an incident can
        overtake the deploy that caused it; "last known-good" would then be the
        version just deployed.  The incident lists that deploy among its suspects,
        so it is recorded first (the same change id as the change event's, so
        whichever comes second is a duplicate).  A deploy older than the flag's
        last change is not replayed over it.
        """
        subject = incident.get("subject")
        for change in incident.get("suspected_changes") or ():
            if change.get("kind") != "deploy" or change.get("subject") != subject:
                continue
            current = self._flags.get(str(subject))
            if current is not None and current.updated_at >= parse_time(str(change["time"])):
                continue
            self.on_change_event(change)

    def _record_new(self, incident_id: str, incident: Mapping[str, Any], at: float) -> bool:
        """Record the incident; a new one joins the group of a related open one.
        Whether it is new (True without an incident store: nothing says otherwise)."""
        if self._incidents is None:
            return True
        group = None
        new = self._incidents.get(incident_id) is None
        if new:
            group = correlate(incident, self._neighbours(incident), self._correlation)
        self._record(incident_id, lambda r: record_incident(r, incident, at, group))
        if group is not None:  # the member on the group's timeline; its story, root first
            lin = self._correlation.lineage
            self._record(group, lambda r: None if r is None else join_group(r, incident, at, lin))
        return new

    # -- target checks and steps ---------------------------------------------------

    def _check(
        self, cid: str, action: Action, incident: Mapping[str, Any], when: str = "apply"
    ) -> tuple[Candidate | None, str]:
        """The first candidate target the evidence does not refuse (None: none), and
        the words why; both go to the audit trail and the incident's timeline."""
        model_id, incident_id = str(incident["subject"]), str(incident["incident_id"])
        onset = parse_time(str(incident["onset_at"])) if incident.get("onset_at") else self._clock()
        known_good = last_known_good(self._history(model_id), onset)
        options = candidates(action, model_id, self._policy.model(model_id), known_good)
        if all(c.problem for c in options):
            return options[0], ""  # nothing to check: applying it fails with the reason
        history = self._by_model.get(model_id, [])
        evidence = [gather(model_id, c, incident, self._incidents, history) for c in options]
        pick, verdicts = choose(evidence, action.require_evidence)
        why = explain(verdicts, pick)
        if pick == 0:  # the first candidate passed: its words go in the flag's reason
            return options[0], why
        now = self._clock()
        event: dict[str, object] = {
            "event": "target.checked", "incident_id": incident_id, "action": action.kind,
            "chosen": None if pick is None else options[pick].version,
            "verdicts": [v.to_data() for v in verdicts], "note": why,
        }  # fmt: skip
        self._flags.record_event(f"{cid}:check:{when}", model_id, CONTAINMENT_ACTOR, now, event)
        self._note_action(incident_id, CONTAINMENT_ACTOR, "target check", why, f"{cid}:{when}")
        return (None if pick is None else options[pick]), why

    def _to_person(self, cid: str, action: Action, incident: Mapping[str, Any], why: str) -> str:
        """No candidate passed: the action waits for a person, who reads why."""
        pending = PendingAction(
            action_id=cid, incident_id=str(incident["incident_id"]),
            model_id=str(incident["subject"]), action=action.to_data(),
            requested_by=CONTAINMENT_ACTOR, requested_at=self._clock(), expires_at=None,
            on_timeout="reject", separate_approver=action.approval.separate_approver,
            note=why[:1024],
            labels={k: str(incident[k]) for k in _INCIDENT_FIELDS if k in incident},
        )  # fmt: skip
        self._approvals.add(pending)
        self._refresh_pending_gauge()
        return f"pending: {why}"

    def _last_step(self, first: str, steps: int) -> AuditEntry:
        """The audit entry of the last step applied of a shift (the first if no other)."""
        last = self._by_change[first]
        for n in range(1, steps):
            last = self._by_change.get(change_id(first, n, "step"), last)
        return last

    def _step_failure(self, model_id: str, flag: RoutingFlag) -> str:
        """Why the step in flight fails its analysis ('' if it passes): an open incident
        names the target, other than the one the shift contains."""
        r = flag.rollout
        assert r is not None
        trigger = self._incidents.get(r.incident_id) if self._incidents is not None else None
        around = trigger.incident if trigger is not None else {}
        found = open_naming(self._incidents, model_id, flag.active_version, around, {r.incident_id})
        if not found:
            return ""
        first = found[0]
        new = "new " if first.received_at >= r.started_at else ""
        return (
            f"{new}incident {first.incident_id} ({headline(first.incident)}) names "
            f"{flag.active_version} and is open during {r.describe()}"
        )

    def _abort_named_by(self, incident: Mapping[str, Any]) -> None:
        """A new incident that names the target of a shift in flight fails its step now."""
        incident_id = str(incident["incident_id"])
        subject = str(incident.get("subject", ""))
        watched = {m for (m, _, _), (_, target) in self._watching.items() if subject in (m, target)}
        for model_id in watched:  # only the shifts this incident can name: no read per shift
            flag = self._flags.get(model_id)
            r = flag.rollout if flag is not None else None
            if flag is None or r is None or r.incident_id == incident_id:
                continue
            if names_target(incident, model_id, flag.active_version):
                why = (
                    f"new incident {incident_id} ({headline(incident)}) names "
                    f"{flag.active_version} during {r.describe()}"
                )
                self._roll_back(model_id, flag, why)  # published with the incident's changes

    def _next_step(self, model_id: str, flag: RoutingFlag, at: float | None = None) -> str:
        r = flag.rollout
        assert r is not None
        now, n = self._clock() if at is None else at, r.step + 1
        last = n == len(r.steps) - 1
        step_id = change_id(r.change, n, "step")
        written = step_id in self._unfinished  # by this process: finishing it
        moved = dataclasses.replace(r, step=n, started_at=now, due_at=now + r.dwell_s)
        passed = (
            f"{moved.describe()} of the shift of {model_id} to {flag.active_version} for "
            f"incident {r.incident_id}: {r.describe()} passed its analysis (no open incident "
            f"names {flag.active_version} after {r.dwell_s:g} s)"
        )

        def wanted(cur: RoutingFlag | None) -> RoutingFlag:
            if cur is None or (cur.rollout != r and not written):
                raise ContainmentError(f"{model_id}: the flag changed since {r.describe()}")
            return cur.evolve(
                traffic_fraction=r.steps[n], rollout=None if last else moved,
                previous_version=None if last else cur.previous_version,
                previous_mode=None if last else cur.previous_mode,
                reason=passed[:1024], actor=CONTAINMENT_ACTOR, revision=cur.revision + 1,
                updated_at=now,
            )  # fmt: skip

        again = (
            _STEPS_TASK, f"model {model_id}, {moved.describe()} of {r.change}",
            lambda: self._next_step(model_id, flag, now),
        )  # fmt: skip
        try:
            outcome = self._write(step_id, model_id, wanted, now, again)
        except ContainmentError as exc:
            self._watching.pop((model_id, r.change, r.step), None)
            self._unfinished.pop(step_id, None)
            return f"kept: {exc}"
        self._watching.pop((model_id, r.change, r.step), None)  # only once it is written
        self._count("step", outcome, step_id)
        self._note_action(r.incident_id, CONTAINMENT_ACTOR, moved.describe(), outcome, step_id)
        self._unfinished.pop(step_id, None)
        return f"{outcome}: {passed}"

    def _roll_back(
        self, model_id: str, flag: RoutingFlag, why: str, at: float | None = None
    ) -> str:
        """Put the model back as it was before the shift, and open an incident saying so.

        The incident goes to the outbox with the rollback, atomically: both are
        published together, by this process or, should it stop first, the next.
        Written, the flag no longer carries the shift: if recording the incident or the
        note raises, the rollback is done again from ``_unfinished`` at each tick
        (``at``: when it was first tried, so the incident is the same)."""
        r = flag.rollout
        assert r is not None
        self._catch_up()
        first = self._by_change.get(r.change)
        before = first.before if first is not None else None
        now = self._clock() if at is None else at
        abort_id = change_id(r.change, r.step, "abort")
        written = abort_id in self._unfinished  # by this process: finishing it
        target = flag.active_version
        words = (
            f"rolled back: {r.describe()} of the shift of {model_id} to {target} for "
            f"incident {r.incident_id} failed its analysis: {why}"
        )

        def wanted(cur: RoutingFlag | None) -> RoutingFlag:
            if cur is None or (cur.rollout != r and not written):
                raise ContainmentError(f"{model_id}: the flag changed since {r.describe()}")
            back = (
                RoutingFlag.from_data(before)
                if before
                else cur.evolve(
                    active_version=cur.previous_version or cur.active_version,
                    mode=cur.previous_mode or "normal", traffic_fraction=1.0,
                    previous_version=None, previous_mode=None,
                )
            )  # fmt: skip
            return back.evolve(
                reason=words[:1024], actor=CONTAINMENT_ACTOR, revision=cur.revision + 1,
                updated_at=now, incident_id=r.incident_id, expires_at=None, rollout=None,
            )  # fmt: skip

        # The step stays watched until the rollback is written: one that raises (a
        # stored record it cannot read, a bug) is tried again at the next tick.  Dropped
        # before, the next tick took the step for one started before a restart, and
        # recorded it as resumed, and waited a full dwell more, at every failed try.
        again = (
            _STEPS_TASK, f"model {model_id}, rollback of {r.describe()} of {r.change}",
            lambda: self._roll_back(model_id, flag, why, now),
        )  # fmt: skip
        report: list[dict[str, Any]] = []

        def opened(restored: RoutingFlag) -> list[OutboxEvent]:
            report[:] = [self._failed_step(model_id, target, r, words, restored, now)]
            return [self._announcer.incident_event(report[0])]

        try:
            outcome = self._write(abort_id, model_id, wanted, now, again, also=opened)
        except ContainmentError as exc:
            self._watching.pop((model_id, r.change, r.step), None)
            self._unfinished.pop(abort_id, None)
            return f"kept: {exc}"
        self._watching.pop((model_id, r.change, r.step), None)
        if outcome == "applied":  # on record at once, so later checks refuse the target
            self._record_new(report[0]["incident_id"], report[0], now)
            log.error("%s", words)
        self._count("step", "rolled-back", abort_id)
        self._note_action(r.incident_id, CONTAINMENT_ACTOR, "step rolled back", words, abort_id)
        self._unfinished.pop(abort_id, None)
        return f"rolled back: {why}"

    def _failed_step(
        self, model_id: str, target: str, r: Rollout, words: str, restored: RoutingFlag,
        now: float,
    ) -> dict[str, Any]:  # fmt: skip
        """The incident a failed step opens of its own on the incidents topic (recorded
        at once too), naming the target, so later checks refuse it while open."""
        incident_id = change_id(r.change, r.step, "step-incident")
        back = f" Traffic is back on {restored.active_version} ({restored.mode})."
        data: dict[str, Any] = {
            "incident_id": incident_id, "type": "containment", "severity": "critical",
            "status": "open", "subject": model_id, "monitor": STEP_MONITOR,
            "stream_key": f"{model_id}|{target}", "detected_at": format_time(now),
            "onset_at": format_time(r.started_at),
            "evidence": {
                "detector": "step-analysis", "value": f"open incidents naming {target}",
                "before": {"count": 0, "mean": 0.0}, "after": {"count": 1, "mean": 1.0},
                "summary": f"{words}.{back} A person decides what next."[:1024],
                "step": {"index": r.step + 1, "of": len(r.steps), "fraction": r.steps[r.step],
                         "dwell_s": r.dwell_s},
                "contained_incident": r.incident_id,
            },
        }  # fmt: skip
        return data

    def _held_by(self, incident_id: str) -> str | None:
        """The grouped (storm) action holding this incident, if one does."""
        held = [a for a in self._approvals.list(incident_id=incident_id) if a.group is not None]
        return held[0].action_id if held else None

    def _neighbours(self, incident: Mapping[str, Any]) -> list[IncidentRecord]:
        """The stored incidents a new one may be related to: those of related subjects
        within the correlation window, and its parent."""
        assert self._incidents is not None
        rules = self._correlation
        if rules.window_s <= 0:
            return []
        try:
            detected = parse_time(str(incident["detected_at"]))
        except (KeyError, ValueError):
            detected = self._clock()
        found = self._incidents.near(
            rules.subjects(str(incident.get("subject"))),
            detected - rules.window_s,
            detected + rules.window_s,
            NEIGHBOURS_PER_SUBJECT,
        )
        parent = incident.get("parent_id")
        if parent and all(r.incident_id != parent for r in found):
            record = self._incidents.get(str(parent))
            found += [record] if record is not None else []
        return found

    def _note_action(self, incident_id: str, actor: str, what: str, outcome: str, key: str) -> None:
        at = self._clock()
        self._record(
            incident_id,
            lambda r: (
                None
                if r is None
                else note_action(r, at, actor, what, outcome, f"{key}:{outcome.split(':')[0]}")
            ),
        )

    def _decided(self, decided: PendingAction, after: str = "pending") -> None:
        """The decision on the incident's timeline and in the audit trail.  ``after``: the
        status it moved from; an approved action's closing is recorded beside its approval
        (each under a key of its own, so neither hides the other)."""
        at = decided.decided_at or self._clock()
        by = decided.decided_by or "unknown"
        what = f"{decided.kind} {decided.status}"
        detail = f"{what}{': ' + decided.note if decided.note else ''}"
        step = "decision" if after == "pending" else f"{after}:{decided.status}"
        self._record(
            decided.incident_id,
            lambda r: (
                None
                if r is None
                else with_entry(r, at, decided.status, by, detail, f"{step}:{decided.action_id}")
            ),
        )
        event: dict[str, object] = {
            "event": f"action.{decided.status}", "action_id": decided.action_id,
            "incident_id": decided.incident_id, "action": decided.kind,
            "note": decided.note,
        }  # fmt: skip
        self._flags.record_event(f"{decided.action_id}:{step}", decided.model_id, by, at, event)

    def _start(self, index: int, action: Action, incident: Mapping[str, Any]) -> str:
        incident_id = str(incident["incident_id"])
        cid = change_id(incident_id, index)
        if not action.changes_routing:
            log.warning(
                "incident %s: notify %s: %s on %s", incident_id, action.channel,
                incident.get("type"), incident.get("subject"),
            )  # fmt: skip
            return "notified"
        over_limit = self._over_limits(str(incident["subject"]), action)
        if action.approval.required or over_limit:
            check = ""
            if action.kind in _PICKS_TARGET:  # the approver reads what the check refused
                chosen, why = self._check(cid, action, incident, "request")
                check = "" if chosen is not None and chosen.label == _first(action) else "; " + why
            now = self._clock()
            timeout = action.approval.timeout_s
            pending = PendingAction(
                action_id=cid,
                incident_id=incident_id,
                model_id=str(incident["subject"]),
                action=action.to_data(),
                requested_by=CONTAINMENT_ACTOR,
                requested_at=now,
                expires_at=None if timeout is None else now + timeout,
                on_timeout=action.approval.on_timeout,
                separate_approver=action.approval.separate_approver,
                note=(over_limit + check).lstrip("; ")[:1024],
                labels={k: str(incident[k]) for k in _INCIDENT_FIELDS if k in incident},
            )
            self._approvals.add(pending)  # False on redelivery: already pending
            self._refresh_pending_gauge()
            return f"pending: {over_limit or 'approval required'}"
        return self._apply(cid, action, incident, CONTAINMENT_ACTOR)

    def _join_storm(
        self,
        storm: str,
        playbook: Playbook,
        index: int,
        action: Action,
        incident: Mapping[str, Any],
        at: float,
    ) -> str:
        """Hold the incident's action in its storm's grouped action (one per playbook
        action), to be decided once for every incident of the storm."""
        monitor = str(incident.get("monitor") or "")
        incident_id = str(incident["incident_id"])
        member = Member(
            incident_id, str(incident["subject"]), index, at,
            {k: str(incident[k]) for k in _INCIDENT_FIELDS if k in incident},
        )  # fmt: skip
        for _ in range(100):
            group_id = change_id(storm, index, f"storm:{playbook.name}")
            timeout = action.approval.timeout_s
            self._approvals.add(
                PendingAction(
                    action_id=group_id, incident_id=f"storm:{storm}", model_id=GROUPED_MODEL,
                    action=action.to_data(), requested_by=CONTAINMENT_ACTOR, requested_at=at,
                    expires_at=None if timeout is None else at + timeout,
                    on_timeout=action.approval.on_timeout,
                    separate_approver=action.approval.separate_approver,
                    note=f"incident storm: monitor {monitor} opened more than "
                    f"{self._policy.limits.storms.incidents} incidents within "
                    f"{self._policy.limits.storms.window_s:.0f} s; one decision for all",
                    labels={"monitor": monitor, "playbook": playbook.name, "storm": storm},
                    group=monitor,
                )
            )  # fmt: skip
            try:
                self._approvals.join(group_id, member)
            except ContainmentError:  # decided meanwhile: the storm goes on in a new group
                storm = self._storms.renew(monitor, at)
                continue
            self._refresh_pending_gauge()
            return f"pending: grouped into action {group_id} (incident storm of {monitor})"
        raise ContainmentError(f"incident {incident_id}: no storm group would take it")

    def _carry_out_group(self, group: PendingAction, actor: str) -> list[str]:
        """Carry out a decided grouped action for each member whose incident is open."""
        action = Action.from_data(group.action)
        outcomes = []
        for member in self._approvals.members(group.action_id, strict=True):
            cid = change_id(member.incident_id, member.index)
            if self._resolved(member.incident_id):
                outcome = "skipped: the incident is resolved"
            else:
                outcome = self._apply(cid, action, member.labels, actor)
            self._count(action.kind, outcome, cid)
            self._note_action(member.incident_id, actor, action.kind, outcome, cid)
            outcomes.append(outcome)
        self.publish_outbox()  # applied means announced too
        if group.status == "approved" and not any(o.startswith("failed") for o in outcomes):
            self._approvals.mark_applied(group.action_id)
        return outcomes

    def _resolved(self, incident_id: str) -> bool:
        if self._incidents is None:
            return False
        record = self._incidents.get(incident_id)
        return record is not None and record.status == "resolved"

    def _expire_actions_of(self, incident_id: str) -> None:
        """A resolved incident's actions still to be done expire: the pending ones, and
        those approved but not carried out to the end (not ``applied``: the broker did
        not take the change, carrying it out failed, or the process stopped midway).
        Approving or completing one later must not change a model for an incident that
        is over.  (A grouped action stays: it skips resolved members when carried out.)"""
        now = self._clock()
        for held in self._approvals.list(incident_id=incident_id):
            if held.group is not None or held.status not in ("pending", "approved"):
                continue
            why = f"incident {incident_id} resolved"
            try:
                if held.status == "pending":
                    closed = self._approvals.decide(
                        held.action_id, "expired", CONTAINMENT_ACTOR, now, why
                    )
                else:
                    why += (
                        f" before the action approved by {held.decided_by} was carried out "
                        "to the end"
                    )
                    closed = self._approvals.expire_approved(
                        held.action_id, CONTAINMENT_ACTOR, now, why
                    )
            except ContainmentError:  # decided or applied meanwhile
                continue
            self._metrics.actions.labels(held.kind, "expired").inc()
            self._decided(closed, after=held.status)
        self._refresh_pending_gauge()

    def _refuse_unapproved(
        self,
        model_id: str,
        current: RoutingFlag | None,
        by: str,
        version: str | None,
        mode: str | None,
    ) -> None:
        """Refuse a manual change that would get around a person's approval."""
        why = ""
        if current is not None and current.incident_id and current.actor != CONTAINMENT_ACTOR:
            why = (
                f"its flag (revision {current.revision}) was set for incident "
                f"{current.incident_id} with the approval of {current.actor}"
            )
        else:
            changes_version = version is not None and (
                current is None or version != current.active_version
            )
            changes_mode = mode if current is None or mode != current.mode else None
            why = gated_by_approval(self._policy.playbooks, model_id, changes_mode, changes_version)
        if why:
            raise NotPermittedError(
                f"{by} may not change the flag of {model_id}: {why}. Changing it needs "
                "the approver role: ask an approver to make the change"
            )

    def _carry_out(self, pending: PendingAction, actor: str) -> str:
        outcome = self._apply(
            pending.action_id, Action.from_data(pending.action), pending.labels, actor
        )
        if outcome.startswith("failed"):  # on_incident counts only the outcomes it starts with
            self._count(pending.kind, outcome, pending.action_id)
        self._note_action(pending.incident_id, actor, pending.kind, outcome, pending.action_id)
        self.publish_outbox()  # applied means announced too
        # An approved action is marked applied; one applied on timeout stays "expired"
        # (the audit trail shows riskstream/timeout as who changed the flag).
        if pending.status == "approved" and not outcome.startswith("failed"):
            self._approvals.mark_applied(pending.action_id)
        return outcome

    def _apply(self, cid: str, action: Action, incident: Mapping[str, Any], actor: str) -> str:
        model_id = str(incident["subject"])
        onset = parse_time(str(incident["onset_at"])) if incident.get("onset_at") else self._clock()
        known_good = last_known_good(self._history(model_id), onset)
        policy = self._policy.model(model_id)
        chosen, why = None, ""
        if action.kind in _PICKS_TARGET:
            chosen, why = self._check(cid, action, incident)
            if chosen is None and actor == CONTAINMENT_ACTOR:
                return self._to_person(cid, action, incident, why)
            if chosen is None and actor == TIMEOUT_ACTOR:  # nobody decided: do not override
                return f"failed: {why}"
            if chosen is None:  # a person approved it having read the check: theirs stands
                options = candidates(action, model_id, policy, known_good)
                chosen = next((c for c in options if not c.problem), options[0])
                why = f"applied on the approval of {actor} although {why}"

        def wanted(current: RoutingFlag | None) -> RoutingFlag:
            return target_flag(
                action, incident, current, policy, known_good, self._clock(), actor, chosen,
                why, cid,
            )  # fmt: skip

        try:
            return self._write(cid, model_id, wanted, self._clock())
        except ContainmentError as exc:
            log.error(
                "incident %s: %s not applied: %s", incident.get("incident_id"), action.kind, exc
            )
            return f"failed: {exc}"

    def _write(
        self,
        cid: str,
        model_id: str,
        wanted: Callable[[RoutingFlag | None], RoutingFlag],
        at: float,
        again: tuple[str, str, Callable[[], str]] | None = None,
        also: Callable[[RoutingFlag], Sequence[OutboxEvent]] | None = None,
    ) -> str:
        """Compare-and-set until the change lands or is found applied already.

        The change's routing-change event (and ``also``'s, made from the new flag) go
        to the outbox with it; the caller publishes them (:meth:`publish_outbox`) once
        what follows the write is done.  ``again`` (a timed change: its task, what it
        is, and a call that does it again) is kept in ``_unfinished`` once the change
        is written; the caller drops it when all that follows is done.  Done again,
        such a change, or one applied by a call that raised and is retried
        (``_applied_here``), comes back "duplicate" from the store and reads "applied":
        it was, by this process."""
        for _ in range(10):
            current = self._flags.get(model_id)
            new = wanted(current)
            events = (self._announcer.routing_event(cid, new), *(also(new) if also else ()))
            change = FlagChange(cid, current.revision if current else 0, new, events)
            result = self._flags.apply(change, at)
            if result.outcome == "conflict":
                continue
            if result.outcome == "applied":
                self._announcer.written(events, result.dropped)
                if self._writing is not None:
                    self._writing.append(cid)
                    self._remember(self._applied_here, cid)
            if result.outcome == "applied" and new.rollout is not None:
                # watched at once: the step is in flight whether or not it is announced
                # yet, and is not one a restarted worker resumes
                r = new.rollout
                self._watching[(model_id, r.change, r.step)] = (r.due_at, new.active_version)
            if result.outcome == "applied" and again is not None:
                self._unfinished[cid] = again
            mine = cid in self._applied_here or (again is not None and cid in self._unfinished)
            return "applied" if mine else result.outcome
        raise ContainmentError(f"{model_id}: the flag kept changing under 10 attempts; try again")

    def _count(self, kind: str, outcome: str, cid: str) -> None:
        """Count an action's outcome once per change id: a retry of the same incident,
        or a timed change done again, comes back with the same."""
        word = outcome.split(":")[0]
        if self._once("action", cid, word):
            self._metrics.actions.labels(kind, word).inc()

    def _once(self, *key: str) -> bool:
        """Whether ``key`` is new to this process (and remember it)."""
        if key in self._counted:
            self._counted.move_to_end(key)
            return False
        self._remember(self._counted, key)
        return True

    @staticmethod
    def _remember(seen: OrderedDict[Any, None], key: Any) -> None:
        seen[key] = None
        seen.move_to_end(key)
        if len(seen) > REMEMBERED:
            seen.popitem(last=False)

    def publish_outbox(self, everything: bool = False) -> int:
        """Publish the events waiting in the outbox (:meth:`Announcer.publish`)."""
        return self._announcer.publish(everything)

    def _history(self, model_id: str) -> list[tuple[float, str | None, str]]:
        self._catch_up()
        return [
            (e.at, (e.before or {}).get("active_version"), str(e.after.get("active_version")))  # type: ignore[misc]
            for e in self._by_model.get(model_id, ())
            if "active_version" in e.after
        ]

    def _over_limits(self, model_id: str, action: Action) -> str:
        """Why an automatic action must wait for a person instead, or '' if it may go."""
        limits = self._policy.limits
        if action.fraction > limits.max_traffic_fraction:
            return (
                f"over the automatic limit: {action.fraction:.0%} of traffic "
                f"> {limits.max_traffic_fraction:.0%}"
            )
        self._catch_up()
        since = self._clock() - limits.window_s
        touches, touched = self._touches, self._touched
        while touches and touches[0][0] < since:
            _, old = touches.popleft()
            touched[old] -= 1
            if not touched[old]:
                del touched[old]
        if model_id not in touched and len(touched) >= limits.max_models:
            return (
                f"over the automatic limit: {len(touched)} models changed in the last "
                f"{limits.window_s:.0f} s (max {limits.max_models})"
            )
        return ""

    def _catch_up(self) -> None:
        """Index the audit entries appended since the last call (by change id, by
        model, and automatic containment's recent changes for the limits)."""
        since = self._clock() - self._policy.limits.window_s
        for entry in self._flags.audit(self._audit_seq):
            self._audit_seq = entry.seq
            self._by_change[entry.change_id] = entry
            self._by_model.setdefault(entry.model_id, []).append(entry)
            if entry.actor == CONTAINMENT_ACTOR and entry.at >= since:
                self._touches.append((entry.at, entry.model_id))
                self._touched[entry.model_id] += 1
        self._metrics.audit_length.set(self._audit_seq)

    def _refresh_pending_gauge(self) -> None:
        summary = self._approvals.summary()
        self._metrics.pending.set(summary.pending)
        self._metrics.oldest_pending.set(summary.oldest)
        self._metrics.next_deadline.set(summary.next_deadline)
