// Calls to the Tidings API with the key (when one is set) and the one error shape.

const KEY = "tidings.key";

export const key = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body, text) {
    const error = (body && body.error) || {};
    super(error.message || text || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || (status === 0 ? "network_error" : "http_error");
    this.details = error.details || [];
  }

  /** The query parameter or body field the server blamed, if any. */
  get field() {
    const loc = this.details[0] && this.details[0].loc;
    return Array.isArray(loc) && loc.length > 1 ? String(loc[1]) : null;
  }
}

const unauthorizedListeners = [];

/** Called with the error whenever the server answers 401. */
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

function withQuery(path, query) {
  if (!query) return path;
  const params = query instanceof URLSearchParams ? query : new URLSearchParams(query);
  const text = params.toString();
  return text ? path + (path.includes("?") ? "&" : "?") + text : path;
}

/** A URL for what a browser opens itself (EventSource, a download): the key goes in the query. */
export function tokenUrl(path, query) {
  const params = new URLSearchParams(query || {});
  const secret = key.get();
  if (secret) params.set("access_token", secret);
  return withQuery(path, params);
}

/** fetch a JSON API path; resolves to the decoded body, rejects with ApiError. */
export async function api(path, { method = "GET", query, body } = {}) {
  const headers = { Accept: "application/json" };
  const secret = key.get();
  if (secret) headers.Authorization = "Bearer " + secret;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(withQuery(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, null, "the server cannot be reached");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let decoded = null;
  try {
    decoded = text ? JSON.parse(text) : null;
  } catch {
    decoded = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, decoded, text);
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
    throw error;
  }
  return decoded;
}
