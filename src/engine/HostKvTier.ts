/**
 * The host KV tier of one pool: a folder (tmpfs where available) of parked sequence states,
 * shared by every device of the pool. A worker writes a request's files when it parks the
 * request and removes them when it restores it; the tier removes what an ended request left
 * behind, and the whole folder when the pool closes.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RequestId } from "../core/types.ts";
import { kvPaths } from "./kvStateFile.ts";

export class HostKvTier {
  /** A fresh folder of its own, in memory-backed /dev/shm where the machine has it. */
  static temporary(prefix = "pitcher-kv-"): HostKvTier {
    const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
    return new HostKvTier(fs.mkdtempSync(path.join(base, prefix)));
  }

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /** The state file and header file a request's parked KV lives in. */
  paths(requestId: RequestId): { state: string; header: string } {
    return kvPaths(this.dir, requestId);
  }

  /**
   * Remove whatever the request left here. Called for every ended request, parked or not:
   * two removals of absent files cost less than keeping a second record of which are parked.
   * Synchronous (microseconds on tmpfs), so that once discarded, no device can restore it.
   */
  discard(requestId: RequestId): void {
    const p = this.paths(requestId);
    fs.rmSync(p.state, { force: true });
    fs.rmSync(p.header, { force: true });
  }

  /** Remove the folder and everything parked in it. */
  close(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
