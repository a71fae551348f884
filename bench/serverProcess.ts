/** A Pitcher server in its own process, as a user starts it (benchmarks). */
import { spawn } from "node:child_process";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "..");

/** `root`: the checkout to run (another build, for a before/after comparison); this one by default. */
export async function startServerProcess(configFile: string, root = ROOT): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--config", configFile, "--port", "0", "--no-request-log"], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", () => reject(new Error(`server exited: ${err}`)));
  });
  return {
    url,
    pid: child.pid!,
    async stop() {
      const done = new Promise((r) => child.on("exit", r));
      child.kill("SIGTERM");
      await done;
    },
  };
}
