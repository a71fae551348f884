/**
 * A raw-socket HTTP client for tests of what well-behaved clients never send: broken
 * request lines, huge headers, bodies that stop halfway. It writes bytes and reads whatever
 * comes back until the server closes the connection.
 */
import net from "node:net";

export interface RawAnswer {
  /** The status of the first response, or null when the server closed without one. */
  status: number | null;
  headers: Record<string, string>;
  /** The first response's body parsed as JSON (undefined when it is not JSON). */
  // biome-ignore lint/suspicious/noExplicitAny: a test asserts on JSON bodies of open shape (as *.test.ts files may)
  json: any;
  /** Everything the server sent. */
  text: string;
}

export function parseRawAnswer(text: string): RawAnswer {
  const split = text.indexOf("\r\n\r\n");
  const head = split >= 0 ? text.slice(0, split) : text;
  const [statusLine, ...headerLines] = head.split("\r\n");
  const m = /^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "");
  const headers = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
  let body = split >= 0 ? text.slice(split + 4) : "";
  if (headers["content-length"] !== undefined) body = body.slice(0, Number(headers["content-length"]));
  // biome-ignore lint/suspicious/noExplicitAny: a test asserts on JSON bodies of open shape (as *.test.ts files may)
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: m ? Number(m[1]) : null, headers, json, text };
}

/** Connect to `port`, send `bytes` (and nothing more), and resolve with what came back once the server closes. */
export function rawExchange(port: number, bytes: string | Buffer): Promise<RawAnswer> {
  return rawClient(port, bytes).closed;
}

/** The same, with the socket at hand (to watch it, or to send more). */
export function rawClient(port: number, bytes: string | Buffer): { socket: net.Socket; closed: Promise<RawAnswer> } {
  const socket = net.connect(port, "127.0.0.1");
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => (text += d));
  // A reset after the answer is still an answer: what matters is what arrived.
  socket.on("error", () => {});
  socket.write(bytes);
  const closed = new Promise<RawAnswer>((resolve) => socket.on("close", () => resolve(parseRawAnswer(text))));
  return { socket, closed };
}
