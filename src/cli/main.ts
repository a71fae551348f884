/**
 * The `pitcher` command line.
 */
import { Command, InvalidArgumentError } from "commander";
import { PitcherError } from "../core/errors.ts";
import { SIM_POLICIES, type SimPolicy } from "../sim/Simulation.ts";
import { describeBench, formatBenchTable, runBench, writeBenchReport } from "./bench.ts";
import { formatPlanTable, formatSimulateLine, runPlan, runSimulate } from "./plan.ts";
import { formatProfileTable, runProfile } from "./profile.ts";
import { formatPlanNodes, runPlanNodes, runSimulateNodes } from "./simulateNodes.ts";
import { startServer } from "./serve.ts";

const POLICIES: SimPolicy[] = [...SIM_POLICIES];
/** How long past the drain deadline a shutdown may take before the process leaves anyway. */
const SHUTDOWN_BACKSTOP_MS = 15_000;

function policies(v: string): SimPolicy[] {
  const list = v.split(",").map((x) => x.trim());
  for (const p of list) if (!POLICIES.includes(p as SimPolicy)) throw new InvalidArgumentError(`policies are ${POLICIES.join(", ")}`);
  return list as SimPolicy[];
}

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("a positive number");
  return n;
}

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("a whole number, at least 1");
  return n;
}

function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError("a fraction in (0, 1]");
  return n;
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port number from 0 to 65535");
  return n;
}

const program = new Command();
// `pitcher plan | head` closes our stdout early: not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

program.name("pitcher").description("Serve many LLMs from a few devices with token-level preemptive scheduling.");

program
  .command("serve", { isDefault: true })
  .description("start the OpenAI-compatible server (default: embedded stand-in catalog)")
  .option("--host <host>", "address to listen on (default 127.0.0.1)")
  .option("--port <port>", "port to listen on (default 8080)", port)
  .option("--config <file>", "YAML or JSON configuration file")
  .option("--no-request-log", "do not write the one-JSON-line-per-request log to stdout")
  .option("--cluster <redis-url>", "join a fleet through this Redis (redis:// or rediss://)")
  .option("--advertise <url>", "with --cluster: the address routers reach this node at (default: where it listens)")
  .option("--cluster-ca <file>", "with a rediss:// --cluster: the CA (PEM) that signed Redis's certificate")
  .action(async (opts: { host?: string; port?: number; config?: string; requestLog: boolean; cluster?: string; advertise?: string; clusterCa?: string }) => {
    if (opts.advertise && !opts.cluster) throw new InvalidArgumentError("--advertise needs --cluster");
    if (opts.clusterCa && !opts.cluster) throw new InvalidArgumentError("--cluster-ca needs --cluster");
    const server = await startServer({
      ...(opts.cluster
        ? { cluster: { url: opts.cluster, ...(opts.advertise ? { advertise: opts.advertise } : {}), ...(opts.clusterCa ? { tlsCaFile: opts.clusterCa } : {}) } }
        : {}),
      ...(opts.config ? { configFile: opts.config } : {}),
      ...(opts.host ? { host: opts.host } : {}),
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      httpLogger: false,
      ...(opts.requestLog ? { requestLog: process.stdout } : {}),
    });
    console.log(`Pitcher listening on ${server.url} (${server.summary})`);
    console.log(`dashboard ${server.url}/dashboard · metrics ${server.url}/metrics`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.error(`${signal}: draining ${server.pool.activeRequests} running request(s) for at most ${server.drainTimeoutMs} ms…`);
      // shutdown() ends everything by its deadline; should something still hold it (a device
      // worker that will not stop), leave anyway rather than hang the operator's restart.
      setTimeout(() => {
        console.error(`${signal}: still shutting down ${SHUTDOWN_BACKSTOP_MS} ms after the drain deadline; exiting`);
        process.exit(1);
      }, server.drainTimeoutMs + SHUTDOWN_BACKSTOP_MS).unref();
      server.shutdown().then(
        () => process.exit(0),
        (e) => {
          console.error(e);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

program
  .command("route")
  .description("route OpenAI requests to the fleet's nodes (a stateless router; run as many as you like)")
  .requiredOption("--cluster <redis-url>", "the fleet's Redis (redis:// or rediss://)")
  .option("--cluster-ca <file>", "with a rediss:// --cluster: the CA (PEM) that signed Redis's certificate")
  .option("--host <host>", "address to listen on", "127.0.0.1")
  .option("--port <port>", "port to listen on (0 picks a free one)", port, 8080)
  .option("--drain-timeout <ms>", "SIGTERM: how long requests under way may take to finish", positive, 30_000)
  .option("--status", "print the fleet (as `pitcher fleet`) and exit")
  .action(async (o: { cluster: string; clusterCa?: string; host: string; port: number; drainTimeout: number; status?: boolean }) => {
    // The fleet code (and Redis) loads only for the commands that use it.
    const { fleetStatus, runRouter } = await import("./route.ts");
    if (o.status) return console.log(await fleetStatus(o.cluster, o.clusterCa));
    const router = await runRouter(o);
    console.log(`Pitcher router listening on ${router.url}`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.error(`${signal}: router draining for at most ${o.drainTimeout} ms…`);
      router.shutdown(o.drainTimeout).then(
        () => process.exit(0),
        (e) => {
          console.error(e);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

program
  .command("fleet")
  .description("print the fleet's nodes, their states, resident models, queues and predicted waits")
  .requiredOption("--cluster <redis-url>", "the fleet's Redis (redis:// or rediss://)")
  .option("--cluster-ca <file>", "with a rediss:// --cluster: the CA (PEM) that signed Redis's certificate")
  .action(async (o: { cluster: string; clusterCa?: string }) => {
    const { fleetStatus } = await import("./route.ts");
    console.log(await fleetStatus(o.cluster, o.clusterCa));
    process.exit(0);
  });

const keys = program.command("keys").description("a fleet's API keys in its Redis: add (printed once; only its SHA-256 is stored), list, revoke");
keys
  .command("add <name>")
  .description("add a key and print it (once); every node and router of the fleet takes it at once")
  .requiredOption("--cluster <redis-url>", "the fleet's Redis (redis:// or rediss://)")
  .option("--cluster-ca <file>", "with a rediss:// --cluster: the CA (PEM) that signed Redis's certificate")
  .option("--models <list>", "models the key may use, comma-separated (default: all)", (v: string) => v.split(",").filter(Boolean))
  .option("--rpm <n>", "requests per minute", count)
  .option("--tpm <n>", "tokens per minute (prompt + max tokens at admission)", count)
  .option("--budget-tokens <n>", "token budget per period", count)
  .option("--budget-period <period>", "hour, day, week or month (calendar, UTC; default month)")
  .option("--weight <w>", "share of device time when keys compete (default 1)", positive)
  .action(
    async (
      name: string,
      o: { cluster: string; clusterCa?: string; models?: string[]; rpm?: number; tpm?: number; budgetTokens?: number; budgetPeriod?: string; weight?: number },
    ) => {
      const { keysAdd } = await import("./keys.ts");
      const { cluster, clusterCa, ...rest } = o;
      console.log(await keysAdd({ url: cluster, tlsCaFile: clusterCa }, name, rest));
      console.error(`key '${name}' added: this is the only time it is shown (Redis keeps its SHA-256)`);
    },
  );
keys
  .command("list")
  .description("the fleet's keys: names, limits, budget spent and reserved this period (never the keys)")
  .requiredOption("--cluster <redis-url>", "the fleet's Redis (redis:// or rediss://)")
  .option("--cluster-ca <file>", "with a rediss:// --cluster: the CA (PEM) that signed Redis's certificate")
  .action(async (o: { cluster: string; clusterCa?: string }) => {
    const { keysList } = await import("./keys.ts");
    console.log(await keysList({ url: o.cluster, tlsCaFile: o.clusterCa }));
  });
keys
  .command("revoke <name>")
  .description("revoke a key: every node and router refuses it (401) from now on")
  .requiredOption("--cluster <redis-url>", "the fleet's Redis (redis:// or rediss://)")
  .option("--cluster-ca <file>", "with a rediss:// --cluster: the CA (PEM) that signed Redis's certificate")
  .action(async (name: string, o: { cluster: string; clusterCa?: string }) => {
    const { keysRevoke } = await import("./keys.ts");
    await keysRevoke({ url: o.cluster, tlsCaFile: o.clusterCa }, name);
    console.log(`key '${name}' revoked`);
  });

const workloadOptions = (c: Command) =>
  c
    .option("--models <file>", "model catalog (YAML/JSON); default: the embedded model market")
    .option("--accelerator <id>", "accelerator (H20, H800, H100, A100, A100-40G, A10, L40S or one from the catalog)", "H20")
    .option("--profile <file>", "plan this machine: a profile written by `pitcher profile` (its devices, models and server settings)")
    .option("--workload <file>", "workload (YAML/JSON); default: the embedded market workload")
    .option("--seed <n>", "override the workload seed", positive)
    .option("--duration <s>", "override the workload duration (seconds)", positive)
    .option("--rate <r>", "override the total arrival rate (req/s)", positive)
    .option("--load-gbps <GB/s>", "price model loads at this host-link bandwidth where the cost model is faster (a serverless loader: about 12.6)", positive);

workloadOptions(
  program
    .command("plan")
    .description("how many accelerators each policy needs to meet the SLOs (fleet simulator)")
    .option("--target <fraction>", "SLO attainment to reach", fraction, 0.99)
    .option("--policies <list>", "policies to size", policies, POLICIES)
    .option("--max-devices <n>", "give up above this many devices", positive, 512)
    .option("--json", "print JSON")
    .option("--node-devices <n>", "plan in nodes of this many devices (a scheduler each, routed as the router does): the smallest number of nodes", count)
    .option("--max-nodes <n>", "with --node-devices: give up above this many nodes", count, 32),
).action((o) => {
  if (o.nodeDevices) {
    const plans = (o.policies as SimPolicy[]).filter((p) => p !== "dedicated").map((policy) => runPlanNodes({ ...o, policy, devices: o.nodeDevices, maxNodes: o.maxNodes }));
    console.log(o.json ? JSON.stringify(plans, null, 2) : plans.map(formatPlanNodes).join("\n\n"));
    return;
  }
  const result = runPlan({ ...o, maxDevices: o.maxDevices });
  console.log(o.json ? JSON.stringify(result, null, 2) : formatPlanTable(result));
});

workloadOptions(
  program
    .command("simulate")
    .description("simulate one fleet size and write an HTML + JSON report")
    .requiredOption("--devices <n>", "fleet size (with --nodes: devices per node)", positive)
    .option("--nodes <n>", "N nodes of --devices devices, a scheduler each, routed as the router does; compared with one pool and with one node down", count)
    .option("--policy <name>", POLICIES.join(", "), "token")
    .option("--out <prefix>", "report files: <prefix>.json and <prefix>.html", "pitcher-report")
    .option("--timeline-seconds <s>", "seconds of the per-device timeline to draw", positive, 120),
).action((o) => {
  if (!POLICIES.includes(o.policy)) throw new InvalidArgumentError(`--policy: one of ${POLICIES.join(", ")}`);
  if (o.nodes) {
    const r = runSimulateNodes({ ...o, timelineSeconds: o.timelineSeconds });
    console.log(r.line);
    console.log(`wrote ${r.files.join(" and ")}`);
    return;
  }
  const r = runSimulate({ ...o, timelineSeconds: o.timelineSeconds });
  const rep = JSON.parse(r.json);
  console.log(formatSimulateLine(rep));
  console.log(`wrote ${r.files.join(" and ")}`);
});

program
  .command("bench")
  .description("open-loop load against an OpenAI-compatible endpoint, scored by deadline SLO")
  .requiredOption("--url <url>", "the endpoint, e.g. http://127.0.0.1:8080 (loopback or an address you own)")
  .option("--workload <file>", "workload (YAML/JSON, the planner's format); default: 60 s Poisson at 4 req/s over every model")
  .option("--rates <list>", "sweep these total arrival rates (req/s)", (v: string) => v.split(",").map((x) => positive(x)))
  .option("--ttft <ms>", "TTFT target for models the server publishes none for", positive, 10_000)
  .option("--tbt <ms>", "TBT target for models the server publishes none for", positive, 100)
  .option("--api-key <key>", "send `Authorization: Bearer <key>` (what the openai client's apiKey sends); workload tenants with a key send their own")
  .option("--json", "print JSON")
  .option("--report <prefix>", "also write <prefix>.json and <prefix>.html (charts, self-contained)")
  .action(async (o) => {
    const apiKey: string | undefined = o.apiKey;
    const rows = await runBench({
      url: o.url,
      workload: o.workload,
      rates: o.rates,
      ttftMs: o.ttft,
      tbtMs: o.tbt,
      progress: !o.json && process.stderr.isTTY === true,
      ...(apiKey ? { apiKey } : {}),
    });
    console.log(o.json ? JSON.stringify({ rates: rows }, null, 2) : formatBenchTable(rows));
    if (o.report) {
      const setup = await describeBench({ url: o.url, workload: o.workload, rates: o.rates, ttftMs: o.ttft, tbtMs: o.tbt, progress: false, ...(apiKey ? { apiKey } : {}) });
      const files = writeBenchReport(o.report, { url: o.url, workload: o.workload ?? "default (60 s Poisson at 4 req/s over every model)", rates: rows, setup });
      console.error(`wrote ${files.join(" and ")}`);
    }
  });

program
  .command("profile")
  .description("measure this machine's devices on the serving catalog and write a profile for `pitcher plan --profile`")
  .option("--config <file>", "the serving configuration (YAML or JSON); default: the embedded catalog")
  .option("--out <file>", "where to write the profile", "machine-profile.json")
  .option("--models <list>", "only these models of the catalog (comma-separated)", (v: string) => v.split(",").filter(Boolean))
  .option("--repeats <n>", "repetitions of each decode and swap measurement (median kept)", positive, 3)
  .action(async (o) => {
    const p = await runProfile({
      ...(o.config ? { configFile: o.config } : {}),
      out: o.out,
      ...(o.models ? { models: o.models } : {}),
      repeats: o.repeats,
      progress: process.stderr.isTTY === true,
    });
    console.log(formatProfileTable(p));
    console.log(`wrote ${o.out}; plan this machine with: pitcher plan --profile ${o.out} --workload <file>`);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(e instanceof PitcherError ? `pitcher: ${e.message}` : e);
  process.exit(1);
});
