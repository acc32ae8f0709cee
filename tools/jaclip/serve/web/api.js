// The JSON API of the same server: the token (if any) as a bearer header, errors as ApiError.
export const session = { token: "", index: "" };

const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (hashToken) sessionStorage.setItem("jaclip-token", hashToken);
session.token = sessionStorage.getItem("jaclip-token") || "";

export function setToken(token) {
  session.token = token;
  sessionStorage.setItem("jaclip-token", token);
}

// What went wrong: http 0 when the server could not be reached; status is the server's name for it
// (JACLIP_ERROR_…, SERVE_…) and detail its own words, kept for the page's "details".
export class ApiError extends Error {
  constructor(http, status, detail) {
    super(`${status || "HTTP " + http}: ${detail}`);
    this.http = http;
    this.status = status;
    this.detail = detail;
  }
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (session.token) h["Authorization"] = "Bearer " + session.token;
  return h;
}

async function send(path, options) {
  try {
    return await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  } catch (e) {
    throw new ApiError(0, "", String(e.message || e));
  }
}

async function refusal(response) {
  const e = (await response.json().catch(() => ({}))).error || {};
  return new ApiError(response.status, e.status || "", e.message || response.statusText);
}

export async function api(path, options) {
  const response = await send(path, options);
  if (!response.ok) throw await refusal(response);
  return response.json().catch(() => { throw new ApiError(response.status, "", "the answer is not JSON"); });
}

export function postJson(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// An object URL of a binary answer (thumbnail, original) fetched with the token; the caller revokes it.
export async function blobUrl(path) {
  const response = await send(path);
  if (!response.ok) throw await refusal(response);
  return URL.createObjectURL(await response.blob());
}

// The URL of a row's file (original) or thumbnail, named by its label: stable across index reloads.
export function fileUrl(kind, label, size) {
  const q = new URLSearchParams({ index: session.index, label });
  if (size) q.set("size", String(size));
  return `/v1/${kind}?${q}`;
}
