// Small DOM helpers: every piece of data reaches the page as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (key === "class") {
      el.className = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// "2026-11-26T10:00:00.250Z" -> "2026-11-26 10:00:00 UTC": one clock for everyone on a call.
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function num(x, digits = 4) {
  if (typeof x !== "number" || !Number.isFinite(x)) return x === null || x === undefined ? "—" : String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return Number(x.toPrecision(digits)).toString();
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""} ${String(text).replace(/[^a-z-]/gi, "")}` }, text);
}

// A definition list from [label, value] pairs, skipping empty values.
export function facts(pairs, attrs = {}) {
  const dl = h("dl", { class: "facts", ...attrs });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(h("dt", {}, label), h("dd", {}, value));
  }
  return dl;
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

// The one notice line under the header: refusals from the API, and confirmations.
export function notify(message, kind = "error") {
  const el = document.getElementById("notice");
  el.className = `notice ${kind}`;
  el.setAttribute("data-test", `notice-${kind}`);
  el.textContent = message;
  el.hidden = false;
}

export function hideNotice() {
  const el = document.getElementById("notice");
  el.hidden = true;
  el.textContent = "";
}

export function showError(err) {
  if (err && err.status !== undefined) {
    const what = err.status ? `${err.status} ${err.code}` : "no answer";
    notify(`Refused (${what}): ${err.message}`, "error");
  } else {
    notify(`Something went wrong in the console: ${err}`, "error");
  }
}
