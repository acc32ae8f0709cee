// The duplicates view: /v1/duplicates of the chosen index, a page of groups at a time as the list is
// scrolled; each group a row of cards (its first photo, then the others with their cosine to it).
import { api, session } from "./api.js";
import { t } from "./i18n.js";
import { pagedList } from "./paging.js";
import { card, setStatus } from "./ui.js";

const LIMIT = 12;
const $ = (id) => document.getElementById(id);
let list = null;

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

export function findDupes() {
  const query = { threshold: $("dupes-threshold").value, exact_only: $("dupes-exact").checked ? "1" : "0",
    limit: String(LIMIT) };
  if (session.index) query.index = session.index;
  const fetch = (offset) => api("/v1/duplicates?" + new URLSearchParams(Object.assign({ offset }, query)));
  const draw = (answer, offset) => {
    $("groups").append(...answer.groups.map(group));
    setStatus($("dupes-status"), answer.total ? t("dupes.count", { n: answer.total }) : t("dupes.none"));
    return { count: answer.groups.length, last: !answer.groups.length || offset + answer.groups.length >= answer.total };
  };
  list.start(fetch, draw, t("dupes.searching"));
}

// The view was opened: the first search, unless one was made.
export function showDupes() {
  if (!list.active()) findDupes();
}

export function forgetDupes() {
  list.clear();
}

export function initDupes() {
  list = pagedList($("groups"), $("dupes-status"), $("dupes-more"));
  $("dupes-form").addEventListener("submit", (e) => {
    e.preventDefault();
    findDupes();
  });
}
