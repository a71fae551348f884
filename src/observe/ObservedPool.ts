/**
 * What the operator's views (metrics, request log, dashboard state) read of a pool: its
 * events, its scheduler's state at a moment, its clock and its model ids. `Pool` has it;
 * tests feed the views from a plain emitter.
 */
import type { EventEmitter } from "node:events";
import type { ModelId } from "../core/types.ts";
import type { PoolEvents } from "../runtime/Pool.ts";
import type { SchedulerSnapshot } from "../scheduler/Scheduler.ts";

export interface ObservedPool extends Pick<EventEmitter<PoolEvents>, "on"> {
  /** Milliseconds on the pool's clock (the clock its events carry). */
  now(): number;
  snapshot(): SchedulerSnapshot;
  readonly models: ReadonlyMap<ModelId, unknown>;
}
