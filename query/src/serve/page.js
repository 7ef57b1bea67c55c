"use strict";
const params = new URLSearchParams(location.search);
// The server's token, where it has one, is in an HttpOnly cookie (set when the page is first
// opened with its token), which the browser sends with every same-origin request: it never
// appears in this page's URLs. The header tells the server that this page, not another site's form, sent a POST.
const headers = { "X-Clipsearch": "page" };
const $ = (id) => document.getElementById(id);
let current = null;

async function call(url, options) {
  const response = await fetch(url, Object.assign({ headers }, options || {}));
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const monthOf = (taken) => taken ? MONTHS[parseInt(taken.slice(5, 7), 10) - 1] + " " + taken.slice(0, 4) : "Undated";
const FILTERS = ["after", "before", "place", "camera"];

// The filter controls and the order as query parameters (empty ones left out).
function filterParams() {
  const p = {};
  for (const k of FILTERS) { const v = $("f-" + k).value.trim(); if (v) p[k] = v; }
  if ($("sort").value !== "score") p.sort = $("sort").value;
  return p;
}

function show(body, what) {
  const results = body.results;
  const grid = $("grid");
  grid.replaceChildren();
  $("status").textContent = results.length ? results.length + " results for " + what : (body.message || "Nothing found for " + what);
  // Sorted by date (or listed by filters alone): grouped by month.
  const byDate = $("sort").value !== "score" || results.every(r => r.score == null);
  let month = null;
  for (const r of results) {
    if (byDate && monthOf(r.taken) !== month) {
      month = monthOf(r.taken);
      const h = document.createElement("h2");
      h.className = "month";
      h.textContent = month;
      grid.append(h);
    }
    const card = document.createElement("div");
    card.className = "hit";
    card.dataset.id = r.id;
    if (r.taken) card.dataset.taken = r.taken;
    const where = (r.source ? r.source + ":" : "") + r.path;
    if (r.thumbnail) {
      const img = document.createElement("img");
      img.loading = "lazy";
      img.alt = where;
      img.src = r.thumbnail;
      card.append(img);
    } else {
      // A shared collection's file on another machine: a server there shows it.
      const elsewhere = document.createElement("div");
      elsewhere.className = "elsewhere";
      elsewhere.textContent = where;
      card.append(elsewhere);
    }
    if (r.score != null) {
      const score = document.createElement("div");
      score.className = "score";
      score.textContent = r.score.toFixed(3);
      card.append(score);
    }
    const when = document.createElement("div");
    when.className = "when";
    when.textContent = [r.taken ? r.taken.slice(0, 10) : "", r.place ? r.place.split(",")[0] : ""].filter(Boolean).join(" · ");
    card.append(when);
    card.addEventListener("click", () => open(r));
    grid.append(card);
  }
}

async function run(label, promise) {
  $("status").textContent = "Searching…";
  try { show(await promise, label); }
  catch (e) { $("status").textContent = "Error: " + e.message; }
}

function search() {
  const q = $("q").value.trim();
  const filters = filterParams();
  const onlyOrder = Object.keys(filters).every(k => k === "sort");
  if (!q && onlyOrder) return;
  const query = Object.assign(q ? { q } : {}, filters);
  history.replaceState(null, "", "?" + new URLSearchParams(query));
  const label = q ? "“" + q + "”" : Object.entries(filters).map(([k, v]) => k + " " + v).join(", ");
  run(label, call("/api/search?" + new URLSearchParams(Object.assign({ n: 48 }, query))));
}

function row(name, value) {
  if (value == null || value === "") return [];
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = name;
  dd.textContent = value;
  return [dt, dd];
}

async function open(r) {
  current = r;
  $("large").src = r.image ? r.image : "";
  $("path").textContent = (r.source ? r.source + ":" : "") + r.path + (r.score != null ? "  ·  " + r.score.toFixed(3) : "");
  $("info").replaceChildren();
  $("viewer").classList.add("open");
  try {
    const i = await call("/api/info/" + r.id);
    if (current !== r) return;
    const taken = i.taken ? i.taken.replace("T", " ") + (i.time_is_guess ? " (file date)" : "") : null;
    $("info").replaceChildren(
      ...row("Taken", taken),
      ...row("Place", i.place && i.place.label),
      ...row("Camera", [i.camera, i.lens].filter(Boolean).join(", ")),
      ...row("Size", i.width ? i.width + " × " + i.height + ", " + (i.size / 1e6).toFixed(1) + " MB" + (i.format ? ", " + i.format : "") : null),
      ...row("Machine", i.source),
      ...row("Path", i.path),
      ...row("RAW", i.raw));
  } catch (e) {
    $("info").replaceChildren(...row("Info", e.message));
  }
}

function close() { $("viewer").classList.remove("open"); }

$("filters").addEventListener("submit", (e) => e.preventDefault());
$("go").addEventListener("click", search);
$("q").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
$("filters").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
$("sort").addEventListener("change", search);
$("close").addEventListener("click", close);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
$("more").addEventListener("click", () => {
  if (!current) return;
  const r = current;
  close();
  const query = new URLSearchParams(Object.assign({ n: 48 }, filterParams()));
  run("images like " + r.path.split("/").pop(), call("/api/similar/" + r.id + "?" + query));
});

let depth = 0;
document.addEventListener("dragenter", (e) => { e.preventDefault(); depth++; document.body.classList.add("dragging"); });
document.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; document.body.classList.remove("dragging"); } });
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => {
  e.preventDefault();
  depth = 0;
  document.body.classList.remove("dragging");
  const file = e.dataTransfer.files[0];
  if (file) run("the dropped " + file.name, call("/api/similar?" + new URLSearchParams(Object.assign({ n: 48 }, filterParams())), { method: "POST", body: file }));
});

for (const k of FILTERS) if (params.get(k)) $("f-" + k).value = params.get(k);
if (params.get("sort")) $("sort").value = params.get("sort");
if (params.get("q") || FILTERS.some(k => params.get(k))) { $("q").value = params.get("q") || ""; search(); }
