// The page's start: its strings, the indexes (or the token prompt), the two views. See search.js,
// dupes.js, ui.js (cards, statuses, paging), api.js (the JSON API), i18n.js (the strings).
import { api, session, setToken } from "./api.js";
import { applyStrings, t } from "./i18n.js";
import { setStatus, showError } from "./ui.js";
import { again, initSearch, search } from "./search.js";
import { forgetDupes, initDupes, showDupes } from "./dupes.js";

const $ = (id) => document.getElementById(id);

async function loadIndexes() {
  try {
    const info = await api("/v1/indexes");
    const select = $("index");
    select.replaceChildren(...info.indexes.map((x) => new Option(`${x.name} (${x.rows})`, x.name)));
    select.hidden = info.indexes.length < 2;
    session.index = select.value;
    $("token").hidden = true;
    if (info.indexes.length) setStatus($("status"), "");
    else setStatus($("status"), t("no.index"), true);
    return true;
  } catch (e) {
    if (e.http === 401) $("token").hidden = false;
    if (e.http === 401 && !session.token) {
      setStatus($("status"), t("need.token"), true);
    } else {
      showError($("status"), e);
    }
    return false;
  }
}

function showView(name) {
  for (const view of ["search", "dupes"]) {
    $(`${view}-view`).hidden = view !== name;
    $(`tab-${view}`).setAttribute("aria-selected", String(view === name));
  }
  if (name === "dupes") showDupes();
}

applyStrings(document);
initSearch();
initDupes();
$("tab-search").addEventListener("click", () => showView("search"));
$("tab-dupes").addEventListener("click", () => showView("dupes"));
$("index").addEventListener("change", () => {
  session.index = $("index").value;
  forgetDupes();
  again();
  if (!$("dupes-view").hidden) showDupes();
});
$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!$("token").hidden && $("token").value) {
    setToken($("token").value);
    if (!(await loadIndexes())) return;
  }
  const text = $("query").value.trim();
  if (text) {
    showView("search");
    search({ text }, { kind: "text", name: text });
  }
});
loadIndexes();
