// Log-in, the incidents list and the routing flags.

import { call, login, path } from "./api.js";
import { append, badge, h, notify, num, section, showError, time } from "./dom.js";

// After logging in, the page asked for (a deep link to an incident, say) is shown.
export function loginPage(main, done) {
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    placeholder: "rs_…", "data-test": "token",
  });
  const form = h("form", { class: "card login", on: { submit: async (event) => {
    event.preventDefault();
    try {
      await login(input.value);
      if (/^#?\/?(login)?$/.test(location.hash)) location.hash = "#/incidents";
      else await done();
    } catch (err) {
      showError(err);
    }
  } } },
  h("h1", {}, "Log in"),
  h("p", {}, "Paste the API token your riskstream admin gave you (they make one with ",
    h("code", {}, "riskstream api-token --user NAME --role ROLE"),
    "). It stays in this browser tab only and is forgotten when the tab closes."),
  h("label", { for: "token" }, "Token"), input,
  h("button", { type: "submit", "data-test": "login" }, "Log in"));
  main.append(form);
  input.focus();
}

const FILTERS = [
  ["status", "Status", ["", "unresolved", "open", "contained", "resolved"]],
  ["min_severity", "Severity at least", ["", "info", "warning", "critical"]],
  ["acknowledged", "Acknowledged", ["", "true", "false"]],
  ["subject", "Subject"], ["type", "Type"], ["monitor", "Monitor"],
];

function filterForm(query) {
  const fields = FILTERS.map(([name, label, options]) => {
    const control = options
      ? h("select", { name, id: `f-${name}` }, options.map((o) =>
        h("option", { value: o, selected: query.get(name) === o }, o === "" ? "any" : o)))
      : h("input", { name, id: `f-${name}`, value: query.get(name) || "", placeholder: "exact" });
    return h("div", { class: "field" }, h("label", { for: `f-${name}` }, label), control);
  });
  return h("form", { class: "filters", on: { submit: (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(event.target)) if (value) params.set(key, value);
    location.hash = `#/incidents?${params}`;
  } } }, fields, h("button", { type: "submit" }, "Filter"));
}

// What a filtered page looks through after its cursor: SCANNED in services/operations.py
// (the API's limit is at most 1000, so a page looks through this many, never more).
const SCANNED = 2000;

// A list's page says where the next one starts (`next`, null on the last page): a link
// to it (the same query, `after=next`), or null.  A reader follows `next`, never guesses.
function lookFurther(page, query, next, test, text) {
  if (next === null) return null;
  const further = new URLSearchParams(query);
  further.set("after", next);
  return h("p", {}, h("a", { href: `#/${page}?${further}`, "data-test": test }, text));
}

export async function incidentsPage(main, query) {
  main.append(h("h1", {}, "Incidents"), filterForm(query));
  const { incidents, next } = await call("GET", `/incidents?${query}`);
  // A filtered page may be short, even empty, while the list goes on: follow `next`.
  const further = lookFurther("incidents", query, next, "older", "Look further: older incidents");
  if (!incidents.length) {
    const [none, seen] = query.has("after") ? ["No older", "next"] : ["No", "latest"];
    const text = next === null ? `${none} incidents match.` : `None in the ${seen} `
      + `${num(SCANNED)} incidents looked through; older ones were not looked through yet.`;
    append(main, [h("p", { class: "muted", "data-test": "no-incidents" }, text), further]);
    return;
  }
  const rows = incidents.map((i) => h("tr", { "data-test": "incident-row", "data-id": i.incident_id },
    h("td", {}, badge(i.severity, "severity")),
    h("td", {}, h("a", { href: `#/incidents/${encodeURIComponent(i.incident_id)}` }, i.headline)),
    h("td", {}, i.type), h("td", {}, i.subject), h("td", {}, badge(i.status, "status")),
    h("td", {}, i.acknowledged_by || "no"), h("td", { class: "nowrap" }, time(i.detected_at))));
  append(main, [h("table", { class: "list" },
    h("thead", {}, h("tr", {}, ["Severity", "Incident", "Type", "Subject", "Status",
      "Acknowledged by", "Detected (data time)"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)), further]);
}

export function flagTable(flags) {
  return h("table", { class: "list", "data-test": "flags" },
    h("thead", {}, h("tr", {}, ["Model", "Active version", "Mode", "Traffic", "Rev", "Incident",
      "Changed by", "At", "Reason"].map((t) => h("th", {}, t)))),
    h("tbody", {}, flags.map((f) => h("tr", { "data-model": f.model_id },
      h("td", {}, f.model_id), h("td", { "data-test": "flag-version" }, f.active_version),
      h("td", { "data-test": "flag-mode" }, badge(f.mode, "mode")),
      h("td", {}, `${num(f.traffic_fraction * 100, 3)}%`), h("td", {}, f.revision),
      h("td", {}, f.incident_id ? h("a", { href: `#/incidents/${encodeURIComponent(f.incident_id)}`,
        title: f.incident_id }, f.incident_id.slice(0, 12)) : "—"),
      h("td", { "data-test": "flag-actor" }, f.actor), h("td", { class: "nowrap" }, time(f.updated_at)),
      h("td", {}, f.reason)))));
}

function overrideForm(rerender) {
  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  const model = h("input", { id: "o-model", required: true });
  const version = h("input", { id: "o-version", placeholder: "keep" });
  const mode = h("select", { id: "o-mode" }, ["", "normal", "fallback", "human-review", "shadow", "blocked"]
    .map((m) => h("option", { value: m }, m || "keep")));
  const fraction = h("input", { id: "o-fraction", type: "number", min: 0, max: 1, step: "any", placeholder: "keep" });
  const reason = h("input", { id: "o-reason", required: true, placeholder: "why, for the audit trail" });
  return h("form", { class: "filters", on: { submit: async (event) => {
    event.preventDefault();
    const body = { reason: reason.value };
    if (version.value) body.version = version.value;
    if (mode.value) body.mode = mode.value;
    if (fraction.value !== "") body.traffic_fraction = Number(fraction.value);
    try {
      const flag = await call("PUT", `/flags/${path(model.value)}`, body);
      notify(`${flag.model_id}: now ${flag.active_version}, ${flag.mode} (revision ${flag.revision}).`, "ok");
      await rerender();
    } catch (err) {
      showError(err);
    }
  } } }, field("Model", model), field("Version", version), field("Mode", mode),
  field("Traffic share (0-1)", fraction), field("Reason", reason),
  h("button", { type: "submit" }, "Override (operator)"));
}

export async function flagsPage(main, query, rerender) {
  // A page holds 100 flags unless the query says otherwise (by model id): follow `next`.
  const { flags, next } = await call("GET", `/flags?${query}`);
  const none = query.has("after") ? "No more flags." : "No flags yet: every model serves its default.";
  append(main, [h("h1", {}, "Routing flags"),
    h("p", { class: "muted" }, "What the serving layer reads for each model, as it stands now."),
    flags.length ? flagTable(flags) : h("p", { class: "muted" }, none),
    lookFurther("flags", query, next, "more-flags", "Look further: more flags"),
    section("Manual override", h("p", { class: "muted" },
      "Sets a model's flag by hand, recorded in the audit trail under your name with the reason."),
    overrideForm(rerender))]);
}
