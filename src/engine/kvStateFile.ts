/**
 * Host-tier KV files. llama.cpp's own state file is trusted blindly by the native loader:
 * a file of another model with the same shapes is accepted and yields garbage, and a
 * truncated one aborts the process. So every state file gets a header of ours, checked
 * before the native loader ever sees the file: model fingerprint, token count, byte length
 * and a SHA-256 of the content.
 */
import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";

export interface KvHeader {
  format: "pitcher-kv/1";
  modelFingerprint: string;
  tokens: number;
  bytes: number;
  sha256: string;
}

export class KvStateError extends Error {
  readonly code = "kv_restore_failed";
}

export function kvPaths(dir: string, requestId: string): { state: string; header: string } {
  const safe = requestId.replace(/[^A-Za-z0-9_.-]/g, "_");
  return { state: path.join(dir, `${safe}.kv`), header: path.join(dir, `${safe}.kv.json`) };
}

async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const buf = await fs.readFile(file);
  return { sha256: crypto.createHash("sha256").update(buf).digest("hex"), bytes: buf.length };
}

/** Write the header for a state file just saved by llama.cpp. */
export async function sealKvState(dir: string, requestId: string, modelFingerprint: string, tokens: number): Promise<number> {
  const p = kvPaths(dir, requestId);
  const { sha256, bytes } = await sha256File(p.state);
  const header: KvHeader = { format: "pitcher-kv/1", modelFingerprint, tokens, bytes, sha256 };
  await fs.writeFile(p.header, JSON.stringify(header));
  return bytes;
}

/** Check a state file against its header before handing it to llama.cpp; throws KvStateError. */
export async function verifyKvState(dir: string, requestId: string, modelFingerprint: string, contextTokens: number): Promise<KvHeader> {
  const p = kvPaths(dir, requestId);
  let header: KvHeader;
  try {
    header = JSON.parse(await fs.readFile(p.header, "utf8")) as KvHeader;
  } catch (e) {
    throw new KvStateError(`KV state of ${requestId}: header missing or unreadable (${(e as Error).message})`);
  }
  if (header.format !== "pitcher-kv/1") throw new KvStateError(`KV state of ${requestId}: unknown format`);
  if (header.modelFingerprint !== modelFingerprint) throw new KvStateError(`KV state of ${requestId} belongs to another model`);
  if (header.tokens > contextTokens) throw new KvStateError(`KV state of ${requestId} holds ${header.tokens} tokens, the context only ${contextTokens}`);
  let actual: Awaited<ReturnType<typeof sha256File>>;
  try {
    actual = await sha256File(p.state);
  } catch (e) {
    throw new KvStateError(`KV state of ${requestId}: state file missing (${(e as Error).message})`);
  }
  if (actual.bytes !== header.bytes || actual.sha256 !== header.sha256) throw new KvStateError(`KV state of ${requestId} is corrupt (length or checksum mismatch)`);
  return header;
}
