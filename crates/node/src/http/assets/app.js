// The sharegrid dashboard: one page, no build step, no third-party code.
// It talks only to the node that serves it, through the documented HTTP
// API (/api/openapi.json), with the node's bearer token. The token comes
// from the address's fragment (#token=…, never sent to a server) or is
// pasted in, and is kept in this tab's session storage only.
"use strict";

const TOKEN_KEY = "sharegrid.token";
const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $("#main");

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
const short = (id) => (id ? esc(String(id).slice(0, 10)) + "…" : "–");
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function fuel(f) {
  if (f == null) return "–";
  if (f >= 1e9) return (f / 1e9).toFixed(3) + " Gfuel";
  if (f >= 1e6) return (f / 1e6).toFixed(3) + " Mfuel";
  return f + " fuel";
}

// --- the API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function call(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, opts.headers || {});
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    login("The node refused the token: paste the one in its home's api.token.");
    throw new ApiError(401, "unauthorized");
  }
  const type = res.headers.get("content-type") || "";
  if (!res.ok) {
    const body = type.includes("json") ? await res.json() : { error: await res.text() };
    throw new ApiError(res.status, body.error || res.statusText);
  }
  if (opts.raw) return res;
  return type.includes("json") ? res.json() : res.text();
}
const api = (path) => call(path);
const post = (path, body) =>
  call(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });

// --- live updates ----------------------------------------------------------

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => render(false), 250);
}

// EventSource cannot send the token, so the stream is read with fetch.
async function listen() {
  const live = $("#live");
  for (;;) {
    if (!token()) { await sleep(1000); continue; }
    try {
      const res = await call("/api/events", { raw: true });
      live.classList.add("on");
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) {
      // The node stopped or restarted: try again shortly.
    }
    live.classList.remove("on");
    await sleep(2000);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function onEvent(ev) {
  if (ev.type === "block") $("#footer").textContent = "ledger at block " + ev.height;
  refreshSoon();
}

// --- views -----------------------------------------------------------------

function login(why) {
  main().innerHTML = `<section class="card narrow"><h1>Connect to this node</h1>
    <p>${esc(why || "Paste the node's API token: the file api.token in its home (sharegrid dashboard prints an address with it).")}</p>
    <form id="login"><input id="token" type="password" autocomplete="off" placeholder="token" required>
    <button type="submit">Connect</button></form></section>`;
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    render(true);
  });
}

function progressBar(done, failed, total) {
  // Widths are set from data-pct after drawing: the page's content
  // security policy allows no inline styles.
  const pct = (n) => (total ? (100 * n) / total : 0).toFixed(1);
  return `<div class="bar" title="${done} accepted, ${failed} failed of ${total}">
    <span class="ok" data-pct="${pct(done)}"></span><span class="bad" data-pct="${pct(failed)}"></span></div>`;
}

function jobRows(jobs) {
  if (!jobs.length) return `<p class="muted">No jobs yet. <a href="#/submit">Submit one.</a></p>`;
  return `<table class="jobs"><thead><tr><th>Job</th><th>Name</th><th>State</th><th>Progress</th><th>Submitted</th></tr></thead><tbody>
    ${jobs.map((j) => `<tr data-job="${esc(j.id)}"><td><a href="#/job/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.name)}</td>
      <td><span class="state ${esc(j.state)}">${esc(j.state)}</span></td>
      <td>${progressBar(j.accepted, j.failed, j.total)} <small>${j.accepted}/${j.total}</small></td><td>${when(j.created_ms)}</td></tr>`).join("")}
    </tbody></table>`;
}

async function viewNetwork() {
  const [s, providers, jobs] = await Promise.all([api("/api/status"), api("/api/providers"), api("/api/jobs")]);
  const agent = s.provider;
  const ledger = s.ledger;
  return `<section class="cards">
    <div class="card"><h2>This node</h2><p class="big mono">${short(s.id)}</p><p>${s.peers} peer(s) · ${s.offers} live offer(s)</p></div>
    <div class="card"><h2>Provider</h2>${agent ? `<p class="big">${agent.busy}/${agent.slots} busy</p>
      <p>${agent.tasks_run} task(s) run · ${agent.speed_gfuel_per_sec.toFixed(2)} Gfuel/s</p>` : `<p class="muted">off on this node</p>`}</div>
    <div class="card"><h2>Ledger</h2>${ledger ? `<p class="big">block ${ledger.height}</p>
      <p>${ledger.validator ? "validator" : "follower"} · ${ledger.pending} pending</p>` : `<p class="muted">none</p>`}</div>
  </section>
  <section><h1>Providers</h1>${providers.length ? `<table class="offers"><thead><tr><th>Provider</th><th>Arch</th><th>Cores</th>
    <th>Free</th><th>Speed</th><th>Price / Gfuel</th><th>Stake on the ledger</th><th>Record here</th></tr></thead><tbody>
    ${providers.map(({ offer: o, bonded, agreed, disagreed, failed }) => `<tr data-provider="${esc(o.provider)}">
      <td><a href="#/account/${esc(o.provider)}" class="mono">${short(o.provider)}</a></td>
      <td>${esc(o.arch)}</td><td>${o.cores}</td><td>${o.free_slots} slot(s)</td>
      <td>${o.speed.toFixed(2)} Gfuel/s</td><td>${esc(o.price)}</td><td>${esc(bonded ?? "–")}</td>
      <td title="agreed / disagreed / failed">${agreed} ✓ · ${disagreed} ✗ · ${failed} failed</td></tr>`).join("")}</tbody></table>`
    : `<p class="muted">No live offers: ${esc(s.discovery && s.discovery.hint ? s.discovery.hint : "no provider is known yet")}</p>`}</section>
  <section><h1>Recent jobs</h1>${jobRows(jobs.slice(0, 8))}</section>`;
}

async function viewJobs() {
  const jobs = await api("/api/jobs");
  return `<section><h1>Jobs <a class="button" href="#/submit">Submit a job</a></h1>${jobRows(jobs)}</section>`;
}

// Tiles already drawn, per job: a refresh draws only new ones.
const mosaics = new Map();

async function viewJob(id) {
  const v = await api("/api/jobs/" + encodeURIComponent(id));
  const j = v.job;
  const live = v.live;
  const p = live && live.progress;
  const notes = [];
  if (j.reason) notes.push(`<p class="error">${esc(j.reason)}</p>`);
  if (live && live.why_no_match) notes.push(`<p class="warn">No provider can take this work: ${esc(live.why_no_match)}</p>`);
  if (live && live.waiting) notes.push(`<p class="warn">Waiting since ${when(live.waiting.since_ms)} for ${esc(live.waiting.why)}</p>`);
  const pay = v.payment
    ? `<p>Escrow <span class="mono">${short(v.payment.escrow)}</span> locks ${esc(v.payment.amount)} ·
       ${v.payment.settled ? "settled" : "not settled yet"}${v.payment.error ? ` · <span class="error">${esc(v.payment.error)}</span>` : ""}</p>`
    : "";
  const html = `<section><h1>Job <span class="mono">${esc(j.id)}</span> <small>${esc(j.name)}</small></h1>
    <p><span class="state ${esc(j.state)}" id="job-state">${esc(j.state)}</span>
      ${j.state === "running" ? `<button id="cancel" class="danger">Cancel</button>` : ""}
      ${j.accepted} accepted, ${j.failed} failed of ${j.total}${p ? ` · ${p.running} running on ${p.providers_in_use} provider(s) · spent ${esc(p.spent)}` : ""}</p>
    ${progressBar(j.accepted, j.failed, j.total)}${notes.join("")}${pay}</section>
    <section id="mosaic-section" hidden><h2>Output</h2><canvas id="mosaic"></canvas></section>
    <section><h2>Tasks</h2><table class="tasks"><thead><tr><th>#</th><th>Arguments</th><th>State</th><th>Fuel</th><th>Result</th></tr></thead><tbody>
    ${v.tasks.map((t) => `<tr><td>${t.index}</td><td class="mono">${esc(t.args.join(" "))}</td><td><span class="state ${esc(t.state)}">${esc(t.state)}</span>
      ${t.reason ? `<small class="error">${esc(t.reason)}</small>` : ""}</td><td>${fuel(t.fuel)}</td>
      <td>${t.result ? `<a href="#" data-stdout="${t.index}">stdout</a>` : "–"}</td></tr>`).join("")}</tbody></table>
    <pre id="output" hidden></pre></section>`;
  return { html, after: () => afterJob(j.id, v.tasks) };
}

async function afterJob(id, tasks) {
  const cancel = $("#cancel");
  if (cancel) cancel.addEventListener("click", async () => {
    if (!confirm("Cancel this job? Accepted results are kept and paid; the rest of the escrow is refunded.")) return;
    cancel.disabled = true;
    try { await post(`/api/jobs/${id}/cancel`, null); refreshSoon(); }
    catch (e) { cancel.insertAdjacentHTML("afterend", ` <span class="error">${esc(e.message)}</span>`); }
  });
  document.querySelectorAll("[data-stdout]").forEach((a) =>
    a.addEventListener("click", async (e) => {
      e.preventDefault();
      const out = $("#output");
      out.hidden = false;
      out.textContent = await api(`/api/jobs/${id}/tasks/${a.dataset.stdout}/stdout`);
    }));
  await drawMosaic(id, tasks);
}

// A job whose tasks each leave an image (PNG or PPM) is shown as a mosaic,
// tile by tile as results are accepted. When every task's first two
// arguments are whole numbers they are the tile's column and row;
// otherwise tiles go in task order, row by row.
async function drawMosaic(id, tasks) {
  const section = $("#mosaic-section");
  const canvas = $("#mosaic");
  if (!section || !tasks.length) return;
  const numeric = tasks.every((t) => t.args.length >= 2 && /^\d+$/.test(t.args[0]) && /^\d+$/.test(t.args[1]));
  const side = Math.ceil(Math.sqrt(tasks.length));
  const place = (t) => (numeric ? [+t.args[0], +t.args[1]] : [t.index % side, Math.floor(t.index / side)]);
  const cols = Math.max(...tasks.map((t) => place(t)[0])) + 1;
  const rows = Math.max(...tasks.map((t) => place(t)[1])) + 1;
  let m = mosaics.get(id);
  if (!m) { m = { tiles: new Map(), w: 0, h: 0 }; mosaics.set(id, m); }
  for (const t of tasks) {
    if (!t.result || m.tiles.has(t.index)) continue;
    try {
      const out = await api(`/api/jobs/${id}/tasks/${t.index}`);
      const f = out.files.find((f) => /\.(png|ppm)$/i.test(f.path));
      if (!f) { m.tiles.set(t.index, null); continue; }
      const res = await call(`/api/jobs/${id}/tasks/${t.index}/files/${encodeURIComponent(f.path)}`, { raw: true });
      const buf = new Uint8Array(await res.arrayBuffer());
      const img = /\.ppm$/i.test(f.path) ? ppm(buf) : await createImageBitmap(new Blob([buf], { type: "image/png" }));
      if (img) { m.w = Math.max(m.w, img.width); m.h = Math.max(m.h, img.height); }
      m.tiles.set(t.index, img);
    } catch (e) {
      m.tiles.set(t.index, null);
    }
  }
  const drawn = [...m.tiles.values()].filter(Boolean).length;
  if (!drawn) return;
  section.hidden = false;
  canvas.width = cols * m.w;
  canvas.height = rows * m.h;
  canvas.dataset.tiles = String(drawn);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#1b1f24";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (const t of tasks) {
    const img = m.tiles.get(t.index);
    if (!img) continue;
    const [c, r] = place(t);
    if (img instanceof ImageData) ctx.putImageData(img, c * m.w, r * m.h);
    else ctx.drawImage(img, c * m.w, r * m.h);
  }
}

// A binary PPM (P6, 8-bit) as ImageData.
function ppm(buf) {
  const text = new TextDecoder("ascii").decode(buf.subarray(0, 64));
  const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(text);
  if (!m || +m[3] !== 255) return null;
  const [w, h] = [+m[1], +m[2]];
  const off = m[0].length;
  if (buf.length < off + w * h * 3) return null;
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba[4 * i] = buf[off + 3 * i];
    rgba[4 * i + 1] = buf[off + 3 * i + 1];
    rgba[4 * i + 2] = buf[off + 3 * i + 2];
    rgba[4 * i + 3] = 255;
  }
  return new ImageData(rgba, w, h);
}

function viewSubmit() {
  const html = `<section class="card"><h1>Submit a job</h1>
  <form id="submit">
    <label>Name <input name="name" value="my-job" required></label>
    <label>Module (.wasm or .wat) <input name="module" type="file" accept=".wasm,.wat" required></label>
    <label>Arguments, with {placeholders} <input name="args" placeholder="{col} {row} 4 4 400 400 256" class="mono"></label>
    <label>Sweep: one placeholder a line, <code>name = v1, v2, …</code> (one task per combination)
      <textarea name="sweep" rows="3" class="mono" placeholder="col = 0, 1, 2, 3&#10;row = 0, 1, 2, 3"></textarea></label>
    <div class="row">
      <label>Replicas (r) <input name="replication" type="number" min="1" max="16" value="2"></label>
      <label>Agreeing (q) <input name="quorum" type="number" min="1" max="16" value="2"></label>
      <label>Fuel per task <input name="fuel" value="10G" class="mono"></label>
    </div>
    <div class="row">
      <label>Price ceiling / Gfuel <input name="price" value="100000" class="mono"></label>
      <label>Budget <input name="budget" value="100000000" class="mono"></label>
      <label>Deadline <input name="deadline" value="10m" class="mono"></label>
    </div>
    <button type="submit">Submit</button> <span id="submit-status" class="muted"></span>
  </form></section>`;
  return { html, after: () => $("#submit").addEventListener("submit", submit) };
}

const q = (s) => JSON.stringify(s);

// The form as a job file (the format `sharegrid submit` reads), with the
// module uploaded first: the node checks it exactly as it checks a file.
async function submit(e) {
  e.preventDefault();
  const f = e.target;
  const status = $("#submit-status");
  try {
    const file = f.module.files[0];
    status.textContent = `uploading ${file.name} (${bytes(file.size)})…`;
    const up = await call("/api/blobs", { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    const args = f.args.value.trim() ? f.args.value.trim().split(/\s+/) : [];
    const lines = [
      "[job]",
      `name = ${q(f.name.value)}`,
      `module = ${q(file.name)}`,
      `args = [${args.map(q).join(", ")}]`,
      `replication = ${+f.replication.value}`,
      `quorum = ${+f.quorum.value}`,
      `price_ceiling = ${q(f.price.value.trim())}`,
      `budget = ${q(f.budget.value.trim())}`,
      `deadline = ${q(f.deadline.value.trim())}`,
      "[job.limits]",
      `fuel = ${q(f.fuel.value.trim())}`,
    ];
    const sweep = f.sweep.value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (sweep.length) {
      lines.push("[job.sweep]");
      for (const l of sweep) {
        const at = l.indexOf("=");
        if (at < 1) throw new Error(`sweep line ${q(l)}: write name = v1, v2, …`);
        const values = l.slice(at + 1).split(",").map((v) => v.trim()).filter(Boolean);
        lines.push(`${l.slice(0, at).trim()} = [${values.map(q).join(", ")}]`);
      }
    }
    status.textContent = "submitting…";
    const job = await post("/api/jobs", { job: lines.join("\n") + "\n", files: { [file.name]: up.id } });
    location.hash = "#/job/" + job.id;
  } catch (err) {
    status.textContent = "";
    status.insertAdjacentHTML("beforeend", `<span class="error" id="submit-error">${esc(err.message)}</span>`);
  }
}

function txTable(txs) {
  if (!txs.length) return `<p class="muted">none</p>`;
  return `<table class="txs"><thead><tr><th>Block</th><th>Tx</th><th>From</th><th>What</th><th>Amount</th></tr></thead><tbody>
    ${txs.map((t) => `<tr><td>${t.height}</td><td class="mono">${short(t.id)}</td>
      <td>${t.signer ? `<a class="mono" href="#/account/${esc(t.signer)}">${short(t.signer)}</a>` : "–"}</td>
      <td>${esc(t.what)}</td><td>${esc(t.amount ?? "")}</td></tr>`).join("")}</tbody></table>`;
}

async function viewLedger() {
  const [l, blocks] = await Promise.all([api("/api/ledger"), api("/api/ledger/blocks?limit=25")]);
  const txs = blocks.flatMap((b) => b.txs);
  return `<section class="cards"><div class="card"><h2>Height</h2><p class="big">${l.height}</p><p>${when(l.time_ms)}</p></div>
    <div class="card"><h2>Validators</h2><p class="big">${l.validators.length}</p><p>${l.validator ? "this node is one" : "this node follows"}</p></div>
    <div class="card"><h2>Account</h2><form id="lookup"><input name="node" placeholder="node id" class="mono" required><button>Look up</button></form></div></section>
    <section><h1>Blocks</h1><table class="blocks"><thead><tr><th>Height</th><th>Hash</th><th>Producer</th><th>Time</th><th>Txs</th></tr></thead><tbody>
    ${blocks.map((b) => `<tr><td>${b.height}</td><td class="mono">${short(b.hash)}</td><td class="mono">${short(b.producer)}</td>
      <td>${when(b.time_ms)}</td><td>${b.txs.length}</td></tr>`).join("")}</tbody></table></section>
    <section><h1>Latest transactions</h1>${txTable(txs.slice(0, 40))}</section>`;
}

// An account's balance after each block that touched it (what the ledger
// records as it applies blocks), as a line over time (SVG): a provider's
// earnings show as steps up. Points are decimal strings of up to 128 bits:
// plotted as numbers, shown as written.
function balanceChart(a) {
  const pts = a.balances.map((p) => ({ t: p.time_ms, b: Number(p.balance), label: p.balance, h: p.height }));
  if (pts.length < 2) return "";
  const [w, h, pad] = [640, 180, 28];
  const t0 = pts[0].t, t1 = pts[pts.length - 1].t;
  const bmax = Math.max(...pts.map((p) => p.b));
  const bmin = Math.min(...pts.map((p) => p.b));
  const x = (t) => pad + ((w - 2 * pad) * (t - t0)) / Math.max(t1 - t0, 1);
  const y = (v) => h - pad - ((h - 2 * pad) * (v - bmin)) / Math.max(bmax - bmin, 1);
  // Steps: a balance holds until the next block changes it.
  let path = `M${x(pts[0].t).toFixed(1)},${y(pts[0].b).toFixed(1)}`;
  for (const p of pts.slice(1)) path += ` H${x(p.t).toFixed(1)} V${y(p.b).toFixed(1)}`;
  const first = pts[0], last = pts[pts.length - 1];
  return `<svg class="chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="balance over time" data-points="${pts.length}">
    <path d="${path}" fill="none" stroke="currentColor" stroke-width="2"/>
    <text x="${pad}" y="16">${esc(last.label)} at block ${last.h} · ${esc(first.label)} at block ${first.h}</text>
    <text x="${pad}" y="${h - 8}">${when(first.t)}</text><text x="${w - pad}" y="${h - 8}" text-anchor="end">${when(last.t)}</text></svg>`;
}

async function viewAccount(id, mine) {
  const a = await api(mine ? "/api/wallet?history=50" : `/api/ledger/accounts/${encodeURIComponent(id)}?history=50`);
  const earned = a.balances.length > 1 ? Number(a.balances[a.balances.length - 1].balance) - Number(a.balances[0].balance) : 0;
  const faucet = mine ? `<button id="faucet">Ask the faucet for test tokens</button> <span id="faucet-status" class="muted"></span>` : "";
  return {
    html: `<section class="cards"><div class="card"><h2>${mine ? "This node's account" : "Account"}</h2><p class="mono">${esc(a.id)}</p></div>
      <div class="card"><h2>Balance</h2><p class="big">${esc(a.balance)}</p><p>at block ${a.height}</p></div>
      <div class="card"><h2>Stake</h2><p class="big">${esc(a.bonded)}</p><p>${esc(a.unbonding)} unbonding</p></div></section>
      <section><h1>Balance over time</h1>${balanceChart(a) || `<p class="muted">no blocks have touched this account yet</p>`}
      ${a.balances.length > 1 ? `<p>${earned >= 0 ? "up" : "down"} ${Math.abs(earned)} over the blocks shown</p>` : ""}${faucet}</section>
      <section><h1>History</h1>${txTable(a.history)}</section>`,
    after: () => {
      const b = $("#faucet");
      if (b) b.addEventListener("click", async () => {
        $("#faucet-status").textContent = "asking…";
        try { const t = await post("/api/wallet/faucet", {}); $("#faucet-status").textContent = "in block " + t.height; refreshSoon(); }
        catch (e) { $("#faucet-status").textContent = e.message; }
      });
    },
  };
}

// --- routing -----------------------------------------------------------------

async function render(full) {
  const hash = location.hash || "#/";
  if (hash.startsWith("#token=")) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(hash.slice(7)));
    history.replaceState(null, "", location.pathname + "#/");
    return render(true);
  }
  if (!token()) return login();
  const [, view, arg] = hash.slice(1).split("/");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("here", a.dataset.nav === (view || "network")));
  // A form being filled in is not redrawn by live updates.
  if (!full && view === "submit") return;
  try {
    let out;
    switch (view || "") {
      case "": out = await viewNetwork(); break;
      case "jobs": out = await viewJobs(); break;
      case "job": out = await viewJob(decodeURIComponent(arg || "")); break;
      case "submit": out = viewSubmit(); break;
      case "ledger": out = await viewLedger(); break;
      case "wallet": out = await viewAccount(null, true); break;
      case "account": out = await viewAccount(decodeURIComponent(arg || ""), false); break;
      default: out = `<p class="error">No page ${esc(hash)}.</p>`;
    }
    const { html, after } = typeof out === "string" ? { html: out } : out;
    const y = window.scrollY;
    main().innerHTML = html;
    document.querySelectorAll("[data-pct]").forEach((e) => { e.style.width = e.dataset.pct + "%"; });
    if (!full) window.scrollTo(0, y);
    if (after) await after();
    document.body.dataset.ready = "1";
  } catch (e) {
    if (e.status !== 401) main().innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

addEventListener("hashchange", () => render(true));
addEventListener("submit", (e) => {
  if (e.target.id === "lookup") {
    e.preventDefault();
    location.hash = "#/account/" + e.target.node.value.trim();
  }
});
render(true);
listen();
