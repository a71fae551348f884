/**
 * Composition root of `pitcher serve`: config → models → tokenizers → device workers →
 * scheduler → pool → HTTP. The only place that wires concrete classes together.
 */
import os from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../api/app.ts";
import { Tenancy } from "../api/auth.ts";
import { InFlightRequests } from "../api/InFlightRequests.ts";
import { ConfigError, ShuttingDownError } from "../core/errors.ts";
import type { DeviceProfile } from "../core/types.ts";
import { loadConfig } from "../config/loadConfig.ts";
import { parseByteSize, type PitcherConfig } from "../config/schema.ts";
import { EngineDevice } from "../engine/EngineDevice.ts";
import { HostKvTier } from "../engine/HostKvTier.ts";
import { resolveModels, type ServedModel } from "../engine/resolveModels.ts";
import { TokenizerPool } from "../engine/tokenizerPool.ts";
import { Tokenizers } from "../engine/Tokenizers.ts";
import { LiveState } from "../observe/LiveState.ts";
import { PoolMetrics } from "../observe/PoolMetrics.ts";
import { TenantMetrics } from "../observe/TenantMetrics.ts";
import { attachRequestLog, logHttpRefusals } from "../observe/requestLog.ts";
import { calibrate } from "../runtime/calibrate.ts";
import { Pool } from "../runtime/Pool.ts";
import { PoolServing } from "../runtime/Serving.ts";
import { policyNames, Scheduler } from "../scheduler/Scheduler.ts";

export interface ServeOptions {
  configFile?: string;
  /** Already parsed config (tests); wins over configFile. */
  config?: PitcherConfig;
  host?: string;
  port?: number;
  log?: (msg: string) => void;
  httpLogger?: boolean;
  /** Where the one-line-per-request JSON log goes (the CLI: stdout); none when absent. */
  requestLog?: NodeJS.WritableStream;
  /** How often the dashboard feed pushes the pool's state (default 500 ms). */
  dashboardPushMs?: number;
  /** Join a fleet (`--cluster`, `--advertise`): wins over the config's `cluster` section. */
  cluster?: { url: string; advertise?: string; tlsCaFile?: string };
}

export interface RunningServer {
  app: FastifyInstance;
  pool: Pool;
  /** The pool's devices, as the engine runs them (tests kill workers through these). */
  devices: Map<string, EngineDevice>;
  /** Where parked KV lives (tests corrupt it through this). */
  hostKv: HostKvTier;
  /** The threads prompts are tokenized on; null with `server.tokenizerThreads: 0`. */
  tokenizerPool: TokenizerPool | null;
  url: string;
  /** For the operator, in one line: how many models and devices, which policy. */
  summary: string;
  /** How long `shutdown` lets running requests run before it ends them. */
  drainTimeoutMs: number;
  /**
   * Drain (running requests finish, new ones get 503) for at most `drainTimeoutMs`; then end
   * what is left with 503 shutting_down (an error event in a stream), close every
   * connection, and stop everything.
   */
  shutdown(): Promise<void>;
}

/** After the drain deadline, how long the ended requests' error answers get to leave. */
const ERROR_FLUSH_MS = 1000;

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether only this machine can reach the address. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const { config, baseDir } = opts.config ? { config: opts.config, baseDir: process.cwd() } : loadConfig(opts.configFile);
  // The schema takes any name; the scheduler's registry says which policies exist.
  if (!policyNames().includes(config.scheduler.policy)) throw new ConfigError(`scheduler.policy: unknown policy '${config.scheduler.policy}' (known: ${policyNames().join(", ")})`);
  const models = await resolveModels(config, baseDir, log);
  const tokenizers = await Tokenizers.load(models);
  // Prompts are tokenized on worker threads, so a large one does not stall others' streams.
  // Their vocabularies load while the devices start.
  const promptCodecs = config.server.tokenizerThreads > 0 ? new TokenizerPool(tokenizers, models, config.server.tokenizerThreads) : null;
  const promptCodecsReady = promptCodecs?.ready() ?? Promise.resolve();
  promptCodecsReady.catch(() => {}); // awaited below; a start-up that fails before then must not leave it unhandled

  const threads = config.devices.threadsPerDevice;
  const count = config.devices.count ?? Math.max(1, Math.floor(os.availableParallelism() / threads));
  const memoryBytes = parseByteSize(config.devices.memory);
  const deviceProfiles: DeviceProfile[] = Array.from({ length: count }, (_, i) => ({ id: `dev${i}`, memoryBytes }));
  let scheduler: Scheduler;
  try {
    scheduler = new Scheduler(
      models.map((m) => m.profile),
      deviceProfiles,
      {
        policy: config.scheduler.policy,
        prefillChunkTokens: config.scheduler.prefillChunkTokens,
        maxGroupSize: config.scheduler.maxGroupSize,
        maxQuotaMs: config.scheduler.maxQuotaMs,
        idleDecodeSliceMs: config.scheduler.idleDecodeSliceMs,
        admissionTtftFactor: config.scheduler.admissionTtftFactor,
        lateWaitCapFactor: config.scheduler.lateWaitCapFactor === false ? Infinity : config.scheduler.lateWaitCapFactor,
        fairShare: config.scheduler.fairShare,
      },
    );
  } catch (e) {
    throw new ConfigError(`devices.memory (${memoryBytes} bytes): ${(e as Error).message}`);
  }

  const hostKv = config.devices.kvDir ? new HostKvTier(path.resolve(config.devices.kvDir)) : HostKvTier.temporary(`pitcher-kv-${process.pid}-`);
  const devices = new Map<string, EngineDevice>();
  for (const d of deviceProfiles) {
    const device = new EngineDevice(d.id, {
      threads,
      gpu: config.devices.gpu,
      hostKv,
      models,
      prefillChunkTokens: config.scheduler.prefillChunkTokens,
      // The runtime never sees end tokens: the device marks them in what it samples.
      endTokens: (modelId) => tokenizers.get(modelId).endTokens,
    });
    devices.set(d.id, device);
  }
  await Promise.all([...devices.values()].map((d) => d.start()));
  const pool = new Pool(scheduler, [...devices.values()], new Map(models.map((m) => [m.id, m])), tokenizers);

  if (config.scheduler.calibrate) {
    const sample = (m: ServedModel) => tokenizers.get(m.id).completionPrompt("Once upon a time, a pool of devices served many models, token by token.").slice(0, 32);
    const rows = await calibrate(devices.values().next().value!, models, scheduler.predictor, sample);
    for (const r of rows)
      log(`calibrated ${r.modelId}: warm load ${r.warmLoadMs.toFixed(0)} ms, decode ${r.decodeStepMs.toFixed(2)} ms/step, prefill ${r.prefillMsPerToken.toFixed(2)} ms/token`);
  }

  const requestLog = opts.requestLog ? attachRequestLog(pool, opts.requestLog) : null;
  const logRefusal = requestLog ? logHttpRefusals(requestLog) : () => {};
  const metrics = new PoolMetrics(pool);
  let tenantMetrics: TenantMetrics | undefined;
  const onRefused = (t: string, code: string) => tenantMetrics?.countRefusal(t, code);
  // The CA file, like model paths, is relative to the configuration file.
  const configCluster = config.cluster && { ...config.cluster, tlsCaFile: config.cluster.tlsCaFile && path.resolve(baseDir, config.cluster.tlsCaFile) };
  const cluster = opts.cluster ? { heartbeatMs: 500, ...configCluster, ...opts.cluster } : configCluster;
  // A fleet node takes keys from the configuration and from Redis, and counts limits there.
  const fleetTenants = cluster ? await import("./fleetNode.ts").then((m) => m.nodeTenancy(cluster, config.auth?.keys ?? [], log, onRefused)) : null;
  const tenancy = fleetTenants?.tenancy ?? (config.auth && new Tenancy(config.auth.keys, { onRefused }));
  if (tenancy) {
    const budgetLeft = async () =>
      Promise.all(
        tenancy
          .allTenants()
          .filter((t) => t.budget)
          .map(async (t) => ({ tenant: t.name, tokens: await tenancy.budget.remaining(t.name, t.budget!) })),
      );
    tenantMetrics = new TenantMetrics(pool, metrics.registry, budgetLeft);
  }
  const inFlight = new InFlightRequests();
  // Only a fleet node loads the fleet code (and with it Redis).
  await promptCodecsReady;
  const poolServing = new PoolServing(pool, promptCodecs ?? tokenizers, { maxPromptBytes: config.server.maxPromptBytes });
  const live = new LiveState(pool);
  const fleet = cluster ? await import("./fleetNode.ts").then((m) => m.fleetNode(pool, poolServing, cluster, log, () => live.windowSlo())) : null;
  const { bodyLimitBytes, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, drainTimeoutMs } = config.server;
  const app = buildApp(fleet?.serving ?? poolServing, {
    bodyLimitBytes,
    cors: config.server.cors,
    timeouts: { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs },
    logger: opts.httpLogger ?? false,
    metrics,
    live,
    ...(opts.dashboardPushMs ? { dashboardPushMs: opts.dashboardPushMs } : {}),
    onHttpOutcome: (o) => {
      metrics.countHttp(o);
      logRefusal(o);
    },
    inFlight,
    ...(tenancy ? { tenancy } : {}),
    ...(fleet ? { refuse: fleet.refuse } : {}),
  });
  const host = opts.host ?? config.server.host;
  const port = opts.port ?? config.server.port;
  const open = fleetTenants ? !fleetTenants.keysRequired : !tenancy;
  if (open && !isLoopback(host))
    log(`warning: no auth.keys in the configuration${fleetTenants ? " and none in the fleet" : ""}: anyone who reaches ${host} can use every model without limit`);
  await app.listen({ host, port });
  const addr = app.server.address();
  const url = typeof addr === "object" && addr ? `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}` : `http://${host}:${port}`;
  try {
    await fleet?.join(url);
  } catch (e) {
    await app.close();
    await fleetTenants?.close();
    await pool.close();
    throw e;
  }
  return {
    app,
    pool,
    devices,
    hostKv,
    tokenizerPool: promptCodecs,
    url,
    summary: `${models.length} models, ${devices.size} devices, policy ${scheduler.options.policy}${fleet ? `, ${fleet.summary}` : ""}`,
    drainTimeoutMs,
    async shutdown() {
      // A fleet node first says it drains, and hands its queued requests back to the routers.
      await fleet?.drain();
      // New requests get 503 from here on; running ones finish, answers included.
      const finished = Promise.all([pool.drain(), inFlight.idle()]);
      if (!(await settlesWithin(finished, drainTimeoutMs))) {
        const n = inFlight.endAll(new ShuttingDownError(`The server shut down before this request finished (its drain deadline is ${drainTimeoutMs} ms); retry it`));
        log(`drain deadline of ${drainTimeoutMs} ms passed: ended ${n} running request(s) with 503 shutting_down`);
        // A client that does not read its error answer is not waited for long.
        await settlesWithin(finished, ERROR_FLUSH_MS);
      }
      const closed = app.close();
      // Whoever is still connected is mid-request (a slow upload) or idle: nothing of theirs
      // runs, and Node stops timing requests out once the server closes, so let them go now.
      app.server.closeAllConnections();
      await closed;
      await fleet?.leave();
      await fleetTenants?.close();
      await pool.close();
      hostKv.close();
      await promptCodecs?.dispose();
      await tokenizers.dispose();
    },
  };
}
