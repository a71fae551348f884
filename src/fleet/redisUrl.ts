/**
 * Reaching the fleet's Redis: a URL (`redis://` or `rediss://`, a password in it as
 * `redis://:password@host:port`) and, for `rediss://` with a certificate no public CA
 * signed, the CA to trust (`cluster.tlsCaFile` / `--cluster-ca`).
 */
import fs from "node:fs";
import { ConfigError } from "../core/errors.ts";

export interface RedisTarget {
  url: string;
  /** PEM file of the CA that signed the server's certificate (`rediss://` only); default: Node's own trusted CAs. */
  tlsCaFile?: string | undefined;
}

/** A Redis URL fit for logs and errors: its password replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(an unparsable URL)";
  }
}

/**
 * The TLS part of a node-redis client's socket options: the CA file read once, here, so a
 * wrong path fails start-up with its name instead of every connection with a TLS error.
 * node-redis turns TLS on from the `rediss://` scheme itself.
 */
export function tlsSocketOptions(target: RedisTarget): { ca?: Buffer } {
  if (target.tlsCaFile === undefined) return {};
  if (!target.url.startsWith("rediss://")) throw new ConfigError(`cluster.tlsCaFile is for rediss:// URLs; ${redactUrl(target.url)} is not one`);
  try {
    return { ca: fs.readFileSync(target.tlsCaFile) };
  } catch (e) {
    throw new ConfigError(`cluster.tlsCaFile: cannot read ${target.tlsCaFile}: ${(e as Error).message}`);
  }
}
