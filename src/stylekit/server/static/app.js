"use strict";
// The browser page of `stylekit serve`: every picture goes to POST /v1/stylize;
// nothing is computed here but previews of the user's own inputs and, for the
// webcam, the temporal stabiliser's per-frame blends (temporal.js).

const $ = (id) => document.getElementById(id);
const STROKES = [0, 0.25, 0.35, 0.5, 0.7, 1, 1.4, 2, 2.8, 4]; // the stroke-size slider's positions; 0 = one pass
const METHOD_NAMES = { adain: "AdaIN", "style-swap": "Style swap (slow)", gatys: "Gatys (slowest)", fast: "Fast network" };
const SHOW_PROGRESS_AFTER_MS = 500;

const state = {
  content: null,          // {blob, name, stem, url, exampleId, width, height}
  styles: [],             // {blob, name, stem, url, galleryId, painter, weight, mask: null | canvas}
  methods: [], strokeDefaults: {}, secondsPerMP: {}, maxSide: 0,
  strokeTouched: false,
  stylizedOnce: false,
  final: { seq: 0, controller: null },
  preview: { inFlight: false, pending: false, controller: null },
  timer: null,
  result: null,           // {url, beforeUrl, width, height}
  pasteTarget: null,
  webcam: null,
};

// ------------------------------------------------------------------ inputs

function stemOf(name) {
  const base = String(name || "image").replace(/\.[A-Za-z0-9]{1,5}$/, "");
  return base.replace(/[^\w.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "").slice(0, 40) || "image";
}

function decodeSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => resolve(null); // not an image the browser reads: the server will say what it is
    img.src = url;
  });
}

async function entryFor(blob, name, extra = {}) {
  const url = URL.createObjectURL(blob);
  const size = await decodeSize(url);
  return { blob, name, stem: extra.stem || stemOf(name), url, width: size ? size[0] : 0, height: size ? size[1] : 0,
           weight: 1, mask: null, ...extra };
}

function preview(entry, alt) {
  if (entry.width) {
    const img = document.createElement("img"); img.src = entry.url; img.alt = alt;
    return img;
  }
  const box = document.createElement("div"); box.className = "noimg"; box.textContent = "no preview";
  return box;
}

async function setContent(blob, name, extra = {}) {
  state.content = await entryFor(blob, name, extra);
  for (const s of state.styles) s.mask = null; // a region belongs to one photo
  renderContent(); renderStyles(); changed();
}

async function addStyle(blob, name, extra = {}) {
  state.styles.push(await entryFor(blob, name, extra));
  renderStyles(); changed();
}

function renderContent() {
  const box = $("content-picked");
  box.textContent = "";
  if (state.content) {
    const name = document.createElement("span"); name.className = "name"; name.textContent = state.content.name;
    const sub = document.createElement("span"); sub.className = "sub";
    sub.textContent = state.content.width ? state.content.width + "\u00d7" + state.content.height + " px" : "";
    box.append(preview(state.content, "photo"), name, sub);
  }
  for (const t of document.querySelectorAll("#content-examples .thumb"))
    t.classList.toggle("selected", !!state.content && state.content.exampleId === t.dataset.id);
  updateButtons();
}

function renderStyles() {
  const list = $("style-list");
  list.textContent = "";
  const regions = state.styles.some((s) => s.mask);
  state.styles.forEach((s, i) => {
    const row = document.createElement("div"); row.className = "style-row";
    const name = document.createElement("span"); name.className = "name"; name.textContent = s.name;
    const rm = document.createElement("button"); rm.className = "remove"; rm.type = "button";
    rm.title = "remove " + s.name; rm.textContent = "\u00d7";
    rm.onclick = () => { state.styles.splice(i, 1); renderStyles(); changed(); };
    const sub = document.createElement("span"); sub.className = "sub";
    if (s.painter) sub.append(s.painter);
    const region = document.createElement("button"); region.type = "button";
    region.className = "region" + (s.mask ? " on" : ""); region.dataset.index = String(i);
    region.textContent = s.mask ? "region \u270e" : "whole picture \u270e";
    region.title = "paint or upload the region this style covers";
    region.disabled = !(state.content && state.content.width);
    region.onclick = () => openMaskEditor(i);
    sub.append(region);
    row.append(preview(s, "style " + (i + 1)), name, rm, sub);
    if (state.styles.length > 1 && !regions) {
      const w = document.createElement("input");
      w.type = "range"; w.min = "0"; w.max = "1"; w.step = "0.05"; w.value = String(s.weight);
      w.className = "weight"; w.setAttribute("aria-label", "weight of " + s.name);
      w.oninput = () => { s.weight = parseFloat(w.value); previewSoon(); };
      w.onchange = () => { s.weight = parseFloat(w.value); changed(0); };
      row.append(w);
    }
    list.append(row);
  });
  for (const t of document.querySelectorAll("#style-gallery .thumb"))
    t.classList.toggle("selected", state.styles.some((s) => s.galleryId === t.dataset.id));
  updateButtons();
}

function updateButtons() {
  $("stylize").disabled = !(state.content && state.styles.length) || !!state.webcam;
}

function thumbButton(container, item, onPick) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "thumb"; b.dataset.id = item.id;
  b.title = item.painter ? item.title + " \u2014 " + item.painter : item.title;
  b.setAttribute("aria-label", b.title);
  const img = document.createElement("img"); img.src = item.thumbnail; img.alt = ""; img.loading = "lazy";
  b.append(img);
  b.onclick = () => onPick(item).catch((e) => showError(e.message));
  container.append(b);
}

async function fetchBlob(url, what) {
  const r = await fetch(url);
  if (!r.ok) throw new Error("cannot load " + what);
  return r.blob();
}

async function loadPictures() {
  const [examples, gallery] = await Promise.all([
    fetch("/v1/examples").then((r) => r.json()).catch(() => []),
    fetch("/v1/styles").then((r) => r.json()).catch(() => []),
  ]);
  for (const ex of examples.filter((e) => e.role === "content"))
    thumbButton($("content-examples"), ex, async (e) =>
      setContent(await fetchBlob(e.url, e.title), e.title, { exampleId: e.id, stem: e.id }));
  for (const st of gallery)
    thumbButton($("style-gallery"), st, async (e) => {
      const at = state.styles.findIndex((s) => s.galleryId === e.id);
      if (at >= 0) { state.styles.splice(at, 1); renderStyles(); changed(); return; }
      await addStyle(await fetchBlob(e.url, e.title), e.title, { galleryId: e.id, stem: e.id, painter: e.painter });
    });
}

async function loadInfo() {
  try {
    const info = await (await fetch("/healthz")).json();
    $("server-info").textContent = "stylekit " + info.version + " on " + info.device;
    state.methods = info.methods || [];
    state.strokeDefaults = info.stroke_scale_defaults || {};
    state.secondsPerMP = info.seconds_per_megapixel || {};
    state.maxSide = (info.limits && info.limits.max_side) || 0;
    const sel = $("method"); sel.textContent = "";
    for (const m of state.methods) {
      const o = document.createElement("option"); o.value = m; o.textContent = METHOD_NAMES[m] || m; sel.append(o);
    }
    for (const id of ["size", "style-size"])
      for (const o of $(id).options) if (state.maxSide && +o.value > state.maxSide) o.disabled = true;
    strokeToDefault();
  } catch (e) { /* the page still works with its defaults */ }
  if (!state.methods.includes("fast")) {
    $("webcam-note").textContent = "Webcam mode and instant previews use the fast network; start the server with "
      + "\u201cstylekit serve --methods adain fast\u201d.";
    $("webcam-note").hidden = false;
  }
}

// ------------------------------------------------------------------ drop and paste

function imageFiles(list) {
  return Array.from(list || []).filter((f) => f && f.kind !== "string").map((f) => (f.getAsFile ? f.getAsFile() : f))
    .filter(Boolean);
}

async function takeFiles(files, target) {
  if (!files.length) return;
  if (target === "content") {
    await setContent(files[0], files[0].name);
    for (const f of files.slice(1)) await addStyle(f, f.name);
  } else {
    for (const f of files) await addStyle(f, f.name);
  }
}

for (const [zoneId, target] of [["content-zone", "content"], ["style-zone", "style"]]) {
  const zone = $(zoneId);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); e.stopPropagation(); zone.classList.remove("dragover");
    takeFiles(imageFiles(e.dataTransfer.files), target);
  });
  zone.addEventListener("pointerdown", () => setPasteTarget(target));
  zone.addEventListener("focusin", () => setPasteTarget(target));
}
// a picture dropped on the result becomes the photo; elsewhere it must not replace the page
$("result-panel").addEventListener("dragover", (e) => e.preventDefault());
$("result-panel").addEventListener("drop", (e) => { e.preventDefault(); takeFiles(imageFiles(e.dataTransfer.files), "content"); });
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => e.preventDefault());

function setPasteTarget(target) {
  state.pasteTarget = target;
  $("content-zone").classList.toggle("paste-target", target === "content");
  $("style-zone").classList.toggle("paste-target", target === "style");
}

document.addEventListener("paste", (e) => {
  const files = imageFiles(e.clipboardData && (e.clipboardData.files.length ? e.clipboardData.files : e.clipboardData.items))
    .filter((f) => f.type.startsWith("image/"));
  if (!files.length) return;
  e.preventDefault();
  // pasted pictures are all called image.png: name them by their role
  const target = state.pasteTarget || (state.content ? "style" : "content");
  const named = files.map((f, i) => (f.name && f.name !== "image.png" ? f : new File([f], "pasted" + (i ? "-" + (i + 1) : "")
    + "." + (f.type.split("/")[1] || "png"), { type: f.type })));
  takeFiles(named, target);
  setStatus("pasted as the " + (target === "content" ? "photo" : "style"));
});

// ------------------------------------------------------------------ the request

function strokeValue() { return STROKES[+$("stroke").value]; }

function strokeToDefault() {
  if (state.strokeTouched) return;
  const d = state.strokeDefaults[$("method").value];
  const at = STROKES.indexOf(d == null ? 0 : d);
  $("stroke").value = String(at >= 0 ? at : 5);
  showStroke();
}

function showStroke() {
  const v = strokeValue();
  $("stroke-value").textContent = v === 0 ? "one pass" : v + "\u00d7";
}

function colours() { return document.querySelector("input[name=colours]:checked").value; }

function maskPng(canvas) { return new Promise((resolve) => canvas.toBlob(resolve, "image/png")); }

// each style's region as a white-on-black mask; a style without one takes what no other covers
function regionMasks() {
  const { width, height } = state.content;
  return state.styles.map((s, i) => {
    const out = document.createElement("canvas"); out.width = width; out.height = height;
    const ctx = out.getContext("2d");
    if (s.mask) {
      ctx.drawImage(s.mask, 0, 0);
      ctx.globalCompositeOperation = "source-in";
    } else {
      state.styles.forEach((o, j) => { if (j !== i && o.mask) ctx.drawImage(o.mask, 0, 0); });
      ctx.globalCompositeOperation = "source-out";
    }
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
    ctx.globalCompositeOperation = "destination-over";
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, width, height);
    return out;
  });
}

async function formData(method, overrides = {}) {
  const fd = new FormData();
  if (overrides.content) fd.append("content", overrides.content, "frame.jpg");
  else fd.append("content", state.content.blob, state.content.name);
  for (const s of state.styles) fd.append("style", overrides.smallStyles ? s.small : s.blob, s.name);
  const regions = !overrides.content && state.styles.some((s) => s.mask);
  if (regions) {
    const masks = regionMasks();
    for (let i = 0; i < masks.length; i++)
      fd.append("mask", await maskPng(masks[i]), "region-" + state.styles[i].stem + ".png");
  } else if (state.styles.length > 1) {
    let weights = state.styles.map((s) => s.weight);
    if (weights.every((w) => w <= 0)) weights = weights.map(() => 1);
    fd.append("style_weights", weights.join(","));
  }
  fd.append("method", method);
  fd.append("alpha", $("alpha").value);
  fd.append("stroke_scale", String(strokeValue()));
  fd.append("preserve_color", colours());
  fd.append("size", overrides.size != null ? String(overrides.size) : $("size").value);
  fd.append("style_size", $("style-size").value);
  fd.append("crop", overrides.content ? "false" : String($("crop").checked));
  fd.append("format", overrides.format || "png");
  return fd;
}

async function post(fd, signal) {
  const r = await fetch("/v1/stylize", { method: "POST", body: fd, signal });
  if (!r.ok) {
    let message = "HTTP " + r.status;
    try { message = (await r.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return { blob: await r.blob(), seconds: parseFloat(r.headers.get("X-Stylekit-Seconds")),
           method: r.headers.get("X-Stylekit-Method") };
}

// the output's pixels, for the time estimate: the size control applied to the photo
function outputMegapixels() {
  const c = state.content;
  if (!c || !c.width) return 0;
  let w = c.width, h = c.height;
  if ($("crop").checked) w = h = Math.min(w, h);
  const side = +$("size").value;
  if (side) { const k = side / Math.max(w, h); w = Math.round(w * k); h = Math.round(h * k); }
  return (w * h) / 1e6;
}

function learnTiming(method, seconds, width, height) {
  const perMP = seconds / Math.max((width * height) / 1e6, 1e-3);
  const old = state.secondsPerMP[method];
  state.secondsPerMP[method] = old == null ? perMP : 0.7 * old + 0.3 * perMP;
}

// ------------------------------------------------------------------ showing results

function setStatus(text) { $("status").textContent = text; }

function inViewport(el) {
  const r = el.getBoundingClientRect();
  return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0;
}

function bringIntoView() {
  const stage = $("stage");
  if (!inViewport(stage)) stage.scrollIntoView({ block: "nearest" });
}

async function beforeImage(width, height, crop) {
  // the photo as the server framed it, at the result's size, so the two line up under the split
  const c = state.content;
  if (!c || !c.width) return null;
  const bitmap = await createImageBitmap(c.blob);
  let sx = 0, sy = 0, sw = bitmap.width, sh = bitmap.height;
  if (crop) { const s = Math.min(sw, sh); sx = (sw - s) / 2; sy = (sh - s) / 2; sw = sh = s; }
  const canvas = document.createElement("canvas"); canvas.width = width; canvas.height = height;
  canvas.getContext("2d").drawImage(bitmap, sx, sy, sw, sh, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  return URL.createObjectURL(blob);
}

async function showResult(blob, { kind, method, seconds, roundTrip, crop }) {
  const url = URL.createObjectURL(blob);
  const img = $("result");
  await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = reject; img.src = url; });
  const w = img.naturalWidth, h = img.naturalHeight;
  if (state.result) URL.revokeObjectURL(state.result.url);
  state.result = { url, width: w, height: h, beforeUrl: state.result && state.result.beforeUrl };
  $("frame").style.setProperty("--ar", w + " / " + h);
  $("stage").classList.remove("empty");
  $("placeholder").hidden = true;
  img.hidden = false;
  img.classList.remove("stale");
  $("error").hidden = true; $("error").textContent = "";
  const badge = $("badge");
  badge.hidden = kind !== "preview";
  if (kind === "preview") badge.textContent = "preview (fast network)";
  const dl = $("download");
  dl.href = url; dl.hidden = false;
  dl.download = (kind === "webcam" ? "webcam" : state.content.stem) + "_stylized_"
    + state.styles.map((s) => s.stem).join("+") + (kind === "webcam" ? ".jpg" : ".png");
  if (kind === "done") {
    if (state.result.beforeUrl) URL.revokeObjectURL(state.result.beforeUrl);
    state.result.beforeUrl = await beforeImage(w, h, crop).catch(() => null);
    if (state.result.beforeUrl) $("before").src = state.result.beforeUrl;
  }
  showCompare(kind !== "webcam" && !!state.result.beforeUrl);
  const took = isNaN(seconds) ? "" : ", " + seconds.toFixed(2) + " s";
  const trip = roundTrip == null ? "" : " (" + roundTrip.toFixed(2) + " s round trip)";
  if (kind !== "webcam")
    setStatus(w + "\u00d7" + h + " px \u00b7 " + (METHOD_NAMES[method] || method) + took + trip
      + (kind === "preview" ? " \u00b7 release the slider for the final picture" : ""));
  img.dataset.method = method || "";
  img.dataset.state = kind; // last: the picture, its photo and its status are all in place
}

function showCompare(on) {
  const enabled = on && $("compare-on").checked;
  $("compare-toggle").hidden = !on;
  for (const id of ["before", "divider", "compare"]) $(id).hidden = !enabled;
  setSplit(+$("compare").value);
}

function setSplit(percent) { $("frame").style.setProperty("--split", percent + "%"); }

function showError(message) {
  const err = $("error");
  err.textContent = message;
  err.hidden = false;
  const img = $("result");
  if (!img.hidden) {
    img.classList.add("stale");
    img.dataset.state = "stale";
    $("badge").textContent = "previous result, not updated";
    $("badge").hidden = false;
  }
  setStatus("");
  bringIntoView();
}

function showProgress(method, started, estimate, signalDone) {
  const box = $("progress");
  const tick = () => {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed * 1000 < SHOW_PROGRESS_AFTER_MS && !(estimate > 2)) return;
    box.hidden = false;
    box.classList.toggle("unknown", !estimate);
    let text = "Stylizing with " + (METHOD_NAMES[method] || method) + "\u2026 " + elapsed.toFixed(1) + " s";
    if (estimate) {
      text += " of about " + (estimate < 10 ? estimate.toFixed(1) : Math.round(estimate)) + " s";
      $("progress-bar").style.width = Math.min(95, (100 * elapsed) / estimate) + "%";
    }
    $("progress-text").textContent = text;
  };
  tick();
  const timer = setInterval(tick, 100);
  signalDone.then(() => { clearInterval(timer); box.hidden = true; });
}

// ------------------------------------------------------------------ stylizing

async function stylize() {
  if (!(state.content && state.styles.length) || state.webcam) return;
  clearTimeout(state.timer);
  if (state.final.controller) state.final.controller.abort();
  if (state.preview.controller) state.preview.controller.abort();
  const controller = new AbortController();
  const seq = ++state.final.seq;
  state.final.controller = controller;
  const method = $("method").value;
  const crop = $("crop").checked;
  const started = performance.now();
  const perMP = state.secondsPerMP[method];
  const estimate = perMP && outputMegapixels() ? perMP * outputMegapixels() : 0;
  let finish;
  showProgress(method, started, estimate, new Promise((resolve) => { finish = resolve; }));
  $("result-panel").classList.add("busy");
  setStatus("stylizing\u2026");
  try {
    const answer = await post(await formData(method), controller.signal);
    if (seq !== state.final.seq) return;
    finish();
    const roundTrip = (performance.now() - started) / 1000;
    await showResult(answer.blob, { kind: "done", method, seconds: answer.seconds, roundTrip, crop });
    const { width, height } = state.result;
    learnTiming(method, answer.seconds, width, height);
    state.stylizedOnce = true;
    bringIntoView();
  } catch (e) {
    if (seq !== state.final.seq) return;
    if (e.name === "AbortError") {
      setStatus("cancelled");
      if (!$("result").hidden) { $("result").classList.add("stale"); $("badge").textContent = "previous result"; $("badge").hidden = false; }
      return;
    }
    showError(e.message);
  } finally {
    finish();
    if (seq === state.final.seq) { $("result-panel").classList.remove("busy"); state.final.controller = null; }
  }
}

// while a slider moves: the fast network when the server has it (one request at a
// time, always the latest settings), otherwise the chosen method, debounced
function previewSoon() {
  if (!state.stylizedOnce || state.webcam) return;
  if (!state.methods.includes("fast")) { changed(200); return; }
  if (state.preview.inFlight) { state.preview.pending = true; return; }
  runPreview("fast");
}

async function runPreview(method) {
  const p = state.preview;
  p.inFlight = true; p.pending = false;
  const finalSeq = state.final.seq;
  const controller = new AbortController();
  p.controller = controller;
  const started = performance.now();
  try {
    const answer = await post(await formData(method), controller.signal);
    if (finalSeq !== state.final.seq || state.final.controller) return; // a final picture was asked for since
    await showResult(answer.blob, { kind: $("method").value === "fast" ? "done" : "preview", method,
      seconds: answer.seconds, roundTrip: (performance.now() - started) / 1000, crop: $("crop").checked });
  } catch (e) {
    if (e.name !== "AbortError" && finalSeq === state.final.seq) showError(e.message);
  } finally {
    p.inFlight = false; p.controller = null;
    if (p.pending && finalSeq === state.final.seq) previewSoon();
  }
}

// after the first result, every change re-stylizes (debounced); the server caches the
// images' features, so a change of the controls costs little
function changed(delay = 150) {
  if (!state.stylizedOnce || state.webcam) return;
  clearTimeout(state.timer);
  state.timer = setTimeout(stylize, delay);
}

// ------------------------------------------------------------------ controls

$("alpha").addEventListener("input", () => { $("alpha-value").textContent = parseFloat($("alpha").value).toFixed(2); previewSoon(); });
$("stroke").addEventListener("input", () => { state.strokeTouched = true; showStroke(); previewSoon(); });
for (const id of ["alpha", "stroke"]) $(id).addEventListener("change", () => changed(0));
for (const id of ["size", "style-size", "crop"]) $(id).addEventListener("change", () => changed());
$("method").addEventListener("change", () => { strokeToDefault(); changed(); });
for (const r of document.querySelectorAll("input[name=colours]")) r.addEventListener("change", () => changed());
$("stylize").addEventListener("click", stylize);
$("cancel").addEventListener("click", () => { if (state.final.controller) state.final.controller.abort(); });
$("compare").addEventListener("input", () => setSplit(+$("compare").value));
$("compare-on").addEventListener("change", () => showCompare(!!(state.result && state.result.beforeUrl)));
$("content-file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  e.target.value = "";
  if (f) setContent(f, f.name);
});
$("style-file").addEventListener("change", (e) => {
  const files = Array.from(e.target.files);
  e.target.value = "";
  takeFiles(files, "style");
});

// ------------------------------------------------------------------ regions

const editor = { index: -1, canvas: null, drawing: false, last: null };

function openMaskEditor(i) {
  const s = state.styles[i], c = state.content;
  if (!c || !c.width) return;
  editor.index = i;
  const canvas = $("mask-canvas");
  canvas.width = c.width; canvas.height = c.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (s.mask) ctx.drawImage(s.mask, 0, 0);
  $("mask-photo").src = c.url;
  $("mask-style-name").textContent = s.name;
  $("mask-editor").showModal();
}

function brushPoint(e) {
  const canvas = $("mask-canvas");
  const r = canvas.getBoundingClientRect();
  return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height, canvas.width / r.width];
}

function paintTo(e) {
  const [x, y, scale] = brushPoint(e);
  const ctx = $("mask-canvas").getContext("2d");
  const erase = document.querySelector("input[name=brush-mode]:checked").value === "erase";
  ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "#ff2d6f";
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.lineWidth = +$("brush").value * scale;
  const [lx, ly] = editor.last || [x, y];
  ctx.beginPath(); ctx.moveTo(lx, ly); ctx.lineTo(x, y); ctx.stroke();
  editor.last = [x, y];
}

$("mask-canvas").addEventListener("pointerdown", (e) => {
  editor.drawing = true; editor.last = null;
  $("mask-canvas").setPointerCapture(e.pointerId);
  paintTo(e);
});
$("mask-canvas").addEventListener("pointermove", (e) => { if (editor.drawing) paintTo(e); });
for (const type of ["pointerup", "pointercancel"])
  $("mask-canvas").addEventListener(type, () => { editor.drawing = false; editor.last = null; });

$("mask-clear").addEventListener("click", () => {
  const canvas = $("mask-canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
});

// an uploaded mask: its brightness (and transparency) becomes the painted layer, at the photo's size
$("mask-file").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  e.target.value = "";
  if (!f) return;
  let bitmap;
  try { bitmap = await createImageBitmap(f); } catch (err) {
    $("mask-editor").close();
    showError(f.name + " is not an image this browser can read as a mask");
    return;
  }
  const canvas = $("mask-canvas"), ctx = canvas.getContext("2d");
  ctx.globalCompositeOperation = "source-over";
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height), px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const level = (0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]) * (px[i + 3] / 255);
    px[i] = 255; px[i + 1] = 45; px[i + 2] = 111; px[i + 3] = level;
  }
  ctx.putImageData(data, 0, 0);
});

function closeEditor(keep) {
  const s = state.styles[editor.index];
  if (s) {
    if (keep) {
      const copy = document.createElement("canvas");
      copy.width = $("mask-canvas").width; copy.height = $("mask-canvas").height;
      copy.getContext("2d").drawImage($("mask-canvas"), 0, 0);
      s.mask = copy;
    } else s.mask = null;
  }
  $("mask-editor").close();
  renderStyles(); changed();
}
$("mask-done").addEventListener("click", () => closeEditor(true));
$("mask-remove").addEventListener("click", () => closeEditor(false));

// ------------------------------------------------------------------ webcam

async function smallStyle(s) {
  // sent with every frame: shrunk once to the style size
  const side = +$("style-size").value || 512;
  if (s.small && s.smallSide === side) return;
  try {
    const bitmap = await createImageBitmap(s.blob);
    const k = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(16, Math.round(bitmap.width * k)); canvas.height = Math.max(16, Math.round(bitmap.height * k));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    s.small = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  } catch (e) { s.small = s.blob; }
  s.smallSide = side;
}

async function startWebcam() {
  if (!state.methods.includes("fast")) {
    showError("webcam mode needs the fast network: start the server with \u201cstylekit serve --methods adain fast\u201d");
    return;
  }
  if (!state.styles.length) { showError("pick a style first: the webcam is stylized with it"); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    showError("no camera: " + (e.message || e.name));
    return;
  }
  const video = $("camera");
  video.srcObject = stream;
  await video.play();
  const cam = { stream, running: true, frames: 0, times: [], controller: null, steady: null };
  state.webcam = cam;
  if (state.final.controller) state.final.controller.abort();
  $("webcam").textContent = "Stop webcam"; $("webcam").classList.add("on");
  updateButtons();
  webcamLoop(cam);
}

function stopWebcam() {
  const cam = state.webcam;
  if (!cam) return;
  cam.running = false;
  if (cam.controller) cam.controller.abort();
  for (const t of cam.stream.getTracks()) t.stop();
  $("camera").srcObject = null;
  state.webcam = null;
  $("webcam").textContent = "Webcam"; $("webcam").classList.remove("on");
  updateButtons();
}

// The stylized look of a webcam frame: when it changes, the stabiliser starts over, or a
// still background would go on showing the old look.
function webcamLook(width, height) {
  return JSON.stringify([width, height, $("alpha").value, strokeValue(), colours(), $("style-size").value,
    state.styles.map((s) => [s.url, s.weight])]);
}

// The stabiliser's state for this frame (null with Steady off): what was last sent and
// what was last shown, both width x height RGBA, from the current look only.
function steadyFor(cam, look) {
  if (!$("steady").checked) { cam.steady = null; return null; }
  if (!cam.steady || cam.steady.look !== look) cam.steady = { look, reference: null, previousShown: null };
  return cam.steady;
}

// The share of the frame shown from the previous shown frame (stabiliseOutput's rule).
function keptShare(keep) {
  if (cameraMoving(keep)) return 0;
  let kept = 0;
  for (let p = 0; p < keep.length; p++) if (keep[p] >= 0.5) kept += 1;
  return kept / keep.length;
}

function canvasBlob(canvas, type, quality) {
  return new Promise((resolve) => canvas.toBlob(resolve, type, quality));
}

async function pixelsOf(blob, ctx, width, height) {
  const bitmap = await createImageBitmap(blob);
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return ctx.getImageData(0, 0, width, height).data;
}

async function webcamLoop(cam) {
  const video = $("camera");
  const canvas = document.createElement("canvas"), ctx = canvas.getContext("2d", { willReadFrequently: true });
  const out = document.createElement("canvas"), outCtx = out.getContext("2d", { willReadFrequently: true });
  while (cam.running) {
    if (!state.styles.length) { stopWebcam(); showError("pick a style first: the webcam is stylized with it"); return; }
    for (const s of state.styles) await smallStyle(s);
    const side = Math.min(+$("size").value || 512, 512);
    const k = side / Math.max(video.videoWidth, video.videoHeight);
    const w = Math.round(video.videoWidth * k), h = Math.round(video.videoHeight * k);
    canvas.width = out.width = w; canvas.height = out.height = h;
    ctx.drawImage(video, 0, 0, w, h);
    // Steady: where the frame did not change, send what was sent last time (the camera's
    // noise averaged away) and show what was shown last time (the network's flicker held back)
    const steady = steadyFor(cam, webcamLook(w, h));
    let keep = null;
    if (steady) {
      const pixels = ctx.getImageData(0, 0, w, h);
      if (steady.reference) {
        const s = stabiliseInput(pixels.data, steady.reference, w, h);
        pixels.data.set(s.input);
        ctx.putImageData(pixels, 0, 0);
        keep = s.keep;
      }
      steady.reference = pixels.data;
    }
    const frame = await canvasBlob(canvas, "image/jpeg", 0.85);
    cam.controller = new AbortController();
    let kept = 0;
    try {
      const fd = await formData("fast", { content: frame, smallStyles: true, size: 0, format: "jpeg" });
      const answer = await post(fd, cam.controller.signal);
      if (!cam.running) return;
      let shown = answer.blob;
      if (steady) {
        const stylized = await pixelsOf(answer.blob, outCtx, w, h);
        const held = keep && steady.previousShown;
        const pixels = held ? new Uint8ClampedArray(stabiliseOutput(stylized, steady.previousShown, keep, w, h)) : stylized;
        // encoded here on every frame, not only on blended ones, so that what is held looks as it did
        outCtx.putImageData(new ImageData(pixels, w, h), 0, 0);
        shown = await canvasBlob(out, "image/jpeg", 0.92);
        steady.previousShown = pixels;
        if (held) kept = keptShare(keep);
      }
      if (!cam.running) return;
      await showResult(shown, { kind: "webcam", method: "fast", seconds: answer.seconds });
    } catch (e) {
      if (cam.running) { stopWebcam(); showError(e.message); }
      return;
    }
    cam.frames += 1;
    const now = performance.now();
    cam.times.push(now);
    while (cam.times.length > 2 && now - cam.times[0] > 3000) cam.times.shift();
    const fps = cam.times.length > 1 ? (1000 * (cam.times.length - 1)) / (now - cam.times[0]) : 0;
    const fpsBox = $("fps");
    fpsBox.dataset.steady = steady ? "on" : "off";
    fpsBox.dataset.kept = kept.toFixed(4); // the share of this frame shown from the previous one
    fpsBox.dataset.fps = fps.toFixed(2);
    fpsBox.dataset.frames = String(cam.frames); // last: the frame's other fields are in place
    fpsBox.textContent = fps ? fps.toFixed(1) + " fps \u00b7 " + w + "\u00d7" + h : "";
    setStatus("webcam \u00b7 fast network \u00b7 " + frames(cam.frames));
  }
}

function frames(n) { return n === 1 ? "1 frame" : n + " frames"; }

$("webcam").addEventListener("click", () => (state.webcam ? stopWebcam() : startWebcam()));

loadInfo();
loadPictures();
