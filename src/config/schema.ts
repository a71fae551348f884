/**
 * The configuration file (YAML or JSON) and its validation. Every field has a default, so
 * an empty file (or none) runs the embedded stand-in catalog.
 */
import { z } from "zod";

const byteSize = z.union([z.number().int().positive(), z.string().regex(/^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i, "a size like 96MB, 1.5GiB or a number of bytes")]);

const slo = z
  .object({
    ttftMs: z.number().positive().optional(),
    tbtMs: z.number().positive().optional(),
  })
  .strict();

/** `https://app.example.com:8443`: what a browser sends as `Origin`. */
function isOrigin(s: string): boolean {
  try {
    return new URL(s).origin === s;
  } catch {
    return false;
  }
}

export const modelSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "letters, digits and . _ : / -"),
    /** A local GGUF path, or an `hf:` reference that node-llama-cpp resolves (downloads only when configured). */
    path: z.string().min(1),
    slo: slo.optional(),
    contextTokens: z.number().int().min(64).optional(),
    maxBatch: z.number().int().min(1).max(64).optional(),
    description: z.string().optional(),
    /** Serve it for /v1/embeddings only; default: whether its GGUF names a pooling type. */
    embedding: z.boolean().optional(),
  })
  .strict();

/** An API key: its name (logs, metrics), the key or its SHA-256, and what it may do. */
export const apiKeySchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits and . _ -"),
    key: z.string().min(8).optional(),
    /** Hex SHA-256 of the key, so the file need not hold the key itself. */
    keySha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "64 hex digits")
      .optional(),
    /** Models this key may use; absent: all. */
    models: z.array(z.string()).optional(),
    /** Requests per minute. */
    rpm: z.number().int().positive().optional(),
    /** Tokens per minute, counted as prompt + max tokens at admission and corrected at the end. */
    tpm: z.number().int().positive().optional(),
    budget: z
      .object({
        tokens: z.number().int().positive(),
        period: z.enum(["hour", "day", "week", "month"]).default("month"),
      })
      .strict()
      .optional(),
    /** Share of the pool's device time when tenants compete (fair sharing). */
    weight: z.number().positive().default(1),
  })
  .strict()
  .refine((k) => (k.key === undefined) !== (k.keySha256 === undefined), { message: "give exactly one of key and keySha256" });

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Largest request body accepted (bytes). */
        bodyLimitBytes: z
          .number()
          .int()
          .positive()
          .default(1 << 20),
        /** Largest prompt text (UTF-8 bytes of all messages, or the prompt) taken, checked before tokenizing (413 above it). */
        maxPromptBytes: z
          .number()
          .int()
          .positive()
          .default(512 * 1024),
        /** Worker threads that tokenize prompts off the event loop; 0 tokenizes on it (for comparison). */
        tokenizerThreads: z.number().int().min(0).max(64).default(2),
        /** CORS: false (off), true (any origin) or the origins allowed (`https://app.example.com`). */
        cors: z.union([z.boolean(), z.array(z.string().refine(isOrigin, "an origin as browsers send it: scheme://host[:port], no path, no trailing slash")).min(1)]).default(false),
        /** A client must send all its request headers within this time (408 after it). */
        headersTimeoutMs: z.number().int().positive().default(10_000),
        /**
         * A client must send its whole request, body included, within this time (408 after it).
         * Receiving only: a response that streams for minutes is not cut by it.
         */
        requestTimeoutMs: z.number().int().positive().default(30_000),
        /**
         * An idle keep-alive connection is closed after this time. Longer than clients keep
         * idle connections (the OpenAI Python SDK's httpx 5 s, undici 4 s) and than a load
         * balancer in front (60 s on AWS): the side that closes first must be the client, or
         * a request sent as the server closes is lost ("other side closed"; issue 12).
         */
        keepAliveTimeoutMs: z.number().int().positive().default(75_000),
        /**
         * On SIGTERM, running requests have this long to finish; then what is left ends with
         * 503 shutting_down (an error event in a stream) and every connection is closed.
         */
        drainTimeoutMs: z.number().int().positive().default(30_000),
      })
      .strict()
      // Node refuses a headers timeout longer than the request timeout.
      .refine((s) => s.headersTimeoutMs <= s.requestTimeoutMs, { message: "headersTimeoutMs must not exceed requestTimeoutMs", path: ["headersTimeoutMs"] })
      .default({}),
    devices: z
      .object({
        /** Device workers (child processes); on CPU one per core. */
        count: z.number().int().min(1).max(64).optional(),
        threadsPerDevice: z.number().int().min(1).max(256).default(1),
        /** Budget per device for resident weights plus KV. */
        memory: byteSize.default("80MB"),
        gpu: z.union([z.literal("auto"), z.literal(false), z.enum(["cuda", "vulkan", "metal"])]).default(false),
        /** Folder for the host KV tier; default: tmpfs (/dev/shm) where present. */
        kvDir: z.string().optional(),
      })
      .strict()
      .default({}),
    scheduler: z
      .object({
        /**
         * A scheduling policy's name. The scheduler owns the list of policies: the composition
         * root checks this name against it at start-up, so the configuration needs no import
         * of the scheduler.
         */
        policy: z.string().default("token"),
        prefillChunkTokens: z.number().int().min(1).default(64),
        maxGroupSize: z.number().int().min(1).default(8),
        maxQuotaMs: z.number().positive().default(1500),
        /** Decode run when nothing else waits; cut short as soon as a request arrives. */
        idleDecodeSliceMs: z.number().positive().default(250),
        /** 429 when the predicted wait exceeds this multiple of the TTFT target; 0 turns it off. */
        admissionTtftFactor: z.number().min(0).default(0.5),
        /**
         * 503 `slo_wait_exceeded` for a request still waiting for a device this multiple of its
         * TTFT target past its TTFT deadline; `false` lets it wait.
         */
        lateWaitCapFactor: z.union([z.number().min(0), z.literal(false)]).default(0.5),
        /** Measure each model once at start-up to seed the predictors. */
        calibrate: z.boolean().default(true),
        /** Share device time between API keys in proportion to their weights when they compete. */
        fairShare: z.boolean().default(true),
      })
      .strict()
      .default({}),
    defaults: z
      .object({
        slo: slo.default({}),
        contextTokens: z.number().int().min(64).default(1024),
        maxBatch: z.number().int().min(1).max(64).default(4),
      })
      .strict()
      .default({}),
    /** Join a fleet through Redis (`pitcher serve --cluster`); absent: serve alone, Redis never loaded. */
    cluster: z
      .object({
        url: z.string().regex(/^rediss?:\/\//, "a redis:// or rediss:// URL"),
        /** PEM file of the CA to trust for a rediss:// URL (default: Node's trusted CAs). */
        tlsCaFile: z.string().min(1).optional(),
        /** Where routers reach this node; default: the address it listens on. */
        advertise: z
          .string()
          .regex(/^https?:\/\/[^/]+\/?$/, "an http(s)://host:port address")
          .optional(),
        heartbeatMs: z.number().int().min(50).default(500),
        /** How long the node's record lives unless renewed; default 3 heartbeats. */
        ttlMs: z.number().int().positive().optional(),
        /** How long a budget reservation lives unless its node renews it (every heartbeat). */
        leaseMs: z.number().int().positive().default(10_000),
        /** What the keys' limits do while Redis is unreachable. */
        whenRedisDown: z
          .object({
            /** local: each node admits its share (limit ÷ live nodes); refuse: 503 limits_unavailable. */
            rates: z.enum(["local", "refuse"]).default("local"),
            /** refuse: 503 limits_unavailable; admit: serve without charging the budget. */
            budgets: z.enum(["refuse", "admit"]).default("refuse"),
          })
          .strict()
          .default({}),
      })
      .strict()
      .refine((c) => c.ttlMs === undefined || c.ttlMs > c.heartbeatMs, { message: "ttlMs must exceed heartbeatMs", path: ["ttlMs"] })
      .refine((c) => c.leaseMs > 2 * c.heartbeatMs, { message: "leaseMs must exceed two heartbeats (leases are renewed every heartbeat)", path: ["leaseMs"] })
      .optional(),
    /** Where stand-in models and downloaded models are kept. */
    cacheDir: z.string().optional(),
    /** Omit to serve the embedded stand-in catalog. */
    models: z.array(modelSchema).min(1).optional(),
    /** API keys; without it the API is open. */
    auth: z
      .object({ keys: z.array(apiKeySchema).min(1) })
      .strict()
      .refine((a) => new Set(a.keys.map((k) => k.name)).size === a.keys.length, { message: "key names must be unique", path: ["keys"] })
      .optional(),
  })
  .strict();

export type PitcherConfig = z.infer<typeof configSchema>;
export type ModelConfig = z.infer<typeof modelSchema>;
export type ApiKeyConfig = z.infer<typeof apiKeySchema>;

export function parseByteSize(v: number | string): number {
  if (typeof v === "number") return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v)!;
  const unit = (m[2] || "B").toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 };
  return Math.round(Number(m[1]) * mult[unit]!);
}
