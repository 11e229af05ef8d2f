// The demo page: plain JavaScript, no build step, no other host. Everything it shows
// comes from the public API (the same calls a client would make with curl).
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 10;
const state = { photo: null, photoName: "", image: null, stream: null, offset: 0, total: 0,
  candidates: [], faceBox: null };  // the faces of a multiple_faces refusal; the one clicked

// ---- the API ----------------------------------------------------------------------
function apiKey() {
  return $("api-key").value.trim();
}

async function call(method, path, form) {
  const headers = {};
  if (apiKey()) headers["X-API-Key"] = apiKey();
  let response;
  try {
    response = await fetch(path, { method, headers, body: form });
  } catch (err) {
    return { ok: false, status: 0, body: { title: "The service cannot be reached",
      detail: String(err), code: "network_error" } };
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { title: text }; }
  return { ok: response.ok, status: response.status, body };
}

// ---- service status ---------------------------------------------------------------
async function showStatus() {
  const ready = await call("GET", "/health/ready");
  const el = $("service-status");
  if (ready.ok) {
    const c = ready.body.checks;
    el.textContent = `ready: model ${c.model_version}, threshold ${c.threshold}`;
  } else if (ready.body && ready.body.checks) {
    el.textContent = "the model is still loading… (this page retries)";
    setTimeout(showStatus, 2000);
  } else {
    el.textContent = "the service cannot be reached";
  }
}

// ---- the photo --------------------------------------------------------------------
function setPhoto(blob, name) {
  state.photo = blob;
  state.photoName = name;
  $("photo-name").textContent = `${name} (${Math.round(blob.size / 1024)} KB)`;
  $("aligned-figure").hidden = true;
  state.candidates = [];
  state.faceBox = null;
  $("face-hint").hidden = true;
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.onload = () => { state.image = img; drawPhoto(null); };
  img.src = url;
}

function drawPhoto(box) {
  const img = state.image;
  if (!img) return;
  const canvas = $("photo-canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  ctx.lineWidth = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 150));
  for (const c of state.candidates) {  // the faces to choose from
    ctx.strokeStyle = "#ffb900";
    ctx.setLineDash([ctx.lineWidth * 3, ctx.lineWidth * 2]);
    ctx.strokeRect(...c.box);
  }
  ctx.setLineDash([]);
  const chosen = box || state.faceBox;
  if (chosen) {
    const [x, y, w, h] = chosen;
    ctx.strokeStyle = "#00e676";
    ctx.strokeRect(x, y, w, h);
  }
}

function chooseFace(event) {
  // a click on one of the listed faces: send its box as face_box from now on
  if (!state.candidates.length) return;
  const canvas = $("photo-canvas");
  const r = canvas.getBoundingClientRect();
  const x = (event.clientX - r.left) * (canvas.width / r.width);
  const y = (event.clientY - r.top) * (canvas.height / r.height);
  const inside = state.candidates.filter(({ box: [bx, by, bw, bh] }) =>
    x >= bx && x <= bx + bw && y >= by && y <= by + bh);
  if (!inside.length) return;
  inside.sort((a, b) => a.box[2] * a.box[3] - b.box[2] * b.box[3]);
  state.faceBox = inside[0].box;
  drawPhoto(null);
  $("face-hint").textContent = `face chosen at ${state.faceBox.map(Math.round).join(", ")}: sent as face_box from now on`;
  $("face-hint").hidden = false;
}

function showFace(face) {
  if (!face) return;
  drawPhoto(face.box);
  if (face.aligned_png_base64) {
    $("aligned").src = `data:image/png;base64,${face.aligned_png_base64}`;
    $("aligned-figure").hidden = false;
  }
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showProblem({ title: "No webcam here", code: "no_camera",
      detail: "This browser gives no camera to this page (it needs localhost or https)." });
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" } });
  } catch (err) {
    showProblem({ title: "The webcam could not be opened", code: "no_camera", detail: String(err) });
    return;
  }
  $("camera").srcObject = state.stream;
  for (const id of ["camera", "camera-shoot", "camera-stop"]) $(id).hidden = false;
}

function stopCamera() {
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  state.stream = null;
  for (const id of ["camera", "camera-shoot", "camera-stop"]) $(id).hidden = true;
}

function shoot() {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => { if (blob) setPhoto(blob, "webcam.jpg"); }, "image/jpeg", 0.92);
}

// ---- results ----------------------------------------------------------------------
function clearResult() {
  $("problem").hidden = true;
  $("distance").hidden = true;
  $("candidates").hidden = true;
  $("verdict").className = "verdict muted";
  $("raw").textContent = "";
}

function setVerdict(text, kind) {
  $("verdict").textContent = text;
  $("verdict").className = `verdict ${kind || ""}`;
}

function showProblem(p) {
  const box = $("problem");
  box.replaceChildren();
  const head = document.createElement("strong");
  head.textContent = p.title || "Refused";
  const code = document.createElement("code");
  code.textContent = p.code ? ` (${p.code})` : "";
  const detail = document.createElement("p");
  detail.textContent = p.detail || "";
  box.append(head, code, detail);
  if (Array.isArray(p.errors)) {
    const list = document.createElement("ul");
    for (const e of p.errors) {
      const li = document.createElement("li");
      li.textContent = `${(e.loc || []).join(".")}: ${e.msg}`;
      list.append(li);
    }
    box.append(list);
  }
  box.hidden = false;
  setVerdict(p.status ? `refused (${p.status})` : "refused", "nomatch");
  if (Array.isArray(p.candidates) && p.candidates.length) {
    state.candidates = p.candidates;
    state.faceBox = null;
    drawPhoto(null);
    $("face-hint").textContent = `${p.candidates.length} faces: click the one to use, then send again`;
    $("face-hint").hidden = false;
  }
}

function showDistance(distance, threshold, match, label) {
  const scale = Math.max(1, distance * 1.1, threshold * 1.25);  // cosine distance is 0..2
  const fill = $("distance-fill");
  fill.style.width = `${Math.min(100, (distance / scale) * 100)}%`;
  fill.className = `fill ${match ? "match" : "nomatch"}`;
  $("threshold-mark").style.left = `${(threshold / scale) * 100}%`;
  $("distance-text").textContent =
    `distance ${distance.toFixed(3)} ${match ? "≤" : ">"} ${label || "threshold"} ${threshold.toFixed(3)} (0 = same face)`;
  $("distance").hidden = false;
}

function showCandidates(candidates, threshold) {
  const body = $("candidates").querySelector("tbody");
  body.replaceChildren();
  candidates.forEach((c, i) => {
    const tr = document.createElement("tr");
    const name = c.display_name ? `${c.person_id} (${c.display_name})` : c.person_id;
    const limit = c.threshold ?? threshold;  // each person's own: moved to their template's size
    for (const text of [String(i + 1), name, c.distance.toFixed(3), c.distance <= limit ? "yes" : "no"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  });
  $("candidates").hidden = candidates.length === 0;
}

// ---- actions ----------------------------------------------------------------------
function photoForm(fields) {
  const form = new FormData();
  form.append("image", state.photo, state.photoName || "photo.jpg");
  form.append("return_aligned", "true");
  if (state.faceBox) form.append("face_box", JSON.stringify(state.faceBox));
  for (const [k, v] of Object.entries(fields)) if (v !== "" && v !== null) form.append(k, v);
  return form;
}

async function send(kind) {
  clearResult();
  if (!state.photo) {
    showProblem({ title: "Choose a photo first", code: "image_missing",
      detail: "Pick a file or take a photo with the webcam." });
    return;
  }
  const personId = $("person-id").value.trim();
  let fields;
  if (kind === "enroll") {
    fields = { person_id: personId, display_name: $("display-name").value.trim(),
      replace: $("replace").checked ? "true" : "" };
  } else if (kind === "verify" || kind === "add-face") {
    fields = kind === "verify" ? { person_id: personId } : {};
  } else {
    fields = { top_k: $("top-k").value };
  }
  setVerdict(`${kind}…`, "muted");
  const path = kind === "add-face" ? `/persons/${encodeURIComponent(personId)}/faces` : `/${kind}`;
  const r = await call("POST", path, photoForm(fields));
  $("raw").textContent = JSON.stringify(r.body, (k, v) =>
    k === "aligned_png_base64" ? `${v.slice(0, 24)}… (${v.length} chars)` : v, 2);
  if (!r.ok) {
    showProblem({ status: r.status, ...r.body });
    return;
  }
  const b = r.body;
  showFace(b.face);
  if (kind === "enroll") {
    setVerdict(`${b.replaced ? "re-enrolled" : "enrolled"} ${b.person.person_id}`, "match");
    listPersons();
  } else if (kind === "add-face") {
    setVerdict(`added a photo to ${b.person_id}: template of ${b.template_size} photos`, "match");
    listPersons();
  } else if (kind === "verify") {
    setVerdict(b.match ? `match: this is ${b.person_id}` : `no match: not ${b.person_id}`,
      b.match ? "match" : "nomatch");
    showDistance(b.distance, b.threshold, b.match);
  } else {
    const threshold = b.threshold;
    if (b.match) setVerdict(`identified: ${b.match.person_id}`, "match");
    else setVerdict(b.candidates.length ? "unknown: nobody enrolled is within the threshold"
      : "unknown: nobody is enrolled", "nomatch");
    const label = b.gallery_size === undefined ? "threshold"
      : `identify threshold (gallery of ${b.gallery_size})`;
    if (b.candidates.length) showDistance(b.candidates[0].distance, b.candidates[0].threshold ?? threshold,
      Boolean(b.match), label);
    showCandidates(b.candidates, threshold);
  }
}

async function listPersons() {
  const r = await call("GET", `/persons?offset=${state.offset}&limit=${PAGE}`);
  const list = $("persons");
  list.replaceChildren();
  if (!r.ok) {
    showProblem({ status: r.status, ...r.body });
    return;
  }
  state.total = r.body.total;
  for (const p of r.body.items) {
    const li = document.createElement("li");
    li.dataset.personId = p.person_id;
    const label = document.createElement("span");
    label.textContent = (p.display_name ? `${p.person_id} (${p.display_name})` : p.person_id)
      + (p.template_size > 1 ? ` · ${p.template_size} photos` : "");
    const del = document.createElement("button");
    del.type = "button";
    del.className = "danger";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete ${p.person_id}`);
    del.addEventListener("click", () => deletePerson(p.person_id));
    li.append(label, del);
    list.append(li);
  }
  const last = Math.min(state.offset + r.body.items.length, state.total);
  $("persons-total").textContent = state.total
    ? `${state.offset + 1}–${last} of ${state.total}` : "nobody is enrolled";
  $("persons-prev").disabled = state.offset === 0;
  $("persons-next").disabled = last >= state.total;
}

async function deletePerson(personId) {
  if (!window.confirm(`Delete ${personId} and their stored embedding?`)) return;
  clearResult();
  const r = await call("DELETE", `/persons/${encodeURIComponent(personId)}`);
  if (!r.ok) {
    showProblem({ status: r.status, ...r.body });
    return;
  }
  setVerdict(`deleted ${personId}`, "muted");
  if (state.offset >= state.total - 1) state.offset = Math.max(0, state.offset - PAGE);
  listPersons();
}

// ---- wiring -----------------------------------------------------------------------
$("api-key").value = sessionStorage.getItem("faceapi-key") || "";
$("api-key").addEventListener("input", () => sessionStorage.setItem("faceapi-key", apiKey()));
$("photo-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) setPhoto(file, file.name);
});
$("photo-canvas").addEventListener("click", chooseFace);
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
$("camera-shoot").addEventListener("click", shoot);
for (const kind of ["enroll", "add-face", "verify", "identify"]) $(kind).addEventListener("click", () => send(kind));
$("persons-refresh").addEventListener("click", () => { state.offset = 0; listPersons(); });
$("persons-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); listPersons(); });
$("persons-next").addEventListener("click", () => { state.offset += PAGE; listPersons(); });
showStatus();
