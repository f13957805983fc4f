// The status page: reads the JSON-RPC API of the listener it came from and
// redraws every few seconds. No libraries, nothing fetched from elsewhere.
"use strict";

const REFRESH_MS = 5000;
const palette = ["#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#8d6e63", "#ad1457", "#546e7a"];
let nextId = 1;

function token() { return sessionStorage.getItem("edge-admin-token") || ""; }

async function rpcBatch(calls) {
  const body = calls.map(([method, params]) => ({ jsonrpc: "2.0", id: nextId++, method, params: params || {} }));
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const res = await fetch("/rpc", { method: "POST", headers, body: JSON.stringify(body) });
  if (res.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("this listener needs the admin token");
  }
  if (!res.ok) throw new Error("admin API answered " + res.status);
  const answers = await res.json();
  const byId = new Map(answers.map((a) => [a.id, a]));
  return body.map((call) => {
    const a = byId.get(call.id);
    if (!a || a.error) throw new Error(call.method + ": " + (a ? a.error.message + " " + (a.error.data || "") : "no answer"));
    return a.result;
  });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function daysBar(cert) {
  const lifetime = (Date.parse(cert.not_after) - Date.parse(cert.not_before)) / 86400000;
  const share = Math.max(0, Math.min(1, lifetime > 0 ? cert.days_left / lifetime : 0));
  const color = cert.days_left < 7 || share < 0.1 ? "var(--bad)" : share < 0.34 ? "var(--warn)" : "var(--ok)";
  return el("td", { "data-days-left": cert.days_left },
    el("span", { class: "bar", title: Math.round(share * 100) + "% of the lifetime left" },
      el("span", { style: `width:${(share * 100).toFixed(1)}%;background:${color}` })),
    cert.days_left + (cert.days_left === 1 ? " day" : " days"));
}

function renderCertificates(certs, pending) {
  const body = document.querySelector("#certificates tbody");
  body.replaceChildren();
  if (certs.length + pending.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "no certificates stored yet")));
  }
  // Configured but never issued: what an operator most needs to see.
  for (const p of pending) {
    body.append(el("tr", { "data-cert": p.name, class: "pending" },
      el("td", {}, p.name), el("td", {}, "-"), el("td", {}, "-"),
      el("td", { class: "error" }, "no certificate yet"),
      el("td", {}, p.next_attempt ? "retry " + p.next_attempt : "-"),
      el("td", {}, p.state), el("td", { class: "error" }, p.last_error || "")));
  }
  for (const c of certs) {
    const next = c.state === "retrying" && c.next_attempt ? "retry " + c.next_attempt : (c.next_renewal || "-");
    body.append(el("tr", { "data-cert": c.name },
      el("td", {}, c.name),
      el("td", {}, c.identifiers.join(", ")),
      el("td", {}, c.issuer),
      daysBar(c),
      el("td", {}, next),
      el("td", {}, c.state || (c.source === "manual" ? "manual" : "-")),
      el("td", { class: "error" }, c.last_error || "")));
  }
}

// One stacked bar per minute: successes at the bottom, failures by error.type above.
function renderCharts(certs, timeline) {
  const charts = document.getElementById("charts");
  charts.replaceChildren();
  const minutes = timeline.minutes;
  const from = Date.parse(timeline.from);
  const names = new Set(certs.map((c) => c.name));
  for (const p of timeline.points) names.add(p.cert || "-");
  const errorTypes = [...new Set(timeline.points.filter((p) => p.outcome !== "ok" && p.outcome !== "acme_challenge")
    .map((p) => p.error_type))].sort();
  const colorOf = (type) => palette[errorTypes.indexOf(type) % palette.length];
  for (const name of [...names].sort()) {
    const cols = Array.from({ length: minutes }, () => ({ ok: 0, failures: {} }));
    let total = 0;
    for (const p of timeline.points) {
      if ((p.cert || "-") !== name) continue;
      const i = Math.round((Date.parse(p.minute) - from) / 60000);
      if (i < 0 || i >= minutes) continue;
      if (p.outcome === "ok" || p.outcome === "acme_challenge") cols[i].ok += p.count;
      else cols[i].failures[p.error_type] = (cols[i].failures[p.error_type] || 0) + p.count;
      total += p.count;
    }
    const max = Math.max(1, ...cols.map((c) => c.ok + Object.values(c.failures).reduce((a, b) => a + b, 0)));
    const W = 6, H = 90, width = minutes * W;
    const chart = svg("svg", { width, height: H + 14, viewBox: `0 0 ${width} ${H + 14}`, role: "img" });
    chart.append(svg("line", { x1: 0, y1: H, x2: width, y2: H, stroke: "#bbb" }));
    cols.forEach((c, i) => {
      let y = H;
      const stack = [["ok", c.ok, "var(--ok)"], ...Object.entries(c.failures).map(([t, n]) => [t, n, colorOf(t)])];
      for (const [label, n, color] of stack) {
        if (!n) continue;
        const h = (n / max) * H;
        y -= h;
        const r = svg("rect", { x: i * W + 1, y, width: W - 2, height: h, fill: color });
        const title = svg("title", {});
        title.textContent = `${label}: ${n}`;
        r.append(title);
        chart.append(r);
      }
    });
    const axis = svg("text", { x: 0, y: H + 12, "font-size": 10, fill: "#666" });
    axis.textContent = `-${minutes} min`;
    const now = svg("text", { x: width, y: H + 12, "font-size": 10, fill: "#666", "text-anchor": "end" });
    now.textContent = "now";
    chart.append(axis, now);
    const legend = el("div", { class: "legend" }, el("i", { style: "background:var(--ok)" }), "ok");
    for (const t of errorTypes) legend.append(el("i", { style: `background:${colorOf(t)}` }), t);
    charts.append(el("div", { class: "chart", id: "chart-" + name, "data-total": total },
      el("h3", {}, `${name === "-" ? "no certificate selected" : name} — ${total} handshakes, max ${max}/min`),
      chart, legend));
  }
}

function renderFailures(records) {
  const body = document.querySelector("#failures tbody");
  body.replaceChildren();
  if (records.length === 0) body.append(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no failed handshakes recorded")));
  for (const r of records) {
    const address = String(r["client.address"] || "");
    const client = (address.includes(":") ? `[${address}]` : address) + ":" + r["client.port"];
    body.append(el("tr", { class: "failure" },
      el("td", {}, String(r["@timestamp"]).replace("T", " ").replace("Z", "")),
      el("td", {}, client),
      el("td", {}, r["tls.client.server_name"] || "(none)"),
      el("td", { class: "error" }, r["error.type"] || r["edge.outcome"]),
      el("td", {}, r["edge.cert.name"] || "-")));
  }
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [version, connections, certs, pending, timeline, failed, timedOut] = await rpcBatch([
      ["version"], ["stats.connections"], ["certs.list"], ["certs.pending"], ["stats.timeline", { minutes: 60 }],
      ["handshakes.query", { outcome: "failed", limit: 20 }], ["handshakes.query", { outcome: "timeout", limit: 20 }],
    ]);
    document.getElementById("summary").textContent =
      `${version.version} · ${version.mode} mode · up ${Math.floor(version.uptime_seconds / 60)} min · ` +
      `${connections.active} connections open, ${connections.total} total`;
    renderCertificates(certs, pending);
    renderCharts(certs, timeline);
    const failures = failed.concat(timedOut).sort((a, b) => (a["@timestamp"] < b["@timestamp"] ? 1 : -1)).slice(0, 20);
    renderFailures(failures);
    document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.loaded = "true";
    error.hidden = true;
  } catch (e) {
    error.textContent = String(e.message || e);
    error.hidden = false;
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("edge-admin-token", document.getElementById("token").value);
  document.getElementById("login").hidden = true;
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
