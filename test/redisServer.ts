// A throwaway redis-server for one test: its own free loopback port, nothing saved, killed
// after. Optionally with a password (`--requirepass`) or TLS only (`--tls-port`, a
// self-signed certificate made with openssl at start, its CA file given back).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface TestRedis {
  url: string;
  port: number;
  child: ChildProcess;
  /** With `tls`: the PEM file to trust (the certificate signs itself). */
  caFile?: string;
  stop(): Promise<void>;
}

export interface TestRedisOptions {
  /** On this port (e.g. to bring one back on the same address); default a free one. */
  port?: number;
  /** Require this password (`redis://:password@…`). */
  password?: string;
  /** Speak TLS only (`rediss://`), with a certificate for 127.0.0.1 made now. */
  tls?: boolean;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** A self-signed certificate for 127.0.0.1, valid a day: [certificate, key] files. */
function selfSigned(dir: string): [string, string] {
  const cert = path.join(dir, "redis.crt");
  const key = path.join(dir, "redis.key");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
    { stdio: "ignore" },
  );
  return [cert, key];
}

/** Start redis-server and wait until it accepts connections. A number is the port (the older signature). */
export async function startRedis(opts: number | TestRedisOptions = {}): Promise<TestRedis> {
  const o: TestRedisOptions = typeof opts === "number" ? { port: opts } : opts;
  const p = o.port ?? (await freePort());
  const args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  let caFile: string | undefined;
  if (o.tls) {
    const [cert, key] = selfSigned(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-redis-tls-")));
    caFile = cert;
    args.push("--port", "0", "--tls-port", String(p), "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no");
  } else args.push("--port", String(p));
  if (o.password) args.push("--requirepass", o.password);
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("Ready to accept connections")) resolve();
    });
    void exited.then(() => reject(new Error(`redis-server exited: ${out}`)));
  });
  const auth = o.password ? `:${encodeURIComponent(o.password)}@` : "";
  return {
    url: `${o.tls ? "rediss" : "redis"}://${auth}127.0.0.1:${p}`,
    port: p,
    child,
    ...(caFile ? { caFile } : {}),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
