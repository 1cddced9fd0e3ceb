// ferry console: reads the JSON API and builds DOM nodes with textContent only (no HTML from data, ever).
"use strict";

const STATUS_DONE = new Set(["succeeded", "failed", "aborted"]);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

async function api(path, options) {
  const init = Object.assign({ headers: { "Accept": "application/json" }, credentials: "same-origin" }, options || {});
  if (init.body !== undefined) init.headers["Content-Type"] = "application/json";
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function when(ts) {
  if (!ts) return "-";
  const d = new Date(ts * 1000), p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function duration(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function badge(status) { return el("span", { class: `status status-${status}` }, status); }

// ---- meta values --------------------------------------------------------------------------------

function fullText(v) {
  if (v.kind === "list") return "[" + v.items.map(fullText).join(", ") + "]";
  if (v.kind === "map") return "{" + Object.entries(v.items).map(([k, x]) => `'${k}': ${fullText(x)}`).join(", ") + "}";
  return v.text;
}

function metaValue(v) {
  if (["file", "directory", "dataframe", "offloaded"].includes(v.kind)) {
    const parts = [el("span", { class: "tag" }, v.kind), " ", el("code", { class: "uri" }, v.uri)];
    if (v.format) parts.push(" ", el("span", { class: "muted" }, v.format));
    if (v.size_text) parts.push(" ", el("span", { class: "muted" }, v.size_text));
    if (v.columns && v.columns.length) parts.push(" ", el("span", { class: "muted" }, "columns: " + v.columns.map((c) => `${c.name}: ${c.type}`).join(", ")));
    return el("span", { class: "ref" }, parts);
  }
  const text = fullText(v);
  if (text.length > 120) {
    return el("details", { class: "long" }, el("summary", {}, el("code", {}, text.slice(0, 100) + "…"), " ",
      el("span", { class: "muted" }, `(${text.length} characters)`)), el("pre", {}, text));
  }
  return el("code", {}, text);
}

function valuesTable(title, values, heading) {
  const box = el("div", { class: "values" }, el(heading || "h4", {}, title));
  if (values === null || values === undefined) { box.append(el("p", { class: "muted" }, "not written (yet)")); return box; }
  const names = Object.keys(values);
  if (!names.length) { box.append(el("p", { class: "muted" }, "(none)")); return box; }
  box.append(el("table", { class: "kv" }, names.map((n) => el("tr", { "data-value": n }, el("th", {}, n), el("td", {}, metaValue(values[n]))))));
  return box;
}

// ---- executions list ----------------------------------------------------------------------------

function executionsPage() {
  const table = document.getElementById("executions");
  const params = new URLSearchParams();
  if (table.dataset.status) params.set("status", table.dataset.status);
  if (table.dataset.workflow) params.set("workflow", table.dataset.workflow);
  if (table.dataset.cursor) params.set("cursor", table.dataset.cursor);  // an older page stays that page
  params.set("limit", "50");
  const live = document.getElementById("live");
  async function refresh() {
    try {
      const data = await api(`/api/v1/executions?${params}`);
      const body = table.tBodies[0];
      body.replaceChildren(...data.executions.map((e) => el("tr", { "data-id": e.id },
        el("td", {}, el("a", { href: `/executions/${encodeURIComponent(e.id)}` }, e.id)), el("td", {}, badge(e.status)),
        el("td", {}, e.workflow), el("td", {}, e.launch_plan || ""), el("td", {}, when(e.started)),
        el("td", {}, e.ended ? duration(e.duration) : (e.status === "running" ? duration(Date.now() / 1000 - e.started) : "-")))));
      if (!data.executions.length) body.append(el("tr", { class: "empty" }, el("td", { colspan: 6 }, "No executions yet.")));
      live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    } catch (e) { live.textContent = `not updating: ${e.message}`; }
  }
  setInterval(refresh, 2000);
}

// ---- one execution ------------------------------------------------------------------------------

function executionPage() {
  let data = JSON.parse(document.getElementById("execution-data").textContent);
  let selected = null;
  const detail = document.getElementById("detail");

  function render() {
    document.getElementById("status").replaceChildren(badge(data.status));
    document.getElementById("duration").textContent = data.ended ? duration(data.duration)
      : (data.status === "running" ? duration(Date.now() / 1000 - data.started) + " so far" : "-");
    for (const [id, title, values] of [["execution-inputs", "Inputs", data.inputs], ["execution-outputs", "Outputs", data.outputs]]) {
      document.getElementById(id).replaceChildren(...valuesTable(title, values, "h3").childNodes);
    }
    const err = document.getElementById("execution-error");
    err.hidden = !data.error; err.textContent = data.error || "";
    for (const n of (data.graph ? data.graph.nodes : [])) {
      const g = document.querySelector(`#graph g.node[data-node="${CSS.escape(n.id)}"]`);
      if (!g) continue;
      g.setAttribute("class", `node status-${n.status}${selected === n.id ? " selected" : ""}`);
      let text = n.status;
      if (n.elements) {
        const total = Object.values(n.elements).reduce((a, b) => a + b, 0);
        text = `${n.status} · ${n.elements.succeeded || 0}/${total}`;
      }
      g.querySelector(".node-status").textContent = text;
    }
    renderGantt(); renderNodes();
  }

  function renderGantt() {
    const box = document.getElementById("gantt");
    const rows = data.nodes.filter((n) => n.kind === "task");
    if (!rows.length) { box.replaceChildren(el("p", { class: "muted" }, "No attempt has started yet.")); return; }
    const now = Date.now() / 1000;
    const t0 = Math.min(...rows.map((r) => r.started));
    const t1 = Math.max(...rows.map((r) => r.ended || now), t0 + 0.001);
    const labelW = 210, width = Math.max(box.clientWidth - 20, 600), rowH = rows.length > 200 ? 9 : 18;
    const scale = (width - labelW - 10) / (t1 - t0);
    const root = svg("svg", { width, height: rows.length * rowH + 24 });
    root.append(svg("line", { class: "axis", x1: labelW, x2: labelW, y1: 0, y2: rows.length * rowH + 4 }));
    root.append(svg("text", { x: labelW, y: rows.length * rowH + 18 }, "0 s"));
    root.append(svg("text", { x: width - 60, y: rows.length * rowH + 18 }, duration(t1 - t0)));
    rows.forEach((r, i) => {
      const y = i * rowH;
      if (rowH >= 14) root.append(svg("text", { x: 4, y: y + 13 }, `${r.path} #${r.attempt} ${r.label}`.slice(0, 34)));
      const bar = svg("rect", { class: `bar-${r.status}`, x: labelW + (r.started - t0) * scale, y: y + 2,
        width: Math.max(2, ((r.ended || now) - r.started) * scale), height: rowH - 4, rx: 2 });
      bar.append(svg("title", {}, `${r.path} attempt ${r.attempt}: ${r.status}, ${duration((r.ended || now) - r.started)}`));
      root.append(bar);
    });
    box.replaceChildren(root);
  }

  function renderNodes() {
    const body = document.querySelector("#nodes tbody");
    const rows = [];
    for (const n of data.nodes) {
      const tr = el("tr", { "data-path": n.path, class: selected === n.path ? "selected" : null, onclick: () => select(n.path) },
        el("td", { class: "mono" }, n.path, " ", el("span", { class: "muted" }, n.label)), el("td", {}, n.kind),
        el("td", {}, n.kind === "task" ? n.attempt : ""), el("td", {}, badge(n.status)),
        el("td", {}, duration(n.duration)), el("td", { class: "muted" }, n.worker || n.detail || ""));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  async function select(path) {
    selected = path;
    render();
    detail.replaceChildren(el("p", { class: "muted" }, `Loading ${path}…`));
    try {
      const node = await api(`/api/v1/executions/${encodeURIComponent(data.id)}/nodes/${path.split("/").map(encodeURIComponent).join("/")}`);
      const parts = [el("h3", {}, `${node.path} `, el("span", { class: "muted" }, `${node.label} (${node.kind})`))];
      for (const a of node.attempts) {
        const box = el("div", { class: "attempt", "data-attempt": a.attempt },
          el("h4", {}, `Attempt ${a.attempt} `, badge(a.status), " ", el("span", { class: "muted" }, `${when(a.started)} · ${duration(a.duration)}${a.worker ? " · " + a.worker : ""}`)));
        if (node.kind === "task") {
          box.append(valuesTable("Inputs", a.inputs), valuesTable("Outputs", a.outputs));
        } else if (a.detail) box.append(el("p", { class: "muted" }, a.detail));
        if (a.error) {
          box.append(el("h4", {}, "Error"), el("p", { class: "muted" }, [a.error.code, a.error.origin ? `${a.error.origin} error` : "",
            a.error.retryable === null ? "" : (a.error.retryable ? "retryable" : "not retryable")].filter(Boolean).join(" · ")),
            el("pre", { class: "error traceback" }, a.error.message));
        }
        if (node.kind === "task") box.append(el("h4", {}, "Logs (stdout and stderr)"), el("pre", { class: "logs" }, a.logs || "(printed nothing)"));
        parts.push(box);
      }
      if (selected === path) detail.replaceChildren(...parts);
    } catch (e) {
      // compound nodes (branch, subworkflow, map) have no attempt of their own until they start
      detail.replaceChildren(el("p", { class: "error" }, e.message));
    }
  }

  document.querySelectorAll("#graph g.node").forEach((g) => {
    const go = () => select(g.dataset.node);
    g.addEventListener("click", go);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  });

  const message = document.getElementById("action-message");
  document.querySelectorAll(".actions button").forEach((b) => b.addEventListener("click", async () => {
    const action = b.dataset.action;
    message.textContent = `${action}…`;
    try {
      const result = await api(`/api/v1/executions/${encodeURIComponent(data.id)}/${action}`, { method: "POST", body: "{}" });
      if (action === "relaunch") { window.location = `/executions/${encodeURIComponent(result.id)}`; return; }
      message.textContent = `${action}: ${result.status}`;
      poll();
    } catch (e) { message.textContent = e.message; }
  }));

  let timer = null;
  async function poll() {
    clearTimeout(timer);
    try {
      data = await api(`/api/v1/executions/${encodeURIComponent(data.id)}`);
      render();
    } catch (e) { message.textContent = `not updating: ${e.message}`; }
    if (!STATUS_DONE.has(data.status)) timer = setTimeout(poll, 1000);
  }
  render();
  if (!STATUS_DONE.has(data.status)) timer = setTimeout(poll, 1000);
}

// ---- launch form --------------------------------------------------------------------------------

function readField(field) {
  const form = field.dataset.form, input = field.querySelector("input, select, textarea");
  const name = field.dataset.name, optional = field.dataset.optional === "true";
  if (form === "bool") return input.checked;
  if (form === "str" && input.value !== "") return input.value; // text as typed: spaces are part of it
  const text = input.value.trim();
  if (text === "") {
    if (optional) return null;
    if (form === "str" && field.dataset.required !== "true") return ""; // a default cleared: the empty string
    return undefined; // not given: the default (or an error naming the missing input)
  }
  if (form === "int") { if (!/^[+-]?\d+$/.test(text)) throw new Error(`${name}: ${text} is not a whole number`); return text; }
  if (form === "float" || form === "duration") { const x = Number(text); if (Number.isNaN(x)) throw new Error(`${name}: ${text} is not a number`); return x; }
  if (form === "datetime") return text.length === 16 ? text + ":00" : text;
  if (form === "json") { try { return JSON.parse(text); } catch (e) { throw new Error(`${name}: not valid JSON (${e.message})`); } }
  return text; // str, enum, uri
}

function launchPage() {
  const plan = JSON.parse(document.getElementById("launchplan-data").textContent);
  const form = document.getElementById("launch-form"), error = document.getElementById("launch-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { launch_plan: plan.name, version: plan.version, inputs: {} };
    try {
      for (const field of form.querySelectorAll(".field[data-name]")) {
        const value = readField(field);
        if (value !== undefined) body.inputs[field.dataset.name] = value;
      }
      const prefix = document.getElementById("raw-output-prefix").value.trim();
      if (prefix) body.raw_output_prefix = prefix;
      const execution = await api("/api/v1/executions", { method: "POST", body: JSON.stringify(body) });
      window.location = `/executions/${encodeURIComponent(execution.id)}`;
    } catch (e) { error.textContent = e.message; error.hidden = false; }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "executions") executionsPage();
  else if (page === "execution") executionPage();
  else if (page === "launchplan") launchPage();
});
