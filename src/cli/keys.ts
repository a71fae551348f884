/**
 * `pitcher keys add | list | revoke --cluster redis://…`: a fleet's API keys, kept in its
 * Redis. A new key is printed once (stdout, alone on its line); Redis holds only its SHA-256.
 */
import { createHash, randomBytes } from "node:crypto";
import { createClient } from "redis";
import { ConfigError } from "../core/errors.ts";
import { formatZodError } from "../core/formatZodError.ts";
import { apiKeySchema } from "../config/schema.ts";
import { BudgetScripts } from "../fleet/budgetScript.ts";
import { addKey, listKeys, revokeKey, type StoredKey } from "../fleet/keys.ts";
import { type RedisTarget, redactUrl, tlsSocketOptions } from "../fleet/redisUrl.ts";

export interface AddKeyOptions {
  models?: string[];
  rpm?: number;
  tpm?: number;
  budgetTokens?: number;
  budgetPeriod?: string;
  weight?: number;
}

async function withRedis<T>(target: RedisTarget, f: (client: ReturnType<typeof createClient>) => Promise<T>): Promise<T> {
  const url = target.url;
  const client = createClient({ url, socket: { connectTimeout: 5_000, reconnectStrategy: false, ...tlsSocketOptions(target) } });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (e) {
    throw new ConfigError(`--cluster: cannot reach Redis at ${redactUrl(url)}: ${(e as Error).message}`);
  }
  try {
    return await f(client);
  } finally {
    client.destroy();
  }
}

/** Store a new key; returns the key itself (shown once). */
export async function keysAdd(url: RedisTarget, name: string, o: AddKeyOptions): Promise<string> {
  if (o.budgetPeriod !== undefined && o.budgetTokens === undefined) throw new ConfigError("--budget-period needs --budget-tokens");
  const key = `sk-pitcher-${randomBytes(24).toString("base64url")}`;
  const keySha256 = createHash("sha256").update(key, "utf8").digest("hex");
  const parsed = apiKeySchema.safeParse({
    name,
    keySha256,
    ...(o.models ? { models: o.models } : {}),
    ...(o.rpm !== undefined ? { rpm: o.rpm } : {}),
    ...(o.tpm !== undefined ? { tpm: o.tpm } : {}),
    ...(o.budgetTokens !== undefined ? { budget: { tokens: o.budgetTokens, ...(o.budgetPeriod ? { period: o.budgetPeriod } : {}) } } : {}),
    ...(o.weight !== undefined ? { weight: o.weight } : {}),
  });
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error));
  const { key: _none, ...spec } = parsed.data;
  const stored: StoredKey = { ...spec, keySha256, createdMs: Date.now() };
  const added = await withRedis(url, (c) => addKey(c, stored));
  if (!added) throw new ConfigError(`a key named '${name}' exists in the fleet; revoke it first`);
  return key;
}

export async function keysRevoke(url: RedisTarget, name: string): Promise<void> {
  const revoked = await withRedis(url, (c) => revokeKey(c, name));
  if (!revoked) throw new ConfigError(`the fleet has no key named '${name}'`);
}

/** One line per key: its name and limits, and for a budget what is spent and reserved this period. Never a key. */
export async function keysList(url: RedisTarget): Promise<string> {
  return withRedis(url, async (c) => {
    const keys = await listKeys(c);
    if (keys.length === 0) return "no keys";
    const scripts = new BudgetScripts(c);
    const lines: string[] = [];
    for (const k of keys) {
      const parts = [k.name, `models ${k.models ? k.models.join(",") : "all"}`, `rpm ${k.rpm ?? "-"}`, `tpm ${k.tpm ?? "-"}`, `weight ${k.weight}`];
      if (k.budget) {
        const s = await scripts.status(k.name, k.budget);
        parts.push(`budget ${k.budget.tokens}/${k.budget.period}: spent ${s.spent}, reserved ${s.reserved}, left ${s.remaining}`);
      } else parts.push("budget -");
      lines.push(parts.join("  "));
    }
    return lines.join("\n");
  });
}
