// A list that loads a page at a time while its end is within a screen of the view (infinite
// scrolling), for both views. box.dataset.state says where it is: loading, more, done or error.
import { t } from "./i18n.js";
import { setStatus, showError } from "./ui.js";

// Calls more() when sentinel comes within a screen of the view. The function returned asks again, to
// call after a page is drawn: a sentinel that stayed in range moved no intersection, and observing
// anew reports where it is now.
function pager(sentinel, more) {
  const observer = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) more(); },
    { rootMargin: "0px 0px 100% 0px" });
  observer.observe(sentinel);
  return () => {
    observer.unobserve(sentinel);
    observer.observe(sentinel);
  };
}

// box holds the items, statusEl says what is shown (or what failed), sentinel follows box.
export function pagedList(box, statusEl, sentinel) {
  let current = null; // { fetch, draw, offset, done, busy }

  async function more() {
    const s = current;
    if (!s || s.done || s.busy) return;
    s.busy = true;
    sentinel.textContent = s.offset ? t("loading.more") : "";
    let answer;
    try {
      answer = await s.fetch(s.offset);
    } catch (e) {
      if (s === current) fail(e);
      return;
    } finally {
      s.busy = false;
      if (s === current) sentinel.textContent = "";
    }
    if (s !== current) return; // a newer list replaced this one while the page was on its way
    const { count, last } = s.draw(answer, s.offset);
    s.offset += count;
    s.done = last;
    box.dataset.state = last ? "done" : "more";
    check();
  }
  const check = pager(sentinel, more);

  // Nothing shown, text in the status line, until start() or fail().
  function wait(text) {
    current = null;
    box.replaceChildren();
    box.dataset.state = "loading";
    setStatus(statusEl, text);
  }

  function fail(e) {
    current = null;
    box.dataset.state = "error";
    showError(statusEl, e);
  }

  // fetch(offset) answers a page; draw(answer, offset) adds it to box, sets the status line and says
  // how many positions it covered and whether it was the last.
  function start(fetch, draw, text) {
    wait(text);
    current = { fetch, draw, offset: 0, done: false, busy: false };
    more();
  }

  return { start, wait, fail, clear: () => wait(""), active: () => current !== null };
}
