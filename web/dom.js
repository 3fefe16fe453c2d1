// Small DOM helpers shared by the dashboard's modules.

/** An element with attributes (`on…` attributes add listeners) and children (nodes or text). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

/** A table with column headers, rows of cells (nodes or text) and an optional caption. */
export function table(headers, rows, caption) {
  return h("table", {}, caption ? h("caption", {}, caption) : "", h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

/** A number as text (integers whole, others to `digits` places); anything else as it is, "—" for none. */
export const num = (v, digits = 3) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : v ?? "—");

/** A button that downloads a table's rows as CSV (RFC 4180 quoting) named `name`. */
export function csvButton(headers, rows, name) {
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

/** A table with its CSV download button. */
export function tableWithCsv(headers, rows, caption, name) {
  return [table(headers, rows, caption), csvButton(headers, rows, name)];
}
