"use strict";
// The search page: text search, "more like this" on a click, search by a dropped image. Everything goes
// through the JSON API of the same server; thumbnails are fetched with the token (if any) as blobs.
const $ = (id) => document.getElementById(id);
const state = { token: "", indexes: [], k: 24, generation: 0 };

const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (hashToken) sessionStorage.setItem("jaclip-token", hashToken);
state.token = sessionStorage.getItem("jaclip-token") || "";

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  return h;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = body.error || {};
    const err = new Error((e.status || response.status) + ": " + (e.message || response.statusText));
    err.http = response.status;
    throw err;
  }
  return body;
}

function indexName() {
  return state.indexes.length > 1 ? $("index").value : undefined;
}

async function loadIndexes() {
  try {
    const info = await api("/v1/indexes");
    state.indexes = info.indexes;
    const select = $("index");
    select.replaceChildren(...info.indexes.map((x) => new Option(`${x.name} (${x.rows})`, x.name)));
    select.hidden = info.indexes.length < 2;
    $("token").hidden = true;
    setStatus(info.indexes.length ? "" : "No index is loaded: start jaclip serve with --index.", !info.indexes.length);
  } catch (e) {
    if (e.http === 401) {
      $("token").hidden = false;
      setStatus("This server needs a token.", true);
    } else {
      setStatus(e.message, true);
    }
  }
}

function basename(label) {
  const i = label.lastIndexOf("/");
  return i >= 0 ? label.slice(i + 1) : label;
}

async function thumbnail(img, row, generation) {
  const q = new URLSearchParams({ row: String(row), size: "200" });
  if (indexName()) q.set("index", indexName());
  try {
    const response = await fetch("/v1/thumbnail?" + q, { headers: headers() });
    if (!response.ok || generation !== state.generation) return;
    img.src = URL.createObjectURL(await response.blob());
    img.onload = () => URL.revokeObjectURL(img.src);
    img.dataset.loaded = "1";
  } catch (e) { /* leave the grey square */ }
}

function show(results, what) {
  const generation = ++state.generation;
  const cards = results.map((hit, rank) => {
    const fig = document.createElement("figure");
    fig.className = "hit";
    fig.dataset.row = hit.row;
    fig.dataset.label = hit.label;
    fig.dataset.rank = rank;
    fig.title = hit.label + "\nclick: more like this";
    const img = document.createElement("img");
    img.alt = basename(hit.label);
    const cap = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = basename(hit.label);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    cap.append(name, score);
    fig.append(img, cap);
    fig.addEventListener("click", () => search({ row: hit.row }, "more like " + basename(hit.label)));
    thumbnail(img, hit.row, generation);
    return fig;
  });
  $("results").replaceChildren(...cards);
  setStatus(`${results.length} results for ${what}`);
}

async function search(query, what) {
  const body = Object.assign({ k: state.k }, query);
  if (indexName()) body.index = indexName();
  setStatus("searching…");
  try {
    const answer = await api("/v1/search", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    show(answer.results, what);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function searchImage(file) {
  const q = new URLSearchParams({ k: String(state.k) });
  if (indexName()) q.set("index", indexName());
  setStatus("searching…");
  try {
    const answer = await api("/v1/search?" + q, {
      method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file,
    });
    show(answer.results, "the image " + file.name);
  } catch (e) {
    setStatus(e.message, true);
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!$("token").hidden && $("token").value) {
    state.token = $("token").value;
    sessionStorage.setItem("jaclip-token", state.token);
    loadIndexes();
  }
  const text = $("query").value.trim();
  if (text) search({ text }, "「" + text + "」");
});
const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
$("file").addEventListener("change", () => { if ($("file").files[0]) searchImage($("file").files[0]); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) searchImage(e.dataTransfer.files[0]);
});
loadIndexes();
