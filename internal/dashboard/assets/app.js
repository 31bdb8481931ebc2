// Understudy dashboard: polls GET /v1/dashboard/state every second and
// renders it; actions POST to the controller's admin API. The admin token
// lives in this tab's sessionStorage only.
"use strict";

const TOKEN_KEY = "understudy.admin-token";
const POLL_MS = 1000;
const NCOLORS = 4; // series colours: classes s0..s3 in style.css

const $ = (id) => document.getElementById(id);
let state = null;
let lastOK = 0;
let busy = {}; // action key → true while its request runs
let built = "";

// ---- authentication -------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

// A one-time code in the fragment (#code=…) is exchanged for the token;
// the fragment never reaches a server and is removed from the address bar.
async function redeemFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const code = params.get("code");
  if (!code) return;
  history.replaceState(null, "", location.pathname + location.search);
  const resp = await fetch("/v1/dashboard/session", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }), credentials: "omit", cache: "no-store",
  });
  const body = await resp.json().catch(() => ({}));
  if (resp.ok && body.token) {
    sessionStorage.setItem(TOKEN_KEY, body.token);
  } else if (!token()) {
    showLogin(body.error ? body.error.message : "This link could not be used.");
  }
}

function showLogin(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("main").hidden = true;
  $("login").hidden = false;
  if (reason) $("login-reason").textContent = reason;
  setLive("signed out", "");
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("login-token").value.trim());
  $("login-token").value = "";
  $("login").hidden = true;
  poll();
});

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), method === "GET" ? 4000 : 150000);
  try {
    const resp = await fetch(path, {
      method, headers, credentials: "omit", cache: "no-store", signal: ctl.signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      showLogin("The admin token was refused. Paste it again.");
      throw new Error("unauthorized");
    }
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error((data.error && data.error.message) || resp.statusText);
    return data;
  } finally {
    clearTimeout(timer);
  }
}

// ---- polling --------------------------------------------------------

let pollTimer = 0;
async function poll() {
  clearTimeout(pollTimer);
  if (!token()) { showLogin(); return; }
  try {
    state = await api("GET", "/v1/dashboard/state");
    lastOK = Date.now();
    $("login").hidden = true;
    $("main").hidden = false;
    render(state);
  } catch (err) {
    if (err.message === "unauthorized") return;
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

setInterval(() => {
  if (!token() || !lastOK) return;
  const age = (Date.now() - lastOK) / 1000;
  if (age < 3) setLive("live · updated " + new Date(lastOK).toLocaleTimeString([], { hour12: false }), "ok");
  else setLive("no answer from the controller for " + Math.round(age) + " s", "stale");
}, 500);

function setLive(text, cls) {
  $("live-text").textContent = text;
  $("live-dot").className = "dot " + cls;
}

// ---- helpers --------------------------------------------------------

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function set(el, text) { if (el.textContent !== String(text)) el.textContent = text; }
function fmtS(ms) {
  if (ms == null || isNaN(ms)) return "—";
  if (ms === 0) return "0";
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s >= 100 || Number.isInteger(s)) return Math.round(s) + " s";
  return s.toFixed(s < 10 ? 2 : 1) + " s";
}
// shortErr keeps the end of a Go error chain ("…: connection refused").
function shortErr(e) {
  if (!e) return "";
  const parts = String(e).split(": ");
  return parts[parts.length - 1];
}
// applyGeometry sets positions rendered as data attributes: the page's
// Content-Security-Policy refuses inline style attributes, not CSSOM.
function applyGeometry(root) {
  root.querySelectorAll("[data-left]").forEach((el) => {
    el.style.left = el.dataset.left + "%";
    if (el.dataset.width) el.style.width = el.dataset.width + "%";
  });
}
function fmtRate(r) { return r == null ? "—" : r >= 100 ? Math.round(r).toString() : r.toFixed(1); }
function hms(t) { return new Date(t).toLocaleTimeString([], { hour12: false }); }
function ts(t) { return t ? Date.parse(t) : 0; }
function toast(msg, bad) {
  const el = $("toast");
  el.textContent = msg;
  el.className = "toast" + (bad ? " bad" : "");
  el.hidden = false;
  clearTimeout(toast.t);
  toast.t = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 4000);
}

// ---- rendering ------------------------------------------------------

function render(s) {
  const c = s.controller || {};
  set($("topo-name"), s.name ? "· " + s.name : "");
  $("sum-primary").innerHTML = "primary <b>" + esc(c.primary || "—") + "</b>";
  $("sum-epoch").innerHTML = "epoch <b>" + esc(c.epoch ?? "—") + "</b>";
  set($("sum-pattern"), s.pattern || "—");
  set($("sum-targets"), "targets: RTO " + fmtS(s.targets.rto_ms) + " · RPO " + fmtS(s.targets.rpo_ms));
  buildRegions(s);
  for (const r of s.regions) renderRegion(s, r.name);
  renderChart(s);
  renderEdge(s);
  renderRun(s);
  renderActions(s);
  renderEvents(s);
}

function buildRegions(s) {
  const key = s.regions.map((r) => r.name).join(",");
  if (built === key) return;
  built = key;
  const root = $("regions");
  root.innerHTML = "";
  for (const r of s.regions) {
    const el = document.createElement("article");
    el.className = "card region";
    el.dataset.region = r.name;
    el.innerHTML = `
      <div class="region-head"><h2>${esc(r.name)}</h2><span class="badge role"></span><span class="prio">priority ${esc(r.priority)}</span></div>
      <div class="big"><span class="rps">—</span><span class="unit">req/s through the edge</span><span class="err"></span></div>
      <dl class="facts">
        <dt>Health</dt><dd class="health"></dd>
        <dt>Epoch</dt><dd class="epoch"></dd>
        <dt>Journal</dt><dd class="position"></dd>
        <dt>Replication</dt><dd class="lag"></dd>
        <dt>Edge</dt><dd class="edge"></dd>
        <dt>Processes</dt><dd class="procs"></dd>
        <dt>Drift</dt><dd class="drift"></dd>
      </dl>
      <div class="buttons">
        <button type="button" class="danger" data-action="down" data-region="${esc(r.name)}">Take region down</button>
        <button type="button" data-action="up" data-region="${esc(r.name)}">Bring region back</button>
      </div>`;
    root.appendChild(el);
  }
  root.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => regionAction(b.dataset.region, b.dataset.action)));
}

function regionRole(s, name) {
  const v = (s.controller.regions || {})[name] || {};
  const rd = v.last_ok ? v.readiness : null;
  if (!v.up) return { text: "down", cls: "red", card: "is-down", was: (v.last_good || {}).role };
  if (!rd) return { text: "unreachable", cls: "amber", card: "is-down", was: (v.last_good || {}).role };
  if (rd.role === "primary" && rd.writable) return { text: "primary", cls: "green", card: "is-primary" };
  if (rd.role === "primary") return { text: "primary · read-only", cls: "amber", card: "is-fenced" };
  if (rd.role === "standby") return { text: "standby", cls: "blue", card: "is-standby" };
  if (rd.role === "fenced") return { text: "fenced", cls: "amber", card: "is-fenced" };
  return { text: rd.role || "unknown", cls: "", card: "" };
}

function renderRegion(s, name) {
  const card = document.querySelector(`.region[data-region="${CSS.escape(name)}"]`);
  const q = (sel) => card.querySelector(sel);
  const c = s.controller;
  const v = (c.regions || {})[name] || {};
  const role = regionRole(s, name);
  card.className = "card region " + role.card;
  const badge = q(".role");
  set(badge, role.text);
  badge.className = "badge role " + role.cls;

  const rate = (s.traffic.origins || {})[name];
  set(q(".rps"), rate && rate.available ? fmtRate(rate.rps) : "—");
  const err = q(".err");
  set(err, rate && rate.available ? fmtRate(rate.errors_per_s) + " errors/s" : "");
  err.className = "err" + (rate && rate.errors_per_s > 0 ? " bad" : "");

  const health = q(".health");
  if (!v.up) { set(health, "down · " + (shortErr(v.last_error) || "probes failing")); health.className = "health bad"; }
  else if (!v.last_ok) { set(health, "failing · " + shortErr(v.last_error)); health.className = "health warn"; }
  else { set(health, v.readiness.draining ? "draining" : "healthy"); health.className = "health ok"; }
  health.title = v.last_error || "";

  const rd = v.last_ok ? v.readiness : v.last_good || {};
  const stale = v.last_ok ? "" : " (last seen)";
  set(q(".epoch"), rd.epoch ? rd.epoch + stale : "—");
  set(q(".position"), rd.role ? "position " + rd.position + " · writes " + (v.last_ok && rd.writable ? "accepted" : "refused") : "—");

  // Replication: a standby's lag is reported by the primary it follows.
  let lag = "—";
  const primary = (c.regions || {})[c.primary];
  const prd = primary && primary.last_ok ? primary.readiness : null;
  if (name !== c.primary && prd && prd.replication && prd.replication[name]) {
    const l = prd.replication[name];
    if (!l.connected) lag = l.events + " events behind " + c.primary + " (not connected)";
    else if (l.events === 0) lag = "in sync with " + c.primary;
    else lag = l.events + " events · " + l.seconds.toFixed(2) + " s behind " + c.primary;
  } else if (name === c.primary && prd && prd.replication) {
    const peers = Object.entries(prd.replication);
    lag = peers.length ? peers.map(([p, l]) => (l.connected ? "ships to " : "cannot reach ") + p + (l.events ? " (" + l.events + " queued)" : "")).join(", ") : "no standby";
  } else if (name !== c.primary && prd) {
    lag = "not replicating from " + c.primary;
  }
  set(q(".lag"), lag);
  q(".lag").title = lag;

  const o = (s.edge.origins || []).find((x) => x.name === name);
  let edge = "—";
  if (o) {
    edge = (o.serving ? "serving" : o.ejected ? "ejected" : o.healthy ? "healthy, not serving" : "unhealthy") +
      " · probes " + o.passes + "/" + o.samples + (o.enabled ? "" : " · disabled");
  }
  const edgeEl = q(".edge");
  set(edgeEl, edge);
  edgeEl.className = "edge " + (o && o.serving ? "ok" : o ? "bad" : "");

  const procs = (s.components.data || []).filter((p) => p.region === name);
  const running = procs.filter((p) => p.running).length;
  const procEl = q(".procs");
  set(procEl, s.components.available ? running + " of " + procs.length + " running" : "n/a (not started by up)");
  procEl.className = "procs " + (s.components.available ? (running === procs.length ? "ok" : "bad") : "");
  procEl.title = procs.map((p) => p.name + (p.running ? " pid " + p.pid : " exited: " + (p.exit || "?"))).join("\n");

  const d = s.drift.available ? s.drift.regions[name] : null;
  const driftEl = q(".drift");
  // "drift at T: R is NOT_READY: reasons" → the reasons.
  const why = d && d.reason ? d.reason.replace(/^.*? is NOT_READY: /, "") : "";
  set(driftEl, d ? d.verdict + (why ? " · " + why : "") : "n/a");
  driftEl.title = d && d.reason ? d.reason : "";
  driftEl.className = "drift " + (d ? ({ READY: "ok", NOT_READY: "bad" }[d.verdict] || "warn") : "muted");

  const down = card.querySelector('button[data-action="down"]');
  const up = card.querySelector('button[data-action="up"]');
  down.disabled = !!busy[name] || !s.components.available || running === 0;
  up.disabled = !!busy[name] || !s.components.available || running === procs.length;
  if (busy[name] === "down") set(down, "Taking down…"); else set(down, "Take region down");
  if (busy[name] === "up") set(up, "Starting…"); else set(up, "Bring region back");
}

function renderChart(s) {
  const svg = $("chart");
  const W = 600, H = 190, L = 34, B = 18, T = 8;
  const series = s.traffic.series || [];
  const names = s.regions.map((r) => r.name);
  const now = Date.parse(s.time);
  // The chart spans the history there is: 30 s at least, 3 min at most.
  const span = Math.min(180000, Math.max(30000, series.length ? now - series[0].t : 0));
  let ymax = 1;
  for (const p of series) for (const n of names) ymax = Math.max(ymax, p.rps[n] || 0);
  ymax = niceCeil(ymax * 1.15);
  const x = (t) => L + ((t - (now - span)) / span) * (W - L - 4);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  let out = "";
  for (let i = 0; i <= 4; i++) {
    const v = (ymax / 4) * i;
    out += `<line class="grid" x1="${L}" x2="${W}" y1="${y(v)}" y2="${y(v)}"/>`;
    out += `<text class="axis" x="${L - 6}" y="${y(v) + 3}" text-anchor="end">${esc(+v.toFixed(1))}</text>`;
  }
  // Time ticks every 5, 10, 15, 30 or 60 s: at most four besides "now".
  const step = [5, 10, 15, 30, 60].find((st) => span / 1000 / st <= 4) || 60;
  for (let ago = 0; ago * 1000 <= span; ago += step) {
    const label = ago === 0 ? "now" : ago >= 60 && ago % 60 === 0 ? "−" + ago / 60 + " min" : "−" + ago + " s";
    const px = x(now - ago * 1000);
    if (ago > 0 && px < L + 14) continue; // too close to the axis labels
    out += `<text class="axis" x="${px}" y="${H - 4}" text-anchor="${ago === 0 ? "end" : "middle"}">${label}</text>`;
  }
  names.forEach((n, i) => {
    const pts = series.filter((p) => now - p.t <= span).map((p) => x(p.t).toFixed(1) + "," + y(p.rps[n] || 0).toFixed(1));
    if (pts.length > 1) out += `<polyline class="line s${i % NCOLORS}" points="${pts.join(" ")}"/>`;
  });
  svg.innerHTML = out;
  $("legend").innerHTML = names.map((n, i) => {
    const r = (s.traffic.origins || {})[n];
    return `<span class="s${i % NCOLORS}">${esc(n)} ${r && r.available ? esc(fmtRate(r.rps)) : "—"} req/s</span>`;
  }).join("") + (s.traffic.error ? `<span class="error">${esc(s.traffic.error)}</span>` : "");
  set($("traffic-note"), "· edge counters, " + s.traffic.window_s + " s window");
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function renderEdge(s) {
  const e = s.edge;
  set($("edge-routing"), e.routing ? "· " + e.routing + " routing" : "");
  set($("edge-route"), e.route ? "Traffic: " + e.route : "");
  const rows = (e.origins || []).slice().sort((a, b) => a.priority - b.priority || a.name.localeCompare(b.name)).map((o) => `
    <tr>
      <td><b>${esc(o.name)}</b></td>
      <td>${esc(o.priority)}</td>
      <td>${o.enabled ? "yes" : '<span class="bad">no</span>'}</td>
      <td class="${o.healthy ? "ok" : "bad"}">${o.healthy ? "healthy" : "unhealthy"} ${esc(o.passes)}/${esc(o.samples)}</td>
      <td class="${o.serving ? "ok" : "bad"}">${o.serving ? "serving" : o.ejected ? "ejected" : "no"}</td>
      <td>${esc(o.role || "—")}${o.epoch ? " · e" + esc(o.epoch) : ""}</td>
      <td>${o.healthy ? esc(o.latency_ms.toFixed(1)) + " ms" : "—"}</td>
    </tr>`).join("");
  $("origins").innerHTML = rows;
  const errEl = $("edge-error");
  errEl.hidden = !e.error;
  set(errEl, e.error || "");
}

function currentRun(c) { return c.active || c.pending || c.last || null; }

function renderRun(s) {
  const c = s.controller;
  const run = currentRun(c);
  const status = $("run-status");
  if (!run) {
    set($("run-title"), "");
    status.hidden = true;
    set($("run-reason"), "");
    set($("rto"), "—"); set($("rto-note"), ""); set($("rpo"), "—"); set($("rpo-note"), "");
    $("rto").dataset.ms = "";
    return;
  }
  set($("run-title"), "· " + run.kind + " " + run.from + " → " + run.to + (run.planned ? " · planned, zero-loss" : " · unplanned"));
  status.hidden = false;
  set(status, run.status.replace("_", " "));
  status.className = "badge " + ({ completed: "green", running: "blue", failed: "red", waiting_approval: "amber" }[run.status] || "");
  set($("run-reason"), (run.reason || "") + " · started " + hms(run.created) + (run.error ? " · " + run.error : ""));

  const d = run.data || {};
  const rtoEl = $("rto");
  if (d.rto_ms != null) {
    set(rtoEl, fmtS(d.rto_ms));
    rtoEl.dataset.ms = d.rto_ms;
    const note = $("rto-note");
    set(note, (d.rto_met ? "✓ within " : "✗ missed ") + "target " + fmtS(d.rto_target_ms));
    note.className = "note " + (d.rto_met ? "ok" : "bad");
  } else {
    const t0 = ts(run.fault_at) || ts(run.created);
    set(rtoEl, run.status === "running" ? fmtS(Date.parse(s.time) - t0) + "…" : "—");
    rtoEl.dataset.ms = "";
    set($("rto-note"), run.status === "running" ? "clock running since the fault" : "");
    $("rto-note").className = "note";
  }
  const rpoEl = $("rpo");
  if (d.rpo_events != null) {
    set(rpoEl, d.rpo_events + " events");
    const q = d.quarantined ? " · " + d.quarantined + " quarantined" : "";
    set($("rpo-note"), (d.rpo_seconds ? d.rpo_seconds + " s of writes" : "no acknowledged write lost") + q);
    $("rpo-note").className = "note " + (d.rpo_events === 0 ? "ok" : "bad");
  } else {
    set(rpoEl, "—"); set($("rpo-note"), "");
  }
  renderSteps(s, run);
}

function renderSteps(s, run) {
  const now = Date.parse(s.time);
  const t0 = ts(run.fault_at) || ts(run.created);
  const ends = run.steps.map((x) => ts(x.ended) || (x.status === "running" ? now : 0));
  const validated = run.data && run.data.validated_at ? run.data.validated_at : 0;
  const tEnd = Math.max(t0 + 1000, ts(run.ended) || now, ...ends, validated);
  const span = tEnd - t0;
  const pct = (t) => Math.max(0, Math.min(100, ((t - t0) / span) * 100));
  let html = "";
  if (run.fault_at) {
    html += `<div class="name"><b>fault</b></div><div class="track"><div class="mark" data-left="0"></div></div><div class="took">${hms(run.fault_at)}</div>`;
  }
  for (const st of run.steps) {
    const a = ts(st.started), b = ts(st.ended) || (st.status === "running" ? now : 0);
    const bar = a ? `<div class="bar ${esc(st.status)}" data-left="${pct(a)}" data-width="${Math.max(pct(b || a) - pct(a), 0.4)}"></div>` : "";
    const took = a && b ? fmtS(b - a) : st.status;
    html += `<div class="name">${esc(st.name)}</div><div class="track" title="${esc(st.status)}">${bar}</div><div class="took">${esc(took)}</div>`;
    if (st.error && st.status !== "done") html += `<div class="step-err">${esc(st.error)}</div>`;
  }
  if (validated) {
    html += `<div class="name"><b>serving again</b></div><div class="track"><div class="mark done" data-left="${Math.min(pct(validated), 99.7)}"></div></div><div class="took">+${esc(fmtS(validated - t0))}</div>`;
  }
  html += `<div></div><div class="axis"><span>0</span><span>${esc(fmtS(span / 2))}</span><span>${esc(fmtS(span))}</span></div><div></div>`;
  $("steps").innerHTML = html;
  applyGeometry($("steps"));
}

function renderActions(s) {
  const c = s.controller;
  const sel = $("drill-scenario");
  if (!sel.options.length) {
    for (const sc of s.scenarios) sel.add(new Option(sc, sc));
  }
  const running = !!c.active;
  $("btn-failover").disabled = running || !!busy.failover;
  $("btn-failback").disabled = running || !!busy.failback;
  $("btn-approve").hidden = !c.pending;
  const d = s.drill;
  $("btn-drill").disabled = !!(d && d.running) || !!busy.drill;
  $("btn-drill-stop").hidden = !(d && d.running);
  $("btn-drill-report").hidden = !(d && d.has_html);
  const status = $("drill-status");
  if (d) {
    const result = d.running ? "running since " + hms(d.started) :
      (d.exit_code === 0 ? "passed" : d.exit_code === 1 ? "failed (a target was missed or the drill broke)" : "ended with status " + d.exit_code) + " at " + hms(d.ended);
    set(status, "Drill " + d.scenario + ": " + result + " · report in " + d.report);
    $("drill-tail").hidden = !(d.tail && d.tail.length);
    set($("drill-tail"), (d.tail || []).slice(-8).join("\n"));
  } else {
    set(status, "");
    $("drill-tail").hidden = true;
  }
}

function renderEvents(s) {
  const list = (s.events || []).slice(-10).reverse(); // the ten newest
  set($("events-note"), s.events_error ? "· " + s.events_error : "");
  $("events").innerHTML = list.length ? list.map((e) => `
    <li><time>${esc(hms(e.time))}</time><span class="kind ${esc(e.kind)}">${esc(e.kind)}</span><span>${esc(e.message)}${e.count > 1 ? " <b>×" + esc(e.count) + "</b>" : ""}</span></li>`).join("")
    : '<li><span></span><span></span><span class="muted">No events yet.</span></li>';
}

// ---- actions --------------------------------------------------------

async function act(key, label, fn) {
  busy[key] = label || true;
  if (state) render(state);
  try {
    const msg = await fn();
    if (msg) toast(msg);
  } catch (err) {
    if (err.message !== "unauthorized") toast(err.message, true);
  } finally {
    delete busy[key];
    poll();
  }
}

function regionAction(region, action) {
  act(region, action, async () => {
    const ans = await api("POST", `/v1/dashboard/regions/${encodeURIComponent(region)}/${action}`);
    const procs = (ans.data || []).filter((p) => p.region === region);
    const running = procs.filter((p) => p.running).length;
    return action === "down" ? `${region}: ${procs.length - running} processes killed (SIGKILL)` : `${region}: ${running} of ${procs.length} processes running`;
  });
}

$("btn-failover").addEventListener("click", () => act("failover", true, async () => {
  const run = await api("POST", "/v1/failover", {});
  return `failover ${run.from} → ${run.to} started`;
}));
$("btn-failback").addEventListener("click", () => act("failback", true, async () => {
  const run = await api("POST", "/v1/failback", {});
  return `failback ${run.from} → ${run.to} started`;
}));
$("btn-approve").addEventListener("click", () => act("approve", true, async () => {
  const run = await api("POST", "/v1/approve");
  return `failover ${run.from} → ${run.to} approved`;
}));
$("btn-drill").addEventListener("click", () => act("drill", true, async () => {
  const d = await api("POST", "/v1/dashboard/drill", { scenario: $("drill-scenario").value });
  return `drill ${d.scenario} started`;
}));
$("btn-drill-stop").addEventListener("click", () => act("drill", true, async () => {
  await api("POST", "/v1/dashboard/drill/stop");
  return "drill stopped";
}));
$("btn-drill-report").addEventListener("click", () => act("report", true, async () => {
  // A new window cannot send the Authorization header: it opens the
  // report with a one-time code instead.
  const { code } = await api("POST", "/v1/dashboard/codes", { purpose: "report" });
  window.open("/v1/dashboard/drill/report?code=" + encodeURIComponent(code), "_blank", "noopener");
}));

// ---- start ----------------------------------------------------------

redeemFragment().finally(poll);
