// The dashboard in Debian's headless Chromium against the real server (API keys on): every
// agent page sends its request and shows the server's answer, the answer on the page is the
// one the server stored under its result_id, the overview's live feed shows an event the
// test caused, and the workflow chains three agents. Screenshots go to target/e2e/.
//
//   MESH_BIN=target/debug/msp-mesh node --test web/e2e/dashboard.test.mjs   (from the repo root)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const shots = join(root, "target/e2e");
const KEY = "e2e-dashboard-key";
/** Text the threat agent judges CRITICAL (ransomware, high confidence, a file hash). */
const CRITICAL_THREAT = "Ransomware outbreak: LockBit encrypted every file share on FS01 and left a ransom note " +
  "demanding bitcoin for the decryption key. The encryptor dropped C:\\Users\\Public\\svc.exe " +
  "(sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) and deleted the shadow copies.";
/** The example requests the agent pages start from. */
const EXAMPLES = JSON.parse(readFileSync(join(root, "web/examples.json"), "utf8"));
const AGENTS = [
  "threat-intelligence", "market-intelligence", "nlp-query", "partner-matching", "client-health",
  "revenue-forecasting", "anomaly-detection", "compliance", "resource-allocation", "federated-learning",
];

let server, base, browser, page;

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function api(method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { "x-api-key": KEY, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/** axe-core's rules on the page as it is now: no serious or critical violation (all of them are
 * written to target/e2e/axe-<name>.json). */
async function accessible(name) {
  await page.addScriptTag({ path: join(root, "web/e2e/node_modules/axe-core/axe.min.js") });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations);
  const found = violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  writeFileSync(join(shots, `axe-${name}.json`), JSON.stringify(found, null, 2));
  const bad = found.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${name}: serious or critical accessibility violations`);
}

/** The page fits a phone's width (no sideways scrolling of the whole page). */
async function fitsPhone(name) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  await page.screenshot({ path: join(shots, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.ok(scroll <= inner + 1, `${name} is ${scroll} px wide at a ${inner} px phone width`);
}

/** As printed (or saved as PDF): the form and the navigation are hidden, the report shows
 * `expected`; the PDF is saved to target/e2e/<name>.pdf. */
async function printable(name, expected) {
  await page.emulateMedia({ media: "print" });
  try {
    assert.equal(await page.locator("main form").first().isVisible(), false, "the form is not printed");
    assert.equal(await page.locator("header").isVisible(), false, "the navigation is not printed");
    assert.ok(await page.locator("#result").getByText(expected).first().isVisible(), `the printed report shows ${expected}`);
    await page.screenshot({ path: join(shots, `${name}-print.png`), fullPage: true });
    await page.pdf({ path: join(shots, `${name}.pdf`), format: "A4", printBackground: true });
  } finally {
    await page.emulateMedia({ media: "screen" });
  }
}

/** Sends the page's form and returns the answer it shows (the "Full JSON answer"). */
async function sendForm(timeout = 110_000) {
  await page.getByRole("button", { name: "Send request" }).click();
  const result = page.locator("#result[data-state=answered]");
  await result.waitFor({ timeout });
  return { result, shown: JSON.parse(await result.locator("details pre").textContent()) };
}

/** The cells of the table captioned `caption` in `scope`, row by row. */
async function tableCells(scope, caption) {
  const t = scope.locator("table", { has: page.locator("caption", { hasText: caption }) }).first();
  return t.locator("tbody tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
}

/** A CSV file for an upload. */
const csvFile = (name, text) => ({ name, mimeType: "text/csv", buffer: Buffer.from(text) });

before(async () => {
  mkdirSync(shots, { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const state = mkdtempSync(join(tmpdir(), "mesh-e2e-"));
  const bin = resolve(root, process.env.MESH_BIN || "target/debug/msp-mesh");
  server = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--api-keys", KEY, "--state-db", join(state, "mesh.db"), "--auto-pull", "false"], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      if ((await fetch(base + "/health")).ok) break;
    } catch {
      // not up yet
    }
    assert.ok(Date.now() < deadline, "the server did not start in 180 s");
    await new Promise((r) => setTimeout(r, 250));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => assert.fail(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
});

test("without the API key the overview shows the server's 401", async () => {
  await page.goto(base + "/");
  await page.getByRole("alert").first().waitFor();
  assert.match(await page.getByRole("alert").first().textContent(), /HTTP 401/);
});

test("settings keep the API key; the overview lists the agents and shows a live event", async () => {
  await page.goto(base + "/#/settings");
  await page.getByLabel("API key (sent as x-api-key)").fill(KEY);
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved.").waitFor();

  await page.goto(base + "/#/");
  await page.locator("#feed-state", { hasText: "connected" }).waitFor();
  const status = await api("GET", "/agents/status");
  const table = page.locator("table", { has: page.locator("caption", { hasText: "Agent health" }) });
  await table.waitFor();
  for (const agent of AGENTS) {
    const row = table.locator("tr", { has: page.getByRole("link", { name: agent, exact: true }) });
    const model = status.body.agents[agent].model_used;
    assert.ok(model, `${agent} is loaded`);
    assert.match(await row.textContent(), new RegExp(model.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  }
  // An answer made now arrives on the page's feed, under its result_id.
  const made = await api("POST", "/anomaly/detect", { values: [5, 5, 5, 5, 5, 5, 5, 5, 5, 60, 5, 5, 5, 5, 5, 5], metric_type: "cpu" });
  assert.equal(made.status, 200);
  await page.locator("#feed code", { hasText: made.body.result_id }).first().waitFor({ timeout: 15_000 });
  // A CRITICAL threat arrives with its badge, its indicators and the model that judged it.
  const threat = await api("POST", "/threat-intelligence/analyze", { text: CRITICAL_THREAT });
  assert.equal(threat.status, 200);
  assert.equal(threat.body.severity, "CRITICAL");
  const item = page.locator("#feed li", { has: page.locator("code.result-id", { hasText: threat.body.result_id }) });
  await item.first().waitFor({ timeout: 15_000 });
  const alertItem = item.filter({ hasText: "alert:" }).first();
  assert.equal(await alertItem.locator(".badge").textContent(), "CRITICAL");
  assert.match(await alertItem.textContent(), new RegExp(`model ${threat.body.model_used.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  assert.ok((await alertItem.locator(".indicators code").count()) > 0, "the alert shows the threat's indicators");
  // On load the feed is filled from the stored events (GET /events?newest=true): after a reload
  // the same alert is there, with its badge, above the older answer.
  await page.reload();
  const reloaded = page.locator("#feed li", { has: page.locator("code.result-id", { hasText: threat.body.result_id }) }).filter({ hasText: "alert:" }).first();
  await reloaded.waitFor({ timeout: 15_000 });
  assert.equal(await reloaded.locator(".badge").textContent(), "CRITICAL");
  const ids = await page.locator("#feed code.result-id").allTextContents();
  assert.ok(ids.indexOf(threat.body.result_id) < ids.indexOf(made.body.result_id), "newest first");
  // The chart's totals are the server's history of the same minutes.
  await page.getByLabel("Agent", { exact: true }).selectOption("threat-intelligence");
  const totals = page.getByTestId("history-totals");
  await totals.filter({ hasText: "threat-intelligence" }).waitFor();
  const history = await api("GET", "/metrics/history?minutes=60");
  const sum = (k) => history.body.agents["threat-intelligence"][k].reduce((a, b) => a + b, 0);
  assert.match(await totals.textContent(), new RegExp(`${sum("requests")} requests, ${sum("errors")} errors, ${sum("alerts")} alerts`));
  assert.ok(sum("alerts") >= 1);
  await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });
  await accessible("overview");
  await fitsPhone("overview");
});

for (const agent of AGENTS) {
  test(`the ${agent} page shows the server's answer`, { timeout: 180_000 }, async () => {
    await page.goto(`${base}/#/agent/${agent}`);
    await page.getByRole("button", { name: "Send request" }).click();
    const result = page.locator("#result[data-state=answered]");
    await result.waitFor({ timeout: 170_000 });
    const shown = JSON.parse(await result.locator("details pre").textContent());
    // The answer on the page is what the server stored under its result_id.
    const stored = await api("GET", `/results/${shown.result_id}`);
    assert.equal(stored.status, 200);
    assert.equal(stored.body.agent, agent);
    assert.equal(stored.body.model_used, shown.model_used);
    const { result_id: _stored, ...storedAnswer } = stored.body.data;
    const { result_id: _shown, ...shownAnswer } = shown;
    assert.deepEqual(shownAnswer, storedAnswer);
    assert.equal(await result.getByTestId("model-used").textContent(), shown.model_used);
    assert.ok((await result.locator("svg, table").count()) > 0, "a picture or a table of the answer");
    await page.screenshot({ path: join(shots, `${agent}.png`), fullPage: true });
    await accessible(agent);
    await fitsPhone(agent);
  });
}

test("the threat form judges a pasted e-mail as the API does, and its JSON is one click away", { timeout: 120_000 }, async () => {
  const text = "Our CFO got an email pretending to be from our bank asking him to verify his login at a link; he entered his password";
  await page.goto(`${base}/#/agent/threat-intelligence`);
  await page.getByLabel(/Incident, alert or e-mail text/).fill(text);
  await page.getByLabel("ATT&CK techniques to list").fill("3");
  await page.getByRole("button", { name: "Send request" }).click();
  const result = page.locator("#result[data-state=answered]");
  await result.waitFor({ timeout: 110_000 });
  const shown = JSON.parse(await result.locator("details pre").textContent());
  const direct = await api("POST", "/threat-intelligence/analyze", { text, top_k: 3 });
  assert.equal(direct.status, 200);
  assert.equal(shown.threat_type, direct.body.threat_type);
  assert.deepEqual(shown.techniques.map((t) => t.id), direct.body.techniques.map((t) => t.id));
  assert.equal(shown.techniques.length, 3);
  assert.equal(await result.locator(".badge").first().textContent(), direct.body.severity);
  await page.screenshot({ path: join(shots, "threat-form.png"), fullPage: true });
  await accessible("threat-form");
  await fitsPhone("threat-form");
  await printable("threat-report", text);
  // The JSON shows what the fields say (filled by the details' toggle event, which runs after the click).
  await page.getByText("Edit the request as JSON instead").click();
  await page.waitForFunction((t) => document.querySelector("#request").value.includes(t), text.slice(0, 20));
  assert.deepEqual(JSON.parse(await page.locator("#request").inputValue()), { text, top_k: 3 });
});

test("the NLP query form shows the API's answer with its cited sources", { timeout: 120_000 }, async () => {
  const query = "What should an MSP do first when a client gets hit by ransomware?";
  await page.goto(`${base}/#/agent/nlp-query`);
  await page.getByLabel("Question").fill(query);
  await page.getByLabel("Passages to retrieve").fill("4");
  await page.getByRole("button", { name: "Send request" }).click();
  const result = page.locator("#result[data-state=answered]");
  await result.waitFor({ timeout: 110_000 });
  const shown = JSON.parse(await result.locator("details pre").textContent());
  const direct = await api("POST", "/nlp-query/ask", { query, top_k: 4 });
  assert.equal(direct.status, 200);
  assert.equal(shown.query, query);
  assert.equal(shown.answer, direct.body.answer);
  assert.deepEqual(shown.sources, direct.body.sources);
  assert.equal(await result.getByTestId("answer").textContent(), direct.body.answer);
  const cited = await result.getByTestId("sources").locator("li code").allTextContents();
  assert.deepEqual(cited, direct.body.sources);
  await page.screenshot({ path: join(shots, "nlp-query-form.png"), fullPage: true });
  await accessible("nlp-query-form");
});

test("the compliance form takes an uploaded policy and shows per-control coverage with evidence", { timeout: 120_000 }, async () => {
  const policy = "We back up all servers nightly and test restores quarterly. All staff use MFA for email and VPN. " +
    "Antivirus is installed on all laptops. We keep an inventory of every device we manage.";
  await page.goto(`${base}/#/agent/compliance`);
  await page.getByLabel("Framework").selectOption("nist-csf-2.0");
  await page.getByLabel(/upload a policy/).setInputFiles({ name: "policy.txt", mimeType: "text/plain", buffer: Buffer.from(policy) });
  await page.waitForFunction((t) => document.querySelector("#field-policy_text").value === t, policy);
  await page.getByRole("button", { name: "Send request" }).click();
  const result = page.locator("#result[data-state=answered]");
  await result.waitFor({ timeout: 110_000 });
  const direct = await api("POST", "/compliance/check", { framework: "nist-csf-2.0", policy_text: policy });
  assert.equal(direct.status, 200);
  const shown = JSON.parse(await result.locator("details pre").textContent());
  assert.equal(shown.compliance_score, direct.body.compliance_score);
  const covered = direct.body.controls.filter((c) => c.covered);
  assert.deepEqual(shown.controls.filter((c) => c.covered).map((c) => c.id), covered.map((c) => c.id));
  assert.ok(covered.length > 0, "the policy covers some controls");
  // Each covered control's row shows its best evidence sentence, from the uploaded policy.
  const coverage = result.locator("table", { has: page.locator("caption", { hasText: "Control coverage" }) });
  for (const c of covered) {
    const row = coverage.locator("tr", { hasText: `${c.id} ${c.title}` }).first();
    assert.equal(await row.locator("q").textContent(), c.evidence[0].sentence);
    assert.ok(policy.includes(c.evidence[0].sentence), c.evidence[0].sentence);
  }
  await page.screenshot({ path: join(shots, "compliance-form.png"), fullPage: true });
  await accessible("compliance-form");
  await fitsPhone("compliance-form");
  await printable("compliance-report", covered[0].evidence[0].sentence);
});

test("the revenue form forecasts an uploaded CSV of monthly revenue, as the API does", { timeout: 120_000 }, async () => {
  const example = EXAMPLES["/revenue/forecast"].request;
  const csv = "month,revenue\n" + example.history.map((v, i) => `${example.dates[i]},${v}`).join("\n") + "\n";
  await page.goto(`${base}/#/agent/revenue-forecasting`);
  await page.getByLabel(/upload a CSV of monthly revenue/).setInputFiles(csvFile("revenue.csv", csv));
  await page.waitForFunction(() => document.querySelector("#field-history").value.startsWith("month,revenue"));
  await page.getByLabel(/Periods to forecast/).fill("6");
  await page.getByLabel("Prediction interval").selectOption("0.9");
  const { result, shown } = await sendForm();
  const direct = await api("POST", "/revenue/forecast", { ...example, horizon: 6, level: 0.9 });
  assert.equal(direct.status, 200);
  assert.deepEqual(shown.monthly_forecast, direct.body.monthly_forecast);
  assert.equal(shown.model_used, direct.body.model_used);
  const rows = await tableCells(result, "Forecast");
  assert.deepEqual(rows, direct.body.monthly_forecast.map((m) => [m.month, m.revenue.toFixed(1), m.lower_bound.toFixed(1), m.upper_bound.toFixed(1)]));
  assert.equal(await result.locator("svg polygon.band").count(), 1, "the forecast's interval band is drawn");
  await page.screenshot({ path: join(shots, "revenue-form.png"), fullPage: true });
  await accessible("revenue-form");
  // A cell that is not a number is named, and nothing is sent.
  await page.locator("#field-history").fill("month,revenue\n2024-01,100\n2024-02,lots\n");
  await page.getByRole("button", { name: "Send request" }).click();
  assert.equal(await page.locator("#result [role=alert]").textContent(), 'The request is not valid: Revenue per period: line 3: "lots" is not a number');
});

test("the anomaly form flags points of an uploaded metrics CSV, and shows the API's own errors", { timeout: 120_000 }, async () => {
  const example = EXAMPLES["/anomaly/detect"].request;
  const timestamps = example.values.map((_, i) => `2026-11-${String(1 + Math.floor(i / 24)).padStart(2, "0")}T${String(i % 24).padStart(2, "0")}:00Z`);
  const csv = "time,cpu\n" + example.values.map((v, i) => `${timestamps[i]},${v}`).join("\n") + "\n";
  await page.goto(`${base}/#/agent/anomaly-detection`);
  await page.getByLabel(/upload a CSV of metrics/).setInputFiles(csvFile("cpu.csv", csv));
  await page.waitForFunction(() => document.querySelector("#field-values").value.startsWith("time,cpu"));
  const { result, shown } = await sendForm();
  const direct = await api("POST", "/anomaly/detect", { ...example, timestamps });
  assert.equal(direct.status, 200);
  const flagged = direct.body.anomalies.map((a) => a.index);
  assert.ok(flagged.includes(31), "the 97.8 spike is flagged");
  assert.deepEqual(shown.anomalies.map((a) => a.index), flagged);
  const rows = await tableCells(result, "Anomalies");
  assert.deepEqual(rows.map((r) => [Number(r[0]), r[1]]), direct.body.anomalies.map((a) => [a.index, a.detected_at]));
  assert.equal(await result.locator("svg .flag").count(), flagged.length, "each flagged point is marked on the chart");
  await page.screenshot({ path: join(shots, "anomaly-form.png"), fullPage: true });
  await accessible("anomaly-form");
  // Too few points: the server's 4xx and its message, naming the field.
  await page.locator("#field-values").fill("1\n2\n3\n");
  await page.getByRole("button", { name: "Send request" }).click();
  const error = page.locator("#result [role=alert]");
  await error.waitFor();
  const refused = await api("POST", "/anomaly/detect", { ...example, values: [1, 2, 3] });
  assert.ok(refused.status >= 400 && refused.status < 500);
  assert.equal(await error.textContent(), `HTTP ${refused.status}: ${refused.body.error_type}: ${refused.body.error} (field ${refused.body.field})`);
});

test("the client-health page trains on an uploaded CSV, then scores a client with its contributions", { timeout: 150_000 }, async () => {
  // 160 made-up clients: churn follows low satisfaction and many tickets, with exceptions.
  const plans = ["basic", "pro", "enterprise"];
  const lines = ["tickets_per_month,resolution_hours,satisfaction,contract_months,plan,churned"];
  for (let i = 0; i < 160; i++) {
    const tickets = (i * 7) % 23, hours = 2 + ((i * 13) % 40) / 2, satisfaction = 1 + ((i * 5) % 9) / 2;
    const churned = (tickets > 12 && satisfaction < 3.5) || i % 17 === 0 ? "yes" : "no";
    lines.push(`${tickets},${hours},${satisfaction},${6 + (i % 30)},${plans[i % 3]},${churned}`);
  }
  await page.goto(`${base}/#/agent/client-health`);
  await page.getByLabel(/Client records/).setInputFiles(csvFile("clients.csv", lines.join("\n")));
  await page.getByTestId("csv-summary").waitFor();
  assert.equal(await page.getByLabel("The column that says whether the client left").inputValue(), "churned");
  await page.getByLabel("Save the model as").fill("e2e-clients");
  await page.getByRole("button", { name: "Train", exact: true }).click();
  const trained = page.locator("#train-result[data-state=trained]");
  await trained.waitFor({ timeout: 120_000 });
  const models = await api("GET", "/client-health/models");
  const model = models.body.models.find((m) => m.model_id === "e2e-clients");
  assert.ok(model, "the trained model is listed by the API");
  const [shownModel] = await tableCells(trained, "Trained model");
  assert.equal(shownModel[0], "e2e-clients");
  assert.equal(Number(shownModel[1]), Math.max(...model.versions));
  // Record 5 fills the scoring form; its answer is the API's for the same client.
  await page.getByLabel("Record to score").fill("5");
  await page.getByRole("button", { name: "Fill the form below with this record" }).click();
  assert.equal(await page.getByLabel(/^Model/).inputValue(), "e2e-clients");
  const { result, shown } = await sendForm();
  const [tickets, hours, satisfaction, months, plan] = lines[5].split(",");
  const features = { tickets_per_month: Number(tickets), resolution_hours: Number(hours), satisfaction: Number(satisfaction), contract_months: Number(months), plan };
  const example = EXAMPLES["/client-health/predict"].request;
  const direct = await api("POST", "/client-health/predict", { ...example, model_id: "e2e-clients", client_id: "row 5", features });
  assert.equal(direct.status, 200);
  assert.equal(shown.churn_risk, direct.body.churn_risk);
  assert.equal(shown.model_used, direct.body.model_used);
  const rows = await tableCells(result, "Contributions");
  assert.deepEqual(rows.map((r) => [r[0], Number(r[2])]), direct.body.contributions.map((c) => [c.feature, Number(c.contribution.toFixed(4))]));
  await page.screenshot({ path: join(shots, "client-health-form.png"), fullPage: true });
  await accessible("client-health-form");
  await fitsPhone("client-health-form");
});

test("the partner page loads partners from a CSV and finds them", { timeout: 120_000 }, async () => {
  const csv = "msp_id,name,city,region,country,skills,certifications,employees,profile\n" +
    'e2e-kiwi-1,Harbour Cyber,Auckland,AUK,NZ,soc-monitoring; incident-response,ISO 27001,40,"24/7 security operations centre and incident response for healthcare clinics."\n' +
    "e2e-kiwi-2,Southern Cloud,Christchurch,CAN,NZ,microsoft-365; backup,,12,Microsoft 365 migrations and backup for small offices.\n" +
    'e2e-kiwi-3,Capital Networks,Wellington,WGN,NZ,network; firewall,,25,"Network design, firewalls and SD-WAN for government agencies."\n';
  await page.goto(`${base}/#/agent/partner-matching`);
  const count = page.getByTestId("directory-count");
  await count.waitFor();
  // Partners added to the shipped sample directory replace it; to one of your own, they add.
  const listed = (await api("GET", "/collaboration/partners")).body;
  const expected = listed.sample_data ? 3 : listed.count + 3;
  await page.getByLabel(/Partners \(CSV/).setInputFiles(csvFile("partners.csv", csv));
  await page.getByRole("button", { name: "Load partners" }).click();
  await count.filter({ hasText: `${expected} partners` }).waitFor();
  const requirements = "We need a partner for round-the-clock SOC monitoring and incident response at a New Zealand clinic.";
  await page.getByLabel("What you need a partner for").fill(requirements);
  await page.getByLabel(/Required skills/).fill("");
  await page.getByLabel(/Country code/).fill("NZ");
  await page.getByLabel("Matches to list").fill("3");
  const { result, shown } = await sendForm();
  const example = EXAMPLES["/collaboration/match"].request;
  const { required_skills: _skills, ...rest } = example;
  const direct = await api("POST", "/collaboration/match", { ...rest, requirements, country: "NZ", top_k: 3 });
  assert.equal(direct.status, 200);
  assert.deepEqual(shown.matches.map((m) => m.msp_id), direct.body.matches.map((m) => m.msp_id));
  assert.equal(direct.body.matches[0].msp_id, "e2e-kiwi-1");
  const rows = await tableCells(result, "Matches");
  assert.deepEqual(rows.map((r) => r[0]), direct.body.matches.map((m) => m.msp_id));
  await page.screenshot({ path: join(shots, "partners-form.png"), fullPage: true });
  await accessible("partners-form");
});

test("the resource form edits tasks and technicians in tables and shows the schedule", { timeout: 120_000 }, async () => {
  const example = EXAMPLES["/resource/optimize"].request;
  await page.goto(`${base}/#/agent/resource-allocation`);
  await page.getByLabel("task 1 hours").fill("2");
  await page.getByRole("button", { name: "Add a task" }).click();
  await page.getByLabel("task 6 id").fill("T-106");
  await page.getByLabel("task 6 skill").fill("network");
  await page.getByLabel("task 6 priority").selectOption("high");
  await page.getByLabel("task 6 hours").fill("1.5");
  await page.getByRole("button", { name: "remove technician 3" }).click();
  const expected = structuredClone(example);
  expected.tasks[0].estimated_hours = 2;
  expected.tasks.push({ id: "T-106", skill: "network", priority: "high", estimated_hours: 1.5 });
  expected.technicians.pop();
  const { result, shown } = await sendForm();
  const direct = await api("POST", "/resource/optimize", expected);
  assert.equal(direct.status, 200);
  assert.deepEqual(shown.schedule, direct.body.schedule);
  assert.deepEqual(shown.unassigned, direct.body.unassigned);
  const rows = await tableCells(result, "Schedule");
  assert.deepEqual(rows.map((r) => [r[0], r[1]]), direct.body.schedule.map((s) => [s.technician_id, s.assigned_tasks.map((t) => t.task_id).join(", ")]));
  assert.ok(direct.body.schedule.every((s) => s.technician_id !== "carol"), "the removed technician gets nothing");
  // The JSON one click away is exactly the edited request.
  await page.getByText("Edit the request as JSON instead").click();
  await page.waitForFunction(() => document.querySelector("#request").value.includes("T-106"));
  assert.deepEqual(JSON.parse(await page.locator("#request").inputValue()), expected);
  await page.screenshot({ path: join(shots, "resource-form.png"), fullPage: true });
  await accessible("resource-form");
  await fitsPhone("resource-form");
});

test("the federated form runs a seeded simulation and shows each round as it ends", { timeout: 120_000 }, async () => {
  const example = EXAMPLES["/federated/train"].request;
  await page.goto(`${base}/#/agent/federated-learning`);
  await page.getByLabel(/Participating MSPs/).fill("4");
  await page.getByLabel("Rounds").fill("100");
  await page.getByLabel(/Local DP-SGD steps/).fill("50");
  await page.getByLabel(/How the data is split/).selectOption("label_skew");
  await page.getByLabel(/^Seed/).fill("7");
  await page.getByRole("button", { name: "Send request" }).click();
  // While the run is going, the rounds so far are drawn (the route streams them as NDJSON).
  const midway = await page.waitForFunction(() => {
    const progress = document.querySelector("[data-testid=progress]");
    const answered = document.querySelector("#result").dataset.state === "answered";
    const round = /^Round (\d+) of 100 done/.exec(progress?.textContent || "");
    return !answered && round && Number(round[1]) >= 1 && Number(round[1]) < 100 && Number(round[1]);
  }, null, { timeout: 60_000 });
  const roundSeen = await midway.jsonValue();
  await page.screenshot({ path: join(shots, "federated-progress.png"), fullPage: true });
  const result = page.locator("#result[data-state=answered]");
  await result.waitFor({ timeout: 110_000 });
  const shown = JSON.parse(await result.locator("details pre").textContent());
  const direct = await api("POST", "/federated/train", { ...example, participating_msps: 4, rounds: 100, local_steps: 50, partition: "label_skew", seed: 7 });
  assert.equal(direct.status, 200);
  assert.deepEqual(shown.history, direct.body.history);
  assert.ok(roundSeen < 100, `a round before the last was shown before the answer (round ${roundSeen})`);
  const rows = await tableCells(result, "Rounds");
  assert.deepEqual(rows.map((r) => Number(r[0])), direct.body.history.map((r) => r.round));
  assert.equal(direct.body.history.at(-1).round, 100);
  assert.deepEqual(rows.map((r) => Number(r[1])), direct.body.history.map((r) => Number(r.accuracy.toFixed(3))));
  await page.screenshot({ path: join(shots, "federated-form.png"), fullPage: true });
  await accessible("federated-form");
});

test("the workflow chains threat intelligence, compliance and resource allocation", { timeout: 120_000 }, async () => {
  await page.goto(`${base}/#/workflow`);
  await page.getByRole("button", { name: "Run the workflow" }).click();
  const out = page.locator("#wf-result[data-state=answered]");
  await out.waitFor({ timeout: 110_000 });
  const models = await out.getByTestId("model-used").allTextContents();
  assert.equal(models.length, 3);
  const status = await api("GET", "/agents/status");
  assert.deepEqual(models, ["threat-intelligence", "compliance", "resource-allocation"].map((a) => status.body.agents[a].model_used));
  await page.screenshot({ path: join(shots, "workflow.png"), fullPage: true });
});
