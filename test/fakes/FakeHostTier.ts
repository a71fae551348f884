/**
 * The fake devices' host KV tier: parked sequences in memory, shared by every fake device
 * made with it, so parked KV moves between devices as it does between engine workers.
 */
import type { RequestId } from "../../src/core/types.ts";

interface Parked {
  /** The model file's fingerprint: KV of one file restores into any model id of that file. */
  fingerprint: string;
  /** The sequence's history: what its next token depends on. */
  tokens: number[];
  corrupt: boolean;
}

export class FakeHostTier {
  private readonly parked = new Map<RequestId, Parked>();

  park(requestId: RequestId, fingerprint: string, tokens: number[]): void {
    this.parked.set(requestId, { fingerprint, tokens: [...tokens], corrupt: false });
  }

  /** The parked history, checked as the engine checks its files; throws with why it is unusable. */
  read(requestId: RequestId, fingerprint: string): number[] {
    const p = this.parked.get(requestId);
    if (!p) throw new Error(`KV state of ${requestId}: header missing or unreadable`);
    if (p.fingerprint !== fingerprint) throw new Error(`KV state of ${requestId} belongs to another model`);
    if (p.corrupt) throw new Error(`KV state of ${requestId} is corrupt (length or checksum mismatch)`);
    return [...p.tokens];
  }

  /** Restored: the parked copy is gone (the engine removes the files it restored). */
  remove(requestId: RequestId): void {
    this.parked.delete(requestId);
  }

  /** Damage a parked state (tests of a failed restore). */
  corrupt(requestId: RequestId): void {
    const p = this.parked.get(requestId);
    if (!p) throw new Error(`${requestId} is not parked`);
    p.corrupt = true;
  }

  has(requestId: RequestId): boolean {
    return this.parked.has(requestId);
  }

  get size(): number {
    return this.parked.size;
  }
}
