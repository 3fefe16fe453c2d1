// The dashboard's CSV reading (web/forms.js) on hand-written cases, in Node (no browser).
//
//   node --test web/e2e/forms.test.mjs   (from the repo root)

import { test } from "node:test";
import assert from "node:assert/strict";
import { csvRecords, csvTable, metricSeries, parseCsv, revenueSeries } from "../forms.js";

test("CSV cells: quotes hold commas, quotes and line breaks; CRLF and blank lines are fine", () => {
  assert.deepEqual(parseCsv('a,b\r\n"x, ""y""",2\n\n"two\nlines", 4 \n'), [["a", "b"], ['x, "y"', "2"], ["two\nlines", "4"]]);
  assert.deepEqual(parseCsv(""), []);
});

test("a first row is a header when a column is a number below it and not in it", () => {
  assert.deepEqual(csvTable("month,revenue\n2024-01,10\n"), { header: ["month", "revenue"], rows: [["2024-01", "10"]] });
  assert.deepEqual(csvTable("2024-01,10\n2024-02,11\n"), { header: null, rows: [["2024-01", "10"], ["2024-02", "11"]] });
  assert.deepEqual(csvTable("1\n2\n"), { header: null, rows: [["1"], ["2"]] });
});

test("revenue lines become history and dates, and the fields show them back", () => {
  const request = { history: [1], dates: ["x"], horizon: 3 };
  revenueSeries.parse("Revenue", "month,revenue\n2024-01,100\n2024-02,112.5\n", request);
  assert.deepEqual(request, { history: [100, 112.5], dates: ["2024-01", "2024-02"], horizon: 3 });
  assert.equal(revenueSeries.format(request), "2024-01,100\n2024-02,112.5");
  const bare = { dates: ["old"] };
  revenueSeries.parse("Revenue", "5\n6\n", bare);
  assert.deepEqual(bare, { history: [5, 6] });
  assert.throws(() => revenueSeries.parse("Revenue", "month,revenue\n2024-01,100\n2024-02,n/a\n", {}), { message: 'Revenue: line 3: "n/a" is not a number' });
  assert.throws(() => revenueSeries.parse("Revenue", "\n", {}), { message: "Revenue: no values" });
});

test("metric lines become values, or points named by the header, with time stamps", () => {
  const single = { values: [9], points: [[1]], seed: 42 };
  metricSeries.parse("Metrics", "2024-05-01T00:00,33.2\n2024-05-01T01:00,97.8\n", single);
  assert.deepEqual(single, { values: [33.2, 97.8], timestamps: ["2024-05-01T00:00", "2024-05-01T01:00"], seed: 42 });
  assert.equal(metricSeries.format(single), "2024-05-01T00:00,33.2\n2024-05-01T01:00,97.8");
  const multi = { values: [1] };
  metricSeries.parse("Metrics", "cpu,memory\n10,20\n30,40\n", multi);
  assert.deepEqual(multi, { points: [[10, 20], [30, 40]], feature_names: ["cpu", "memory"] });
  assert.equal(metricSeries.format(multi), "cpu,memory\n10,20\n30,40");
  assert.throws(() => metricSeries.parse("Metrics", "1\n2\nabc\n", {}), { message: 'Metrics: line 3: "abc" is not a number' });
});

test("client records: numbers as numbers, empty cells as null, the rest as text", () => {
  assert.deepEqual(csvRecords("tickets,plan,churned\n4,pro,yes\n,basic,no\n"), {
    columns: ["tickets", "plan", "churned"],
    records: [{ tickets: 4, plan: "pro", churned: "yes" }, { tickets: null, plan: "basic", churned: "no" }],
  });
});
