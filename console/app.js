// hookrelay console: a single page over the admin API, nothing else. The key lives in this
// tab's sessionStorage only and travels as a bearer token, never in a URL. Every value that
// came from the API is put in the page as text (never as HTML), so a tenant's names,
// payloads and receivers' answers cannot script the console.

const API = location.pathname.replace(/\/console\/?$/, "");
const KEY = "hookrelay.key";
const WS = "hookrelay.workspace";
const ROOT = "hookrelay.root";
const REFRESH_MS = 4000;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const flashBox = document.getElementById("flash");
let refreshTimer = null;

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Set when an action's message must survive the page change the action itself made (a new
// endpoint's secret, shown once).
let keepFlash = false;

function flash(message, isError) {
  flashBox.textContent = message || "";
  flashBox.className = isError ? "error" : "";
}

function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(ts) {
  if (!ts) return "never";
  const s = Math.round((Date.now() - new Date(ts)) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function statusTag(status) {
  const cls = status === "SUCCESSFUL" ? "ok" : status === "FAILED" ? "bad" : "muted";
  return h("span", { class: `tag ${cls}` }, status);
}

function link(href, text) {
  return h("a", { href }, text);
}

// `narrow`: the columns a phone-sized screen leaves out.
function table(headers, rows, empty, narrow = []) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "Nothing here yet.");
  const hide = (i) => (narrow.includes(i) ? "hide-narrow" : undefined);
  const cell = (c, i) => {
    const td = c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c);
    if (hide(i)) td.classList.add("hide-narrow");
    return td;
  };
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { scope: "col", class: hide(i) }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map(cell))))));
}

function field(label, input) {
  return h("label", {}, label, input);
}

function copyButton(text, what) {
  return h("button", {
    type: "button", class: "secondary", "aria-label": `Copy ${what}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        flash(`Copied ${what}.`);
      } catch {
        flash(`Copy failed; select the ${what} and copy it by hand.`, true);
      }
    },
  }, "Copy");
}

function setPage(title, ...content) {
  document.title = `${title} · hookrelay`;
  main.replaceChildren(h("h1", {}, title), ...content);
}

// ---------- the admin API ----------

// Each render counts; a read that returns after a newer render began (the user moved on, or
// the page refreshed) is dropped rather than drawn over the newer page.
let renderSeq = 0;
class Stale extends Error {}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, headers) {
  const seq = renderSeq;
  const init = { method, headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}`, ...(headers || {}) } };
  if (body !== undefined) {
    // A string is a config file (YAML, or JSON, which is YAML too).
    init.headers["content-type"] = typeof body === "string" ? "application/yaml" : "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, "network", `the API did not answer (${e.message})`);
  }
  const text = await resp.text();
  if (method === "GET" && seq !== renderSeq) throw new Stale();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok) {
    const err = json && json.error ? json.error : {};
    if (resp.status === 401 && sessionStorage.getItem(ROOT)) signOut("The key was refused; sign in again.");
    throw new ApiError(resp.status, err.code || "http_" + resp.status, err.message || text || resp.statusText);
  }
  return { json, text, etag: resp.headers.get("etag") };
}

const get = async (path) => (await api("GET", path)).json;
const ws = () => sessionStorage.getItem(WS);
const isRoot = () => sessionStorage.getItem(ROOT) === "1";
const wsPath = (rest) => `/workspaces/${encodeURIComponent(ws())}${rest}`;

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Runs an action from a button, reports its outcome, then re-renders the page.
async function act(button, label, fn) {
  button.disabled = true;
  const before = location.hash;
  try {
    const message = await fn();
    flash(message || `${label}: done.`);
    keepFlash = location.hash !== before;
    await render();
  } catch (e) {
    flash(`${label} failed: ${e.message}${e.code ? ` (${e.code})` : ""}`, true);
  } finally {
    button.disabled = false;
  }
}

// ---------- sign in ----------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(WS);
  sessionStorage.removeItem(ROOT);
  keepFlash = location.hash !== "#/" && location.hash !== "";
  location.hash = "#/";
  flash(message || "Signed out.");
  render();
}

function signInPage() {
  nav.replaceChildren();
  who.replaceChildren();
  const key = h("input", { id: "key", type: "password", autocomplete: "off", required: true });
  const workspace = h("input", { id: "workspace", placeholder: "default", autocomplete: "off" });
  const form = h("form", { class: "card" },
    h("p", {}, "Sign in with the admin key or a workspace key. It stays in this tab only."),
    field("API key", key),
    field("Workspace (needed with a workspace key)", workspace),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, key.value.trim());
    try {
      await get("/workspaces?limit=1");
      sessionStorage.setItem(ROOT, "1");
      sessionStorage.setItem(WS, workspace.value.trim() || "default");
    } catch (err) {
      if (err.status !== 403) {
        sessionStorage.removeItem(KEY);
        flash(`Sign-in failed: ${err.message}`, true);
        return;
      }
      const name = workspace.value.trim() || "default";
      sessionStorage.setItem(WS, name);
      try {
        await get(wsPath(""));
      } catch (err2) {
        sessionStorage.removeItem(KEY);
        sessionStorage.removeItem(WS);
        flash(`Sign-in failed: ${err2.message}`, true);
        return;
      }
      sessionStorage.setItem(ROOT, "0");
    }
    flash("");
    location.hash = "#/endpoints";
    render();
  });
  document.title = "Sign in · hookrelay";
  main.replaceChildren(h("div", { class: "signin" }, h("h1", {}, "hookrelay console"), form));
  key.focus();
}

// ---------- navigation ----------

const SECTIONS = [
  ["workspaces", "Workspaces", true],
  ["sources", "Sources"],
  ["endpoints", "Endpoints"],
  ["events", "Events"],
  ["attempts", "Attempts"],
  ["dlq", "Dead letters", true],
  ["config", "Config"],
];

function drawNav(section) {
  nav.replaceChildren(...SECTIONS.filter(([, , root]) => !root || isRoot()).map(([id, label]) =>
    h("a", { href: `#/${id}`, "aria-current": id === section ? "page" : undefined }, label)));
  who.replaceChildren(
    h("span", { class: "mono" }, `${ws()}${isRoot() ? " · admin" : ""}`),
    h("button", { type: "button", class: "secondary", onclick: () => signOut() }, "Sign out"));
}

function route() {
  const [path, q] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(q || "") };
}

async function render() {
  renderSeq += 1;
  clearInterval(refreshTimer);
  refreshTimer = null;
  if (!sessionStorage.getItem(KEY)) return signInPage();
  const { parts, params } = route();
  const section = parts[0] || "endpoints";
  drawNav(section);
  try {
    switch (section) {
      case "workspaces": return await workspacesPage();
      case "sources": return await sourcesPage();
      case "endpoints":
        if (parts[1] === "new") return endpointForm(null);
        if (parts[1] && parts[2] === "edit") return endpointForm(parts[1]);
        if (parts[1]) return await endpointPage(parts[1]);
        return await endpointsPage(params);
      case "events":
        if (parts[1]) return await eventPage(parts[1]);
        return await eventsPage(params);
      case "attempts":
        if (parts[1]) return await attemptPage(parts[1]);
        return await attemptsPage(params);
      case "dlq": return await dlqPage(params);
      case "config": return await configPage();
      default: return setPage("Not found", h("p", {}, "No such page."));
    }
  } catch (e) {
    if (e instanceof Stale) return;
    setPage("Something went wrong", h("p", { class: "bad" }, `${e.message}${e.code ? ` (${e.code})` : ""}`),
      h("button", { type: "button", onclick: () => render() }, "Try again"));
  }
}

// Re-reads a list page while the tab is visible, so new events and attempts show up; not
// while something in the page has the focus, which a redraw would take away from a keyboard.
function autoRefresh(box) {
  if (box.checked) {
    refreshTimer = setInterval(() => {
      const focused = document.activeElement;
      if (!document.hidden && !(focused && focused !== main && main.contains(focused))) render();
    }, REFRESH_MS);
  }
}

function refreshToggle(params) {
  const box = h("input", { type: "checkbox", id: "live", checked: params.get("live") !== "0" });
  box.addEventListener("change", () => {
    params.set("live", box.checked ? "1" : "0");
    location.hash = `#/${route().parts.join("/")}?${params}`;
  });
  return [h("label", { class: "check" }, box, "Live"), box];
}

function pager(next, params) {
  if (!next) return null;
  const p = new URLSearchParams(params);
  p.set("cursor", next);
  p.set("live", "0");
  return h("div", { class: "actions" }, link(`#/${route().parts.join("/")}?${p}`, "Next page →"));
}

// ---------- workspaces ----------

async function workspacesPage() {
  const list = await get("/workspaces?limit=100");
  const name = h("input", { id: "new-workspace", required: true, pattern: "[a-z0-9][a-z0-9_-]*" });
  const form = h("form", { class: "card row" }, field("New workspace", name),
    h("button", { type: "submit" }, "Create"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(form.querySelector("button"), "Create workspace", async () => {
      await api("POST", "/workspaces", { name: name.value.trim() });
      return `Workspace ${name.value.trim()} created.`;
    });
  });
  setPage("Workspaces", form, table(["Name", "Created", ""], list.data.map((w) => [
    h("span", { class: "mono" }, w.name), when(w.created_at),
    h("button", {
      type: "button", class: w.name === ws() ? "secondary" : "", disabled: w.name === ws(),
      onclick: () => { sessionStorage.setItem(WS, w.name); location.hash = "#/endpoints"; },
    }, w.name === ws() ? "Current" : "Open"),
  ])));
}

// ---------- sources ----------

const VERIFICATIONS = ["none", "github", "stripe", "standard_webhooks", "shopify", "slack", "lark"];

async function sourcesPage() {
  const list = await get(wsPath("/sources?limit=100"));
  const name = h("input", { id: "source-name", required: true });
  const type = h("select", { id: "source-verification" }, VERIFICATIONS.map((v) => h("option", { value: v }, v)));
  const secret = h("input", { id: "source-secret", autocomplete: "off" });
  const eventType = h("input", { id: "source-event-type", placeholder: "order.created" });
  const form = h("form", { class: "card row" }, field("Name", name), field("Verification", type),
    field("Secret / verification token", secret), field("Default event type", eventType),
    h("button", { type: "submit" }, "Create source"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const verification = { type: type.value };
    if (type.value === "lark") { if (secret.value) verification.verification_token = secret.value; } else if (type.value !== "none") verification.secret = secret.value;
    const body = { name: name.value.trim(), verification };
    if (eventType.value.trim()) body.default_event_type = eventType.value.trim();
    act(form.querySelector("button"), "Create source", async () => {
      const { json } = await api("POST", wsPath("/sources"), body);
      return `Source ${json.name} created; its ingest URL is ${ingestUrl(json)}.`;
    });
  });
  setPage("Sources", form, table(["Name", "Verification", "State", "Ingest URL", ""], list.data.map((s) => [
    h("span", {}, s.name, h("br"), h("span", { class: "mono muted" }, s.id)),
    s.verification?.type || "none",
    s.enabled ? h("span", { class: "tag ok" }, "enabled") : h("span", { class: "tag muted" }, "disabled"),
    h("td", { class: "mono" }, ingestUrl(s)),
    copyButton(ingestUrl(s), `ingest URL of ${s.name}`),
  ]), "No sources yet: create one above, then point a sender at its ingest URL.", [1, 2]));
}

function ingestUrl(source) {
  return location.origin + API + source.ingest_path;
}

// ---------- endpoints ----------

function circuit(ep) {
  if (!ep.enabled) return h("span", { class: "tag muted" }, `disabled${ep.disabled_reason ? `: ${ep.disabled_reason}` : ""}`);
  if (ep.probe_at) return h("span", { class: "tag bad", title: `next probe ${when(ep.probe_at)}` }, "circuit open");
  if (ep.consecutive_failures > 0) return h("span", { class: "tag warn" }, `failing ×${ep.consecutive_failures}`);
  return h("span", { class: "tag ok" }, "healthy");
}

async function endpointsPage() {
  const list = await get(wsPath("/endpoints?limit=100"));
  setPage("Endpoints",
    h("div", { class: "actions" }, link("#/endpoints/new", "New endpoint")),
    table(["Name", "URL", "Events", "Health", "Last success"], list.data.map((ep) => [
      link(`#/endpoints/${encodeURIComponent(ep.id)}`, ep.name),
      h("td", { class: "mono" }, ep.url),
      (ep.events || []).join(", ") || "all",
      circuit(ep),
      ago(ep.last_success_at),
    ]), "No endpoints yet.", [1, 4]));
}

async function endpointPage(id) {
  const { json: ep, etag } = await api("GET", wsPath(`/endpoints/${encodeURIComponent(id)}`));
  const recent = await get(wsPath(`/attempts${query({ endpoint_id: id, limit: 50 })}`));
  const done = recent.data.filter((a) => a.status !== "CANCELED");
  const ok = done.filter((a) => a.status === "SUCCESSFUL").length;
  const rate = done.length ? `${Math.round((100 * ok) / done.length)}% of the last ${done.length}` : "no attempts yet";
  const path = wsPath(`/endpoints/${encodeURIComponent(id)}`);
  const buttons = h("div", { class: "actions" });
  const add = (label, cls, fn) => {
    const b = h("button", { type: "button", class: cls }, label);
    b.addEventListener("click", () => act(b, label, fn));
    buttons.append(b);
  };
  add("Send test ping", "", async () => {
    const { json } = await api("POST", `${path}/test`);
    return `Test ping: ${json.status}${json.response?.status ? `, HTTP ${json.response.status}` : ""}${json.error_message ? ` (${json.error_message})` : ""}.`;
  });
  if (ep.enabled) {
    add("Disable", "secondary", async () => {
      await api("PUT", path, { ...settingsOf(ep), enabled: false }, { "if-match": etag });
      return "Endpoint disabled.";
    });
  } else {
    add("Enable", "secondary", async () => {
      await api("POST", `${path}/enable`);
      return "Endpoint enabled.";
    });
  }
  add("Rotate secret", "secondary", async () => {
    if (!confirm("Rotate the signing secret? The old one stays valid for the grace period.")) return "Rotation canceled.";
    const { json } = await api("POST", `${path}/secret/rotate`);
    return `New secret (shown this once): ${json.secret}`;
  });
  buttons.append(link(`#/endpoints/${encodeURIComponent(id)}/edit`, "Edit"));
  add("Delete", "danger", async () => {
    if (!confirm(`Delete endpoint ${ep.name}?`)) return "Delete canceled.";
    await api("DELETE", path, undefined, { "if-match": etag });
    location.hash = "#/endpoints";
    return "Endpoint deleted.";
  });
  setPage(ep.name, buttons,
    h("section", { class: "card" }, h("h2", {}, "Health"),
      h("dl", { class: "grid" },
        dt("State", circuit(ep)), dt("Success rate", rate),
        dt("Last success", `${when(ep.last_success_at)} (${ago(ep.last_success_at)})`),
        dt("Last failure", when(ep.last_failure_at)),
        dt("Failure streak", String(ep.consecutive_failures || 0)),
        dt("Failing since", when(ep.failing_since)),
        dt("Next probe", ep.probe_at ? when(ep.probe_at) : "—"))),
    h("section", { class: "card" }, h("h2", {}, "Settings"),
      h("dl", { class: "grid" },
        dt("Id", h("span", { class: "mono" }, ep.id)), dt("URL", h("span", { class: "mono" }, ep.url)),
        dt("Events", (ep.events || []).join(", ") || "all"), dt("Secret", h("span", { class: "mono" }, ep.secret)),
        dt("Timeout", ep.timeout_seconds ? `${ep.timeout_seconds} s` : "default"), dt("Version", String(ep.version))),
      h("details", {}, h("summary", {}, "All settings (JSON)"), h("pre", {}, pretty(ep)))),
    h("h2", {}, "Recent attempts"), attemptsTable(recent.data));
}

function dt(label, value) {
  return [h("div", {}, h("dt", {}, label), h("dd", {}, value))];
}

const SETTINGS = ["name", "url", "events", "enabled", "headers", "timeout_seconds", "retry", "kind", "lark",
  "delivery", "rate_limit", "filter", "plugins"];

function settingsOf(ep) {
  const out = {};
  for (const k of SETTINGS) if (ep[k] !== undefined && ep[k] !== null) out[k] = ep[k];
  return out;
}

async function endpointForm(id) {
  let ep = { name: "", url: "", events: [], enabled: true };
  let etag = null;
  if (id) ({ json: ep, etag } = await api("GET", wsPath(`/endpoints/${encodeURIComponent(id)}`)));
  const name = h("input", { id: "endpoint-name", required: true, value: ep.name });
  const url = h("input", { id: "endpoint-url", type: "url", required: true, value: ep.url, size: 40 });
  const events = h("input", { id: "endpoint-events", value: (ep.events || []).join(", "), placeholder: "all event types" });
  const rest = settingsOf(ep);
  for (const k of ["name", "url", "events", "enabled"]) delete rest[k];
  const more = h("textarea", { id: "endpoint-json", spellcheck: "false" }, JSON.stringify(rest, null, 2));
  const form = h("form", { class: "card" },
    h("div", { class: "row" }, field("Name", name), field("URL", url), field("Event types (comma-separated)", events)),
    h("h2", {}, "Other settings"),
    h("p", { class: "muted" }, "JSON: headers, timeout_seconds, retry, filter, plugins, rate_limit, delivery. See the API reference."),
    more,
    h("div", { class: "actions" }, h("button", { type: "submit" }, id ? "Save" : "Create endpoint"),
      link(id ? `#/endpoints/${encodeURIComponent(id)}` : "#/endpoints", "Cancel")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(form.querySelector("button"), id ? "Save" : "Create", async () => {
      let extra;
      try { extra = more.value.trim() ? JSON.parse(more.value) : {}; } catch (err) {
        throw new ApiError(400, "malformed_json", `other settings are not JSON: ${err.message}`);
      }
      const body = { ...extra, name: name.value.trim(), url: url.value.trim(), enabled: ep.enabled,
        events: events.value.split(",").map((s) => s.trim()).filter(Boolean) };
      if (id) {
        await api("PUT", wsPath(`/endpoints/${encodeURIComponent(id)}`), body, { "if-match": etag });
        location.hash = `#/endpoints/${encodeURIComponent(id)}`;
        return "Endpoint saved.";
      }
      const { json } = await api("POST", wsPath("/endpoints"), body);
      location.hash = `#/endpoints/${encodeURIComponent(json.id)}`;
      return `Endpoint created. Its signing secret (shown this once): ${json.secret}`;
    });
  });
  setPage(id ? `Edit ${ep.name}` : "New endpoint", form);
  name.focus();
}

// ---------- events ----------

async function eventsPage(params) {
  const filters = { event_type: params.get("event_type"), source_id: params.get("source_id"),
    since: params.get("since"), until: params.get("until") };
  const list = await get(wsPath(`/events${query({ ...filters, cursor: params.get("cursor"), limit: 50 })}`));
  const inputs = Object.fromEntries(Object.keys(filters).map((k) =>
    [k, h("input", { id: `filter-${k}`, value: filters[k] || "", placeholder: k === "since" || k === "until" ? "2026-01-31T00:00:00Z" : "" })]));
  const [live, box] = refreshToggle(params);
  const form = h("form", { class: "card row" },
    field("Event type", inputs.event_type), field("Source id", inputs.source_id),
    field("Since", inputs.since), field("Until", inputs.until),
    h("button", { type: "submit" }, "Filter"), live);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) p.set(k, el.value.trim());
    location.hash = `#/events?${p}`;
  });
  setPage("Events", form, table(["Received", "Event", "Type", "Source", "Endpoints"], list.data.map((ev) => [
    when(ev.received_at), link(`#/events/${encodeURIComponent(ev.id)}`, ev.id), ev.event_type,
    h("span", { class: "mono" }, ev.source_id), String((ev.endpoint_ids || []).length),
  ]), "No events match.", [3, 4]), pager(list.next, params));
  autoRefresh(box);
}

function payloadText(ev) {
  if (ev.payload === undefined) return "(no payload)";
  if (ev.payload_encoding === "base64") {
    try { return atob(ev.payload); } catch { return ev.payload; }
  }
  return pretty(ev.payload);
}

async function eventPage(id) {
  const ev = await get(wsPath(`/events/${encodeURIComponent(id)}`));
  const attempts = await get(wsPath(`/attempts${query({ event_id: id, limit: 100 })}`));
  const buttons = h("div", { class: "actions" });
  for (const epId of ev.endpoint_ids || []) {
    const b = h("button", { type: "button", class: "secondary" }, `Retry to ${epId}`);
    b.addEventListener("click", () => act(b, "Retry", async () => {
      await api("POST", wsPath(`/events/${encodeURIComponent(id)}/retry${query({ endpoint_id: epId })}`));
      return `Retry of ${id} to ${epId} queued.`;
    }));
    buttons.append(b);
  }
  setPage(`Event ${ev.id}`,
    h("section", { class: "card" }, h("dl", { class: "grid" },
      dt("Type", ev.event_type), dt("Received", when(ev.received_at)),
      dt("Source", h("span", { class: "mono" }, ev.source_id)),
      dt("Idempotency key", h("span", { class: "mono" }, ev.idempotency_key)),
      dt("Content type", ev.content_type || "application/json"),
      dt("Endpoints", (ev.endpoint_ids || []).join(", ") || "none"))),
    buttons,
    h("h2", {}, "Payload"), h("pre", { id: "payload" }, payloadText(ev)),
    h("h2", {}, "Attempts"), attemptsTable(attempts.data));
}

// ---------- attempts ----------

function attemptsTable(rows) {
  return table(["When", "Status", "#", "Endpoint", "Event", "Answer", "Latency"], rows.map((a) => [
    link(`#/attempts/${encodeURIComponent(a.id)}`, when(a.attempted_at)),
    statusTag(a.status), String(a.attempt_number),
    h("span", { class: "mono" }, a.endpoint_id), link(`#/events/${encodeURIComponent(a.event_id)}`, a.event_id),
    a.response?.status ? `HTTP ${a.response.status}` : a.error_code || "—",
    a.response?.latency !== undefined ? `${a.response.latency} ms` : "—",
  ]), "No attempts yet.", [2, 3, 6]);
}

async function attemptsPage(params) {
  const filters = { status: params.get("status"), endpoint_id: params.get("endpoint_id"), event_id: params.get("event_id") };
  const list = await get(wsPath(`/attempts${query({ ...filters, cursor: params.get("cursor"), limit: 50 })}`));
  const status = h("select", { id: "filter-status" }, ["", "SUCCESSFUL", "FAILED", "CANCELED"].map((s) =>
    h("option", { value: s, selected: s === (filters.status || "") }, s || "any")));
  const endpoint = h("input", { id: "filter-endpoint_id", value: filters.endpoint_id || "" });
  const event = h("input", { id: "filter-event_id", value: filters.event_id || "" });
  const [live, box] = refreshToggle(params);
  const form = h("form", { class: "card row" }, field("Status", status), field("Endpoint id", endpoint),
    field("Event id", event), h("button", { type: "submit" }, "Filter"), live);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/attempts${query({ status: status.value, endpoint_id: endpoint.value.trim(), event_id: event.value.trim() })}`;
  });
  setPage("Attempts", form, attemptsTable(list.data), pager(list.next, params));
  autoRefresh(box);
}

function headerList(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return h("pre", {}, entries.map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`).join("\n"));
}

async function attemptPage(id) {
  const a = await get(wsPath(`/attempts/${encodeURIComponent(id)}`));
  const retry = h("button", { type: "button", id: "retry" }, "Retry this delivery");
  retry.addEventListener("click", () => act(retry, "Retry", async () => {
    await api("POST", wsPath(`/events/${encodeURIComponent(a.event_id)}/retry${query({ endpoint_id: a.endpoint_id })}`));
    return `Retry of ${a.event_id} to ${a.endpoint_id} queued.`;
  }));
  const r = a.response;
  setPage(`Attempt ${a.attempt_number} · ${a.status}`,
    h("div", { class: "actions" }, retry),
    h("section", { class: "card" }, h("dl", { class: "grid" },
      dt("Status", statusTag(a.status)), dt("Trigger", a.trigger_mode),
      dt("Event", link(`#/events/${encodeURIComponent(a.event_id)}`, a.event_id)),
      dt("Endpoint", link(`#/endpoints/${encodeURIComponent(a.endpoint_id)}`, a.endpoint_id)),
      dt("Scheduled", when(a.scheduled_at)), dt("Attempted", when(a.attempted_at)),
      dt("Next attempt", when(a.next_attempt_at)), dt("Exhausted", a.exhausted ? "yes" : "no"),
      a.error_code ? dt("Error", `${a.error_code}: ${a.error_message || ""}`) : null)),
    h("h2", {}, "Request"),
    h("section", { class: "card" }, h("p", { class: "mono" }, `${a.request.method} ${a.request.url}`), headerList(a.request.headers)),
    h("h2", {}, "Response"),
    r ? h("section", { class: "card" },
      h("p", {}, r.status ? `HTTP ${r.status}` : "no status", ` in ${r.latency} ms`, r.truncated ? " (truncated)" : ""),
      headerList(r.headers), h("h2", {}, "Body"), h("pre", { id: "response-body" }, r.body ?? "")) :
      h("p", { class: "muted" }, "No response was received."));
}

// ---------- dead letters ----------

async function dlqPage(params) {
  // The deliveries' DLQ holds every exhausted task; the ordered queue's own holds ordered
  // endpoints' tasks whose invocations kept crashing.
  const queue = params.get("queue") === "ordered" ? "ordered" : "";
  const peek = await get(`/dlq${query({ queue })}`);
  const limit = h("input", { id: "redrive-limit", type: "number", min: 1, max: 1000, value: 100 });
  const form = h("form", { class: "card row" }, field("Letters to move back", limit),
    h("button", { type: "submit", id: "redrive" }, "Redrive"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(form.querySelector("button"), "Redrive", async () => {
      const { json } = await api("POST", `/dlq/redrive${query({ limit: limit.value, queue })}`);
      return `Redrive: ${json.moved} moved, ${json.unsent} unsent, ${json.unreadable} unreadable, about ${json.remaining_estimate} left${json.complete ? "" : " (not complete: redrive again)"}.`;
    });
  });
  const which = h("p", { id: "dlq-queue" },
    queue ? link("#/dlq", "Deliveries queue") : h("strong", {}, "Deliveries queue"), " · ",
    queue ? h("strong", {}, "Ordered queue") : link("#/dlq?queue=ordered", "Ordered queue"));
  const d = peek.depth || {};
  setPage("Dead letters", which,
    h("p", {}, `In the queue: ${d.visible ?? 0} visible, ${d.in_flight ?? 0} in flight, ${d.delayed ?? 0} delayed. Below: the letters one peek returned (they stay in the queue).`),
    form,
    table(["Failed", "Event", "Endpoint", "Reason", "Attempts", "Last answer"], peek.data.map((l) => [
      when(l.failed_at),
      l.task ? link(`#/events/${encodeURIComponent(l.task.event_id)}`, l.task.event_id) : h("span", { class: "muted" }, "unreadable"),
      h("td", { class: "mono" }, l.endpoint_url || l.task?.endpoint_id || ""),
      l.reason || (l.body ? "unreadable body" : "moved by SQS"), String(l.attempts ?? "—"),
      l.last_status ? `HTTP ${l.last_status}` : l.last_error_code || "—",
    ]), "The dead-letter queue is empty."));
}

// ---------- config ----------

async function configPage() {
  const { text: dump } = await api("GET", wsPath("/config/dump"));
  const text = h("textarea", { id: "config", spellcheck: "false" }, dump);
  const prune = h("input", { type: "checkbox", id: "prune" });
  const plan = h("div", { id: "plan" });
  const preview = h("button", { type: "button", id: "preview" }, "Preview sync");
  const apply = h("button", { type: "button", id: "apply", class: "danger", disabled: true }, "Apply");
  let previewed = null;
  const send = async (dryRun) => {
    const { json } = await api("POST", wsPath(`/config/sync${query({ dry_run: dryRun ? "true" : "", prune: prune.checked ? "true" : "" })}`), text.value);
    return json;
  };
  preview.addEventListener("click", async () => {
    preview.disabled = true;
    try {
      const result = await send(true);
      previewed = text.value + prune.checked;
      apply.disabled = false;
      plan.replaceChildren(planView(result.plan));
      flash("Preview ready: nothing was changed.");
    } catch (e) {
      flash(`Preview failed: ${e.message} (${e.code})`, true);
    } finally {
      preview.disabled = false;
    }
  });
  apply.addEventListener("click", () => {
    if (previewed !== text.value + prune.checked) {
      apply.disabled = true;
      flash("The config changed since the preview: preview it again.", true);
      return;
    }
    act(apply, "Sync", async () => {
      const result = await send(false);
      const p = result.plan;
      return `Synced: ${p.create.length} created, ${p.update.length} updated, ${p.delete.length} deleted.`;
    });
  });
  text.addEventListener("input", () => { apply.disabled = true; });
  setPage("Config",
    h("p", {}, "The workspace's sources and endpoints as a config file (YAML; secrets masked), as config sync takes it. Edit, preview the plan, then apply."),
    text, h("div", { class: "actions" }, h("label", { class: "check" }, prune, "Delete what the file does not name (prune)"), preview, apply),
    plan);
}

function planView(plan) {
  const rows = [];
  for (const kind of ["create", "update", "delete", "unchanged"]) {
    for (const c of plan[kind] || []) rows.push([h("span", { class: `tag ${kind === "delete" ? "bad" : kind === "unchanged" ? "muted" : "ok"}` }, kind), c.kind, c.name, h("span", { class: "mono" }, c.id || "")]);
  }
  return h("section", { class: "card" }, h("h2", {}, "Plan"), table(["Change", "Kind", "Name", "Id"], rows, "Nothing to change."));
}

window.addEventListener("hashchange", () => {
  if (!keepFlash) flash("");
  keepFlash = false;
  render();
});
render();
