// Where the tokens are kept between runs: memory (bots, tests), Web Storage (a browser tab or
// the whole browser), or WeChat's storage (wechat.ts).

/** A logged-in player's tokens and where to play. */
export interface Session {
  accessToken: string;
  /** Unix seconds. */
  accessExpire: number;
  /** Unix seconds after which the tokens should be refreshed. */
  refreshAfter: number;
  /** Works once: each refresh returns a new one (keep only the newest). */
  refreshToken: string;
  /** The game nodes' WebSocket addresses, best first (absolute, or a path on the REST host). */
  servers: string[];
  userId: number;
}

export interface SessionStore {
  load(): Session | null;
  save(s: Session | null): void;
}

export function memoryStore(initial: Session | null = null): SessionStore {
  let s = initial;
  return { load: () => s, save: (n) => void (s = n) };
}

interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** `sessionStorage` (per tab: gone when it closes) or `localStorage` (stays). */
export function webStore(storage: StorageLike, key = "rsgame.session"): SessionStore {
  return {
    load() {
      try {
        const raw = storage.getItem(key);
        return raw ? (JSON.parse(raw) as Session) : null;
      } catch {
        return null;
      }
    },
    save(s) {
      if (s) storage.setItem(key, JSON.stringify(s));
      else storage.removeItem(key);
    },
  };
}
