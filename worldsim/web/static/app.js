// worldsim serve: the episode player, side-by-side play and generation. Served by the app; no dependencies.
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const pageData = (id) => { const el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; };
const fmt = (v, d = 3) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(d));

// ---- a film strip: frames stacked vertically in PNGs of `chunk` frames, fetched as needed ----
class Strips {
  constructor(urlOf, width, height, chunk) { Object.assign(this, {urlOf, width, height, chunk, images: new Map()}); }
  image(key, c) {
    const k = key + ":" + c;
    if (!this.images.has(k)) { const img = new Image(); img.src = this.urlOf(key, c * this.chunk, this.chunk); this.images.set(k, img); }
    return this.images.get(k);
  }
  // draws frame t of `key` when its strip is loaded; calls done(true) once drawn
  draw(ctx, key, t, done) {
    const img = this.image(key, Math.floor(t / this.chunk));
    const paint = () => { ctx.drawImage(img, 0, (t % this.chunk) * this.height, this.width, this.height, 0, 0, this.width, this.height); done(true); };
    if (img.complete && img.naturalHeight) paint(); else img.addEventListener("load", paint, {once: true});
    this.image(key, Math.floor(t / this.chunk) + 1);  // prefetch the next strip
  }
}

// ---- the episode page ----
function episodePlayer(d) {
  const canvas = $("#screen"), ctx = canvas.getContext("2d");
  canvas.width = d.width; canvas.height = d.height;
  const T = d.length, strips = new Strips((view, start, count) => `${d.frames_url}?episode=${d.index}&start=${start}&count=${count}&view=${view}`, d.width, d.height, 64);
  const scrub = $("#scrub"), counter = $("#frame-counter"), playBtn = $("#play");
  scrub.max = T - 1;
  let t = 0, shown = -1, playing = true, last = 0, view = "frames";
  const eventStep = (ev) => Number(ev.step ?? ev.t ?? ev.frame ?? 0);
  const rewards = d.rewards.map((r, i) => [i, r]).filter(([, r]) => r !== 0);

  const timeline = $("#timeline");
  const mark = (step, cls, title) => {
    const m = document.createElement("div"); m.className = "mark " + cls; m.title = title;
    m.style.left = (100 * step / Math.max(1, T - 1)) + "%"; timeline.appendChild(m);
  };
  d.events.forEach((ev) => mark(eventStep(ev), "event", `${eventStep(ev)}: ${ev.type}`));
  rewards.forEach(([i, r]) => mark(i, "reward", `${i}: reward ${r}`));
  const head = document.createElement("div"); head.className = "head"; timeline.appendChild(head);
  timeline.addEventListener("click", (e) => { const r = timeline.getBoundingClientRect(); seek(Math.round((e.clientX - r.left) / r.width * (T - 1))); });

  const list = $("#events");
  d.events.forEach((ev) => {
    const li = document.createElement("li");
    const rest = Object.entries(ev).filter(([k]) => !["type", "step", "t", "frame"].includes(k)).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    li.textContent = `frame ${eventStep(ev)}: ${ev.type}${rest ? " (" + rest + ")" : ""}`;
    li.dataset.step = eventStep(ev);
    li.addEventListener("click", () => seek(eventStep(ev)));
    list.appendChild(li);
  });

  function overlay(i) {
    const a = d.actions[i] || [];
    const chips = d.action_keys.map((k, j) => {
      const v = a[j] ?? 0;
      if (d.buttons.includes(k)) return `<span class="${v > 0.5 ? "on" : ""}">${esc(k)}</span>`;
      return Math.abs(v) > 1e-6 ? `<span class="on">${esc(k)} ${Number(v).toFixed(1)}</span>` : `<span>${esc(k)} 0</span>`;
    });
    $("#overlay").innerHTML = chips.join("");
    const seg = d.segments.find((s) => i >= s.start && i < s.end) || d.segments[d.segments.length - 1];
    $("#segment").innerHTML = seg ? `<b>${esc(seg.short)}</b> ${esc(seg.dense)}` : "";
    const ret = d.rewards.slice(0, i + 1).reduce((x, y) => x + y, 0);
    const flags = (d.terminated.includes(i) ? " terminated" : "") + (d.truncated.includes(i) ? " truncated" : "");
    const r = $("#reward"); r.className = "reward" + (d.rewards[i] ? " hit" : "");
    r.textContent = `reward ${fmt(d.rewards[i], 4)} (return so far ${fmt(ret, 3)})${flags}`;
  }

  function show(i) {
    strips.draw(ctx, view, i, () => {
      shown = i; counter.textContent = `frame ${i} / ${T - 1}`; counter.dataset.frame = i;
      scrub.value = i; head.style.left = (100 * i / Math.max(1, T - 1)) + "%"; overlay(i);
    });
  }
  function seek(i) { t = Math.max(0, Math.min(T - 1, i)); show(t); }
  playBtn.addEventListener("click", () => { playing = !playing; playBtn.textContent = playing ? "pause" : "play"; });
  scrub.addEventListener("input", () => { playing = false; playBtn.textContent = "play"; seek(Number(scrub.value)); });
  $("#view").addEventListener("change", (e) => { view = e.target.value; show(t); });
  function tick(now) {
    const speed = Number($("#speed").value);
    if (playing && shown === t && now - last >= 1000 / (d.fps * speed)) { last = now; t = (t + 1) % T; show(t); }
    requestAnimationFrame(tick);
  }
  show(0);
  requestAnimationFrame(tick);
}

// ---- the play page ----
function playPage(pd) {
  const engineSel = $("#engine"), taskSel = $("#task"), ckptSel = $("#ckpt");
  const games = pd.games || {};
  function refreshEngines() {
    const keep = engineSel.value;
    const extra = games[ckptSel.value] || [];
    engineSel.innerHTML = ["voxel", "physics", ...extra].map((g) => `<option>${esc(g)}</option>`).join("");
    engineSel.value = [...engineSel.options].some((o) => o.value === keep) ? keep : engineSel.options[0].value;
    refreshTasks();
  }
  function refreshTasks() {
    const tasks = pd.tasks[engineSel.value] || [];
    const first = ckptSel.value ? "as the model learned it" : "the engine's default";
    taskSel.innerHTML = (tasks.length ? [`<option value="">${first}</option>`] : []).concat(tasks.map((t) => `<option>${esc(t)}</option>`)).join("");
    taskSel.disabled = tasks.length === 0;
  }
  engineSel.addEventListener("change", refreshTasks);
  ckptSel.addEventListener("change", refreshEngines);
  refreshEngines();

  const views = {engine: $("#engine-view"), dream: $("#dream-view")};
  let ws = null, size = null, pending = null, lastSent = 0, stats = null, hasDream = false;
  let keys = new Set(), buttons = new Set(), dx = 0, dy = 0, hotbar = 0, received = 0, fpsShown = 0, fpsT = performance.now();
  const interval = 1000 / 20;

  function showError(msg) { $("#play-error").innerHTML = `<div class="error" id="error">${esc(msg)}</div>`; }
  function draw(buf) {
    const n = size.width * size.height * 3, bytes = new Uint8Array(buf);
    ["engine", "dream"].forEach((side, k) => {
      if (side === "dream" && !hasDream) return;
      const canvas = views[side], ctx = canvas.getContext("2d"), img = ctx.createImageData(size.width, size.height);
      for (let i = 0, j = k * n; i < size.width * size.height; i++, j += 3) {
        img.data[4 * i] = bytes[j]; img.data[4 * i + 1] = bytes[j + 1]; img.data[4 * i + 2] = bytes[j + 2]; img.data[4 * i + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
      canvas.dataset.frame = stats ? stats[side]?.frame : 0;
    });
    for (const side of ["engine", "dream"]) {
      const s = stats && stats[side], el = $(`#${side}-stats`);
      if (!s) { el.textContent = ""; continue; }
      el.textContent = `frame ${s.frame}  ${fmt(s.steps_per_s, 1)} steps/s  reward ${s.reward === null ? "n/a (no reward model)" : fmt(s.reward, 3)}  return ${fmt(s.return, 3)}  episode ${s.episode}`;
    }
    received++;
    const now = performance.now();
    if (now - fpsT >= 1000) { fpsShown = received * 1000 / (now - fpsT); received = 0; fpsT = now; $("#client-fps").textContent = `${fpsShown.toFixed(1)} frames/s in this page`; $("#client-fps").dataset.fps = fpsShown; }
  }
  function send() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    lastSent = performance.now();
    if (pending) { ws.send(JSON.stringify({type: pending})); pending = null; return; }
    ws.send(JSON.stringify({type: "step", keys: [...keys], buttons: [...buttons], mouse: [dx, dy], hotbar}));
    dx = 0; dy = 0; hotbar = 0;
  }
  function start(ev) {
    ev && ev.preventDefault();
    if (ws) ws.close();
    $("#play-error").innerHTML = "";
    ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/play`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(JSON.stringify({type: "start", engine: engineSel.value, task: taskSel.disabled ? "" : taskSel.value,
      seed: Number($("#seed").value || 0), ckpt: ckptSel.value, steps: $("#steps").value || null}));
    ws.onmessage = (m) => {
      if (typeof m.data === "string") {
        const msg = JSON.parse(m.data);
        if (msg.type === "ready") {
          size = msg; hasDream = msg.dream;
          for (const c of Object.values(views)) { c.width = msg.width; c.height = msg.height; }
          $("#dream-pane").hidden = !hasDream;
          $("#controls-help").textContent = msg.controls + (msg.dream ? `; the dream decodes with the ${msg.decoder} decoder` : "") + (msg.dream && !msg.reward_model ? " (this model has no reward model: the dream's reward is n/a)" : "");
          $("#resync").disabled = !hasDream; $("#new-episode").disabled = false;
          views.engine.focus();
        } else if (msg.type === "frame") stats = msg.stats;
        else if (msg.type === "error") showError(msg.message);
        return;
      }
      draw(m.data);
      setTimeout(send, Math.max(0, interval - (performance.now() - lastSent)));
    };
    ws.onclose = (e) => { $("#resync").disabled = true; $("#new-episode").disabled = true; if (e.code === 1013 || e.code === 1011) {} };
  }
  $("#play-form").addEventListener("submit", start);
  $("#resync").addEventListener("click", () => { pending = "resync"; views.engine.focus(); });
  $("#new-episode").addEventListener("click", () => { pending = "reset"; views.engine.focus(); });
  const name = (e) => (e.key === " " ? " " : e.key.toLowerCase());
  const playing = () => ws && ws.readyState === WebSocket.OPEN && !(document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName));
  document.addEventListener("keydown", (e) => {
    if (!playing()) return;
    const k = name(e);
    keys.add(k);
    if (/^[1-9]$/.test(k)) hotbar = Number(k);
    if (k.startsWith("arrow") || k === " ") e.preventDefault();
  });
  document.addEventListener("keyup", (e) => keys.delete(name(e)));
  window.addEventListener("blur", () => { keys.clear(); buttons.clear(); });
  views.engine.addEventListener("click", () => { if (size && views.engine.requestPointerLock) views.engine.requestPointerLock(); });
  document.addEventListener("mousemove", (e) => { if (document.pointerLockElement === views.engine) { dx += e.movementX; dy += e.movementY; } });
  document.addEventListener("mousedown", (e) => { if (document.pointerLockElement === views.engine) buttons.add(e.button); });
  document.addEventListener("mouseup", (e) => buttons.delete(e.button));
  views.engine.addEventListener("contextmenu", (e) => e.preventDefault());
}

// ---- the generate page ----
function generatePage() {
  const form = $("#gen-form");
  if (!form) return;
  let timer = null;
  const readFile = (file) => new Promise((ok, bad) => { const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = bad; r.readAsDataURL(file); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#g-error").innerHTML = ""; $("#g-go").disabled = true; $("#g-go").textContent = "generating...";
    const body = {ckpt: $("#g-ckpt").value, mode: $("#g-mode").value, prompt: $("#g-prompt").value,
      frames: Number($("#g-frames").value), steps: Number($("#g-steps").value), seed: Number($("#g-seed").value)};
    try {
      if (body.mode === "i2v") {
        const f = $("#g-file").files[0];
        if (f) body.image = await readFile(f);
        else Object.assign(body, {store: $("#g-store").value, episode: Number($("#g-episode").value), frame: Number($("#g-frame").value)});
      }
      const res = await fetch("/api/generate", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      const out = await res.json();
      if (!res.ok) throw new Error(out.error || res.statusText);
      showResult(out);
    } catch (err) {
      $("#g-error").innerHTML = `<div class="error" id="error">${esc(err.message)}</div>`;
    } finally { $("#g-go").disabled = false; $("#g-go").textContent = "generate"; }
  });
  function showResult(out) {
    $("#g-result").hidden = false;
    $("#g-video").href = out.video;
    const canvas = $("#g-view"), ctx = canvas.getContext("2d");
    canvas.width = out.width; canvas.height = out.height;
    const img = new Image(); img.src = out.strip;
    let i = 0;
    if (timer) clearInterval(timer);
    img.onload = () => {
      timer = setInterval(() => {
        ctx.drawImage(img, 0, i * out.height, out.width, out.height, 0, 0, out.width, out.height);
        $("#g-counter").textContent = `frame ${i} / ${out.frames - 1}`;
        i = (i + 1) % out.frames;
      }, 1000 / out.fps);
    };
    $("#g-provenance").innerHTML = Object.entries(out.provenance).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`).join("");
  }
}

const ep = pageData("episode-data");
if (ep) episodePlayer(ep);
const pd = pageData("play-data");
if (pd) playPage(pd);
generatePage();
