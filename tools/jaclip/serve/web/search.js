// The search view: text, "more like this" (a card's row) and image queries, the filters, and pages
// loaded as the list is scrolled (offset = results already received; a label already shown is
// skipped, so a page never repeats one).
import { api, postJson, session } from "./api.js";
import { t } from "./i18n.js";
import { pagedList } from "./paging.js";
import { basename, card, folderOf, setStatus } from "./ui.js";

const PAGE = 24;
const $ = (id) => document.getElementById(id);
const folders = new Set(); // folders of the labels seen, offered by the folder box
let list = null;
let last = null; // the query shown, { query, what }, to run again when the filters change

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
  last = { query, what };
  const body = Object.assign({ k: PAGE }, query, filters(), session.index ? { index: session.index } : {});
  const seen = new Set();
  let shown = 0;
  const fetch = (offset) => postJson("/v1/search", offset ? Object.assign({ offset }, body) : body);
  const draw = (answer) => {
    const fresh = answer.results.filter((hit) => !seen.has(hit.label) && seen.add(hit.label));
    const done = answer.results.length < PAGE;
    shown += fresh.length;
    $("results").append(...fresh.map((hit) => card(hit, pick)));
    offerFolders(fresh);
    const line = shown ? t("results." + what.kind, { what: what.name, n: shown }) : t("results.none");
    setStatus($("status"), shown && done ? line + t("results.end") : line);
    return { count: answer.results.length, last: done };
  };
  list.start(fetch, draw, t("searching"));
}

function pick(hit) {
  search({ row: hit.row }, { kind: "row", name: basename(hit.label) });
}

// An image query: encoded once (/v1/embed/image), then searched by its embedding page after page.
async function searchImage(file) {
  last = null;
  list.wait(t("searching"));
  const type = file.type.startsWith("image/") ? file.type : "application/octet-stream";
  try {
    const answer = await api("/v1/embed/image", { method: "POST", headers: { "Content-Type": type }, body: file });
    search({ embedding: answer.embeddings[0] }, { kind: "image", name: file.name });
  } catch (e) {
    list.fail(e);
  }
}

// The same query again (filters or index changed).
export function again() {
  if (last) search(last.query, last.what);
}

export function initSearch() {
  list = pagedList($("results"), $("status"), $("more"));
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
