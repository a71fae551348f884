/**
 * API keys and their limits: `Authorization: Bearer <key>` on every /v1 route (the official
 * `openai` client's `apiKey`). A key is known by its SHA-256 only, compared in constant
 * time, and never logged; what is logged and measured is its name (the tenant).
 *
 * Per request: 401 `invalid_api_key` for a missing or unknown key; a model the key may not
 * use is answered 404 as if it did not exist; then requests per minute (checked before the
 * body is read further), and once the prompt is counted, tokens per minute (prompt + max
 * tokens, given back at the end for what was not used) and the token budget (reserved,
 * then settled). Every answer of a generation route carries OpenAI's `x-ratelimit-*`
 * headers for the limits the key has.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RateLimiterAbstract } from "rate-limiter-flexible";
import { InsufficientQuotaError, InvalidApiKeyError, ModelNotFoundError, PitcherError, RateLimitError } from "../core/errors.ts";
import type { TenantRef } from "../core/types.ts";
import type { ServingRequest } from "../runtime/Serving.ts";
import { noteAdmitted, noteTenant } from "./httpEdges.ts";
import { type BudgetLimit, giveBack, type LimiterFactory, type LimitState, memoryLimiters, MemoryTokenBudget, take, type TokenBudget } from "./rateLimits.ts";

/** A key as the configuration gives it (`auth.keys[]`). */
export interface ApiKeySpec {
  name: string;
  key?: string | undefined;
  keySha256?: string | undefined;
  models?: string[] | undefined;
  rpm?: number | undefined;
  tpm?: number | undefined;
  budget?: BudgetLimit | undefined;
  weight: number;
}

export interface Tenant {
  name: string;
  ref: TenantRef;
  models: ReadonlySet<string> | null;
  budget: BudgetLimit | null;
  rpm: RateLimiterAbstract | null;
  tpm: RateLimiterAbstract | null;
}

/**
 * Keys kept outside the configuration (a fleet's, in Redis): consulted after the config's
 * keys. `refresh` brings the set up to date when it may be stale (and keeps the last one
 * when the store cannot be read), so a revoked key is refused wherever it is checked.
 */
export interface KeyDirectory {
  refresh(): Promise<void>;
  /** Keys are required even with none in the configuration (the fleet has had keys). */
  readonly required: boolean;
  /** The tenant whose key has this SHA-256 (hex), if any. */
  byHash(sha256Hex: string): Tenant | undefined;
  tenants(): Tenant[];
}

export interface TenancyOptions {
  limiters?: LimiterFactory;
  directory?: KeyDirectory;
  budget?: TokenBudget;
  now?: () => number;
  /** Told of each request a limit refused (per-tenant metrics). */
  onRefused?: (tenant: string, code: string) => void;
}

const sha256 = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

export class Tenancy {
  readonly tenants: Tenant[];
  readonly budget: TokenBudget;
  private readonly hashes: Buffer[];
  private readonly directory: KeyDirectory | undefined;
  readonly now: () => number;
  readonly onRefused: (tenant: string, code: string) => void;

  constructor(keys: ApiKeySpec[], options: TenancyOptions = {}) {
    const limiters = options.limiters ?? memoryLimiters;
    this.now = options.now ?? Date.now;
    this.budget = options.budget ?? new MemoryTokenBudget(this.now);
    this.onRefused = options.onRefused ?? (() => {});
    this.hashes = keys.map((k) => (k.key !== undefined ? sha256(k.key) : Buffer.from(k.keySha256!, "hex")));
    this.tenants = keys.map((k) => makeTenant(k, limiters));
    this.directory = options.directory;
  }

  /** Every tenant known now: the configuration's, then the directory's. */
  allTenants(): Tenant[] {
    return this.directory ? [...this.tenants, ...this.directory.tenants()] : this.tenants;
  }

  /**
   * The tenant of an `Authorization` header; null when no key is required (no keys in the
   * configuration, and a directory that has never had any), else 401 as `authenticate`.
   */
  async identify(header: string | undefined): Promise<Tenant | null> {
    if (!this.directory) return this.authenticate(header);
    await this.directory.refresh();
    if (this.tenants.length === 0 && !this.directory.required) return null;
    try {
      return this.authenticate(header);
    } catch (e) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
      // A map lookup by hash leaks nothing useful: a client cannot steer the hash of what it sends.
      const t = m ? this.directory.byHash(sha256(m[1]!).toString("hex")) : undefined;
      if (!t) throw e;
      return t;
    }
  }

  /** The tenant of an `Authorization` header, or 401. Every stored hash is compared, in constant time. */
  authenticate(header: string | undefined): Tenant {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (!m) throw new InvalidApiKeyError();
    const h = sha256(m[1]!);
    let found = -1;
    for (let i = 0; i < this.hashes.length; i++) if (timingSafeEqual(h, this.hashes[i]!) && found < 0) found = i;
    if (found < 0) throw new InvalidApiKeyError("Incorrect API key provided");
    return this.tenants[found]!;
  }
}

/** A tenant with its limiters, from a key as the configuration (or a fleet's Redis) gives it. */
export function makeTenant(k: ApiKeySpec, limiters: LimiterFactory): Tenant {
  return {
    name: k.name,
    ref: { id: k.name, weight: k.weight },
    models: k.models ? new Set(k.models) : null,
    budget: k.budget ?? null,
    rpm: k.rpm ? limiters({ keyPrefix: "pitcher-rpm", points: k.rpm, durationSeconds: 60 }) : null,
    tpm: k.tpm ? limiters({ keyPrefix: "pitcher-tpm", points: k.tpm, durationSeconds: 60 }) : null,
  };
}

const tenantOf = new WeakMap<FastifyRequest, Tenant>();

/** Whether the request's key may use the model (always, without keys). */
export function mayUseModel(req: FastifyRequest, modelId: string): boolean {
  const t = tenantOf.get(req);
  return !t?.models || t.models.has(modelId);
}

/** The models the request's key may use, in order. */
export function visibleModels<M extends { id: string }>(req: FastifyRequest, models: M[]): M[] {
  return models.filter((m) => mayUseModel(req, m.id));
}

const GENERATION_ROUTES = new Set(["/v1/chat/completions", "/v1/completions"]);

/** OpenAI's reset format: `20ms`, `1.5s`, `6m0s`. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(3))}s`;
  return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
}

/** Headers are set on the raw response so that they also go out with a streamed answer. */
function rateHeaders(reply: FastifyReply, kind: "requests" | "tokens", s: LimitState): void {
  reply.raw.setHeader(`x-ratelimit-limit-${kind}`, String(s.limit));
  reply.raw.setHeader(`x-ratelimit-remaining-${kind}`, String(s.remaining));
  reply.raw.setHeader(`x-ratelimit-reset-${kind}`, formatReset(s.resetMs));
}

function refuse(reply: FastifyReply, e: RateLimitError): never {
  reply.raw.setHeader("retry-after", String(e.retryAfterSeconds));
  throw e;
}

/**
 * The hooks, after the app's own (a draining server still answers 503 first): keys on every
 * /v1 route; the model check and requests per minute on the generation routes. /health,
 * /metrics and /dashboard stay open.
 */
export function registerAuth(app: FastifyInstance, tenancy: Tenancy | undefined): void {
  if (!tenancy) return;
  app.addHook("onRequest", async (req) => {
    // The route's pattern as well as the raw path: a percent-encoded path may reach a /v1 route.
    const v1 = (p: string | undefined) => p !== undefined && (p === "/v1" || p.startsWith("/v1/") || p.startsWith("/v1?"));
    if (!v1(req.routeOptions.url) && !v1(req.url)) return;
    const t = await tenancy.identify(req.headers.authorization);
    if (!t) return;
    tenantOf.set(req, t);
    noteTenant(req, t.name);
  });
  app.addHook("preHandler", async (req, reply) => {
    const t = tenantOf.get(req);
    if (!t || req.method !== "POST" || !GENERATION_ROUTES.has(req.routeOptions.url ?? "")) return;
    const model = (req.body as { model?: unknown } | null)?.model;
    if (typeof model === "string" && !mayUseModel(req, model)) throw new ModelNotFoundError(model);
    if (!t.rpm) return;
    const c = await take(t.rpm, t.name, 1, tenancy.now());
    rateHeaders(reply, "requests", c.state);
    if (!c.ok) {
      tenancy.onRefused(t.name, "rate_limit_exceeded");
      const retry = Math.max(1, Math.ceil(c.state.resetMs / 1000));
      refuse(reply, new RateLimitError(`Rate limit reached for key '${t.name}' on requests per minute: limit ${c.state.limit}. Retry in ${retry} s.`, "requests", retry));
    }
  });
}

/**
 * What a generation request carries for its key: the tenant (fair sharing, logs, metrics)
 * and the token admission the serving facade runs once the prompt is counted. Nothing
 * without keys.
 */
export function tenantAdmission(req: FastifyRequest, reply: FastifyReply, tenancy: Tenancy | undefined): Pick<ServingRequest, "tenant" | "admit"> {
  const t = tenantOf.get(req);
  if (!t || !tenancy) return {};
  return {
    tenant: t.ref,
    admit: async ({ promptTokens, maxTokens }) => {
      const cost = promptTokens + maxTokens;
      let tokens: { windowEndsAtMs: number } | null = null;
      if (t.tpm) {
        const c = await take(t.tpm, t.name, cost, tenancy.now());
        rateHeaders(reply, "tokens", c.state);
        if (!c.ok) {
          tenancy.onRefused(t.name, "rate_limit_exceeded");
          const retry = Math.max(1, Math.ceil(c.state.resetMs / 1000));
          const why =
            cost > c.state.limit
              ? `this request alone needs ${cost} tokens (prompt ${promptTokens} + max ${maxTokens}), more than the limit of ${c.state.limit}; ask for fewer max_tokens`
              : `limit ${c.state.limit}, ${c.state.remaining} left, this request needs ${cost} (prompt + max tokens). Retry in ${retry} s`;
          refuse(reply, new RateLimitError(`Rate limit reached for key '${t.name}' on tokens per minute: ${why}.`, "tokens", retry));
        }
        tokens = c;
      }
      let reservation = null;
      if (t.budget) {
        const b = await tenancy.budget.reserve(t.name, cost, t.budget).catch(async (e: unknown) => {
          // The budget could not be checked (a fleet's Redis away): the tokens taken go back.
          if (tokens && t.tpm) await giveBack(t.tpm, t.name, cost, tokens.windowEndsAtMs, tenancy.now()).catch(() => {});
          if (e instanceof PitcherError) tenancy.onRefused(t.name, e.code);
          throw e;
        });
        if (!b.ok) {
          if (tokens && t.tpm) await giveBack(t.tpm, t.name, cost, tokens.windowEndsAtMs, tenancy.now());
          tenancy.onRefused(t.name, "insufficient_quota");
          throw new InsufficientQuotaError(
            `You exceeded your current quota: key '${t.name}' has ${b.remaining} of its ${t.budget.tokens} tokens left this ${t.budget.period}, and this request reserves ${cost} (prompt + max tokens).`,
          );
        }
        reservation = b.reservation;
      }
      noteAdmitted(req);
      return (used: number) => {
        if (tokens && t.tpm) void giveBack(t.tpm, t.name, cost - used, tokens.windowEndsAtMs, tenancy.now()).catch(() => {});
        if (reservation) void tenancy.budget.settle(reservation, used).catch(() => {});
      };
    },
  };
}
