/**
 * `n > 1`: n choices of one request, each scheduled as a request of its own through the pool
 * (the scheduler has no shared prefixes, so each prefills the prompt: n times the prompt's
 * KV and prefill work). They share one fate: the caller going away, or any choice failing,
 * cancels the others.
 */
import type { Generation, Serving, ServingRequest } from "./Serving.ts";

export async function generateChoices(serving: Serving, request: ServingRequest, n: number): Promise<Generation[]> {
  if (n === 1) return [await serving.generate(request)];
  const together = new AbortController();
  const parent = request.signal;
  if (parent?.aborted) together.abort(parent.reason);
  else parent?.addEventListener("abort", () => together.abort(parent.reason), { once: true });
  const choices: Generation[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const seed = request.sampling.seed;
      // A given seed makes every choice repeatable, and the choices differ from each other;
      // without one, each choice draws its own (Serving does).
      const sampling = seed === undefined ? request.sampling : { ...request.sampling, seed: seed + i };
      const g = await serving.generate({ ...request, sampling, signal: together.signal });
      g.result.catch((e: unknown) => together.abort(e));
      choices.push(g);
    }
  } catch (e) {
    // Refused before scheduling (the same for every choice, so the first): nothing runs.
    together.abort(e);
    throw e;
  }
  return choices;
}
