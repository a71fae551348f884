/** Memory of a server process and its device workers, read from /proc (Linux), for the fuzz and soak benchmarks. */
import fs from "node:fs";

/** Resident set size in bytes, or null once the process is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The direct children of `pid` whose command line contains `match` (a server's device workers: "deviceWorker"). */
export function childPids(pid: number, match = "deviceWorker"): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/))
      .filter((s) => s.length > 0)
      .map(Number)
      .filter((child) => {
        try {
          return fs.readFileSync(`/proc/${child}/cmdline`, "utf8").includes(match);
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

/** Least-squares slope of `ys` over `xs` (per unit of x). */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export const MB = 1e6;

/** CPU time (user + system, every thread) a process has used so far, in ms; 0 once it is gone. */
export function cpuMs(pid: number): number {
  try {
    // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks (100 Hz on Linux).
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}
