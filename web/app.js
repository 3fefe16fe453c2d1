// The MSP Intelligence Mesh dashboard: plain ES modules, no build step. Every number on a
// page comes from the server's answer to a request made from that page, or from its live
// event stream; nothing is generated here.

import { anomalyChart, barChart, forecastChart, linesChart, scheduleChart } from "./charts.js";
import { csvButton, h, num, table, tableWithCsv } from "./dom.js";
import { buildForm, csvRecords, metricSeries, revenueSeries } from "./forms.js";

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

/** Calls the API; resolves to {status, body} (the body parsed as JSON when it is JSON). A body
 * of another `contentType` (e.g. text/csv) is sent as the text it is. */
async function api(method, path, body, contentType = "application/json") {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = contentType;
  if (settings.apiKey) headers["x-api-key"] = settings.apiKey;
  const json = contentType === "application/json";
  const r = await fetch(apiUrl(path), { method, headers, body: body === undefined ? undefined : json ? JSON.stringify(body) : body });
  const text = await r.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: r.status, body: parsed };
}

/** Calls a route that streams its progress as NDJSON: `onLine` gets each progress line as it
 * arrives; resolves to {status, body} like `api`, from the last line ({result} or {error,
 * status}), or from the plain answer of a request refused before the stream started. */
async function apiStream(method, path, body, onLine) {
  const headers = { accept: "application/x-ndjson", "content-type": "application/json" };
  if (settings.apiKey) headers["x-api-key"] = settings.apiKey;
  const r = await fetch(apiUrl(path), { method, headers, body: JSON.stringify(body) });
  if (!(r.headers.get("content-type") || "").startsWith("application/x-ndjson") || !r.body) {
    const text = await r.text();
    try {
      return { status: r.status, body: JSON.parse(text) };
    } catch {
      return { status: r.status, body: text };
    }
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (value) pending += value;
    const lines = pending.split("\n");
    pending = done ? "" : lines.pop();
    for (const line of lines.filter((l) => l.trim())) {
      const parsed = JSON.parse(line);
      if ("result" in parsed || "error" in parsed) last = parsed;
      else onLine(parsed);
    }
    if (done) break;
  }
  if (!last) return { status: 502, body: { error: "the answer stopped before its result (the connection closed)" } };
  return "result" in last ? { status: 200, body: last.result } : { status: last.status, body: last.error };
}

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
      ...tableWithCsv(["period", "forecast", "lower", "upper"], (body.monthly_forecast || []).map((m) => [m.month, num(m.revenue, 1), num(m.lower_bound, 1), num(m.upper_bound, 1)]), "Forecast", "forecast.csv"),
      table(["projected revenue", "growth rate", "interval confidence", "frequency"], [[num(body.projected_revenue, 1), num(body.growth_rate, 4), num(body.confidence, 2), body.frequency]]),
      table(["candidate model", "holdout sMAPE %", "note"], (body.candidates || []).map((c) => [c.name, num(c.smape, 2), c.note || ""]), "Model selection"),
    ];
  },
  "anomaly-detection"(req, body) {
    const values = req.values || (req.points || []).map((p) => p[0]);
    const flagged = (body.anomalies || []).map((a) => a.index);
    return [
      anomalyChart({ values, scores: body.anomaly_scores, flagged, label: `${values.length} values with ${flagged.length} flagged anomalies and their isolation-forest scores` }),
      ...(() => {
        const anomalies = body.anomalies || [];
        const stamped = anomalies.some((a) => a.detected_at);
        const headers = ["index", ...(stamped ? ["time"] : []), "value", "type", "severity", "score"];
        const rows = anomalies.map((a) => [a.index, ...(stamped ? [a.detected_at ?? ""] : []), num(a.value), a.type, a.severity, num(a.anomaly_score)]);
        return tableWithCsv(headers, rows, "Anomalies", "anomalies.csv");
      })(),
    ];
  },
  /** The threat report: what was judged, the verdict, techniques, indicators and actions. */
  "threat-intelligence"(req, body) {
    const techniques = ["ATT&CK technique", "name", "tactics", "similarity"];
    const techniqueRows = (body.techniques || []).map((t) => [h("a", { href: t.url, rel: "noreferrer" }, t.id), t.name, (t.tactics || []).join(", "), num(t.similarity)]);
    const indicators = body.indicators || [];
    return [
      ...(req.text ? [h("h3", {}, "Text judged"), h("blockquote", { class: "judged" }, req.text)] : []),
      table(["threat type", "severity", "confidence", "judged at"], [[body.threat_type, badge(body.severity), num(body.confidence), body.timestamp || ""]]),
      ...tableWithCsv(techniques, techniqueRows, "ATT&CK techniques", "techniques.csv"),
      ...(indicators.length
        ? tableWithCsv(["indicator", "kind"], indicators.map((i) => [h("code", {}, i.value), i.kind]), "Indicators", "indicators.csv")
        : [h("p", { class: "meta" }, "No indicators (addresses, domains, URLs, hashes, file paths) in the text.")]),
      h("h3", {}, "Recommended actions"),
      h("ul", {}, (body.recommended_actions || []).map((a) => h("li", {}, a))),
      h("button", { type: "button", class: "secondary", onclick: () => window.print() }, "Print the report"),
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
      ...tableWithCsv(["technician", "tasks", "hours used", "utilisation"], (body.schedule || []).map((s) => [s.technician_id, (s.assigned_tasks || []).map((t) => t.task_id).join(", "), num(s.hours_used, 2), num(s.utilization, 3)]), "Schedule", "schedule.csv"),
      table(["unassigned task", "priority", "reason"], (body.unassigned || []).map((u) => [u.task_id, u.priority, u.reason]), "Unassigned"),
      table(["method", "objective", "efficiency"], [[body.method, num(body.objective), num(body.efficiency_score)]]),
    ];
  },
  "federated-learning"(_req, body) {
    const history = body.history || [];
    return [
      ...roundCharts(history),
      ...tableWithCsv(["round", "accuracy", "ROC-AUC", "epsilon spent"], history.map((r) => [r.round, num(r.accuracy), num(r.auc), num(r.epsilon_spent)]), "Rounds", "rounds.csv"),
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
    const headers = ["partner", "name", "match score", "text similarity", "required skills it has", "location"];
    const rows = (body.matches || []).map((m) => [m.msp_id, m.name, num(m.match_score), num(m.semantic_similarity), (m.matched_skills || []).join(", ") || "—", m.location]);
    return [h("p", { class: "meta" }, `${body.partners_considered} partners considered${body.sample_data ? " (the shipped sample directory)" : ""}; required skills: ${(body.required_skills || []).join(", ") || "none"}`),
      ...tableWithCsv(headers, rows, "Matches", "matches.csv")];
  },
  "client-health"(_req, body) {
    const contributions = body.contributions || [];
    const items = contributions.map((c) => ({ label: c.feature, value: Math.abs(c.contribution), highlight: c.contribution > 0 }));
    const out = [table(["client", "model", "churn risk", "risk level", "health score", "revenue at risk"],
      [[body.client_id ?? "—", `${body.model_id} v${body.version}`, num(body.churn_risk), body.risk_level, num(body.health_score), num(body.predictions?.revenue_at_risk, 2)]])];
    if (items.length) out.push(barChart({ items, label: "size of each feature's contribution to the churn log-odds (highlighted: raises the risk)", max: Math.max(...items.map((i) => i.value), 1e-9) }));
    out.push(...tableWithCsv(["feature", "value", "contribution to the log-odds"], contributions.map((c) => [c.feature, c.value == null ? "(imputed)" : String(c.value), num(c.contribution, 4)]), "Contributions", "contributions.csv"));
    if ((body.recommendations || []).length) out.push(h("h3", {}, "Recommendations"), h("ul", {}, body.recommendations.map((r) => h("li", {}, r))));
    return out;
  },
};

// ---- pages ----

let examples = {};

const CSV_FILES = ".csv,text/csv,text/plain";

/** Plain-field forms of the agents (see forms.js for the kinds of field). Each field fills one
 * key of the request (the example's other keys are kept); the JSON stays one click away. */
const FORMS = {
  "threat-intelligence": [
    { key: "text", label: "Incident, alert or e-mail text (a raw e-mail with its headers is judged by the e-mail model)", kind: "textarea", rows: 8 },
    { key: "top_k", label: "ATT&CK techniques to list", kind: "number", min: 1, max: 20, step: 1 },
  ],
  "market-intelligence": [
    { key: "query", label: "News, announcements or analyst text", kind: "textarea", rows: 6 },
    { key: "industry_segment", label: "Industry segment", kind: "text" },
  ],
  "nlp-query": [
    { key: "query", label: "Question", kind: "textarea", rows: 3 },
    { key: "top_k", label: "Passages to retrieve", kind: "number", min: 1, max: 20, step: 1 },
  ],
  compliance: [
    { key: "framework", label: "Framework", kind: "select", options: [["nist-csf-2.0", "NIST CSF 2.0"], ["nist-800-53", "NIST SP 800-53 Rev. 5"], ["hipaa-security", "HIPAA Security Rule"], ["cis-v8", "CIS Controls v8"], ["soc2", "SOC 2"], ["iso27001-2022", "ISO/IEC 27001:2022"]] },
    { key: "policy_text", label: "Policy text", kind: "textarea", rows: 10 },
    { key: "policy_file", label: "…or upload a policy (plain text or Markdown; it replaces the text above)", kind: "file", accept: ".txt,.md,text/plain,text/markdown", fills: "policy_text" },
  ],
  "revenue-forecasting": [
    { key: "history", label: "Revenue per period", kind: "series", series: revenueSeries, rows: 10, help: "CSV lines of date,revenue (or revenue alone), oldest first; a header line is allowed. Dates as YYYY-MM or YYYY-MM-DD." },
    { key: "history_file", label: "…or upload a CSV of monthly revenue (it replaces the lines above)", kind: "file", accept: CSV_FILES, fills: "history" },
    { key: "horizon", label: "Periods to forecast (empty: 90 days' worth)", kind: "number", min: 1, max: 120, step: 1 },
    { key: "level", label: "Prediction interval", kind: "select", numeric: true, options: [["0.95", "95%"], ["0.9", "90%"], ["0.8", "80%"]] },
  ],
  "anomaly-detection": [
    { key: "values", label: "Metric values", kind: "series", series: metricSeries, rows: 10, help: "CSV lines, oldest first: a value, or a time stamp and a value. Several numeric columns under a header line are judged together as one point per line." },
    { key: "values_file", label: "…or upload a CSV of metrics (it replaces the lines above)", kind: "file", accept: CSV_FILES, fills: "values" },
    { key: "metric_type", label: "What the values measure", kind: "text" },
    { key: "contamination", label: "Expected share of anomalies, up to 0.5 (empty: automatic)", kind: "number", min: 0.001, max: 0.5 },
  ],
  "client-health": [
    { key: "model_id", label: "Model (empty: the shipped mlc-churn model)", kind: "text" },
    { key: "client_id", label: "Client id", kind: "text" },
    { key: "monthly_revenue", label: "Monthly revenue (gives the revenue at risk)", kind: "number", min: 0 },
    { key: "features", label: "The client's values, by column (empty: imputed)", kind: "record" },
  ],
  "partner-matching": [
    { key: "requirements", label: "What you need a partner for", kind: "textarea", rows: 4 },
    { key: "required_skills", label: "Required skills, comma-separated (empty: those the text names)", kind: "list" },
    { key: "country", label: "Country code, e.g. US (empty: any)", kind: "text" },
    { key: "region", label: "Region, e.g. TX (empty: any)", kind: "text" },
    { key: "top_k", label: "Matches to list", kind: "number", min: 1, max: 50, step: 1 },
  ],
  "resource-allocation": [
    { key: "tasks", label: "Tasks", kind: "rows", noun: "task", columns: [
      { key: "id", label: "id" },
      { key: "skill", label: "skill" },
      { key: "priority", label: "priority", kind: "select", options: ["critical", "high", "medium", "low"] },
      { key: "estimated_hours", label: "hours", kind: "number", min: 0 },
      { key: "deadline_hours", label: "due within (hours)", kind: "number", min: 0 },
    ] },
    { key: "technicians", label: "Technicians", kind: "rows", noun: "technician", columns: [
      { key: "id", label: "id" },
      { key: "skills", label: "skills (comma-separated)", kind: "list" },
      { key: "capacity_hours", label: "capacity (hours)", kind: "number", min: 0 },
      { key: "efficiency", label: "efficiency", kind: "number", min: 0 },
    ] },
    { key: "time_window_hours", label: "Time window in hours (caps every capacity; empty: none)", kind: "number", min: 0 },
    { key: "priority_mode", label: "Priority mode", kind: "select", options: [["balanced", "balanced"], ["strict", "strict"]] },
  ],
  "federated-learning": [
    { key: "participating_msps", label: "Participating MSPs (2 to 50)", kind: "number", min: 2, max: 50, step: 1 },
    { key: "rounds", label: "Rounds", kind: "number", min: 1, step: 1 },
    { key: "local_steps", label: "Local DP-SGD steps per MSP and round", kind: "number", min: 1, step: 1 },
    { key: "privacy_epsilon", label: "Privacy budget ε for the whole run", kind: "number", min: 0.01 },
    { key: "secure_aggregation", label: "Secure aggregation (the server sees only the sum of the updates)", kind: "checkbox", default: true },
    { key: "partition", label: "How the data is split between the MSPs", kind: "select", options: [["iid", "evenly (iid)"], ["label_skew", "label skew (each MSP sees mostly one outcome)"]] },
    { key: "seed", label: "Seed (empty: random; with a seed the privacy guarantee does not hold)", kind: "number", step: 1 },
  ],
};

/** The federated charts of the rounds so far: accuracy and ROC-AUC, and the privacy spent;
 * the x-axis spans `rounds` rounds (the whole run while it is going). */
function roundCharts(history, rounds = 0) {
  const series = [{ name: "accuracy", points: history.map((r) => [r.round, r.accuracy]) }];
  if (history.some((r) => r.auc != null)) series.push({ name: "ROC-AUC", points: history.filter((r) => r.auc != null).map((r) => [r.round, r.auc]), cls: "second" });
  const eps = history.filter((r) => r.epsilon_spent != null);
  const charts = [linesChart({ series, label: "held-out accuracy and ROC-AUC after each federated round", xLabel: "round", yLabel: "accuracy", xMax: rounds })];
  if (eps.length) charts.push(linesChart({ series: [{ name: "epsilon spent", points: eps.map((r) => [r.round, r.epsilon_spent]), cls: "second" }], label: "privacy budget (epsilon) spent after each round", xLabel: "round", yLabel: "epsilon", fromZero: true, xMax: rounds }));
  return charts;
}

/** Agents whose route streams its progress (Accept: application/x-ndjson): what to draw from
 * the lines so far, while the answer is still coming. */
const PROGRESS = {
  "federated-learning"(request, rounds) {
    const last = rounds[rounds.length - 1];
    const total = request.rounds ?? 10;
    const where = last.round === 0 ? "Before the first round (the untrained model)" : `Round ${last.round} of ${total} done`;
    return [h("p", { "data-testid": "progress", class: "meta", role: "status" }, `${where}: accuracy ${num(last.accuracy)}, ROC-AUC ${num(last.auc)}`), ...roundCharts(rounds, total)];
  },
};

/** A message that a request was not sent, and why. */
function notSent(message) {
  return h("div", { class: "error", role: "alert" }, message);
}

/** Client health: train a model on an uploaded CSV of client records, then fill the scoring
 * form below with the model and one of the records. */
function clientTraining(form) {
  const file = h("input", { id: "train-file", type: "file", accept: CSV_FILES });
  const target = h("select", { id: "train-target", disabled: true }, h("option", {}, "(choose a CSV first)"));
  const modelId = h("input", { id: "train-model-id", type: "text", value: "my-clients" });
  const row = h("input", { id: "train-row", type: "number", min: 1, step: 1, value: 1 });
  const submit = h("button", { type: "submit" }, "Train");
  const out = h("div", { id: "train-result", "aria-live": "polite" });
  let data = null;
  let trained = null;
  file.addEventListener("change", async () => {
    if (!file.files[0]) return;
    data = csvRecords(await file.files[0].text());
    target.replaceChildren(...data.columns.map((c) => h("option", { value: c, selected: /churn|target|label|cancel/i.test(c) }, c)));
    target.disabled = false;
    out.replaceChildren(h("p", { class: "meta", "data-testid": "csv-summary" }, `${data.records.length} records with ${data.columns.length} columns in ${file.files[0].name}`));
  });
  const fill = () => {
    const record = data.records[Number(row.value) - 1];
    if (!record) return out.append(notSent(`Row ${row.value} is not in the file (it has ${data.records.length} records).`));
    form.control("model_id").input.value = trained.model_id;
    form.control("client_id").input.value = `row ${row.value}`;
    const kinds = Object.fromEntries(trained.columns.map((c) => [c.name, c.kind]));
    form.control("features").set(Object.fromEntries(trained.columns.map((c) => [c.name, record[c.name] ?? null])), kinds);
  };
  const train = async (e) => {
    e.preventDefault();
    if (!data) return out.replaceChildren(notSent("Choose a CSV of client records first."));
    submit.disabled = true;
    delete out.dataset.state;
    out.replaceChildren(h("p", {}, `Training on ${data.records.length} records (cross-validated)…`));
    try {
      const { status, body } = await api("POST", "/client-health/train", { records: data.records, target: target.value, model_id: modelId.value.trim() || undefined });
      if (status !== 200) return out.replaceChildren(errorBox(status, body));
      trained = body;
      const m = body.metrics;
      out.replaceChildren(modelLine(body),
        table(["model", "version", "cross-validated ROC-AUC", "records", "churned", "learner chosen"], [[body.model_id, body.version, num(body.cv_auc), m.records, m.churned, m.learner]], "Trained model"),
        table(["learner", "mean cross-validated ROC-AUC"], Object.entries(m.cv_auc_by_learner || {}).map(([k, v]) => [k, num(v)]), "Learners compared"),
        h("div", { class: "controls" }, h("label", { for: "train-row" }, "Record to score"), row,
          h("button", { type: "button", class: "secondary", onclick: fill }, "Fill the form below with this record")));
      out.dataset.state = "trained";
      fill();
    } finally {
      submit.disabled = false;
    }
  };
  return [
    h("section", { "aria-labelledby": "train-h" }, h("h2", { id: "train-h" }, "Train a model on your clients"),
      h("form", { onsubmit: train },
        h("label", { for: "train-file" }, "Client records (CSV with a header row, one client per line)"), file,
        h("label", { for: "train-target" }, "The column that says whether the client left"), target,
        h("label", { for: "train-model-id" }, "Save the model as"), modelId, h("div", {}, submit)), out),
    h("h2", {}, "Score a client"),
  ];
}

/** Partner matching: the directory, loaded from an uploaded CSV, above the search form. */
function partnerDirectory() {
  const file = h("input", { id: "partners-file", type: "file", accept: CSV_FILES });
  const replace = h("input", { id: "partners-replace", type: "checkbox", class: "check" });
  const out = h("div", { id: "directory", "aria-live": "polite" });
  const show = (body) => {
    const headers = ["msp_id", "name", "location", "skills", "employees"];
    const rows = (body.partners || []).map((p) => [p.msp_id, p.name, p.location, (p.skills || []).join(", "), p.employees ?? "—"]);
    out.replaceChildren(h("p", { class: "meta", "data-testid": "directory-count" }, `${body.count} partners${body.sample_data ? " (the shipped sample directory)" : ""}`),
      h("details", { open: rows.length <= 20 }, h("summary", {}, "The directory"), ...tableWithCsv(headers, rows, "Partner directory", "partners.csv")));
    out.dataset.state = "loaded";
  };
  const load = async (e) => {
    e.preventDefault();
    if (!file.files[0]) return out.replaceChildren(notSent("Choose a CSV of partners first."));
    delete out.dataset.state;
    const { status, body } = await api(replace.checked ? "PUT" : "POST", "/collaboration/partners", await file.files[0].text(), "text/csv");
    if (status !== 200) return out.replaceChildren(errorBox(status, body));
    show(body);
  };
  api("GET", "/collaboration/partners").then(({ status, body }) => (status === 200 ? show(body) : out.replaceChildren(errorBox(status, body))));
  return [
    h("section", { "aria-labelledby": "directory-h" }, h("h2", { id: "directory-h" }, "Partner directory"),
      h("form", { onsubmit: load },
        h("label", { for: "partners-file" }, "Partners (CSV with a header: msp_id, name, city, region, country, skills, certifications, employees, profile; lists separated by ;)"), file,
        h("div", { class: "check-row" }, replace, h("label", { for: "partners-replace" }, "Replace the whole directory (otherwise add, or update by msp_id; the shipped sample directory is always replaced)")),
        h("div", {}, h("button", { type: "submit" }, "Load partners"))), out),
    h("h2", {}, "Find a partner"),
  ];
}

/** Sections some agent pages show above their form. */
const SECTIONS = { "client-health": clientTraining, "partner-matching": partnerDirectory };

async function agentPage(name) {
  const entry = AGENTS.find(([n]) => n === name);
  if (!entry) return notFound();
  const [, route] = entry;
  const example = examples[route] || { title: name, request: {} };
  const textarea = h("textarea", { id: "request", rows: 14, spellcheck: "false", "aria-describedby": "request-help" }, JSON.stringify(example.request, null, 2));
  const fields = FORMS[name] ? buildForm(FORMS[name], example.request) : null;
  const jsonBox = fields ? h("details", { id: "json-request" }, h("summary", {}, "Edit the request as JSON instead")) : null;
  const result = h("section", { id: "result", "aria-live": "polite" });
  // Opening the JSON shows what the fields say, to edit from there.
  jsonBox?.addEventListener("toggle", () => {
    if (!jsonBox.open) return;
    try {
      textarea.value = JSON.stringify(fields.read(example.request), null, 2);
    } catch (err) {
      result.replaceChildren(notSent(`The fields are not valid: ${err.message}`));
    }
  });
  const submit = h("button", { type: "submit" }, "Send request");
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      let request;
      try {
        request = fields && !jsonBox.open ? fields.read(example.request) : JSON.parse(textarea.value);
      } catch (err) {
        result.replaceChildren(notSent(`The request is not valid${fields && !jsonBox.open ? "" : " JSON"}: ${err.message}`));
        return;
      }
      submit.disabled = true;
      delete result.dataset.state; // answered again only once this request's answer is drawn
      result.replaceChildren(h("p", {}, "Waiting for the server…"));
      const started = performance.now();
      try {
        const progress = [];
        const { status, body } = PROGRESS[name]
          ? await apiStream("POST", route, request, (line) => {
            progress.push(line);
            result.replaceChildren(...PROGRESS[name](request, progress));
          })
          : await api("POST", route, request);
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
        result.replaceChildren(notSent(`The request failed: ${err.message}`));
      } finally {
        submit.disabled = false;
      }
    },
  },
    ...(fields ? fields.nodes : []),
    ...(() => {
      const json = [h("label", { for: "request" }, `Request to POST ${route}`),
        h("p", { id: "request-help", class: "help" }, fields ? "While this is open, the JSON is sent instead of the fields above." : "Edit the JSON and send it; the answer below is the server's, drawn as it came."),
        textarea];
      if (!fields) return json;
      jsonBox.append(...json);
      return [jsonBox];
    })(),
    h("div", {}, submit));
  main.replaceChildren(h("h1", {}, example.title), ...(SECTIONS[name] ? SECTIONS[name](fields) : []), form, result);
}

let socket = null;
let statusTimer = null;
const feed = [];
const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];

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
      label: `requests, errors and alerts per minute of ${who}, last ${minutes} minutes`, xLabel: "minutes from now", yLabel: "per minute", fromZero: true,
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
  // The feed starts from the newest stored events (answers and alerts) and the stored threats
  // they do not already hold, newest first; live events are added as they come.
  const failed = (e) => ({ status: 0, body: e.message });
  const [events, threats] = await Promise.all([api("GET", "/events?newest=true&limit=50").catch(failed), api("GET", "/threats?limit=25").catch(failed)]);
  const refused = [events, threats].find((r) => r.status !== 200);
  if (refused) {
    list.replaceChildren(h("li", {}, errorBox(refused.status, refused.body)));
  } else if (!feed.length) {
    const stored = (events.body.events || []).filter((e) => ["agent_result", "alert"].includes(e.type)).map(eventItem);
    stored.reverse();
    const seen = new Set(stored.map((i) => i.result_id));
    stored.push(...(threats.body.threats || []).filter((t) => !seen.has(t.threat_id)).map(threatItem));
    feed.push(...stored.sort((a, b) => (b.timestamp || "").localeCompare(a.timestamp || "")));
    feed.length = Math.min(feed.length, 100);
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
    delete out.dataset.state;
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
