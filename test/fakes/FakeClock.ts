/** Time for tests: moves only when told (fake devices move it by what their calls cost). */
export class FakeClock {
  private nowMs = 0;

  /** Current time in ms; a bound function, so it can be handed out as a clock. */
  readonly now = (): number => this.nowMs;

  advance(ms: number): void {
    this.nowMs += ms;
  }
}
