/**
 * How a device worker runs one decode step of n sequences: as one merged batch, or one
 * sequence after another. On GPUs a batch costs about what one sequence does. On this
 * CPU (1 thread, Q8_0 58M model) a batch of 2 took 11.4 ms against 8.3 ms for the two
 * sequences in turn, and a batch of 4 cost the same either way (engine.md: "2 tokens cost
 * ~3× one"). So each loaded model measures both ways for every batch size it meets (the
 * first few steps alternate) and then keeps the faster. One sequence at a time has a
 * second merit: each sequence's tokens no longer depend on its batch-mates.
 */
import { median } from "../core/slo.ts";

export type BatchMode = "batched" | "serial";

export class BatchModeChooser {
  private readonly samples = new Map<number, Record<BatchMode, number[]>>();

  constructor(private readonly trials = 3) {}

  choose(n: number): BatchMode {
    if (n < 2) return "batched";
    const s = this.samples.get(n);
    if (!s) return "batched";
    if (s.batched.length < this.trials || s.serial.length < this.trials) return s.serial.length < s.batched.length ? "serial" : "batched";
    return median(s.serial) < median(s.batched) ? "serial" : "batched";
  }

  observe(n: number, mode: BatchMode, ms: number): void {
    if (n < 2) return;
    let s = this.samples.get(n);
    if (!s) {
      s = { batched: [], serial: [] };
      this.samples.set(n, s);
    }
    if (s[mode].length < this.trials) s[mode].push(ms);
  }
}
