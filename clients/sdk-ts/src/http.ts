// REST over whatever the host offers: fetch (browsers, Node ≥ 18, Laya, Cocos) or wx.request.

export interface HttpRequest {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  /** JSON text, or bytes (an upload's multipart body). */
  body?: string | Uint8Array;
}

export interface HttpResponse {
  status: number;
  text: string;
}

/** Sends one request; rejects only when no answer came (no network, DNS, a reset). */
export type Http = (req: HttpRequest) => Promise<HttpResponse>;

interface FetchLike {
  (url: string, init: { method: string; headers: Record<string, string>; body?: string | Uint8Array }): Promise<{ status: number; text(): Promise<string> }>;
}

/** `fetch` (the global one by default). */
export function fetchHttp(f?: FetchLike): Http {
  return async (req) => {
    const fn = f ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!fn) throw new Error("no fetch here: pass one to fetchHttp()");
    const res = await fn(req.url, { method: req.method, headers: req.headers, body: req.body });
    return { status: res.status, text: await res.text() };
  };
}
