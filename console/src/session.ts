/**
 * The admin token lives in `sessionStorage`: gone when the tab closes, never
 * in a URL (where history, logs and Referer headers would keep it).
 */
const KEY = "funnel.console.token";

/** The token this tab signed in with, or undefined. */
export function storedToken(): string | undefined {
  return sessionStorage.getItem(KEY) ?? undefined;
}

/** Keeps the token for this tab. */
export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

/** Forgets the token (sign out, or refused by the server). */
export function clearToken(): void {
  sessionStorage.removeItem(KEY);
}
