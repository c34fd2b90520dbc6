// One incident: what happened, the evidence, what containment did, and what waits for you.

import { ApiError, call, download, path } from "./api.js";
import { evidenceChart } from "./chart.js";
import { append, badge, facts, h, notify, num, section, showError, time } from "./dom.js";
import { flagTable } from "./pages.js";

// Run one write; say what happened (or why the API refused) and show the page afresh.
async function act(run, rerender) {
  let message;
  try {
    message = await run();
  } catch (err) {
    showError(err);
    return;
  }
  await rerender();
  notify(message, "ok");
}

function noteInput(id, placeholder) {
  return h("input", { id, class: "note", placeholder, "data-test": id });
}

function operatorBar(record, rerender) {
  const id = path(record.incident_id);
  const ackNote = noteInput("ack-note", "note (optional)");
  const resolveNote = noteInput("resolve-note", "how it was resolved");
  const acked = record.acknowledged_by !== null;
  const resolved = record.status === "resolved";
  return h("div", { class: "bar" },
    h("div", { class: "field inline" }, ackNote, h("button", {
      type: "button", "data-test": "acknowledge", disabled: acked,
      on: { click: () => act(async () => {
        await call("POST", `/incidents/${id}/acknowledge`, { note: ackNote.value });
        return "Acknowledged: you have it.";
      }, rerender) },
    }, acked ? `Acknowledged by ${record.acknowledged_by}` : "Acknowledge")),
    h("div", { class: "field inline" }, resolveNote, h("button", {
      type: "button", "data-test": "resolve", disabled: resolved,
      on: { click: () => act(async () => {
        await call("POST", `/incidents/${id}/resolve`, { note: resolveNote.value });
        return "Resolved: actions marked revert-on-resolve are undone; subscribers are told.";
      }, rerender) },
    }, resolved ? `Resolved by ${record.resolved_by}` : "Resolve")),
    ...[["art73", "Article 73 report"], ["postmortem", "Post-mortem"]].map(([kind, label]) =>
      h("button", {
        type: "button", class: "secondary", "data-test": `report-${kind}`,
        on: { click: () => download(`/incidents/${id}/report?kind=${kind}&format=md`,
          `${record.incident_id}-${kind}.md`).catch(showError) },
      }, label)));
}

function regulatory(incident) {
  const reg = incident.regulatory;
  if (!reg) return null;
  const due = reg.report_deadline ? new Date(reg.report_deadline) : null;
  const days = due ? Math.ceil((due - Date.now()) / 86_400_000) : null;
  const when = due ? ` Report due ${time(reg.report_deadline)}${days !== null
    ? (days >= 0 ? ` (in ${days} day${days === 1 ? "" : "s"})` : ` (${-days} days overdue)`) : ""}.` : "";
  const serious = reg.potential_serious_incident
    ? `Potential serious incident under ${reg.framework || "the regulation"}${reg.article ? ` Article ${reg.article}` : ""}.`
    : `${reg.framework || "Regulated"} system.`;
  const human = reg.human_approval_required ? " Changes to its behaviour wait for a named person's approval." : "";
  return h("div", { class: "regulatory", "data-test": "regulatory" }, serious + when + human);
}

function evidenceFacts(ev) {
  const w = (x) => (x ? `${num(x.mean)}${x.std !== undefined ? ` ± ${num(x.std)}` : ""} over ${num(x.count)} samples` : null);
  return facts([
    ["Detector", ev.detector], ["Parameters", ev.params ? JSON.stringify(ev.params) : null],
    ["Tracked value", ev.value], ["Before (reference)", w(ev.before)], ["After onset", w(ev.after)],
    ["Statistic / threshold", ev.statistic !== undefined || ev.threshold !== undefined
      ? `${num(ev.statistic)} / ${num(ev.threshold)}` : null],
    ["Detection delay", ev.delay_samples !== undefined ? `${num(ev.delay_samples)} samples` : null],
  ]);
}

function actionsSection(actions, rerender) {
  if (!actions.length) return section("Held for approval", h("p", { class: "muted" }, "Nothing waits for a person."));
  const items = actions.map((a) => {
    const what = `${a.action.kind}${a.action.version ? ` → ${a.action.version}` : ""} on ${a.model_id}`;
    if (a.status !== "pending") {
      return h("li", { "data-test": "action", "data-status": a.status },
        badge(a.status, "status"), ` ${what} — ${a.status} by ${a.decided_by || "?"} at ${time(a.decided_at)}`,
        a.note ? `: ${a.note}` : "");
    }
    const note = noteInput(`note-${a.action_id}`, "note for the record");
    note.setAttribute("data-test", "decision-note");
    const decide = (verb) => act(async () => {
      const done = await call("POST", `/actions/${path(a.action_id)}/${verb}`, { note: note.value });
      return `${what}: ${done.status} by ${done.decided_by}.`;
    }, rerender);
    return h("li", { "data-test": "action", "data-status": "pending", class: "pending" },
      h("div", {}, badge("pending", "status"), ` ${what}`,
        h("span", { class: "muted" }, ` — requested by ${a.requested_by} at ${time(a.requested_at)}, `
          + (a.expires_at ? `expires ${time(a.expires_at)} (then ${a.on_timeout})` : "no expiry"))),
      a.note ? h("div", { class: "muted" }, a.note) : null,
      h("div", { class: "bar" }, note,
        h("button", { type: "button", "data-test": "approve", on: { click: () => decide("approve") } }, "Approve"),
        h("button", { type: "button", class: "danger", "data-test": "reject", on: { click: () => decide("reject") } }, "Reject")));
  });
  return section("Held for approval", h("ul", { class: "actions" }, items));
}

function suspects(list) {
  if (!list || !list.length) return null;
  return section("Suspected changes", h("table", { class: "list", "data-test": "suspects" },
    h("thead", {}, h("tr", {}, ["Kind", "Subject", "Version", "By", "At", "Before onset"].map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map((c) => h("tr", {}, h("td", {}, c.kind), h("td", {}, c.subject),
      h("td", {}, c.version || "—"), h("td", {}, c.actor || "—"), h("td", { class: "nowrap" }, time(c.time)),
      h("td", {}, c.lead_seconds !== undefined ? `${num(c.lead_seconds / 60, 3)} min` : "—"))))));
}

function blastRadius(radius) {
  if (!radius) return null;
  const cost = radius.estimated_cost;
  return section("Blast radius", facts([
    ["Affected events", num(radius.affected_events)], ["Affected users", num(radius.affected_users)],
    ["Downstream", radius.downstream && radius.downstream.length ? radius.downstream.join(", ") : null],
    ["Estimated cost", cost ? `${num(cost.amount, 6)} ${cost.currency}${cost.basis ? ` (${cost.basis})` : ""}` : null],
  ], { "data-test": "blast-radius" }));
}

function cascade(incident) {
  const link = (id) => h("a", { href: `#/incidents/${encodeURIComponent(id)}` }, id);
  const children = incident.children || [];
  if (!incident.parent_id && !children.length) return null;
  return section("Cascade", facts([
    ["Caused by", incident.parent_id ? link(incident.parent_id) : null],
    ["Downstream incidents", children.length ? h("span", {}, children.map((c, i) => [i ? ", " : "", link(c)])) : null],
  ]));
}

// The group's story, root cause first: what began first and explains the rest.
function story(told, id) {
  if (!told) return null;
  const link = (m) => m.incident_id === id ? h("strong", {}, "this incident")
    : h("a", { href: `#/incidents/${encodeURIComponent(m.incident_id)}` }, m.incident_id.slice(0, 12));
  return section("Story, root cause first", h("p", { "data-test": "story-root" },
    `Root: ${told.root_subject} — ${told.why}.`),
  h("ol", { class: "story", "data-test": "story" }, told.members.map((m) =>
    h("li", { "data-role": m.role }, badge(m.role, "kind"), ` ${m.type} on ${m.subject} `,
      h("span", { class: "muted" }, `(onset ~${time(m.onset_at)}, detected ${time(m.detected_at)}) `),
      link(m), m.because ? h("span", { class: "muted" }, ` — ${m.because}`) : null))),
  told.more ? h("p", { class: "muted" }, `${told.more} more effects are not listed.`) : null);
}

function timeline(entries) {
  return section("Timeline", h("ol", { class: "timeline", "data-test": "timeline" }, entries.map((e) =>
    h("li", { "data-kind": e.kind }, h("span", { class: "when" }, time(e.at)), badge(e.kind, "kind"),
      h("span", { class: "actor" }, e.actor), h("span", {}, e.detail)))),
  h("p", { class: "muted" }, "Onset and detection are in data time; people and containment in wall time."));
}

async function subjectFlag(subject) {
  try {
    return [await call("GET", `/flags/${path(subject)}`)];
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return [];
    throw err;
  }
}

export async function incidentPage(main, id, rerender) {
  const record = await call("GET", `/incidents/${path(id)}`);
  const flags = await subjectFlag(record.subject);
  const incident = record.incident;
  append(main, [
    h("p", {}, h("a", { href: "#/incidents" }, "← all incidents")),
    h("h1", { "data-test": "headline" }, record.headline),
    h("div", { class: "badges" }, badge(record.severity, "severity"), badge(record.status, "status"),
      record.acknowledged_by ? badge(`acknowledged by ${record.acknowledged_by}`, "ack") : null),
    regulatory(incident),
    operatorBar(record, rerender),
    story(record.story, record.incident_id),
    h("div", { class: "columns" },
      section("Evidence", evidenceChart(incident.evidence), evidenceFacts(incident.evidence || {})),
      section("What", facts([
        ["Incident", record.incident_id], ["Type", record.type], ["Subject", record.subject],
        ["Stream", record.stream_key], ["Monitor", record.monitor],
        ["Estimated onset", time(record.onset_at)], ["Detected", time(record.detected_at)],
        ["Acknowledged", record.acknowledged_by ? `${record.acknowledged_by}, ${time(record.acknowledged_at)}` : null],
        ["Resolved", record.resolved_by ? `${record.resolved_by}, ${time(record.resolved_at)}` : null],
      ]))),
    actionsSection(record.actions, rerender),
    section(`Routing flag of ${record.subject}`, flags.length ? flagTable(flags)
      : h("p", { class: "muted", "data-test": "no-flag" }, "No flag: the serving layer uses its default.")),
    suspects(incident.suspected_changes),
    blastRadius(incident.blast_radius),
    cascade(incident),
    timeline(record.timeline)]);
}
