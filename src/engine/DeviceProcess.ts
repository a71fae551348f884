/**
 * Server side of a device worker: forks the worker process, sends it commands and matches
 * the answers. If the process dies, every pending call rejects with DeviceDownError and
 * `onExit` fires; `start()` brings up a fresh worker. Internal to the engine: the runtime
 * drives an EngineDevice, which translates the device port onto this protocol.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { DeviceDownError } from "../core/devicePort.ts";
import type { DeviceId, RequestId } from "../core/types.ts";
import type { WorkerCommand, WorkerInit, WorkerMessage, WorkerProgress, WorkerReply, WorkerResult } from "./protocol.ts";

export class EngineCommandError extends Error {}

interface Pending {
  resolve(v: { durationMs: number; result: WorkerResult }): void;
  reject(e: Error): void;
  onProgress?: (p: WorkerProgress["progress"][number]) => void;
}

const WORKER_PATH = fileURLToPath(new URL("./deviceWorker.ts", import.meta.url));
const TSX_LOADER = import.meta.resolve("tsx");

export interface DeviceProcessOptions extends WorkerInit {
  /** Called when the worker exits unexpectedly. */
  onExit?: (detail: string) => void;
}

export class DeviceProcess {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private stopping = false;

  constructor(
    readonly id: DeviceId,
    private readonly options: DeviceProcessOptions,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.stopping = false;
    const child = fork(WORKER_PATH, [], {
      execArgv: ["--import", TSX_LOADER],
      // node-llama-cpp runs decode, sampling and state I/O on the libuv pool. They run one
      // after another, so busy threads stay at `threads`, but a pool of exactly `threads`
      // serializes the hand-offs: measured 4.7 ms/token with a pool of 1 against 3.1 ms with 2
      // (58M Q8_0, 1 thread). One spare pool thread.
      env: { ...process.env, UV_THREADPOOL_SIZE: String(Math.max(1, this.options.threads) + 1) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "advanced",
    });
    this.child = child;
    child.on("message", (msg: WorkerReply | WorkerProgress) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      if ("progress" in msg) {
        for (const step of msg.progress) p.onProgress?.(step);
        return;
      }
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve({ durationMs: msg.durationMs, result: msg.result });
      else p.reject(new EngineCommandError(msg.error));
    });
    child.on("exit", (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      const detail = signal ? `signal ${signal}` : `exit code ${code}`;
      const err = new DeviceDownError(this.id, detail);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      if (!this.stopping) this.options.onExit?.(detail);
    });
    const init: WorkerInit = { threads: this.options.threads, gpu: this.options.gpu, kvDir: this.options.kvDir };
    await this.send({ id: 0, init });
  }

  /** Run one command; releases go first. `onProgress` receives each decode step's tokens. */
  call(command: WorkerCommand, release: RequestId[] = [], onProgress?: (p: WorkerProgress["progress"][number]) => void): Promise<{ durationMs: number; result: WorkerResult }> {
    return this.send({ id: 0, release, command }, onProgress);
  }

  /** End the running decode after its current step (new work is waiting). */
  yieldDecode(): void {
    if (this.child?.connected) this.child.send({ id: 0, yield: true } satisfies WorkerMessage);
  }

  /** Drop requests from the decode running now (no answer; ignored if none runs). */
  cancel(requestIds: RequestId[]): void {
    if (this.child?.connected) this.child.send({ id: 0, cancel: requestIds } satisfies WorkerMessage);
  }

  private send(msg: WorkerMessage, onProgress?: (p: WorkerProgress["progress"][number]) => void): Promise<{ durationMs: number; result: WorkerResult }> {
    const child = this.child;
    if (!child) return Promise.reject(new DeviceDownError(this.id, "not running"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...(onProgress ? { onProgress } : {}) });
      child.send({ ...msg, id }, (err) => {
        if (err && this.pending.delete(id)) reject(new DeviceDownError(this.id, err.message));
      });
    });
  }

  /** Kill the worker as a native abort would (tests and operators). */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child) return;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      // Closing the channel lets the worker exit on its own; a stuck one is killed.
      if (child.connected) child.disconnect();
      else child.kill("SIGKILL");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    });
  }
}
