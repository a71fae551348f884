/**
 * Lua scripts run by their SHA-1 (`EVALSHA`), sent whole only when Redis does not know them
 * yet (a fresh or restarted Redis), and calls to Redis that give up after a while: a Redis
 * that hangs (SIGSTOP, a dead link) neither answers nor closes, and node-redis times a
 * command out only while it waits to be written.
 */
import { createHash } from "node:crypto";
import type { createClient } from "redis";

export type Redis = ReturnType<typeof createClient>;

export interface LuaScript {
  text: string;
  sha: string;
}

export function lua(text: string): LuaScript {
  return { text, sha: createHash("sha1").update(text).digest("hex") };
}

export async function runScript(client: Redis, script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
  try {
    return await client.evalSha(script.sha, { keys, arguments: args });
  } catch (e) {
    if (!String((e as Error).message).startsWith("NOSCRIPT")) throw e;
    return client.eval(script.text, { keys, arguments: args });
  }
}

/**
 * `p`, or a rejection once `ms` have passed without an answer. The rejection waits for the
 * event loop's next check phase: after a stall of this process (not of Redis), the timer
 * and the answer are both due, and the answer, read in the poll phase before it, must win.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => setImmediate(() => reject(new Error(`Redis did not answer ${what} within ${ms} ms`))), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
