// pixelsmith's web page: plain JavaScript over the HTTP API, nothing fetched but from this server.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "pixelsmith-api-key";
const state = { models: [], edits: [], selected: [], photo: null, photoUrl: null, resultUrl: null, painting: false };

// ---- status line and the API ---------------------------------------------------------------

function say(message, kind = "info") {
  const s = $("status");
  s.textContent = message;
  s.dataset.kind = kind;
}

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers.set("Authorization", "Bearer " + key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError("The server did not answer (" + e.message + ").", 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    if (response.status === 401) askForKey();
    const message = (body && body.error && body.error.message) || response.statusText;
    throw new ApiError(`${message} (${response.status})`, response.status);
  }
  if (body === null) throw new ApiError(`${path} answered something that is not JSON.`, response.status);
  return body;
}

function postJson(path, payload) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
}

// Run `work` with `button` disabled and a busy status; any error lands in the status line.
async function busy(button, message, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = message.replace(/…$/, "") + "…";
  state.busy = (state.busy || 0) + 1;
  document.body.classList.add("busy");
  say(message, "busy");
  try {
    const done = await work();
    say(done || "Done.", "ok");
  } catch (e) {
    say(e.message || String(e), "error");
  } finally {
    button.textContent = label;
    button.removeAttribute("aria-busy");
    state.busy -= 1;
    if (state.busy === 0) document.body.classList.remove("busy");
    refreshButtons();
  }
}

function askForKey() {
  $("key-form").hidden = false;
  $("api-key").focus();
}

function whole(id, what) {
  const raw = $(id).value.trim();
  if (!/^\d+$/.test(raw)) throw new ApiError(`${what} must be a whole number, got "${raw}".`, 0);
  const value = Number(raw);
  // JSON numbers above 2^53 lose digits in the browser, so the seed could not be echoed exactly
  if (!Number.isSafeInteger(value)) throw new ApiError(`${what} must be below 2^53 on this page.`, 0);
  return value;
}

const dataUrl = (b64) => "data:image/png;base64," + b64;

function pixelImage(b64, alt) {
  const img = document.createElement("img");
  img.src = dataUrl(b64);
  img.alt = alt;
  img.draggable = false;
  return img;
}

// ---- models and generation -----------------------------------------------------------------

const currentModel = () => state.models.find((m) => m.id === $("model").value);

function fillModels(models) {
  state.models = models.filter((m) => m.family !== "cyclegan");
  const select = $("model");
  const previous = select.value;
  select.replaceChildren();
  for (const m of state.models) {
    const [c, h, w] = m.image_shape;
    const option = new Option(`${m.id} · ${m.family} · ${w}×${h}${c === 1 ? " grey" : ""}`, m.id);
    select.append(option);
  }
  if (state.models.some((m) => m.id === previous)) select.value = previous;
  modelChanged();
}

function modelChanged() {
  const m = currentModel();
  const label = $("label");
  label.replaceChildren(new Option("by seed", ""));  // the server draws class = seed mod classes
  const classes = (m && m.classes) || 0;
  for (let k = 0; k < classes; k++) label.append(new Option(`class ${k}`, String(k)));
  $("label-field").hidden = classes === 0;
  clearGrid();
}

function clearGrid() {
  $("grid").replaceChildren();
  $("strip").replaceChildren();
  $("seed-info").hidden = true;
  state.selected = [];
  showPicked();
}

function generationRequest() {
  const m = currentModel();
  if (!m) throw new ApiError("No generator is served.", 0);
  const payload = { model: m.id, n: whole("n", "Images"), seed: whole("seed", "Seed"), output_format: "png" };
  if ($("label").value !== "") payload.labels = [Number($("label").value)];
  return payload;
}

async function generate() {
  const payload = generationRequest();
  const answer = await postJson("/v1/images/generations", payload);
  const grid = $("grid");
  grid.replaceChildren();
  state.selected = [];
  $("strip").replaceChildren();
  $("seed-info").hidden = true;
  const [, h] = currentModel().image_shape;
  grid.style.setProperty("--cell", Math.max(52, Math.min(128, h * 2)) + "px");
  for (const item of answer.data) {
    const cell = document.createElement("button");
    cell.type = "button";
    cell.className = "cell";
    cell.dataset.seed = String(item.seed);
    cell.dataset.model = payload.model;
    if (item.label !== undefined) cell.dataset.label = String(item.label);
    cell.setAttribute("aria-pressed", "false");
    cell.title = `Seed ${item.seed}`;
    cell.append(pixelImage(item.b64_json, `Generated image, seed ${item.seed}`));
    cell.addEventListener("click", () => pick(cell));
    grid.append(cell);
  }
  showPicked();
  const last = answer.data[answer.data.length - 1];
  return `${answer.data.length} image${answer.data.length === 1 ? "" : "s"}, seeds ${answer.data[0].seed}–${last.seed}.`;
}

function remakeLine(cell) {
  const body = { model: cell.dataset.model, n: 1, seed: Number(cell.dataset.seed) };
  if (cell.dataset.label !== undefined) body.labels = [Number(cell.dataset.label)];
  const auth = sessionStorage.getItem(KEY) ? ` -H "Authorization: Bearer $PIXELSMITH_API_KEY"` : "";
  return (
    `curl -s ${location.origin}/v1/images/generations -H 'Content-Type: application/json'` +
    ` -H 'Accept: image/png'${auth} -d '${JSON.stringify(body)}' -o seed-${body.seed}.png`
  );
}

function pick(cell) {
  const at = state.selected.indexOf(cell);
  if (at >= 0) {
    state.selected.splice(at, 1);
  } else {
    state.selected.push(cell);
    if (state.selected.length > 2) state.selected.shift();
  }
  for (const c of $("grid").children) c.setAttribute("aria-pressed", String(state.selected.includes(c)));
  $("seed-value").textContent = cell.dataset.seed;
  $("seed-label").textContent = cell.dataset.label !== undefined ? `· class ${cell.dataset.label}` : "";
  $("remake").value = remakeLine(cell);
  $("seed-info").hidden = false;
  showPicked();
}

function showPicked() {
  const seeds = state.selected.map((c) => c.dataset.seed);
  $("picked").textContent = seeds.length ? seeds.join(" → ") : "none";
  refreshButtons();
}

async function interpolate() {
  const [a, b] = state.selected.map((c) => Number(c.dataset.seed));
  const steps = whole("steps", "Steps");
  const model = state.selected[0].dataset.model;
  const body = { model, seeds: [a, b], steps, output_format: "png" };
  // the path keeps one class: the first picked image's
  if (state.selected[0].dataset.label !== undefined) body.label = Number(state.selected[0].dataset.label);
  const answer = await postJson("/v1/images/interpolations", body);
  const strip = $("strip");
  strip.replaceChildren();
  for (const item of answer.data) {
    const frame = document.createElement("figure");
    frame.append(pixelImage(item.b64_json, `Between seeds ${a} and ${b}, t = ${item.t.toFixed(2)}`));
    const caption = document.createElement("figcaption");
    caption.textContent = item.t.toFixed(2);
    frame.append(caption);
    strip.append(frame);
  }
  return `${answer.data.length} steps from seed ${a} to seed ${b}.`;
}

// ---- edits -----------------------------------------------------------------------------------

const currentEdit = () => state.edits.find((e) => e.id === $("operation").value);

function fillEdits(edits) {
  state.edits = edits;
  const select = $("operation");
  select.replaceChildren(...edits.map((e) => new Option(e.title || e.id, e.id)));
  operationChanged();
}

// One form field per declared option (GET /v1/edits): a list for choices, a number box for
// numbers (empty = auto), a box per value for an ordered list of values, text otherwise.
function optionField(opt) {
  const words = opt.name.replace(/_/g, " ");
  const field = document.createElement("div");
  field.className = "field";
  const label = document.createElement("label");
  label.textContent = words.charAt(0).toUpperCase() + words.slice(1);
  label.title = opt.help || "";
  let input;
  if (opt.type === "choice") {
    input = document.createElement("select");
    if (opt.default === null && opt.auto) input.append(new Option(`auto (${opt.auto})`, ""));
    for (const v of opt.choices) input.append(new Option(String(v), String(v)));
    if (opt.default !== null) input.value = String(opt.default);
  } else if (opt.type === "list") {
    input = document.createElement("span");
    input.className = "choices";
    input.dataset.list = opt.name;
    for (const v of opt.choices) {
      const box = document.createElement("label");
      const tick = document.createElement("input");
      tick.type = "checkbox";
      tick.value = v;
      tick.checked = opt.default.includes(v);
      box.append(tick, " " + v);
      input.append(box);
    }
  } else {
    input = document.createElement("input");
    input.type = opt.type === "number" ? "number" : "text";
    if (opt.type === "number") {
      input.step = opt.whole ? "1" : "any";
      if (opt.min !== null) input.min = String(opt.min);
      if (opt.max !== null) input.max = String(opt.max);
    }
    input.placeholder = opt.auto ? `auto: ${opt.auto}` : "";
    input.value = opt.default === null ? "" : String(opt.default);
  }
  if (input.tagName !== "SPAN") {
    input.id = "opt-" + opt.name;
    input.name = opt.name;
    label.htmlFor = input.id;
  }
  field.append(label, input);
  return field;
}

function operationChanged() {
  const edit = currentEdit();
  const box = $("options");
  box.replaceChildren();
  if (edit && edit.models) {  // translate: the served CycleGAN to run
    box.append(optionField({ name: "model", type: "choice", choices: edit.models, default: edit.models[0], help: "the CycleGAN" }));
  }
  for (const opt of (edit && edit.options) || []) box.append(optionField(opt));
  const needsMask = Boolean(edit && edit.needs_mask);
  $("mask-tools").hidden = !needsMask;
  $("mask-canvas").hidden = !needsMask;
  refreshButtons();
}

// The chosen options as form fields: [name, value] pairs, lists joined by commas in order.
function chosenOptions() {
  const out = [];
  for (const el of $("options").querySelectorAll("select[name], input[name], span[data-list]")) {
    if (el.dataset.list) {
      const picked = [...el.querySelectorAll("input:checked")].map((t) => t.value);
      out.push([el.dataset.list, picked.join(",")]);
    } else {
      out.push([el.name, el.value]);
    }
  }
  return out;
}

function setPhoto(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    say(`${file.name} is not an image.`, "error");
    return;
  }
  state.photo = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const img = $("original");
  img.onload = () => {
    const canvas = $("mask-canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    $("stage").hidden = false;
    $("drop-hint").hidden = true;
    $("original-caption").textContent = `${file.name} · ${img.naturalWidth}×${img.naturalHeight}`;
    clearResult();
    say(`Loaded ${file.name}.`, "ok");
    refreshButtons();
  };
  img.onerror = () => {
    state.photo = null;
    say(`${file.name} could not be read as an image.`, "error");
    refreshButtons();
  };
  img.src = state.photoUrl;
}

function clearResult() {
  const result = $("result");
  result.querySelectorAll("img").forEach((i) => i.remove());
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = null;
  $("result-caption").textContent = "";
  $("result-hint").hidden = false;
  $("download").hidden = true;
}

// Brush strokes on the mask canvas, in the photo's own pixels whatever its displayed size.
function canvasPoint(canvas, event) {
  const r = canvas.getBoundingClientRect();
  return [((event.clientX - r.left) * canvas.width) / r.width, ((event.clientY - r.top) * canvas.height) / r.height];
}

function brushRadius(canvas) {
  const r = canvas.getBoundingClientRect();
  return (Number($("brush").value) / 2) * (canvas.width / Math.max(1, r.width));
}

function paintTo(canvas, event) {
  const ctx = canvas.getContext("2d");
  const [x, y] = canvasPoint(canvas, event);
  ctx.fillStyle = ctx.strokeStyle = "#ff5a4f";
  ctx.lineWidth = 2 * brushRadius(canvas);
  ctx.lineCap = ctx.lineJoin = "round";
  if (state.painting && state.last) {
    ctx.beginPath();
    ctx.moveTo(...state.last);
    ctx.lineTo(x, y);
    ctx.stroke();
  }
  ctx.beginPath();
  ctx.arc(x, y, brushRadius(canvas), 0, 2 * Math.PI);
  ctx.fill();
  state.last = [x, y];
  state.masked = true;
  refreshButtons();
}

function setUpMaskPainting() {
  const canvas = $("mask-canvas");
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    state.painting = false;
    state.last = null;
    paintTo(canvas, e);
    state.painting = true;
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (state.painting) paintTo(canvas, e);
  });
  const stop = () => {
    state.painting = false;
    state.last = null;
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("clear-mask").addEventListener("click", () => {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    state.masked = false;
    refreshButtons();
  });
}

// The painted strokes as a black-and-white PNG at the photo's full size: white = fill.
function maskBlob() {
  const canvas = $("mask-canvas");
  const out = document.createElement("canvas");
  out.width = canvas.width;
  out.height = canvas.height;
  const painted = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const px = painted.data;
  for (let i = 0; i < px.length; i += 4) {
    const v = px[i + 3] >= 128 ? 255 : 0;
    px[i] = px[i + 1] = px[i + 2] = v;
    px[i + 3] = 255;
  }
  out.getContext("2d").putImageData(painted, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

async function applyEdit() {
  const edit = currentEdit();
  if (!state.photo) throw new ApiError("Choose a photo first.", 0);
  const form = new FormData();
  form.append("image", state.photo, state.photo.name || "photo.png");
  form.append("operation", edit.id);
  const chosen = [];
  for (const [name, value] of chosenOptions()) {
    if (value === "") continue;  // auto: the declaration's own default
    form.append(name, value);
    chosen.push(value);
  }
  if (edit.needs_mask) {
    if (!state.masked) throw new ApiError("Paint the mask over what to fill first.", 0);
    form.append("mask", await maskBlob(), "mask.png");
  }
  form.append("output_format", "png");
  const answer = await api("/v1/images/edits", { method: "POST", body: form });
  const b64 = answer.data[0].b64_json;
  clearResult();
  // a Blob URL, not a data URL: a super-resolved photo is megabytes, and the link keeps it once
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  state.resultUrl = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
  const img = document.createElement("img");
  img.src = state.resultUrl;
  img.alt = `${edit.title || edit.id} of ${state.photo.name}`;
  img.draggable = false;
  $("result").prepend(img);
  $("result-hint").hidden = true;
  $("result-caption").textContent = `${edit.title || edit.id} · ${answer.width}×${answer.height}`;
  const base = (state.photo.name || "photo").replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_") || "photo";
  const tag = [edit.id, ...chosen].join("-").replace(/[^\w.-]+/g, "_");
  const link = $("download");
  link.href = state.resultUrl;
  link.download = `${base}-${tag}.png`;
  link.hidden = false;
  return `${edit.title || edit.id} done: ${answer.width}×${answer.height}.`;
}

function setUpDrop() {
  const zone = $("edit-card");
  const over = (e) => {
    if (e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files")) {
      e.preventDefault();
      zone.classList.add("dragging");
    }
  };
  zone.addEventListener("dragenter", over);
  zone.addEventListener("dragover", over);
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) setPhoto(file);
  });
}

// ---- wiring ----------------------------------------------------------------------------------

function refreshButtons() {
  if (state.busy) return;
  $("generate").disabled = state.models.length === 0;
  $("interpolate").disabled = state.selected.length !== 2;
  const edit = currentEdit();
  $("apply").disabled = !edit || !state.photo || (edit.needs_mask && !state.masked);
}

async function load() {
  const [models, edits] = await Promise.allSettled([api("/v1/models"), api("/v1/edits")]);
  if (models.status === "rejected") throw models.reason;
  fillModels(models.value.data || []);
  if (edits.status === "fulfilled") {
    fillEdits(edits.value.data || []);
  } else {
    fillEdits([]);
    if (edits.reason.code !== 404) throw edits.reason;
  }
  $("edit-card").hidden = state.edits.length === 0;
  const what = state.models.length ? `${state.models.length} generator${state.models.length === 1 ? "" : "s"}` : "no generator";
  return `Ready: ${what}, ${state.edits.length} edit${state.edits.length === 1 ? "" : "s"}.`;
}

function start() {
  $("model").addEventListener("change", modelChanged);
  $("dice").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
  });
  $("gen-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy($("generate"), "Generating…", generate);
  });
  $("interp-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.selected.length === 2) busy($("interpolate"), "Interpolating…", interpolate);
  });
  $("copy").addEventListener("click", async () => {
    const line = $("remake");
    line.select();
    try {
      await navigator.clipboard.writeText(line.value);
      say("Remake line copied.", "ok");
    } catch (e) {
      say("Select the remake line and copy it (Ctrl+C).", "info");
    }
  });
  $("operation").addEventListener("change", operationChanged);
  $("photo").addEventListener("change", (e) => setPhoto(e.target.files[0]));
  $("edit-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy($("apply"), "Applying…", applyEdit);
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key-form").hidden = true;
    busy($("generate"), "Loading models…", load);
  });
  setUpMaskPainting();
  setUpDrop();
  busy($("generate"), "Loading models…", load);
}

document.addEventListener("DOMContentLoaded", start);
