/**
 * Before it creates a model or a context, node-llama-cpp simulates its memory use (a
 * no-alloc native load of the model) to reserve memory and to fit GPU layers. For a 58M
 * Q8_0 model on this CPU that is ~45 ms of a ~100–170 ms model load and ~35 ms of a
 * ~65–95 ms context creation, paid at every switch. On a CPU device it buys Pitcher
 * nothing: the device's MemoryLedger budgets memory and there are no layers to fit. With
 * the simulation returning nothing, node-llama-cpp falls back to its own tensor-size
 * estimate, the path it takes when a simulation fails. Measured side by side
 * (scratch-style loop, 9 loads each): load + context 165–265 ms with the simulation,
 * 95–140 ms without.
 *
 * The two methods are internal to node-llama-cpp 3.22; when they are missing (another
 * version) nothing is patched and loads are only slower.
 */
import { GgufInsights } from "node-llama-cpp";

export function skipResourceSimulation(): boolean {
  const proto = GgufInsights.prototype as unknown as Record<string, unknown>;
  const names = ["_simulateModelResourceUsage", "_simulateContextResourceUsage"];
  if (!names.every((n) => typeof proto[n] === "function")) return false;
  for (const n of names) proto[n] = async () => null;
  return true;
}
