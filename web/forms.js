// Plain-field forms over the agents' JSON requests. Each field shows one part of a request and
// reads it back, so the JSON (one click away on every page) always says what the fields say.
// Uploaded CSV files are parsed here in the browser; their numbers go to the API unchanged.

import { h } from "./dom.js";

/** A value a field cannot read: the request is not sent, and the message names the field. */
export class FieldError extends Error {
  constructor(label, message) {
    super(`${label}: ${message}`);
  }
}

// ---- CSV ----

/** The rows of a CSV text (RFC 4180: quoted cells may hold commas, quotes and line breaks);
 * blank lines are skipped and cells trimmed. */
export function parseCsv(text) {
  const rows = [];
  let row = [], cell = "", quoted = false;
  const endCell = () => {
    row.push(cell.trim());
    cell = "";
  };
  const endRow = () => {
    endCell();
    if (row.some((c) => c !== "")) rows.push(row);
    row = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") endCell();
    else if (c === "\n") endRow();
    else if (c !== "\r") cell += c;
  }
  endRow();
  return rows;
}

const isNumber = (s) => s !== "" && Number.isFinite(Number(s));

/** A CSV's header (when its first row is one: some column is a number below it and not in it)
 * and data rows. With `headerRequired`, the first row is always the header. */
export function csvTable(text, headerRequired = false) {
  const rows = parseCsv(text);
  if (rows.length === 0) return { header: null, rows: [] };
  const [first, second] = rows;
  const header = headerRequired || (second && first.some((c, j) => !isNumber(c) && isNumber(second[j] ?? "")));
  return header ? { header: first, rows: rows.slice(1) } : { header: null, rows };
}

/** The cell as a number, or a FieldError naming its line (1-based, in the file as given). */
function numberCell(label, value, line) {
  if (!isNumber(value)) throw new FieldError(label, `line ${line}: "${value}" is not a number`);
  return Number(value);
}

/** Revenue per period as CSV: `date,revenue` lines (or revenue alone), oldest first. */
export const revenueSeries = {
  format(request) {
    const dates = request.dates || [];
    return (request.history || []).map((v, i) => (dates[i] ? `${dates[i]},${v}` : String(v))).join("\n");
  },
  parse(label, text, request) {
    const { header, rows } = csvTable(text);
    const skip = header ? 2 : 1;
    if (rows.length === 0) throw new FieldError(label, "no values");
    const valueColumn = rows[0].length > 1 ? 1 : 0;
    request.history = rows.map((r, i) => numberCell(label, r[valueColumn] ?? "", i + skip));
    if (valueColumn === 1) request.dates = rows.map((r) => r[0]);
    else delete request.dates;
  },
};

/** Metric values as CSV: one numeric column (`values`) or several (`points`, named by the
 * header), with an optional first column of time stamps (any cell that is not a number). */
export const metricSeries = {
  format(request) {
    const stamps = request.timestamps || [];
    const withStamp = (cells, i) => (stamps[i] ? [stamps[i], ...cells] : cells).join(",");
    if (request.points) {
      const names = request.feature_names || request.points[0]?.map((_, j) => `feature_${j + 1}`) || [];
      return [(stamps.length ? ["timestamp", ...names] : names).join(","), ...request.points.map(withStamp)].join("\n");
    }
    return (request.values || []).map((v, i) => withStamp([v], i)).join("\n");
  },
  parse(label, text, request) {
    const { header, rows } = csvTable(text);
    const skip = header ? 2 : 1;
    if (rows.length === 0) throw new FieldError(label, "no values");
    const stamped = !isNumber(rows[0][0]);
    const cells = rows.map((r, i) => (stamped ? r.slice(1) : r).map((c) => numberCell(label, c, i + skip)));
    for (const key of ["values", "points", "feature_names", "timestamps"]) delete request[key];
    if (stamped) request.timestamps = rows.map((r) => r[0]);
    if (cells[0].length === 1) {
      request.values = cells.map((c) => c[0]);
    } else {
      request.points = cells;
      if (header) request.feature_names = stamped ? header.slice(1) : header;
    }
  },
};

/** Records (objects by column name) from a CSV with a header row: numbers as numbers, empty
 * cells as null, anything else as text. */
export function csvRecords(text) {
  const { header, rows } = csvTable(text, true);
  if (!header) return { columns: [], records: [] };
  return {
    columns: header,
    records: rows.map((r) => Object.fromEntries(header.map((name, j) => {
      const c = r[j] ?? "";
      return [name, c === "" ? null : isNumber(c) ? Number(c) : c];
    }))),
  };
}

// ---- the fields ----

const fieldId = (key) => `field-${key}`;

/** A number from an input ("" is none); a FieldError when it is not one. */
function readNumber(label, text) {
  if (text === "") return undefined;
  const v = Number(text);
  if (!Number.isFinite(v)) throw new FieldError(label, `"${text}" is not a number`);
  return v;
}

/** Sets `key` to `value`, or removes it when there is none. */
function put(request, key, value) {
  if (value === undefined || value === "") delete request[key];
  else request[key] = value;
}

/** A cell input of an editable table: text, number, comma-separated list or choice. */
function cellInput(column, value, label) {
  const attrs = { "aria-label": label, "data-column": column.key };
  if (column.kind === "select") return h("select", attrs, column.options.map((o) => h("option", { value: o, selected: String(value) === o }, o)));
  if (column.kind === "number") return h("input", { ...attrs, type: "number", step: "any", min: column.min, value: value ?? "" });
  return h("input", { ...attrs, type: "text", value: column.kind === "list" ? (value || []).join(", ") : value ?? "" });
}

function readCell(column, input, label) {
  if (column.kind === "number") return readNumber(label, input.value);
  if (column.kind === "list") return input.value.split(",").map((s) => s.trim()).filter(Boolean);
  return input.value.trim() || undefined;
}

/** Each kind of field: builds its controls from the request and reads them back into it. */
const KINDS = {
  text(f, request) {
    const input = h("input", { id: fieldId(f.key), type: "text", value: request[f.key] ?? "" });
    return { input, nodes: [input], read: (r) => put(r, f.key, input.value.trim()) };
  },
  textarea(f, request) {
    const input = h("textarea", { id: fieldId(f.key), rows: f.rows || 4, class: "prose" }, String(request[f.key] ?? ""));
    return { input, nodes: [input], read: (r) => put(r, f.key, input.value) };
  },
  number(f, request) {
    const input = h("input", { id: fieldId(f.key), type: "number", step: f.step || "any", min: f.min, max: f.max, value: request[f.key] ?? "" });
    return { input, nodes: [input], read: (r) => put(r, f.key, readNumber(f.label, input.value)) };
  },
  select(f, request) {
    const current = String(request[f.key] ?? f.options[0][0]);
    const input = h("select", { id: fieldId(f.key) }, f.options.map(([v, text]) => h("option", { value: v, selected: String(v) === current }, text)));
    return { input, nodes: [input], read: (r) => put(r, f.key, f.numeric ? Number(input.value) : input.value) };
  },
  checkbox(f, request) {
    const input = h("input", { id: fieldId(f.key), type: "checkbox", class: "check", checked: request[f.key] ?? f.default ?? false });
    return { input, nodes: [input], read: (r) => { r[f.key] = input.checked; } };
  },
  list(f, request) {
    const input = h("input", { id: fieldId(f.key), type: "text", value: (request[f.key] || []).join(", ") });
    const items = () => input.value.split(",").map((s) => s.trim()).filter(Boolean);
    return { input, nodes: [input], read: (r) => put(r, f.key, items().length ? items() : undefined) };
  },
  /** A textarea holding part of the request as CSV lines (`f.series`: format and parse). */
  series(f, request) {
    const input = h("textarea", { id: fieldId(f.key), rows: f.rows || 8, spellcheck: "false", "aria-describedby": `${fieldId(f.key)}-help` }, f.series.format(request));
    const help = h("p", { id: `${fieldId(f.key)}-help`, class: "help" }, f.help || "");
    return { input, nodes: [help, input], read: (r) => f.series.parse(f.label, input.value, r) };
  },
  /** A file whose text replaces the field `f.fills`. */
  file(f) {
    const input = h("input", { id: fieldId(f.key), type: "file", accept: f.accept });
    return { input, nodes: [input], file: true };
  },
  /** An editable table of objects (`f.columns`), one row each, with add and remove buttons. */
  rows(f, request) {
    const body = h("tbody");
    const rowCells = new Map();
    let counter = 0;
    const addRow = (item = {}) => {
      counter += 1;
      const n = counter;
      const cells = f.columns.map((c) => cellInput(c, item[c.key], `${f.noun} ${n} ${c.label}`));
      const tr = h("tr", {}, cells.map((x) => h("td", {}, x)),
        h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `remove ${f.noun} ${n}`, onclick: () => { tr.remove(); rowCells.delete(tr); } }, "Remove")));
      rowCells.set(tr, cells);
      body.append(tr);
    };
    (request[f.key] || []).forEach(addRow);
    const grid = h("table", { id: fieldId(f.key), class: "grid" }, h("caption", { class: "sr-only" }, f.label),
      h("thead", {}, h("tr", {}, f.columns.map((c) => h("th", { scope: "col" }, c.label)), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "actions")))), body);
    const add = h("button", { type: "button", class: "secondary", onclick: () => addRow() }, `Add a ${f.noun}`);
    const read = (r) => {
      r[f.key] = [...body.rows].map((tr, i) => {
        const item = {};
        f.columns.forEach((c, j) => {
          const v = readCell(c, rowCells.get(tr)[j], `${f.label}, row ${i + 1}, ${c.label}`);
          if (v !== undefined) item[c.key] = v;
        });
        return item;
      });
    };
    return { input: grid, nodes: [grid, add], read, addRow };
  },
  /** One input per key of an object (a client's values by column), rebuilt by `set`. */
  record(f, request) {
    const box = h("div", { id: fieldId(f.key), class: "record" });
    let kinds = {};
    const set = (record, columnKinds = {}) => {
      kinds = Object.fromEntries(Object.entries(record).map(([k, v]) => [k, columnKinds[k] || (typeof v === "number" ? "numeric" : "categorical")]));
      box.replaceChildren(...Object.entries(record).map(([k, v]) => {
        const id = `${fieldId(f.key)}-${k}`;
        return h("div", {}, h("label", { for: id }, k), h("input", { id, "data-name": k, type: kinds[k] === "numeric" ? "number" : "text", step: "any", value: v ?? "" }));
      }));
    };
    set(request[f.key] || {});
    const read = (r) => {
      r[f.key] = Object.fromEntries([...box.querySelectorAll("input")].map((input) => {
        const name = input.dataset.name;
        if (input.value === "") return [name, null];
        return [name, kinds[name] === "numeric" ? readNumber(`${f.label}: ${name}`, input.value) : input.value];
      }));
    };
    return { input: box, nodes: [box], read, set };
  },
};

/** The controls of a form's fields, filled from `request`: `nodes` to show, `control(key)`,
 * and `read(base)`, the request the fields say (`base`'s other keys kept). */
export function buildForm(fields, request) {
  const controls = fields.map((f) => {
    const c = KINDS[f.kind](f, request);
    const labelFor = f.kind === "rows" || f.kind === "record" ? h("p", { class: "label", id: `${fieldId(f.key)}-label` }, f.label) : h("label", { for: fieldId(f.key) }, f.label);
    return { ...c, field: f, nodes: [labelFor, ...c.nodes] };
  });
  const control = (key) => controls.find((c) => c.field.key === key);
  // A file field reads the chosen file into the field it fills.
  for (const c of controls.filter((x) => x.file)) {
    const target = control(c.field.fills).input;
    c.input.addEventListener("change", async () => {
      if (c.input.files[0]) target.value = await c.input.files[0].text();
      c.input.dispatchEvent(new Event("loaded"));
    });
  }
  return {
    nodes: controls.flatMap((c) => c.nodes),
    control,
    read(base) {
      const request = structuredClone(base);
      for (const c of controls) c.read?.(request);
      return request;
    },
  };
}
