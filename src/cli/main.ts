/**
 * The `pitcher` command line.
 */
import { Command, InvalidArgumentError } from "commander";
import { PitcherError } from "../core/errors.ts";
import { startServer } from "./serve.ts";

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port number from 0 to 65535");
  return n;
}

const program = new Command();
program.name("pitcher").description("Serve many LLMs from a few devices with token-level preemptive scheduling.");

program
  .command("serve", { isDefault: true })
  .description("start the OpenAI-compatible server (default: embedded stand-in catalog)")
  .option("--host <host>", "address to listen on (default 127.0.0.1)")
  .option("--port <port>", "port to listen on (default 8080)", port)
  .option("--config <file>", "YAML or JSON configuration file")
  .action(async (opts: { host?: string; port?: number; config?: string }) => {
    const server = await startServer({
      ...(opts.config ? { configFile: opts.config } : {}),
      ...(opts.host ? { host: opts.host } : {}),
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      httpLogger: false,
    });
    console.log(`Pitcher listening on ${server.url} (${server.pool.models.size} models, ${server.pool.devices.size} devices, policy ${server.pool.scheduler.options.policy})`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.error(`${signal}: draining ${server.pool.activeRequests} running request(s)…`);
      server.shutdown().then(
        () => process.exit(0),
        (e) => {
          console.error(e);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(e instanceof PitcherError ? `pitcher: ${e.message}` : e);
  process.exit(1);
});
