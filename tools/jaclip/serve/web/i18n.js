// The page's strings in Japanese and English, one table. The language is chosen in the browser, from
// navigator.languages (the browser's Accept-Language order): the first entry that is Japanese or
// English wins; Japanese when none is either.
export const STRINGS = {
  ja: {
    "title": "jaclip 写真検索",
    "tab.search": "写真検索",
    "tab.dupes": "重複チェック",
    "query.label": "検索する言葉",
    "query.placeholder": "写真を言葉で探す（例: 犬の写真）",
    "go": "検索",
    "index.label": "インデックス",
    "token.label": "トークン",
    "drop": "画像をここにドロップすると、似た写真を探します（またはクリックして選択）",
    "filters": "絞り込み",
    "filter.folder": "フォルダ",
    "filter.folder.placeholder": "例: /home/me/写真/2024",
    "filter.after": "この日から",
    "filter.before": "この日まで",
    "filter.types": "ファイルの種類",
    "filter.apply": "この条件で検索",
    "filter.clear": "条件を消す",
    "searching": "検索中…",
    "loading.more": "続きを読み込み中…",
    "results.text": "「{what}」の検索結果: {n} 件",
    "results.row": "{what} に似た写真: {n} 件",
    "results.image": "画像 {what} に似た写真: {n} 件",
    "results.end": "（これで全部です）",
    "results.none": "条件に合う写真はありません。",
    "open": "元の写真",
    "open.title": "元の写真を開く: {what}",
    "card.title": "{what}\nクリックすると似た写真を探します",
    "no.index": "インデックスが読み込まれていません。jaclip serve を --index 付きで起動してください。",
    "need.token": "このサーバーにはトークンが必要です。入力してから検索してください。",
    "dupes.threshold": "類似度のしきい値",
    "dupes.exact": "完全に同じファイルだけ",
    "dupes.go": "重複を探す",
    "dupes.searching": "重複を探しています…（大きなインデックスでは数秒かかります）",
    "dupes.count": "重複グループ: {n} 件",
    "dupes.none": "重複は見つかりませんでした。",
    "dupes.group.exact": "同じファイル（{n} 枚）",
    "dupes.group.near": "よく似た写真（{n} 枚）",
    "error.details": "詳細",
    "error.network": "サーバーに接続できません。jaclip serve が動いているか確かめてください。",
    "error.SERVE_UNAUTHORIZED": "トークンがないか、正しくありません。",
    "error.SERVE_FORBIDDEN": "このページからの要求はサーバーに断られました。",
    "error.SERVE_BUSY": "サーバーが混み合っています。少し待ってからもう一度お試しください。",
    "error.SERVE_BODY_TOO_LARGE": "ファイルが大きすぎて送れません。",
    "error.SERVE_TOO_MUCH_WORK": "一度に頼める量を超えています。",
    "error.JACLIP_ERROR_IMAGE_DECODE": "この画像は読み込めません（壊れているか、対応していない形式です）。",
    "error.JACLIP_ERROR_IMAGE_TOO_LARGE": "画像が大きすぎます。",
    "error.JACLIP_ERROR_INVALID_ARGUMENT": "検索の条件が正しくありません。日付やフォルダを確かめてください。",
    "error.JACLIP_ERROR_INVALID_UTF8": "文字が正しく送られませんでした。",
    "error.JACLIP_ERROR_NOT_FOUND": "見つかりません。インデックスが更新されたかもしれません。もう一度検索してください。",
    "error.server": "サーバーでエラーが起きました。",
    "error.other": "要求を処理できませんでした。",
  },
  en: {
    "title": "jaclip photo search",
    "tab.search": "Photo search",
    "tab.dupes": "Duplicates",
    "query.label": "Words to search for",
    "query.placeholder": "Find photos by words (e.g. a dog on the beach)",
    "go": "Search",
    "index.label": "Index",
    "token.label": "Token",
    "drop": "Drop an image here to find photos like it (or click to choose one)",
    "filters": "Filters",
    "filter.folder": "Folder",
    "filter.folder.placeholder": "e.g. /home/me/Pictures/2024",
    "filter.after": "From",
    "filter.before": "Until",
    "filter.types": "File types",
    "filter.apply": "Apply",
    "filter.clear": "Clear filters",
    "searching": "Searching…",
    "loading.more": "Loading more…",
    "results.text": "{n} results for “{what}”",
    "results.row": "{n} photos like {what}",
    "results.image": "{n} photos like the image {what}",
    "results.end": " (that is all)",
    "results.none": "No photo matches.",
    "open": "Original",
    "open.title": "Open the original photo: {what}",
    "card.title": "{what}\nClick to find photos like this one",
    "no.index": "No index is loaded: start jaclip serve with --index.",
    "need.token": "This server needs a token: type it in, then search.",
    "dupes.threshold": "Similarity threshold",
    "dupes.exact": "Identical files only",
    "dupes.go": "Find duplicates",
    "dupes.searching": "Looking for duplicates… (seconds on a large index)",
    "dupes.count": "{n} groups of duplicates",
    "dupes.none": "No duplicates found.",
    "dupes.group.exact": "Identical files ({n})",
    "dupes.group.near": "Near duplicates ({n})",
    "error.details": "Details",
    "error.network": "Cannot reach the server: check that jaclip serve is running.",
    "error.SERVE_UNAUTHORIZED": "The token is missing or wrong.",
    "error.SERVE_FORBIDDEN": "The server refused a request from this page.",
    "error.SERVE_BUSY": "The server is busy: try again in a moment.",
    "error.SERVE_BODY_TOO_LARGE": "The file is too large to send.",
    "error.SERVE_TOO_MUCH_WORK": "That is more work than one request may ask for.",
    "error.JACLIP_ERROR_IMAGE_DECODE": "This image cannot be read (it is damaged, or in a format the server does not decode).",
    "error.JACLIP_ERROR_IMAGE_TOO_LARGE": "The image is too large.",
    "error.JACLIP_ERROR_INVALID_ARGUMENT": "The search conditions are not valid: check the dates and the folder.",
    "error.JACLIP_ERROR_INVALID_UTF8": "Some characters were not sent correctly.",
    "error.JACLIP_ERROR_NOT_FOUND": "Not found: the index may have changed. Search again.",
    "error.server": "The server failed to answer.",
    "error.other": "The request could not be processed.",
  },
};

export function pickLanguage(languages) {
  for (const tag of languages || []) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (primary in STRINGS) return primary;
  }
  return "ja";
}

export const lang = pickLanguage(navigator.languages && navigator.languages.length ? navigator.languages
  : [navigator.language]);

// The string for key, with {name} replaced by vars.name (plain text: callers put it in textContent).
export function t(key, vars) {
  const text = STRINGS[lang][key] ?? STRINGS.ja[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (vars && name in vars ? String(vars[name]) : m));
}

// A sentence for an ApiError (api.js): by the server's status name, else by the HTTP status class.
// http 0: the server was not reached; no http at all: not an answer of the server (a script error).
export function errorSentence(err) {
  if (err.http === 0) return t("error.network");
  if (!err.http) return t("error.other");
  const key = "error." + err.status;
  if (key in STRINGS[lang]) return t(key);
  return t(err.http >= 500 ? "error.server" : "error.other");
}

// Fills the elements marked data-i18n (text), data-i18n-placeholder, data-i18n-label (aria-label).
export function applyStrings(root) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}
