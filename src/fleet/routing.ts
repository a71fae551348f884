/**
 * Routing as a pure function, shared by the router (wall clock) and the simulator (virtual
 * clock), as the scheduler is shared by the server and the simulator: no I/O, timers or
 * randomness; every time comes in as an argument, on Redis's clock. Reasoning: DESIGN.md.
 */
import type { ModelId } from "../core/types.ts";
import type { ModelRecord, NodeRecord } from "./record.ts";

/** Records older than this many of their node's heartbeats are not trusted (the node may be dead or hung). */
export const STALE_HEARTBEATS = 2.5;

/** A request this router sent and that has not ended, with when it was sent (Redis clock, ms). */
export interface SentRequest {
  nodeId: string;
  modelId: ModelId;
  sentAtMs: number;
}

export interface RoutingInput {
  records: readonly NodeRecord[];
  modelId: ModelId;
  /** The time records' freshness is judged at (Redis clock, ms): now, or, with Redis unreachable, when the view was read. */
  asOfMs: number;
  /** Now (Redis clock, ms), for exclusions. */
  nowMs: number;
  /** This router's requests in flight: those sent after a node's record count as load the record does not show. */
  inFlight: readonly SentRequest[];
  /** Nodes that failed a call, skipped until the time given (Redis clock, ms). */
  excludedUntil: ReadonlyMap<string, number>;
}

export interface Candidate {
  nodeId: string;
  url: string;
  /** Predicted wait (ms): the node's own prediction plus what this router sent it since. */
  costMs: number;
  resident: boolean;
}

/** Whether a record is fresh enough to route on at `asOfMs`. */
export function isFresh(r: NodeRecord, asOfMs: number): boolean {
  return asOfMs - r.stampMs <= STALE_HEARTBEATS * r.heartbeatMs;
}

/**
 * The nodes that may take a request of `modelId`, best first. Only fresh, READY records of
 * nodes serving the model and not excluded. Cost = the node's predicted wait for the model
 * (a load included where it is not resident) + what this router sent it since the record;
 * a node holding the model wins ties, so it is preferred unless it is busier than a load
 * elsewhere. Then fewer of our own requests in flight, then the node id (deterministic).
 */
export function rankNodes(input: RoutingInput): Candidate[] {
  const ranked: (Candidate & { ours: number })[] = [];
  for (const r of input.records) {
    const m = r.models[input.modelId];
    if (!m || r.state !== "READY" || !isFresh(r, input.asOfMs)) continue;
    if ((input.excludedUntil.get(r.nodeId) ?? Number.NEGATIVE_INFINITY) > input.nowMs) continue;
    let ours = 0;
    const unrecorded: ModelId[] = [];
    for (const s of input.inFlight) {
      if (s.nodeId !== r.nodeId) continue;
      ours++;
      if (s.sentAtMs >= r.stampMs) unrecorded.push(s.modelId);
    }
    ranked.push({ nodeId: r.nodeId, url: r.url, costMs: m.waitMs + unrecordedMs(r, unrecorded) + displacedMs(r, m), resident: m.state === "resident", ours });
  }
  ranked.sort((a, b) => a.costMs - b.costMs || Number(b.resident) - Number(a.resident) || a.ours - b.ours || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  return ranked.map(({ ours: _, ...c }) => c);
}

/**
 * What the requests this router sent a node since its record add to its waits (ms), which
 * the record cannot show yet. A request of a model with nothing running or queued there
 * opens a batch of its own (`requestMs`: prefill and a decode); every other one joins a
 * batch (`joinMs`: its prefill and its share of larger decode steps), so a burst for a
 * resident model stays where it is resident instead of paying loads elsewhere.
 */
export function unrecordedMs(r: NodeRecord, modelIds: readonly ModelId[]): number {
  const opened = new Set<ModelId>();
  let ms = 0;
  for (const id of modelIds) {
    const m = r.models[id];
    if (!m) continue;
    const joins = opened.has(id) || m.running + m.queued > 0;
    opened.add(id);
    ms += joins ? (m.joinMs ?? m.requestMs) : m.requestMs;
  }
  return ms;
}

/**
 * A load on a node with no room for the model evicts one that is resident there, which
 * someone pays for later with a load of its own: price it as a second load (ms). Without
 * this a burst for a model resident on one node loaded it on the others, evicting theirs,
 * and a fleet of small nodes made four times the model switches of one pool (BENCHMARKS.md).
 * A node with room, or a record without sizes, pays nothing more.
 */
export function displacedMs(r: NodeRecord, m: ModelRecord): number {
  if (m.state !== "absent" || m.weightBytes === undefined) return 0;
  const room = r.devices.some((d) => d.up && d.freeBytes >= m.weightBytes!);
  return room ? 0 : m.loadMs;
}

/** How one try of a request at a node ended, short of an answer for the client. */
export type Attempt = { nodeId: string; kind: "rate_limited"; retryAfterS: number } | { nodeId: string; kind: "failed" };

export type Step = { kind: "send"; candidate: Candidate } | { kind: "rate_limited"; retryAfterS: number } | { kind: "unavailable"; retryAfterS: number };

export interface DispatchLimits {
  /** Tries per request at most (the first included). */
  maxAttempts: number;
  /** No new try after this (Redis clock, ms): the request's TTFT budget. */
  deadlineMs: number;
  nowMs: number;
}

/** With no node left to try and no 429 among the tries, the client is told to come back after this. */
export const UNAVAILABLE_RETRY_AFTER_S = 1;

/**
 * What to do next with a request that has not reached its client yet: send it to the best
 * node not tried yet (a node's 429 sends it to the next candidate once), or give up. Giving
 * up after 429s answers 429 with the smallest `Retry-After` the nodes gave; otherwise 503.
 */
export function nextStep(ranked: readonly Candidate[], attempts: readonly Attempt[], limits: DispatchLimits): Step {
  const tried = new Set(attempts.map((a) => a.nodeId));
  const next = ranked.find((c) => !tried.has(c.nodeId));
  if (next && attempts.length < limits.maxAttempts && (attempts.length === 0 || limits.nowMs < limits.deadlineMs)) return { kind: "send", candidate: next };
  const limited = attempts.filter((a): a is Extract<Attempt, { kind: "rate_limited" }> => a.kind === "rate_limited");
  if (limited.length > 0) return { kind: "rate_limited", retryAfterS: Math.min(...limited.map((a) => a.retryAfterS)) };
  return { kind: "unavailable", retryAfterS: UNAVAILABLE_RETRY_AFTER_S };
}
