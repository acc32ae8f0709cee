// The search view: text, "more like this" (a card's row) and image queries, the filters, and pages
// loaded as the list is scrolled (offset = results already received; a label already shown is
// skipped, so a page never repeats one).
import { api, postJson, session } from "./api.js";
import { t } from "./i18n.js";
import { basename, card, folderOf, pager, setStatus, showError } from "./ui.js";

const PAGE = 24;
const $ = (id) => document.getElementById(id);
const folders = new Set(); // folders of the labels seen, offered by the folder box
let current = null; // { query, what, filters, index, offset, seen, count, done, busy }
let check = () => {};

function dayAfter(date) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}

// The API's filters from the form. "Until" is the whole day: before = the day after it.
function filters() {
  const f = {};
  const folder = $("folder").value.trim();
  if (folder) f.folder = folder;
  if ($("after").value) f.after = $("after").value;
  if ($("before").value) f.before = dayAfter($("before").value);
  const types = [...document.querySelectorAll("#types input:checked")].flatMap((box) => box.value.split(","));
  if (types.length) f.types = types;
  return f;
}

function offerFolders(hits) {
  const before = folders.size;
  for (const hit of hits) if (folders.size < 500 && folderOf(hit.label)) folders.add(folderOf(hit.label));
  if (folders.size === before) return;
  $("folders").replaceChildren(...[...folders].sort().map((f) => new Option(f)));
}

// what: { kind: "text" | "row" | "image", name } for the status line.
export function search(query, what) {
  current = { query, what, filters: filters(), index: session.index, offset: 0, seen: new Set(), count: 0,
    done: false, busy: false };
  $("results").replaceChildren();
  $("results").dataset.state = "loading";
  setStatus($("status"), t("searching"));
  more();
}

async function more() {
  const s = current;
  if (!s || s.done || s.busy) return;
  s.busy = true;
  $("more").textContent = s.offset ? t("loading.more") : "";
  const body = Object.assign({ k: PAGE }, s.query, s.filters, s.index ? { index: s.index } : {});
  if (s.offset) body.offset = s.offset;
  let answer;
  try {
    answer = await postJson("/v1/search", body);
  } catch (e) {
    if (s === current) {
      s.done = true;
      $("results").dataset.state = "error";
      showError($("status"), e);
    }
    return;
  } finally {
    s.busy = false;
    if (s === current) $("more").textContent = "";
  }
  if (s !== current) return;
  s.offset += answer.results.length;
  s.done = answer.results.length < PAGE;
  const fresh = answer.results.filter((hit) => !s.seen.has(hit.label) && s.seen.add(hit.label));
  s.count += fresh.length;
  $("results").append(...fresh.map((hit) => card(hit, pick)));
  $("results").dataset.state = s.done ? "done" : "more";
  offerFolders(fresh);
  const line = s.count ? t("results." + s.what.kind, { what: s.what.name, n: s.count }) : t("results.none");
  setStatus($("status"), s.count && s.done ? line + t("results.end") : line);
  check();
}

function pick(hit) {
  search({ row: hit.row }, { kind: "row", name: basename(hit.label) });
}

// An image query: encoded once (/v1/embed/image), then searched by its embedding page after page.
async function searchImage(file) {
  current = null;
  $("results").replaceChildren();
  $("results").dataset.state = "loading";
  setStatus($("status"), t("searching"));
  const type = file.type.startsWith("image/") ? file.type : "application/octet-stream";
  try {
    const answer = await api("/v1/embed/image", { method: "POST", headers: { "Content-Type": type }, body: file });
    search({ embedding: answer.embeddings[0] }, { kind: "image", name: file.name });
  } catch (e) {
    $("results").dataset.state = "error";
    showError($("status"), e);
  }
}

// The same query again (filters or index changed).
export function again() {
  if (current) search(current.query, current.what);
}

export function initSearch() {
  check = pager($("more"), more);
  const form = $("filter-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    again();
  });
  form.addEventListener("change", (e) => { if (e.target.id !== "folder") again(); });
  $("clear-filters").addEventListener("click", () => {
    form.reset();
    again();
  });
  const drop = $("drop");
  const choose = () => $("file").click();
  drop.addEventListener("click", choose);
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(); } });
  $("file").addEventListener("change", () => {
    if ($("file").files[0]) searchImage($("file").files[0]);
    $("file").value = "";
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) searchImage(e.dataTransfer.files[0]);
  });
}
