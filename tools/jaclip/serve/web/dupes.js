// The duplicates view: /v1/duplicates of the chosen index, a page of groups at a time as the list is
// scrolled; each group a row of cards (its first photo, then the others with their cosine to it).
import { api, session } from "./api.js";
import { t } from "./i18n.js";
import { card, pager, setStatus, showError } from "./ui.js";

const LIMIT = 12;
const $ = (id) => document.getElementById(id);
let current = null; // { query, offset, total, done, busy }
let check = () => {};

function group(g) {
  const box = document.createElement("section");
  box.className = "group";
  box.dataset.exact = g.exact ? "1" : "0";
  const title = document.createElement("h2");
  title.textContent = t(g.exact ? "dupes.group.exact" : "dupes.group.near", { n: g.rows.length });
  const hits = document.createElement("div");
  hits.className = "group-hits";
  hits.append(...g.rows.map((hit) => card(hit, null)));
  box.append(title, hits);
  return box;
}

async function more() {
  const s = current;
  if (!s || s.done || s.busy) return;
  s.busy = true;
  const q = new URLSearchParams(s.query);
  q.set("offset", String(s.offset));
  let answer;
  try {
    answer = await api("/v1/duplicates?" + q);
  } catch (e) {
    if (s === current) {
      s.done = true;
      $("groups").dataset.state = "error";
      showError($("dupes-status"), e);
    }
    return;
  } finally {
    s.busy = false;
  }
  if (s !== current) return;
  s.offset += answer.groups.length;
  s.done = !answer.groups.length || s.offset >= answer.total;
  $("groups").append(...answer.groups.map(group));
  $("groups").dataset.state = s.done ? "done" : "more";
  setStatus($("dupes-status"), answer.total ? t("dupes.count", { n: answer.total }) : t("dupes.none"));
  check();
}

export function findDupes() {
  const query = { threshold: $("dupes-threshold").value, exact_only: $("dupes-exact").checked ? "1" : "0",
    limit: String(LIMIT) };
  if (session.index) query.index = session.index;
  current = { query, offset: 0, done: false, busy: false };
  $("groups").replaceChildren();
  $("groups").dataset.state = "loading";
  setStatus($("dupes-status"), t("dupes.searching"));
  more();
}

// The view was opened: the first search, unless one was made.
export function showDupes() {
  if (!current) findDupes();
}

export function forgetDupes() {
  current = null;
  $("groups").replaceChildren();
}

export function initDupes() {
  check = pager($("dupes-more"), more);
  $("dupes-form").addEventListener("submit", (e) => {
    e.preventDefault();
    findDupes();
  });
}
