// The API client: the token lives in sessionStorage (gone when the tab closes).

const TOKEN = "riskstream.token";
const USER = "riskstream.user";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function session() {
  const token = sessionStorage.getItem(TOKEN);
  const user = sessionStorage.getItem(USER);
  return token && user ? { token, user: JSON.parse(user) } : null;
}

export async function login(token) {
  const user = await call("GET", "/me", undefined, token.trim());
  sessionStorage.setItem(TOKEN, token.trim());
  sessionStorage.setItem(USER, JSON.stringify(user));
  return user;
}

export function logout() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(USER);
}

export async function call(method, path, body, token) {
  const headers = { Accept: "application/json" };
  const bearer = token || sessionStorage.getItem(TOKEN);
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "network", `The API did not answer (${err.message}); is riskstream run api still running?`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = (data && data.error) || "error";
    const message = (data && data.message) || `${response.status} ${response.statusText}`;
    if (response.status === 401 && !token) logout();
    throw new ApiError(response.status, code, message);
  }
  return data;
}

export function path(...parts) {
  return parts.map((p) => encodeURIComponent(p)).join("/");
}

// Fetch a text document the API renders (a report) and hand it to the browser as a file:
// a plain link cannot carry the bearer token.
export async function download(apiPath, filename) {
  const response = await fetch(`/api/v1${apiPath}`, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN) || ""}` },
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, "error", message);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
