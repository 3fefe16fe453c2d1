// The dashboard in Debian's headless Chromium against the real server (API keys on): every
// agent page sends its request and shows the server's answer, the answer on the page is the
// one the server stored under its result_id, the overview's live feed shows an event the
// test caused, and the workflow chains three agents. Screenshots go to target/e2e/.
//
//   MESH_BIN=target/debug/msp-mesh node --test web/e2e/dashboard.test.mjs   (from the repo root)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
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
