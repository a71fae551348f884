/**
 * The model sets of the benchmark scenarios (../shared/docs/benchmarks.md, BENCHMARKS.md),
 * shared by the real-server sweeps (policies.ts) and the side-by-side with llama.cpp's
 * `llama-server` (peer.ts), so both serve byte-identical files.
 *
 * - `default`: the embedded stand-in catalog.
 * - `P` (pooling): six distinct dense 58M Q8_0 models (≈62 MB, a warm load ≈0.2 s).
 * - `L` (pooling where it matters on CPU): six distinct dense ≈400M Q8_0 models with a 128k
 *   vocabulary (≈426 MB; a load from the page cache ≈3.5× P's CPU time, one decode step ≈4×
 *   P's), with long outputs, Zipf(1) popularity and bursty gamma arrivals as its defaults.
 */
import fs from "node:fs";
import path from "node:path";
import { STAND_IN_CATALOG } from "../src/engine/gguf/standInCatalog.ts";
import { type StandInModelShape, writeStandInModel } from "../src/engine/gguf/writeStandInModel.ts";
import { ensureStandIns } from "../src/engine/resolveModels.ts";

export type ScenarioName = "default" | "P" | "L";

/**
 * Bench-only shape of scenario L: n_embd 1024, 12 layers, 16 heads / 4 KV heads, FF 2816, and
 * a 128k vocabulary (as Llama 3's). The vocabulary is what makes its loads slow: with mmap a
 * load from the page cache barely depends on the weights' size (engine.md), but building a
 * 128k vocabulary and its logits buffers costs ≈3–4× a 32k one (BENCHMARKS.md § 8).
 */
export const L_SHAPE: Omit<StandInModelShape, "name" | "seed"> = {
  embeddingLength: 1024,
  blockCount: 12,
  headCount: 16,
  headCountKv: 4,
  feedForwardLength: 2816,
  vocabularySize: 128000,
  contextLength: 2048,
  weightType: "q8_0",
};

/**
 * Defaults a scenario brings to the sweep scripts' options (each still overridable on the
 * command line): the memory budget that holds exactly one of its models per device (two in
 * all: "room for two"), and its workload shape.
 */
export const SCENARIO_DEFAULTS: Record<ScenarioName, Record<string, string>> = {
  default: {},
  P: {},
  // 520MB per device: one ≈426 MB model plus its KV cache (4 sequences × 1024 tokens ≈ 50 MB)
  // fits, two do not. Outputs: log-normal, mean 256 tokens, CV 0.5 (up to 900). Arrivals:
  // gamma with CV 3 (bursts, then lulls). Popularity: Zipf(1) over the six. All six resident
  // (peer.ts --modes resident): 6 × 426 MB plus KV per device.
  L: { memory: "520MB", residentMemory: "2800MB", output: "256", outputCv: "0.5", arrivalCv: "3", popularity: "zipf" },
};

export function isScenario(name: string): name is ScenarioName {
  return name === "default" || name === "P" || name === "L";
}

/**
 * The scenario's models, written on first use under `<cacheDir>/bench/` (deterministic: the
 * same seed writes the same bytes, so every run and both servers see the same files).
 * `count`: how many distinct models of P's or L's shape (six in the scenarios; more for
 * modelsPerDevice.ts; the first six are always the scenario's own files).
 */
export function scenarioModels(name: ScenarioName, cacheDir: string, count = 6): { id: string; path: string }[] {
  if (name === "default") return ensureStandIns(cacheDir);
  const [prefix, shape, seedBase] = name === "P" ? ["p58m", STAND_IN_CATALOG[0]!.shape, 900] : ["l400m", { ...L_SHAPE, name: "", seed: 0 }, 950];
  return Array.from({ length: count }, (_, i) => {
    const id = `${prefix}-${i}`;
    const file = path.join(cacheDir, "bench", `${id}.gguf`);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      writeStandInModel({ ...shape, name: id, seed: seedBase + i }, file);
    }
    return { id, path: file };
  });
}

/**
 * Apply a scenario's defaults to options the user left at their script default (commander's
 * `getOptionValueSource` tells which), so `--scenario L` alone runs scenario L as documented.
 */
export function applyScenarioDefaults(name: ScenarioName, opts: Record<string, unknown>, sourceOf: (key: string) => string | undefined): void {
  for (const [key, value] of Object.entries(SCENARIO_DEFAULTS[name])) {
    if (sourceOf(key) === "default" || sourceOf(key) === undefined) opts[key] = value;
  }
}
