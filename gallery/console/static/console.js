// anonreid operator console: polls the JSON API; shows anonymized tiles, identities, trajectories.
"use strict";
const state = { selected: null, cameras: [] };
const $ = (sel) => document.querySelector(sel);

async function api(path, opts) {
  const res = await fetch(path, opts);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
// A stream time on its sighting's clock (proto StreamClock): the wall clock for a live camera, the
// recording's own clock for a replay (its calendar time when known, else the time since it started).
function fmtTime(us, clock) {
  if (us === undefined || us === null) return "—";
  const kind = (clock && clock.kind) || "KIND_UNSPECIFIED";
  const epoch = clock && clock.epoch_us !== undefined ? Number(clock.epoch_us) : null;
  if (epoch !== null && (kind === "WALL" || kind === "RECORDING")) {
    const at = new Date((epoch + Number(us)) / 1000);
    return kind === "WALL" ? at.toLocaleTimeString() : `${at.toLocaleString()} (rec)`;
  }
  const s = Number(us) / 1e6, h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const elapsed = `+${h}:${String(m).padStart(2, "0")}:${(s % 60).toFixed(1).padStart(4, "0")}`;
  return `${elapsed} (${kind === "RECORDING" ? "rec" : "stream"})`;
}
const clockTitle = (clock) => ({ WALL: "wall clock (live camera)",
  RECORDING: "the recording's own clock (replay)" }[(clock && clock.kind)] || "stream time (clock not said)");
const fmtSeconds = (s) => (s === null || s === undefined ? "—" : `${Math.round(s * 1000)} ms`);

// The live event -> identity latency: p95 (and p50) over every camera's sightings of the last minute.
function showLatency(lat) {
  const el = $("#latency");
  if (!lat || !lat.count) { el.textContent = "latency p95: —"; el.dataset.p95 = ""; return; }
  el.textContent = `event→identity p95 ${fmtSeconds(lat.p95)}`;
  el.dataset.p95 = String(lat.p95);
  el.title = `p50 ${fmtSeconds(lat.p50)}, p95 ${fmtSeconds(lat.p95)} over ${lat.count} sightings of the last ` +
    `${lat.window_s} s\n` + Object.entries(lat.cameras).map(([c, v]) => `${c}: p95 ${fmtSeconds(v.p95)} (${v.count})`).join("\n");
}

async function refreshCameras() {
  const { cameras, latency } = await api("/api/cameras");
  state.cameras = cameras.map((c) => c.camera);
  showLatency(latency);
  const root = $("#tiles");
  for (const cam of cameras) {
    let tile = document.getElementById("tile-" + cam.camera);
    if (!tile) {
      tile = document.createElement("div");
      tile.className = "tile";
      tile.id = "tile-" + cam.camera;
      tile.innerHTML = `<canvas width="240" height="180"></canvas><div class="cap"><b>${cam.camera}</b><span class="tracks"></span></div>`;
      root.appendChild(tile);
    }
    tile.dataset.updated = cam.updated_at || "";
    tile.querySelector(".tracks").textContent = `${cam.tracks.length} track(s)`;
    if (!cam.updated_at) continue;
    const img = new Image();
    img.onload = () => {
      const canvas = tile.querySelector("canvas");
      canvas.width = img.width; canvas.height = img.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const [sw, sh] = cam.sensor || [img.width, img.height];
      ctx.strokeStyle = "#00e676"; ctx.fillStyle = "#00e676"; ctx.font = "10px sans-serif";
      for (const t of cam.tracks) {
        const [x1, y1, x2, y2] = t.box;
        const sx = img.width / sw, sy = img.height / sh;
        ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
        ctx.fillText(t.identity_id || "t" + t.tracklet_id, x1 * sx + 2, y1 * sy + 10);
      }
      tile.dataset.frames = String(Number(tile.dataset.frames || 0) + 1);
    };
    img.src = `/api/tile/${encodeURIComponent(cam.camera)}.png?t=${cam.updated_at}`;
  }
}

async function refreshIdentities() {
  const { identities } = await api("/api/identities"); // as many as the gallery lists by default
  const body = $("#identities tbody");
  body.innerHTML = "";
  for (const ident of identities) {
    const tr = document.createElement("tr");
    tr.dataset.identity = ident.identity_id;
    if (ident.identity_id === state.selected) tr.className = "selected";
    tr.innerHTML = `<td>${ident.identity_id}</td><td>${ident.cameras.join(" → ")}</td><td>${ident.num_sightings}</td>` +
      `<td title="${clockTitle(ident.last_seen_clock)}">${fmtTime(ident.last_seen_us, ident.last_seen_clock)}</td>` +
      `<td><button class="forget">forget</button></td>`;
    tr.addEventListener("click", () => selectIdentity(ident.identity_id));
    tr.querySelector(".forget").addEventListener("click", (ev) => { ev.stopPropagation(); forget(ident.identity_id); });
    body.appendChild(tr);
  }
  if (state.selected && !identities.some((i) => i.identity_id === state.selected)) clearSelection();
}

function clearSelection() {
  state.selected = null;
  $("#traj-id").textContent = "";
  $("#timeline").innerHTML = "";
  $("#steps").innerHTML = "";
  $("#corrections").innerHTML = "";
}

async function selectIdentity(id) {
  state.selected = id;
  const traj = await api(`/api/trajectory/${encodeURIComponent(id)}`);
  $("#traj-id").textContent = id;
  drawTimeline(traj.steps);
  const list = $("#steps");
  list.innerHTML = "";
  for (const step of traj.steps) {
    const li = document.createElement("li");
    li.className = "step";
    li.title = clockTitle(step.clock);
    li.innerHTML = `${step.camera_id} ${fmtTime(step.span.start_us, step.clock)}–${fmtTime(step.span.end_us, step.clock)} ` +
      step.sighting_ids.slice(0, 3).map((s) => `<a data-sighting="${s}">${s}</a>`).join(" ");
    li.querySelectorAll("a").forEach((a) => a.addEventListener("click", () => search(a.dataset.sighting)));
    list.appendChild(li);
  }
  // tracklets the association moved into or out of this identity as evidence arrived (merge, move, detach, split)
  const fixes = $("#corrections");
  fixes.innerHTML = "";
  for (const c of traj.corrections || []) {
    const li = document.createElement("li");
    li.className = "correction";
    li.textContent = `${c.kind}: tracklet ${c.tracklet_id} on ${c.camera_id} (${c.sightings} sighting(s)) ` +
      `${c.from_identity} → ${c.to_identity} at ${(Number(c.at_us) / 1e6).toFixed(1)} s of stream`;
    fixes.appendChild(li);
  }
}

function drawTimeline(steps) {
  const svg = $("#timeline");
  const cams = Array.from(new Set([...state.cameras, ...steps.map((s) => s.camera_id)])).sort();
  const w = svg.width.baseVal.value, h = svg.height.baseVal.value, left = 50, row = (h - 20) / Math.max(cams.length, 1);
  if (!steps.length) { svg.innerHTML = ""; return; }
  const t0 = Math.min(...steps.map((s) => Number(s.span.start_us)));
  const t1 = Math.max(...steps.map((s) => Number(s.span.end_us)));
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1)) * (w - left - 10);
  let out = cams.map((c, i) => `<text x="4" y="${20 + i * row + row / 2}" font-size="11">${c}</text>`).join("");
  let prev = null;
  for (const s of steps) {
    const i = cams.indexOf(s.camera_id), y = 20 + i * row + row / 4;
    const xs = x(Number(s.span.start_us)), xe = Math.max(x(Number(s.span.end_us)), xs + 3);
    if (prev) out += `<line x1="${prev[0]}" y1="${prev[1]}" x2="${xs}" y2="${y + row / 4}" stroke="#90a4ae" stroke-dasharray="3"/>`;
    out += `<rect class="visit" x="${xs}" y="${y}" width="${xe - xs}" height="${row / 2}" fill="#1565c0"><title>${s.camera_id}</title></rect>`;
    prev = [xe, y + row / 4];
  }
  const first = steps.find((s) => Number(s.span.start_us) === t0), last = steps.find((s) => Number(s.span.end_us) === t1);
  out += `<text x="${left}" y="12" font-size="10">${fmtTime(t0, first.clock)}</text>` +
    `<text x="${w - 10}" y="12" font-size="10" text-anchor="end">${fmtTime(t1, last.clock)}</text>`;
  svg.innerHTML = out;
}

async function search(sighting) {
  $("#search-id").textContent = sighting;
  const { matches } = await api(`/api/search?sighting=${encodeURIComponent(sighting)}`);
  const body = $("#matches tbody");
  body.innerHTML = "";
  for (const m of matches) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${m.sighting_id}</td><td>${m.identity_id}</td><td>${m.camera_id}</td><td>${m.similarity.toFixed(3)}</td>`;
    tr.addEventListener("click", () => selectIdentity(m.identity_id));
    body.appendChild(tr);
  }
}

async function forget(id) {
  if (!window.confirm(`Forget identity ${id}? Its sightings and embeddings are erased everywhere.`)) return;
  await api("/api/forget", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ identity_id: id, confirm: id, reason: "operator console" }) });
  if (state.selected === id) clearSelection();
  await refreshIdentities();
}

// The adversary's verdicts: pass, insufficient evidence or breach, each judged by its 95% interval.
const fmtNum = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(3));
function verdictLine(v) {
  const [lo, hi] = v.ci || [null, null];
  return `${v.camera} ${v.attack} ${v.metric}: ${fmtNum(v.value)} [${fmtNum(lo)}, ${fmtNum(hi)}] ` +
    `vs ${fmtNum(v.threshold)} → ${v.status}` + (v.reason ? ` (${v.reason})` : "");
}

async function refreshPrivacy() {
  const p = await api("/api/privacy");
  const el = $("#privacy");
  el.className = "privacy " + p.overall.replaceAll(" ", "-");
  const scored = p.verdicts.filter((v) => v.status !== "not checked");
  const counts = ["pass", "insufficient evidence", "breach"].map((s) => `${scored.filter((v) => v.status === s).length} ${s}`);
  el.textContent = `privacy: ${p.overall}` + (scored.length ? ` (${counts.join(" · ")})` : "");
  el.dataset.overall = p.overall;
  el.title = `${counts.join(", ")} (95% upper bound vs threshold)\n` + scored.map(verdictLine).join("\n");
}

async function tick() {
  try {
    await Promise.all([refreshCameras(), refreshIdentities(), refreshPrivacy()]);
    $("#status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("#status").textContent = "error: " + err.message;
  }
}
tick();
setInterval(tick, 1000);
