import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";

// The layering rules live in .dependency-cruiser.mjs; these tests run them the way CI does
// (`npm run lint:deps`) and prove that a broken rule fails with a message naming the import.

const ROOT = path.resolve(import.meta.dirname, "..");
const DEPCRUISE = path.join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");

function depcruise(targets: string[]): Promise<{ exitCode: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [DEPCRUISE, ...targets, "--output-type", "err"], { cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(err);
      resolve({ exitCode: err ? Number(err.code) : 0, output: stdout + stderr });
    });
  });
}

/** Some module of a layer (not a test) for a probe to import; the probe survives renames inside the folder. */
function someModuleOf(folder: string): string {
  const file = fs
    .readdirSync(path.join(ROOT, "src", folder))
    .filter((f) => /\.ts$/.test(f) && !f.endsWith(".test.ts") && !f.startsWith("__"))
    .sort()[0];
  assert.ok(file, `src/${folder} has a module to import`);
  return file;
}

/** The scheduler modules the simulator may not import, as the config lists them. */
async function schedulingLogic(): Promise<string[]> {
  const config: { SCHEDULING_LOGIC: string[] } = await import(pathToFileURL(path.join(ROOT, ".dependency-cruiser.mjs")).href);
  return config.SCHEDULING_LOGIC;
}

describe("layering (.dependency-cruiser.mjs)", () => {
  it("holds on the whole tree", async () => {
    const { exitCode, output } = await depcruise(["src", "test", "bench", "bin"]);
    assert.equal(exitCode, 0, output);
  });

  it("fails on a broken rule, naming the importing and the imported file", async () => {
    // Each probe breaks one rule: sim and engine import each other, a type-only import counts,
    // and the simulator reaches into a scheduling policy.
    const probes = [
      { file: "src/sim/__layering_probe.ts", imports: `src/engine/${someModuleOf("engine")}` },
      { file: "src/engine/__layering_probe.ts", imports: `src/sim/${someModuleOf("sim")}` },
      { file: "src/scheduler/__layering_probe.ts", imports: `src/runtime/${someModuleOf("runtime")}`, typeOnly: true },
      { file: "src/sim/__layering_probe_policy.ts", imports: `src/scheduler/${(await schedulingLogic())[0]}.ts` },
    ];
    try {
      for (const p of probes) {
        const specifier = `../${p.imports.split("/").slice(1).join("/")}`;
        const text = p.typeOnly ? `import type * as m from "${specifier}";\nexport type Probe = typeof m;\n` : `import * as m from "${specifier}";\nexport const probe = m;\n`;
        fs.writeFileSync(path.join(ROOT, p.file), text);
      }
      const { exitCode, output } = await depcruise(probes.map((p) => p.file));
      assert.notEqual(exitCode, 0, output);
      for (const p of probes) {
        assert.match(output, new RegExp(`error [\\w-]+: ${p.file.replaceAll(".", "\\.")} → ${p.imports.replaceAll(".", "\\.")}`), output);
      }
    } finally {
      for (const p of probes) fs.rmSync(path.join(ROOT, p.file), { force: true });
    }
  });

  it("names scheduling modules that exist, so a rename cannot empty the sim-holds-no-scheduling-logic rule", async () => {
    for (const name of await schedulingLogic()) assert.ok(fs.existsSync(path.join(ROOT, "src/scheduler", `${name}.ts`)), `src/scheduler/${name}.ts`);
  });
});
