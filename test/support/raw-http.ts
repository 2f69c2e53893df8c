import http from "node:http";
import http2 from "node:http2";

/** An answer as it came over the wire, without the headers that describe the connection or the moment. */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Headers that describe the connection or the moment, not the answer. */
const TRANSPORT = new Set(["date", "connection", "keep-alive", "transfer-encoding", ":status"]);

function answer(status: number, raw: Record<string, string | string[] | number | undefined>, body: string): Answer {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) if (!TRANSPORT.has(key) && value !== undefined) headers[key] = String(value);
  return { status, headers, body };
}

/** A POST over HTTP/1.1: for a Connect JSON call, Funnel's unary JSON path serves it. */
export function overHttp1(url: string, path: string, headers: Record<string, string>, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve(answer(res.statusCode ?? 0, res.headers, text)));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The same POST over HTTP/2 cleartext: connect-es serves it. */
export function overHttp2(url: string, path: string, headers: Record<string, string>, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, ...headers, "content-length": String(Buffer.byteLength(body)) });
    let status = 0;
    let received: http2.IncomingHttpHeaders = {};
    let text = "";
    stream.setEncoding("utf8");
    stream.on("response", (head) => {
      status = Number(head[":status"]);
      received = head;
    });
    stream.on("data", (chunk: string) => (text += chunk));
    stream.on("end", () => {
      session.close();
      resolve(answer(status, received, text));
    });
    stream.on("error", reject);
    stream.end(body);
  });
}
