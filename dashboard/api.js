// The daemon's HTTP API, same origin, with the tab's token (team mode).

const KEY = 'signet.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** A refused call: `status` and the server's JSON body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ? `${body.error} (${status})` : `request failed (${status})`);
    this.status = status;
    this.body = body ?? {};
  }
}

let unauthorized = () => {};
/** What to do when the server answers 401 (the app shows the token prompt). */
export function onUnauthorized(f) { unauthorized = f; }
export function signalUnauthorized(message) { unauthorized(message); }

/** Headers for every call: the bearer token and who acts. */
export function headers(extra = {}) {
  const h = { 'x-signet-actor': 'dashboard', 'x-signet-actor-type': 'operator', ...extra };
  const t = token.get();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

/** A path with its query string (empty values left out). */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Call the API; resolves to the JSON answer, throws ApiError otherwise. */
export async function api(path, { method = 'GET', body, query } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }), credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(withQuery(path, query), init);
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text.slice(0, 200) }; }
  }
  if (r.status === 401) unauthorized(data?.error);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/** Percent-encode one path segment. */
export const seg = (s) => encodeURIComponent(s);
