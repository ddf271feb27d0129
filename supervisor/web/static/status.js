// The Tahiry status page: live node table and charts from the supervisor's /events stream.
// Plain DOM and SVG, no library; every text from the cluster goes in through textContent.
"use strict";

const COLORS = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];
const WIDE = new Set([2, 3, 8]);   // address, pid, probe: hidden on a phone
const page = { history: [], states: {}, takenAt: null };

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.floor(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + Math.floor(s % 86400 / 3600) + "h";
}

function percent(ratio) {
  return ratio === null || ratio === undefined ? "-" : (ratio * 100).toFixed(0) + "%";
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

// What the `info` column of `./tahiry status` says, plus the node's own counters.
function info(row) {
  const parts = [];
  if (row.probe_failures) {  // RUNNING, but its last health probes failed (restarted at probe_fall)
    parts.push("probe failed " + row.probe_failures + "/" + (row.probe_fall || "?") + ": " + (row.probe_error || "no answer"));
  }
  if (row.kind === "server") {
    if (row.statements !== undefined && row.statements !== null) parts.push(row.statements + " statements");
    if (row.repl_lag_p50_ms !== null && row.repl_lag_p50_ms !== undefined) {
      parts.push("repl lag p50 " + row.repl_lag_p50_ms.toFixed(1) + " ms p99 " + row.repl_lag_p99_ms.toFixed(1) + " ms");
    }
    if (row.repl_conflicts) parts.push(row.repl_conflicts + " conflicts");
    if (row.writable === false && !["STOPPED", "FATAL", "BACKOFF"].includes(row.state)) parts.push("catching up (read-only)");
  } else if (row.kind === "balancer" && row.backends) {
    parts.push(Object.entries(row.backends).map(([id, state]) => id + " " + state).join(", "));
  } else if (row.kind === "proxycache" && row.hits !== undefined) {
    parts.push("hit ratio " + percent(row.hit_ratio) + " (" + row.hits + " hits, " + row.misses + " misses)");
    parts.push(row.entries + " entries, " + bytes(row.bytes));
    if (row.backends) {  // the one relay: the balancer it runs, and its servers
      parts.push("balancer in process: " + Object.entries(row.backends).map(([id, state]) => id + " " + state).join(", "));
    }
  }
  if (row.connections !== undefined && row.connections !== null) parts.push(row.connections + " conn");
  for (const alert of row.alerts || []) parts.push("alert: " + alert);
  return parts.join(", ");
}

// A count of the status row; "-" for one it does not have (a node another machine runs).
function count(value) {
  return value === null || value === undefined ? "-" : value;
}

function renderNodes(rows) {
  const body = document.querySelector("#nodes tbody");
  const lines = rows.map((row) => {
    const tr = el("tr");
    tr.dataset.node = row.node;
    tr.dataset.state = row.state;
    const cells = [
      el("td", row.node), el("td", row.kind), el("td", row.address), el("td", row.pid || "-", "num"),
      el("td", row.state, "state state-" + row.state), el("td", duration(row.uptime_s), "num"),
      el("td", count(row.restarts), "num"),
      // Apart: a node restarted by hand ten times has not crashed (supervisor/keeper.py).
      el("td", count(row.manual_restarts), "num"),
      el("td", row.probe_ms === null || row.probe_ms === undefined ? "-" : row.probe_ms.toFixed(1) + " ms", "num"),
      el("td", info(row)), el("td", row.last_error || "", "error"),
    ];
    cells.forEach((cell, i) => { if (WIDE.has(i)) cell.classList.add("wide"); tr.appendChild(cell); });
    if (page.states[row.node] !== undefined && page.states[row.node] !== row.state) tr.classList.add("changed");
    page.states[row.node] = row.state;
    return tr;
  });
  body.replaceChildren(...lines);
}

function renderSupervisor(info) {
  if (!info) return;
  document.getElementById("supervisor").textContent =
    "supervisor pid " + info.pid + ", up " + duration(info.uptime_s) + ", " + info.topology;
  // Servers gone from the topology whose newest copies have not all landed: keep their folders.
  const pending = Object.entries(info.handing_over || {});
  const handing = document.getElementById("handing-over");
  handing.hidden = pending.length === 0;
  handing.textContent = pending.map(([id, data]) => "handing over: " + id + " (" + data +
    "): its newest copies have not all landed on the other servers yet; keep that directory")
    .join("\n");
  const reload = info.last_reload;
  const target = document.getElementById("reload");
  if (!reload) {
    target.className = "";
    target.textContent = "none since the supervisor started";
    return;
  }
  const when = new Date(reload.at * 1000).toLocaleTimeString();
  target.className = reload.ok ? "ok" : "refused";
  target.textContent = (reload.ok ? "applied at " : "refused at ") + when + ": " + reload.message;
}

// One chart: a polyline per series over the history's time span.
function drawChart(id, key, scale) {
  const svg = document.getElementById(id);
  const points = page.history;
  const names = [...new Set(points.flatMap((p) => Object.keys(p[key] || {})))].sort();
  const values = points.flatMap((p) => Object.values(p[key] || {}).filter((v) => v !== null));
  const top = scale === "ratio" ? 1 : Math.max(1, ...values) * 1.1;
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(1, t1 - t0);
  const ns = "http://www.w3.org/2000/svg";
  const shapes = [];
  for (const y of [25, 50, 75]) {
    const grid = document.createElementNS(ns, "line");
    grid.setAttribute("class", "grid");
    grid.setAttribute("x1", "0"); grid.setAttribute("x2", "300");
    grid.setAttribute("y1", String(y)); grid.setAttribute("y2", String(y));
    shapes.push(grid);
  }
  names.forEach((name, i) => {
    const line = document.createElementNS(ns, "polyline");
    const coords = points.filter((p) => p[key] && p[key][name] !== undefined && p[key][name] !== null)
      .map((p) => ((p.t - t0) / span * 300).toFixed(1) + "," + (100 - p[key][name] / top * 100).toFixed(1));
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("stroke", COLORS[i % COLORS.length]);
    shapes.push(line);
  });
  svg.replaceChildren(...shapes);
  const legend = document.querySelector('.legend[data-for="' + id + '"]');
  legend.replaceChildren(...names.map((name, i) => {
    const last = [...points].reverse().find((p) => p[key] && p[key][name] !== undefined && p[key][name] !== null);
    const value = last ? last[key][name] : null;
    const shown = value === null ? "-" : scale === "ratio" ? percent(value) : value.toFixed(1);
    const item = el("span", name + " " + shown);
    item.style.setProperty("--swatch", COLORS[i % COLORS.length]);
    return item;
  }));
  const label = document.querySelector('.span[data-for="' + id + '"]');
  label.textContent = points.length > 1 ? "(last " + duration(span) + ", top " +
    (scale === "ratio" ? "100%" : top.toFixed(1)) + ")" : "";
}

function renderCharts() {
  drawChart("throughput", "throughput");
  drawChart("lag", "lag_ms");
  drawChart("hits", "hit_ratio", "ratio");
}

function render(status) {
  page.takenAt = status.taken_at;
  renderSupervisor(status.supervisor);
  renderNodes(status.nodes || []);
  renderCharts();
  showAge();
}

function showAge() {
  const target = document.getElementById("updated");
  if (!page.takenAt) { target.textContent = ""; return; }
  const age = Math.max(0, Date.now() / 1000 - page.takenAt);
  target.textContent = "updated " + (age < 2 ? "just now" : duration(age) + " ago");
}

function setLive(on, text) {
  const badge = document.getElementById("live");
  badge.className = "live " + (on ? "on" : "off");
  badge.textContent = text || (on ? "live" : "reconnecting");
}

function poll() {  // for a browser without EventSource
  fetch("api/status", { cache: "no-store" }).then((r) => r.json()).then((status) => {
    page.history = status.history || [];
    render(status);
    setLive(true, "polling");
  }).catch(() => setLive(false)).finally(() => setTimeout(poll, 1000));
}

function connect() {
  if (!window.EventSource) { poll(); return; }
  const source = new EventSource("events");
  source.addEventListener("status", (event) => {
    const status = JSON.parse(event.data);
    page.history = status.history || [];
    render(status);
    setLive(true);
  });
  source.addEventListener("view", (event) => {
    const status = JSON.parse(event.data);
    if (status.point) {
      page.history.push(status.point);
      const oldest = status.point.t - 600;
      while (page.history.length && page.history[0].t < oldest) page.history.shift();
    }
    render(status);
    setLive(true);
  });
  source.onopen = () => setLive(true);
  source.onerror = () => setLive(false);  // EventSource reconnects by itself
}

setInterval(showAge, 1000);
connect();
