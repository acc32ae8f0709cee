// What both views draw: status lines (errors as a sentence with the server's words under "details")
// and result cards (thumbnail, name, score, link to the original).
// Every label goes into the page as text (textContent, attributes), never as HTML.
import { blobUrl, fileUrl, session } from "./api.js";
import { errorSentence, t } from "./i18n.js";

const THUMB = 200;

export function basename(label) {
  return label.slice(label.lastIndexOf("/") + 1);
}

export function folderOf(label) {
  const i = label.lastIndexOf("/");
  return i > 0 ? label.slice(0, i) : "";
}

export function setStatus(el, text, isError) {
  el.classList.toggle("error", !!isError);
  el.replaceChildren(text);
}

export function showError(el, err) {
  const sentence = document.createElement("span");
  sentence.className = "message";
  sentence.textContent = errorSentence(err);
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = t("error.details");
  const code = document.createElement("code");
  code.textContent = err.http ? `HTTP ${err.http} ${err.message}` : err.message || String(err);
  details.append(summary, code);
  setStatus(el, sentence, true);
  el.append(" ", details);
}

function loadThumbnail(img, label) {
  img.addEventListener("load", () => {
    img.dataset.loaded = "1";
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  });
  img.addEventListener("error", () => img.classList.add("broken"));
  const url = fileUrl("thumbnail", label, THUMB);
  if (!session.token) { // the browser may fetch (and cache) it itself, when it comes into view
    img.loading = "lazy";
    img.src = url;
  } else {
    blobUrl(url).then((u) => { img.src = u; }, () => img.classList.add("broken"));
  }
}

// With a token a link cannot carry the header: fetch the file, then show it in the tab opened at the
// click (a tab opened after the fetch would be a blocked pop-up).
async function openWithToken(link) {
  const tab = window.open("", "_blank");
  try {
    const url = await blobUrl(link.href);
    if (tab) tab.location = url;
    else location.assign(url);
  } catch (e) {
    if (tab) tab.close();
    showError(link.closest("section").querySelector("[role=status]"), e);
  }
}

// A card for a hit {label, score, row}; onPick(hit) when it is clicked (or Enter) outside its link.
export function card(hit, onPick) {
  const name = basename(hit.label);
  const fig = document.createElement("figure");
  fig.className = "hit";
  fig.dataset.row = hit.row;
  fig.dataset.label = hit.label;
  const img = document.createElement("img");
  img.alt = name;
  loadThumbnail(img, hit.label);
  const cap = document.createElement("figcaption");
  const nameEl = document.createElement("span");
  nameEl.className = "name";
  nameEl.textContent = name;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  const open = document.createElement("a");
  open.className = "open";
  open.href = fileUrl("original", hit.label);
  open.target = "_blank";
  open.rel = "noopener";
  open.textContent = t("open");
  open.title = t("open.title", { what: hit.label });
  open.addEventListener("click", (e) => {
    e.stopPropagation();
    if (session.token) {
      e.preventDefault();
      openWithToken(open);
    }
  });
  cap.append(nameEl, score, open);
  fig.append(img, cap);
  if (onPick) {
    fig.title = t("card.title", { what: hit.label });
    fig.tabIndex = 0;
    fig.addEventListener("click", () => onPick(hit));
    fig.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === fig) onPick(hit); });
  } else {
    fig.title = hit.label;
  }
  return fig;
}
