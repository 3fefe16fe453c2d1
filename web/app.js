// The MSP Intelligence Mesh dashboard: plain ES modules, no build step. Every number on a
// page comes from the server's answer to a request made from that page, or from its live
// event stream; nothing is generated here.

import { anomalyChart, barChart, forecastChart, linesChart, scheduleChart } from "./charts.js";

const main = document.getElementById("main");
const AGENTS = [
  ["threat-intelligence", "/threat-intelligence/analyze"],
  ["market-intelligence", "/market-intelligence/analyze"],
  ["nlp-query", "/nlp-query/ask"],
  ["partner-matching", "/collaboration/match"],
  ["client-health", "/client-health/predict"],
  ["revenue-forecasting", "/revenue/forecast"],
  ["anomaly-detection", "/anomaly/detect"],
  ["compliance", "/compliance/check"],
  ["resource-allocation", "/resource/optimize"],
  ["federated-learning", "/federated/train"],
];

// ---- settings: config.json from the server (or the bucket), overridden in this browser ----

const settings = { apiBase: "", wsUrl: "", apiKey: "" };

async function loadSettings() {
  try {
    const r = await fetch("config.json", { cache: "no-store" });
    if (r.ok) {
      const c = await r.json();
      settings.apiBase = c.api_base || "";
      settings.wsUrl = c.ws_url || "";
    }
  } catch {
    // No config.json: same origin.
  }
  const saved = JSON.parse(localStorage.getItem("mesh-settings") || "{}");
  Object.assign(settings, Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== "")));
}

function apiUrl(path) {
  return (settings.apiBase || "").replace(/\/$/, "") + path;
}

function wsUrl() {
  let url = settings.wsUrl;
  if (!url) {
    const base = settings.apiBase ? new URL(settings.apiBase, location.href) : new URL(location.href);
    url = `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}${base.pathname.replace(/\/$/, "")}/ws`;
    if (!settings.apiBase) url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
  }
  if (settings.apiKey) url += (url.includes("?") ? "&" : "?") + "api_key=" + encodeURIComponent(settings.apiKey);
  return url;
}

/** Calls the API; resolves to {status, body} (the body parsed as JSON when it is JSON). */
async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (settings.apiKey) headers["x-api-key"] = settings.apiKey;
  const r = await fetch(apiUrl(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: r.status, body: parsed };
}

// ---- small DOM helpers ----

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function table(headers, rows, caption) {
  return h("table", {}, caption ? h("caption", {}, caption) : "", h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

const num = (v, digits = 3) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : v ?? "—");

function modelLine(body) {
  const parts = [h("strong", {}, "model_used: "), h("code", { "data-testid": "model-used" }, body.model_used ?? "(none)")];
  const fallback = body.fallback_reason || body.fallback;
  if (fallback) parts.push(h("p", { class: "fallback" }, `fallback: ${typeof fallback === "string" ? fallback : JSON.stringify(fallback)}`));
  return h("div", { class: "model" }, parts);
}

function errorBox(status, body) {
  const message = typeof body === "object" ? `${body.error_type || "error"}: ${body.error || JSON.stringify(body)}${body.field ? ` (field ${body.field})` : ""}` : String(body);
  return h("div", { class: "error", role: "alert" }, `HTTP ${status}: ${message}`);
}

// ---- the picture that fits each agent's answer ----

const VIEWS = {
  "revenue-forecasting"(req, body) {
    const history = req.history || [];
    const forecast = (body.monthly_forecast || []).map((m) => ({ value: m.revenue, lower: m.lower_bound, upper: m.upper_bound }));
    return [
      forecastChart({ history, forecast, label: `revenue history and ${forecast.length}-period forecast with interval band`, yLabel: "revenue" }),
      table(["period", "forecast", "lower", "upper"], (body.monthly_forecast || []).map((m) => [m.month, num(m.revenue, 1), num(m.lower_bound, 1), num(m.upper_bound, 1)]), "Forecast"),
      table(["projected revenue", "growth rate", "interval confidence", "frequency"], [[num(body.projected_revenue, 1), num(body.growth_rate, 4), num(body.confidence, 2), body.frequency]]),
      table(["candidate model", "holdout sMAPE %", "note"], (body.candidates || []).map((c) => [c.name, num(c.smape, 2), c.note || ""]), "Model selection"),
    ];
  },
  "anomaly-detection"(req, body) {
    const values = req.values || (req.points || []).map((p) => p[0]);
    const flagged = (body.anomalies || []).map((a) => a.index);
    return [
      anomalyChart({ values, scores: body.anomaly_scores, flagged, label: `${values.length} values with ${flagged.length} flagged anomalies and their isolation-forest scores` }),
      table(["index", "value", "type", "severity", "score"], (body.anomalies || []).map((a) => [a.index, num(a.value), a.type, a.severity, num(a.anomaly_score)]), "Anomalies"),
    ];
  },
  "threat-intelligence"(_req, body) {
    return [
      table(["threat type", "severity", "confidence"], [[body.threat_type, badge(body.severity), num(body.confidence)]]),
      table(["ATT&CK technique", "name", "tactics", "similarity"], (body.techniques || []).map((t) => [h("a", { href: t.url, rel: "noreferrer" }, t.id), t.name, (t.tactics || []).join(", "), num(t.similarity)]), "ATT&CK techniques"),
      table(["indicator", "kind"], (body.indicators || []).map((i) => [h("code", {}, i.value), i.kind]), "Indicators"),
      h("h3", {}, "Recommended actions"),
      h("ul", {}, (body.recommended_actions || []).map((a) => h("li", {}, a))),
    ];
  },
  compliance(_req, body) {
    const controls = body.controls || [];
    return [
      table(["framework", "score", "status", "covered"], [[body.framework_name || body.framework, num(body.compliance_score), body.status, `${body.controls_covered} of ${body.controls_total}`]]),
      barChart({ items: controls.map((c) => ({ label: `${c.id} ${c.title}`, value: c.best_similarity, highlight: !c.covered })), label: `best similarity of each control (covered: among a sentence's nearest, at or above ${body.coverage_threshold})`, max: 1 }),
      ...(() => {
        const headers = ["control", "covered", "similarity", "evidence (the policy's sentence, its similarity)"];
        const rows = controls.map((c) => [`${c.id} ${c.title}`, c.covered ? "yes" : "no", num(c.best_similarity),
          (c.evidence || []).length ? h("q", {}, c.evidence[0].sentence) : "—"]);
        return [table(headers, rows, "Control coverage"), csvButton(headers, rows, "control-coverage.csv"),
          h("button", { type: "button", class: "secondary", onclick: () => window.print() }, "Print the report")];
      })(),
    ];
  },
  "resource-allocation"(_req, body) {
    const rows = (body.schedule || []).map((s) => ({ label: s.technician_id, capacity: s.capacity_hours, tasks: (s.assigned_tasks || []).map((t) => ({ id: t.task_id, start: t.start_hours, finish: t.finish_hours })) }));
    return [
      scheduleChart({ rows, label: "the schedule: each technician's tasks from start to finish, capacity marked" }),
      table(["technician", "tasks", "hours used", "utilisation"], (body.schedule || []).map((s) => [s.technician_id, (s.assigned_tasks || []).map((t) => t.task_id).join(", "), num(s.hours_used, 2), num(s.utilization, 3)]), "Schedule"),
      table(["unassigned task", "priority", "reason"], (body.unassigned || []).map((u) => [u.task_id, u.priority, u.reason]), "Unassigned"),
      table(["method", "objective", "efficiency"], [[body.method, num(body.objective), num(body.efficiency_score)]]),
    ];
  },
  "federated-learning"(_req, body) {
    const history = body.history || [];
    const series = [{ name: "accuracy", points: history.map((r) => [r.round, r.accuracy]) }];
    if (history.some((r) => r.auc != null)) series.push({ name: "ROC-AUC", points: history.filter((r) => r.auc != null).map((r) => [r.round, r.auc]), cls: "second" });
    const eps = history.filter((r) => r.epsilon_spent != null);
    const charts = [linesChart({ series, label: "held-out accuracy and ROC-AUC after each federated round", xLabel: "round", yLabel: "accuracy" })];
    if (eps.length) charts.push(linesChart({ series: [{ name: "epsilon spent", points: eps.map((r) => [r.round, r.epsilon_spent]), cls: "second" }], label: "privacy budget (epsilon) spent after each round", xLabel: "round", yLabel: "epsilon" }));
    return [
      ...charts,
      table(["round", "accuracy", "ROC-AUC", "epsilon spent"], history.map((r) => [r.round, num(r.accuracy), num(r.auc), num(r.epsilon_spent)]), "Rounds"),
      table(["accuracy before", "after", "epsilon used", "delta"], [[num(body.previous_accuracy), num(body.new_accuracy), num(body.privacy_budget_used), body.delta]]),
    ];
  },
  "market-intelligence"(_req, body) {
    const sentences = body.sentences || [];
    return [
      table(["sentiment score", "market impact", "sentiment"], [[num(body.sentiment_score), body.market_impact, body.sentiment || ""]]),
      barChart({ items: sentences.map((x) => ({ label: x.text, value: x.positive_probability, highlight: x.positive_probability < 0.5 })), label: "P(positive) of each sentence (highlighted: below 0.5)", max: 1 }),
      table(["entity", "kind"], (body.entities || []).map((e) => [e.text, e.kind]), "Entities"),
    ];
  },
  "nlp-query"(_req, body) {
    const passages = new Map((body.passages || []).map((p) => [p.id, p]));
    return [
      h("blockquote", { "data-testid": "answer" }, body.answer ?? body.response ?? ""),
      h("h3", {}, "Sources"),
      h("ol", { "data-testid": "sources" }, (body.sources || []).map((id) => {
        const p = passages.get(id);
        return h("li", {}, h("code", {}, id), p ? ` ${p.title} (${p.source}, similarity ${num(p.similarity)})` : "");
      })),
      table(["passage", "title", "source", "similarity"], (body.passages || []).map((p) => [p.id, p.title, p.source, num(p.similarity)]), "Passages retrieved"),
    ];
  },
  "partner-matching"(_req, body) {
    return [table(["partner", "name", "match score", "skills", "location"], (body.matches || []).map((m) => [m.msp_id, m.name, num(m.match_score), (m.skills || []).join(", "), m.location]), "Matches")];
  },
  "client-health"(_req, body) {
    const contributions = body.contributions || body.feature_contributions || [];
    const items = (Array.isArray(contributions) ? contributions : Object.entries(contributions).map(([feature, value]) => ({ feature, contribution: value })))
      .map((c) => ({ label: c.feature || c.name, value: Math.abs(c.contribution ?? c.value ?? 0), highlight: (c.contribution ?? c.value ?? 0) > 0 }));
    const out = [table(["churn risk", "risk level", "health score"], [[num(body.churn_risk), body.risk_level, num(body.health_score)]])];
    if (items.length) out.push(barChart({ items, label: "size of each feature's contribution to the churn log-odds (highlighted: raises the risk)", max: Math.max(...items.map((i) => i.value), 1e-9) }));
    return out;
  },
};

// ---- pages ----

let examples = {};

/** Plain-field forms of the agents that have one. Each field fills one key of the request (the
 * example's other keys are kept); the JSON stays one click away for power users. */
const FORMS = {
  "threat-intelligence": [
    { key: "text", label: "Incident, alert or e-mail text (a raw e-mail with its headers is judged by the e-mail model)", kind: "textarea", rows: 8 },
    { key: "top_k", label: "ATT&CK techniques to list", kind: "number", min: 1, max: 20 },
  ],
  "nlp-query": [
    { key: "query", label: "Question", kind: "textarea", rows: 3 },
    { key: "top_k", label: "Passages to retrieve", kind: "number", min: 1, max: 20 },
  ],
  compliance: [
    { key: "framework", label: "Framework", kind: "select", options: [["nist-csf-2.0", "NIST CSF 2.0"], ["nist-800-53", "NIST SP 800-53 Rev. 5"], ["hipaa-security", "HIPAA Security Rule"], ["cis-v8", "CIS Controls v8"], ["soc2", "SOC 2"], ["iso27001-2022", "ISO/IEC 27001:2022"]] },
    { key: "policy_text", label: "Policy text", kind: "textarea", rows: 10 },
    { key: "policy_file", label: "…or upload a policy (plain text or Markdown; it replaces the text above)", kind: "file", accept: ".txt,.md,text/plain,text/markdown", fills: "policy_text" },
  ],
};

/** The inputs of a form's fields, filled from `request`. */
function formFields(fields, request) {
  const inputs = fields.map((f) => {
    const id = `field-${f.key}`;
    const value = request[f.key] ?? "";
    let input;
    if (f.kind === "textarea") input = h("textarea", { id, rows: f.rows || 4, class: "prose" }, String(value));
    else if (f.kind === "select") input = h("select", { id }, f.options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
    else if (f.kind === "file") input = h("input", { id, type: "file", accept: f.accept });
    else input = h("input", { id, type: f.kind, min: f.min, max: f.max, value: String(value) });
    return { field: f, input, nodes: [h("label", { for: id }, f.label), input] };
  });
  // A file field reads the chosen file into the field it fills.
  for (const { field, input } of inputs) {
    if (field.kind !== "file") continue;
    const target = inputs.find((i) => i.field.key === field.fills).input;
    input.addEventListener("change", async () => {
      if (input.files[0]) target.value = await input.files[0].text();
      input.dispatchEvent(new Event("loaded"));
    });
  }
  return inputs;
}

/** The request a form's fields say: the example's keys, each field's value over its key (an
 * empty number field leaves its key out). */
function requestFromFields(base, inputs) {
  const request = { ...base };
  for (const { field, input } of inputs) {
    if (field.kind === "file") continue;
    if (field.kind === "number") {
      if (input.value === "") delete request[field.key];
      else request[field.key] = Number(input.value);
    } else {
      request[field.key] = input.value;
    }
  }
  return request;
}

async function agentPage(name) {
  const entry = AGENTS.find(([n]) => n === name);
  if (!entry) return notFound();
  const [, route] = entry;
  const example = examples[route] || { title: name, request: {} };
  const textarea = h("textarea", { id: "request", rows: 14, spellcheck: "false", "aria-describedby": "request-help" }, JSON.stringify(example.request, null, 2));
  const inputs = FORMS[name] ? formFields(FORMS[name], example.request) : null;
  const jsonBox = inputs ? h("details", { id: "json-request" }, h("summary", {}, "Edit the request as JSON instead")) : null;
  // Opening the JSON shows what the fields say, to edit from there.
  jsonBox?.addEventListener("toggle", () => {
    if (jsonBox.open) textarea.value = JSON.stringify(requestFromFields(example.request, inputs), null, 2);
  });
  const result = h("section", { id: "result", "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Send request");
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      let request;
      try {
        request = inputs && !jsonBox.open ? requestFromFields(example.request, inputs) : JSON.parse(textarea.value);
      } catch (err) {
        result.replaceChildren(h("div", { class: "error", role: "alert" }, `The request is not valid JSON: ${err.message}`));
        return;
      }
      submit.disabled = true;
      result.replaceChildren(h("p", {}, "Waiting for the server…"));
      const started = performance.now();
      try {
        const { status, body } = await api("POST", route, request);
        const ms = performance.now() - started;
        if (status !== 200) {
          result.replaceChildren(errorBox(status, body));
          return;
        }
        const view = VIEWS[name] ? VIEWS[name](request, body) : [];
        result.replaceChildren(
          h("h2", {}, "Answer"),
          modelLine(body),
          h("p", { class: "meta" }, `HTTP ${status} in ${ms.toFixed(0)} ms; result ${body.result_id || ""}`),
          ...view,
          h("details", {}, h("summary", {}, "Full JSON answer"), h("pre", {}, JSON.stringify(body, null, 2))),
        );
        result.dataset.state = "answered";
      } catch (err) {
        result.replaceChildren(h("div", { class: "error", role: "alert" }, `The request failed: ${err.message}`));
      } finally {
        submit.disabled = false;
      }
    },
  },
    ...(inputs ? inputs.flatMap((i) => i.nodes) : []),
    ...(() => {
      const json = [h("label", { for: "request" }, `Request to POST ${route}`),
        h("p", { id: "request-help", class: "help" }, inputs ? "While this is open, the JSON is sent instead of the fields above." : "Edit the JSON and send it; the answer below is the server's, drawn as it came."),
        textarea];
      if (!inputs) return json;
      jsonBox.append(...json);
      return [jsonBox];
    })(),
    h("div", {}, submit));
  main.replaceChildren(h("h1", {}, example.title), form, result);
}

let socket = null;
let statusTimer = null;
const feed = [];
const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];

/** A table's rows as CSV (RFC 4180 quoting), downloaded as `name`. */
function csvButton(headers, rows, name) {
  const cell = (v) => {
    const text = v instanceof Node ? v.textContent : String(v ?? "");
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return h("button", {
    type: "button", class: "secondary",
    onclick: () => {
      const csv = [headers, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
      const link = h("a", { href: URL.createObjectURL(new Blob([csv], { type: "text/csv" })), download: name });
      document.body.append(link);
      link.click();
      link.remove();
    },
  }, `Download ${name}`);
}

/** A severity badge (CRITICAL, HIGH, MEDIUM, LOW; anything else as "info"). */
function badge(severity) {
  const s = String(severity || "").toUpperCase();
  const known = SEVERITIES.includes(s);
  return h("span", { class: `badge sev-${known ? s.toLowerCase() : "info"}` }, known ? s : "INFO");
}

/** The indicators an event carries ({value, kind} objects or plain strings), the first few. */
function indicatorList(indicators) {
  const all = (indicators || []).map((i) => (typeof i === "string" ? i : i.value)).filter(Boolean);
  if (!all.length) return "";
  return h("span", { class: "indicators" }, ...all.slice(0, 4).flatMap((v, i) => [i ? " " : "", h("code", {}, v)]), all.length > 4 ? ` +${all.length - 4}` : "");
}

/** One feed item from a live event or a stored threat: severity, time, agent, what, indicators, model. */
function feedItem(item) {
  return h("li", { class: `feed-item sev-row-${(item.severity || "info").toLowerCase()}` },
    badge(item.severity), " ", h("time", { datetime: item.timestamp || "" }, (item.timestamp || "").replace("T", " ").replace(/\.\d+Z$/, "Z")), " ",
    h("strong", {}, item.agent || ""), " ", item.what || "", " ", indicatorList(item.indicators),
    item.model ? h("span", { class: "meta" }, ` model ${item.model}`) : "", " ",
    item.result_id ? h("code", { class: "result-id" }, item.result_id) : "");
}

/** A live event as a feed item. */
function eventItem(event) {
  const data = event.data || {};
  const alert = event.type === "alert";
  const what = alert ? data.message || data.rule || "alert" : data.threat_type ? `${data.threat_type} (confidence ${num(data.confidence, 2)})` : data.risk_level ? `churn risk ${data.risk_level}` : "answer";
  return {
    kind: event.type, severity: data.severity || (data.risk_level ? String(data.risk_level).toUpperCase() : null), timestamp: event.timestamp,
    agent: event.agent, what: alert ? `alert: ${what}` : what, indicators: data.indicators, model: data.model_used, result_id: event.result_id,
  };
}

/** A stored threat (`/threats`) as a feed item. */
function threatItem(t) {
  return { kind: "threat", severity: t.severity, timestamp: t.timestamp, agent: "threat-intelligence", what: `${t.threat_type} (confidence ${num(t.confidence, 2)})`, model: t.model_used, result_id: t.threat_id };
}

function connectFeed(list, stateLabel, render) {
  if (socket) socket.close();
  socket = new WebSocket(wsUrl());
  socket.onopen = () => {
    stateLabel.textContent = "connected";
    socket.send(JSON.stringify({ type: "subscribe", data: {} }));
  };
  socket.onclose = () => {
    stateLabel.textContent = "disconnected";
  };
  socket.onmessage = (m) => {
    let event;
    try {
      event = JSON.parse(m.data);
    } catch {
      return;
    }
    if (!["agent_result", "alert"].includes(event.type)) return;
    feed.unshift(eventItem(event));
    feed.length = Math.min(feed.length, 100);
    render();
  };
}

/** Requests and alerts per minute, per agent, from `/metrics/history`. */
async function historySection(box, minutes, agent) {
  const { status, body } = await api("GET", `/metrics/history?minutes=${minutes}`).catch((e) => ({ status: 0, body: e.message }));
  if (status !== 200) return box.replaceChildren(errorBox(status, body));
  const agents = agent === "all" ? Object.keys(body.agents) : [agent];
  const sum = (key) => body.minutes.map((_, i) => agents.reduce((t, a) => t + body.agents[a][key][i], 0));
  const [requests, errors, alerts] = ["requests", "errors", "alerts"].map(sum);
  const x = (i) => i - body.minutes.length + 1;
  const who = agent === "all" ? "all agents" : agent;
  const rows = body.minutes.map((m, i) => [m, requests[i], errors[i], alerts[i]]).filter((r) => r[1] || r[2] || r[3]);
  box.replaceChildren(
    linesChart({
      series: [
        { name: "requests", points: requests.map((v, i) => [x(i), v]) },
        { name: "alerts", points: alerts.map((v, i) => [x(i), v]), cls: "second" },
        { name: "errors", points: errors.map((v, i) => [x(i), v]), cls: "third" },
      ],
      label: `requests, errors and alerts per minute of ${who}, last ${minutes} minutes`, xLabel: "minutes from now", yLabel: "per minute",
    }),
    h("p", { class: "meta", "data-testid": "history-totals" }, `${who}, last ${minutes} minutes: ${requests.reduce((a, b) => a + b, 0)} requests, ${errors.reduce((a, b) => a + b, 0)} errors, ${alerts.reduce((a, b) => a + b, 0)} alerts (counted by ${body.kept_by})`),
    h("details", {}, h("summary", {}, "Minutes with activity"), table(["minute", "requests", "errors", "alerts"], rows), csvButton(["minute", "requests", "errors", "alerts"], rows, "requests-per-minute.csv")),
  );
}

async function overviewPage() {
  const stateLabel = h("span", { id: "feed-state" }, "connecting");
  const list = h("ol", { id: "feed", class: "feed", "aria-live": "polite" });
  const renderFeed = () => list.replaceChildren(...(feed.length ? feed.map(feedItem) : [h("li", { class: "meta" }, "No threats or alerts yet.")]));
  const statusBox = h("div", {}, h("p", {}, "Loading /agents/status…"));
  const historyBox = h("div", { id: "history" }, h("p", {}, "Loading /metrics/history…"));
  const range = h("select", { id: "history-range" }, [[60, "last hour"], [360, "last 6 hours"], [1440, "last 24 hours"]].map(([v, t]) => h("option", { value: v }, t)));
  const agentPick = h("select", { id: "history-agent" }, h("option", { value: "all" }, "all agents"), AGENTS.map(([n]) => h("option", { value: n }, n)));
  const drawHistory = () => historySection(historyBox, Number(range.value), agentPick.value);
  range.addEventListener("change", drawHistory);
  agentPick.addEventListener("change", drawHistory);
  main.replaceChildren(h("h1", {}, "Overview"),
    h("section", { "aria-labelledby": "feed-h" }, h("h2", { id: "feed-h" }, "Threats and alerts, newest first ", h("small", {}, "(live: ", stateLabel, ")")), list),
    h("section", { "aria-labelledby": "history-h" }, h("h2", { id: "history-h" }, "Requests and alerts over time"),
      h("div", { class: "controls" }, h("label", { for: "history-range" }, "Range"), range, h("label", { for: "history-agent" }, "Agent"), agentPick), historyBox),
    h("section", { "aria-labelledby": "status-h" }, h("h2", { id: "status-h" }, "Agents"), statusBox));
  renderFeed();
  // The feed starts from the stored threats; live events are added as they come.
  const threats = await api("GET", "/threats?limit=25").catch((e) => ({ status: 0, body: e.message }));
  if (threats.status !== 200) {
    list.replaceChildren(h("li", {}, errorBox(threats.status, threats.body)));
  } else if (!feed.length) {
    feed.push(...(threats.body.threats || []).map(threatItem));
    renderFeed();
  }
  connectFeed(list, stateLabel, renderFeed);
  const refresh = async () => {
    const { status, body } = await api("GET", "/agents/status").catch((e) => ({ status: 0, body: e.message }));
    if (status !== 200) {
      statusBox.replaceChildren(errorBox(status, body));
      return;
    }
    const headers = ["agent", "status", "model_used", "health", "p95 ms", "requests", "errors", "last activity"];
    const rows = Object.entries(body.agents || {}).map(([name, a]) => [
      h("a", { href: `#/agent/${name}` }, name), a.status, a.model_used || a.unavailable_reason || "", num(a.health_score, 2),
      a.p95_latency_ms == null ? "—" : num(a.p95_latency_ms, 1), a.requests, a.errors, a.last_activity || "never",
    ]);
    statusBox.replaceChildren(h("p", {}, `${body.active_agents} of ${body.total_agents} agents active at ${body.status_time || ""}`),
      table(headers, rows, "Agent health"), csvButton(headers, rows, "agents.csv"));
    drawHistory();
  };
  await refresh();
  clearInterval(statusTimer);
  statusTimer = setInterval(() => (location.hash === "" || location.hash === "#/") && refresh(), 10000);
}

async function workflowPage() {
  const text = h("textarea", { id: "wf-text", rows: 5 }, (examples["/threat-intelligence/analyze"]?.request?.text) || "");
  const policy = h("textarea", { id: "wf-policy", rows: 5 }, (examples["/compliance/check"]?.request?.policy_text) || "");
  const framework = h("input", { id: "wf-framework", value: examples["/compliance/check"]?.request?.framework || "soc2" });
  const hours = h("input", { id: "wf-hours", type: "number", min: "0.25", step: "0.25", value: "2" });
  // The example technicians, and one for the compliance work the workflow creates.
  const technicians = [...((examples["/resource/optimize"]?.request?.technicians) || []), { id: "dana", skills: ["compliance"], capacity_hours: 8, efficiency: 1.0 }];
  const techs = h("textarea", { id: "wf-techs", rows: 5 }, JSON.stringify(technicians, null, 2));
  const out = h("section", { id: "wf-result", "aria-live": "polite" });
  const run = async (e) => {
    e.preventDefault();
    out.replaceChildren(h("p", {}, "Step 1: threat intelligence…"));
    const threat = await api("POST", "/threat-intelligence/analyze", { text: text.value });
    if (threat.status !== 200) return out.replaceChildren(errorBox(threat.status, threat.body));
    const step1 = h("section", {}, h("h2", {}, "1. Threat intelligence"), modelLine(threat.body), ...VIEWS["threat-intelligence"]({}, threat.body));
    out.replaceChildren(step1, h("p", {}, "Step 2: compliance…"));
    const compliance = await api("POST", "/compliance/check", { framework: framework.value, policy_text: policy.value });
    if (compliance.status !== 200) return out.replaceChildren(step1, errorBox(compliance.status, compliance.body));
    const step2 = h("section", {}, h("h2", {}, "2. Compliance of the policy"), modelLine(compliance.body), ...VIEWS.compliance({}, compliance.body));
    // Step 3's tasks are the threat's recommended actions and the uncovered controls, each
    // estimated at the hours given in the form; priority from the threat's severity.
    const priority = { CRITICAL: 1, HIGH: 2, MEDIUM: 3, LOW: 4 }[threat.body.severity] || 3;
    const tasks = [
      ...(threat.body.recommended_actions || []).map((a, i) => ({ id: `threat-${i + 1}`, skill: "security", priority, estimated_hours: Number(hours.value), title: a })),
      ...(compliance.body.controls || []).filter((c) => !c.covered).map((c) => ({ id: `control-${c.id}`, skill: "compliance", priority: Math.min(priority + 1, 4), estimated_hours: Number(hours.value), title: c.title })),
    ];
    let technicians;
    try {
      technicians = JSON.parse(techs.value);
    } catch (err) {
      return out.replaceChildren(step1, step2, h("div", { class: "error", role: "alert" }, `Technicians are not valid JSON: ${err.message}`));
    }
    out.replaceChildren(step1, step2, h("p", {}, "Step 3: resource allocation…"));
    const plan = await api("POST", "/resource/optimize", { tasks: tasks.map(({ title, ...t }) => t), technicians });
    if (plan.status !== 200) return out.replaceChildren(step1, step2, errorBox(plan.status, plan.body));
    const step3 = h("section", {}, h("h2", {}, "3. Resource allocation"), modelLine(plan.body),
      table(["task", "what", "skill", "priority", "hours (form)"], tasks.map((t) => [t.id, t.title, t.skill, t.priority, t.estimated_hours]), "Tasks sent"),
      ...VIEWS["resource-allocation"]({}, plan.body));
    out.replaceChildren(step1, step2, step3);
    out.dataset.state = "answered";
  };
  main.replaceChildren(h("h1", {}, "Workflow: threat → compliance → resource allocation"),
    h("form", { onsubmit: run },
      h("label", { for: "wf-text" }, "Incident text (threat intelligence)"), text,
      h("label", { for: "wf-framework" }, "Compliance framework"), framework,
      h("label", { for: "wf-policy" }, "Policy text to check"), policy,
      h("label", { for: "wf-hours" }, "Estimated hours per task"), hours,
      h("label", { for: "wf-techs" }, "Technicians (JSON)"), techs,
      h("div", {}, h("button", { type: "submit" }, "Run the workflow"))),
    out);
}

function settingsPage() {
  const field = (id, label, value, type = "text") => [h("label", { for: id }, label), h("input", { id, type, value, autocomplete: "off" })];
  const form = h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      const saved = { apiBase: form.querySelector("#api-base").value.trim(), wsUrl: form.querySelector("#ws-url").value.trim(), apiKey: form.querySelector("#api-key").value.trim() };
      localStorage.setItem("mesh-settings", JSON.stringify(saved));
      Object.assign(settings, saved);
      form.querySelector("#saved").textContent = "Saved.";
    },
  },
    ...field("api-base", "API base URL (empty: this site)", settings.apiBase),
    ...field("ws-url", "WebSocket URL (empty: the API's /ws)", settings.wsUrl),
    ...field("api-key", "API key (sent as x-api-key)", settings.apiKey, "password"),
    h("div", {}, h("button", { type: "submit" }, "Save")), h("p", { id: "saved", role: "status" }));
  main.replaceChildren(h("h1", {}, "Settings"), form);
}

function notFound() {
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  document.querySelectorAll("nav a").forEach((a) => a.setAttribute("aria-current", a.getAttribute("href") === `#${hash}` ? "page" : "false"));
  if (hash === "/") return overviewPage();
  if (hash === "/workflow") return workflowPage();
  if (hash === "/settings") return settingsPage();
  const m = hash.match(/^\/agent\/([a-z-]+)$/);
  if (m) return agentPage(m[1]);
  return notFound();
}

async function start() {
  await loadSettings();
  try {
    examples = await (await fetch("examples.json")).json();
  } catch {
    examples = {};
  }
  const nav = document.getElementById("agents-nav");
  nav.replaceChildren(...AGENTS.map(([name, r]) => h("li", {}, h("a", { href: `#/agent/${name}` }, examples[r]?.title || name))));
  window.addEventListener("hashchange", route);
  await route();
}

start();
