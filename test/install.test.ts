// What `npm ci` installs, read from the lockfile: the README's lean CPU install
// (`npm ci --omit=optional`) must keep every native binary the project runs, and no
// dependency may ask for a newer Node than package.json's `engines` promises.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "./helpers.ts";

interface LockedPackage {
  version?: string;
  optional?: boolean;
  dev?: boolean;
  engines?: { node?: string };
  optionalDependencies?: Record<string, string>;
}
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockedPackage> };
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { engines: { node: string } };

/**
 * The platform binaries the project loads on Linux x64 (the platform `@node-llama-cpp/linux-x64`
 * already ties it to), each published as an optional dependency of the package that loads it.
 */
const BINARIES = [
  { loader: "node-llama-cpp", binary: "@node-llama-cpp/linux-x64", why: "llama.cpp's CPU build" },
  { loader: "esbuild", binary: "@esbuild/linux-x64", why: "tsx compiles the sources with it on every start" },
  { loader: "@biomejs/biome", binary: "@biomejs/cli-linux-x64", why: "`npm run lint`" },
];

describe("npm ci", () => {
  for (const { loader, binary, why } of BINARIES) {
    it(`--omit=optional keeps ${binary} (${why}), at the version ${loader} asks for`, () => {
      const entry = lock.packages[`node_modules/${binary}`];
      assert.ok(entry, `${binary} is not in package-lock.json`);
      assert.notEqual(entry.optional, true, `${binary} is optional only: --omit=optional drops it; add it: npm install --save-exact ${binary}@<version>`);
      const wanted = lock.packages[`node_modules/${loader}`]?.optionalDependencies?.[binary];
      // A loader checks its binary's version (esbuild refuses a mismatch): a pin left behind
      // by an update of the loader would break the lean install only.
      assert.equal(entry.version, wanted, `${binary}@${entry.version}, but ${loader} pins ${wanted}: update the explicit dependency`);
    });
  }

  it("no installed package requires a newer Node than engines allows", () => {
    const ours = Number(/^>=\s*(\d+)/.exec(pkg.engines.node)?.[1]);
    assert.ok(ours > 0, `engines.node '${pkg.engines.node}' is not of the form >=N`);
    const newer: string[] = [];
    for (const [where, p] of Object.entries(lock.packages)) {
      const range = p.engines?.node;
      // Lower bounds only ("node": ">=22"); ranges with alternatives ("^18 || >=20") are left to npm's own warning.
      const m = range && !range.includes("||") ? /^>=\s*v?(\d+)/.exec(range.trim()) : null;
      if (m && Number(m[1]) > ours) newer.push(`${where.replace(/^node_modules\//, "")}@${p.version} wants node ${range}`);
    }
    assert.deepEqual(newer, []);
  });
});
