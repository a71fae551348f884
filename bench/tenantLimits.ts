/**
 * Cost of API keys and limits per request (BENCHMARKS.md § 7), in process, without HTTP: the
 * key check (SHA-256, constant-time compare against every key), requests and tokens per
 * minute (rate-limiter-flexible in memory), and a budget reservation and its settlement,
 * as a generation request goes through them. Prints p50/p99 per request.
 *
 *   node --import tsx bench/tenantLimits.ts --keys 100 --requests 20000
 */
import { Command } from "commander";
import { Tenancy } from "../src/api/auth.ts";
import { giveBack, take } from "../src/api/rateLimits.ts";

const opts = new Command().option("--keys <n>", "keys in the configuration", "100").option("--requests <n>", "requests to time", "20000").parse().opts();
const nKeys = Number(opts.keys);
const n = Number(opts.requests);
const keys = Array.from({ length: nKeys }, (_, i) => ({
  name: `k${i}`,
  key: `sk-bench-${i}-0123456789`,
  rpm: 1e9,
  tpm: 1e12,
  budget: { tokens: 1e12, period: "month" as const },
  weight: 1,
}));
const tenancy = new Tenancy(keys);
const samples: number[] = [];
for (let i = 0; i < n; i++) {
  const k = keys[i % nKeys]!;
  const t0 = process.hrtime.bigint();
  const t = tenancy.authenticate(`Bearer ${k.key}`);
  await take(t.rpm!, t.name, 1, Date.now());
  const tok = await take(t.tpm!, t.name, 600, Date.now());
  const b = await tenancy.budget.reserve(t.name, 600, t.budget!);
  if (b.ok) await tenancy.budget.settle(b.reservation, 400);
  if (tok.ok) await giveBack(t.tpm!, t.name, 200, tok.windowEndsAtMs, Date.now());
  samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
samples.sort((a, b) => a - b);
const at = (q: number) => samples[Math.min(samples.length - 1, Math.ceil(q * samples.length) - 1)]!;
console.log(`${nKeys} keys, ${n} requests: p50 ${at(0.5).toFixed(3)} ms, p99 ${at(0.99).toFixed(3)} ms per request (key check, rpm, tpm, budget reserve + settle, tpm give-back)`);
