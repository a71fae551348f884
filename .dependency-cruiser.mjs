// The layering of src/, as rules dependency-cruiser checks (`npm run lint:deps`, run by .ci/run).
// A broken rule prints `error <rule>: <importing file> → <imported file>` and fails the run.
//
// Each folder under src/ is a layer and may import only the layers listed for it below (npm
// packages and node builtins are not layers and stay allowed, except in the scheduler).
// Tests (`*.test.ts`, their fakes under a `testing/` folder, test/) and the scripts in bench/ and bin/ are composition roots like cli/:
// they may import anything, but still take part in the cycle and resolution checks.
//
// A type-only import (`import type`, or every name marked `type`) counts as an import,
// except where a layer lists the target under `typesFrom`: there only type-only imports may cross.

/** @typedef {{ may: string[], typesFrom?: string[], why: string }} Layer */

/** @type {Record<string, Layer>} */
const LAYERS = {
  core: { may: [], why: "core is the shared vocabulary (ids, records, ports, errors): it depends on no other layer" },
  scheduler: { may: ["core"], why: "the scheduler is pure and shared by server and simulator: it sees the world only through core" },
  workload: { may: ["core"], why: "workload generators are plain data makers over core types" },
  views: { may: ["core"], why: "browser views render core records to HTML; they know no server or simulator" },
  config: { may: ["core"], why: "config parses and validates files into core types; the layers that use it import it, not the reverse" },
  sim: {
    // From fleet/ only the pure routing.ts and record.ts (rule sim-reaches-only-pure-fleet): `simulate --nodes` routes as the router does.
    may: ["core", "scheduler", "workload", "views", "fleet"],
    why: "the simulator drives the real scheduler in virtual time; it never touches real devices (engine) or the server (runtime, api, observe)",
  },
  engine: {
    may: ["core"],
    typesFrom: ["config"],
    why: "the engine is the node-llama-cpp device behind the device port in core; it never imports sim, scheduler, runtime, api or observe",
  },
  runtime: {
    may: ["core", "scheduler"],
    why: "runtime drives the scheduler in wall-clock time; it reaches devices and tokenizers only through ports in core, never engine",
  },
  observe: {
    may: ["core", "views"],
    typesFrom: ["runtime", "scheduler"],
    why: "observe records and shows what runtime does, reading its types; it never drives it",
  },
  api: {
    may: ["core", "runtime", "views"],
    typesFrom: ["observe"],
    why: "api maps HTTP and the OpenAI wire format onto runtime",
  },
  loadgen: { may: ["core", "workload", "views"], why: "the load client speaks HTTP to a server; it shares no code with one" },
  profile: { may: ["core", "sim", "scheduler", "runtime"], why: "the profiler measures a machine through the device port (running commands as the runtime does) and fits the simulator's cost model" },
  fleet: {
    may: ["core", "api", "views"],
    typesFrom: ["runtime", "scheduler"],
    why: "the fleet (node records, routing, the router and its dashboard page) talks to Redis and HTTP; a node wraps the runtime it is given, reading its types",
  },
  cli: { may: ["*"], why: "cli is the composition root: the one place that wires concrete classes together" },
};

// The scheduler's policies, residency mechanism, admission and memory ledger: the simulator must reach them only through the
// Scheduler class, so that it holds no second copy of scheduling logic. (test/layering.test.ts
// checks that each still exists, so a rename cannot quietly empty the rule.)
export const SCHEDULING_LOGIC = ["tokenPolicy", "requestPolicy", "eligibility", "turns", "turnIntents", "Residency", "admission", "quota", "MemoryLedger"];

// Folders cannot form a cycle if the table has none: check it here, once, when the config loads.
function assertAcyclic(layers) {
  const state = new Map(); // folder → "visiting" | "done"
  const visit = (name, trail) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") throw new Error(`.dependency-cruiser.mjs: layers form a cycle: ${[...trail, name].join(" → ")}`);
    state.set(name, "visiting");
    const layer = layers[name];
    if (!layer) throw new Error(`.dependency-cruiser.mjs: unknown layer ${name}`);
    for (const next of [...layer.may, ...(layer.typesFrom ?? [])]) if (next !== "*") visit(next, [...trail, name]);
    state.set(name, "done");
  };
  for (const name of Object.keys(layers)) visit(name, []);
}
assertAcyclic(LAYERS);

const NAMES = Object.keys(LAYERS).join("|");
// Tests and their support files (fakes, fixtures) under a testing/ folder.
const TEST = "(\\.test\\.ts$|/testing/)";
const anyOf = (folders) => `^src/(${folders.join("|")})/`;

/** One rule per layer: it imports only its own folder and the layers it may. */
function layerRules([name, layer]) {
  if (layer.may.includes("*")) return [];
  const typesFrom = layer.typesFrom ?? [];
  const rules = [
    {
      name: layer.may.length + typesFrom.length === 0 ? `${name}-imports-no-other-layer` : `${name}-imports-only-${[...layer.may, ...typesFrom].join("-")}`,
      severity: "error",
      comment: layer.why,
      from: { path: `^src/${name}/`, pathNot: TEST },
      // engine/ and cli/ have rules of their own below, so an import of them is reported once, by the rule that says why.
      to: { path: "^src/", pathNot: anyOf([name, ...layer.may, ...typesFrom, "engine", "cli"]) },
    },
  ];
  if (typesFrom.length > 0) {
    rules.push({
      name: `${name}-imports-${typesFrom.join("-")}-only-for-types`,
      severity: "error",
      comment: `${layer.why}: from ${typesFrom.join(", ")} it takes types (import type), never values`,
      from: { path: `^src/${name}/`, pathNot: TEST },
      to: { path: anyOf(typesFrom), dependencyTypesNot: ["type-only"] },
    });
  }
  return rules;
}

/** @type {import("dependency-cruiser").IConfiguration} */
export default {
  forbidden: [
    ...Object.entries(LAYERS).flatMap(layerRules),
    {
      name: "only-cli-wires-engine",
      severity: "error",
      comment:
        "only cli (and tests and bench scripts) may import engine/: the concrete devices are wired in one place, and sim and engine never import each other",
      from: { path: "^src/", pathNot: [`^src/(cli|engine)/`, TEST] },
      to: { path: "^src/engine/" },
    },
    {
      name: "nothing-imports-cli",
      severity: "error",
      comment: "cli is the composition root: it imports the layers, no layer imports it (tests may)",
      from: { path: "^src/", pathNot: ["^src/cli/", TEST] },
      to: { path: "^src/cli/" },
    },
    {
      name: "scheduler-does-no-io",
      severity: "error",
      comment: "the scheduler is pure (no I/O, timers, randomness): it imports no node builtin and no npm package",
      from: { path: "^src/scheduler/", pathNot: TEST },
      to: { dependencyTypes: ["core", "npm", "npm-dev", "npm-optional", "npm-peer", "npm-bundled", "npm-no-pkg", "npm-unknown"] },
    },
    {
      name: "fleet-routing-does-no-io",
      severity: "error",
      comment: "routing is pure (no I/O, timers, randomness) and shared with the simulator: it imports no node builtin, no npm package and nothing of the fleet's I/O",
      from: { path: "^src/fleet/(routing|record)\\.ts$" },
      to: {
        dependencyTypes: ["core", "npm", "npm-dev", "npm-optional", "npm-peer", "npm-bundled", "npm-no-pkg", "npm-unknown"],
      },
    },
    {
      name: "sim-reaches-only-pure-fleet",
      severity: "error",
      comment: "the simulator shares the router's routing function and node records (pure), never the Redis or HTTP side of the fleet",
      from: { path: "^src/sim/", pathNot: TEST },
      to: { path: "^src/fleet/", pathNot: "^src/fleet/(routing|record)\\.ts$" },
    },
    {
      name: "fleet-routing-imports-only-records-and-core",
      severity: "error",
      comment: "routing is pure: it reads node records and core types, never the Redis or HTTP side of the fleet",
      from: { path: "^src/fleet/(routing|record)\\.ts$" },
      to: { path: "^src/", pathNot: "^src/(core/|fleet/(routing|record)\\.ts$)" },
    },
    {
      name: "sim-holds-no-scheduling-logic",
      severity: "error",
      comment:
        "the simulator runs the real Scheduler and reaches none of its policies or its memory ledger directly: there is no second copy of scheduling logic",
      from: { path: "^src/sim/", pathNot: TEST },
      to: { path: `^src/scheduler/(${SCHEDULING_LOGIC.join("|")})\\.ts$` },
    },
    {
      name: "src-folder-is-a-layer",
      severity: "error",
      comment: `every folder under src/ is one of the layers (${NAMES}); add a new one to .dependency-cruiser.mjs with the layers it may import`,
      from: { path: "^src/", pathNot: [`^src/(${NAMES})/`] },
      to: {},
    },
    {
      name: "no-import-from-an-unknown-layer",
      severity: "error",
      comment: `every folder under src/ is one of the layers (${NAMES}); add a new one to .dependency-cruiser.mjs with the layers it may import`,
      from: {},
      to: { path: "^src/", pathNot: [`^src/(${NAMES})/`] },
    },
    {
      name: "no-circular",
      severity: "error",
      comment: "no module reaches itself through its imports (and so no two folders import each other)",
      from: {},
      to: { circular: true },
    },
    {
      name: "no-unresolvable",
      severity: "error",
      comment: "every import resolves to a file or package; an import that does not resolve would slip past every rule above",
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: "src-uses-no-devDependencies",
      severity: "error",
      comment: "src/ runs in production, where devDependencies are not installed (type-only imports are erased and fine)",
      from: { path: "^src/", pathNot: TEST },
      to: { dependencyTypes: ["npm-dev"], dependencyTypesNot: ["type-only"] },
    },
  ],
  required: [
    {
      name: "sim-runs-the-real-scheduler",
      severity: "error",
      comment: "the simulation drives the same Scheduler class as the server, imported from scheduler/Scheduler.ts",
      module: { path: "^src/sim/Simulation\\.ts$" },
      to: { path: "^src/scheduler/Scheduler\\.ts$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // tsx-style `.ts` specifiers resolve through the project's tsconfig (allowImportingTsExtensions).
    tsConfig: { fileName: "tsconfig.json" },
    // Keep `import type` edges in the graph, so type-only imports are checked too.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".mjs", ".js", ".cjs", ".json"],
      mainFields: ["module", "main", "types", "typings"],
    },
  },
};
