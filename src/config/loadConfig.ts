/**
 * Reads and validates a configuration file. Errors name the file and the bad field.
 */
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { ConfigError } from "../core/errors.ts";
import { formatZodError } from "../core/formatZodError.ts";
import { configSchema, type PitcherConfig } from "./schema.ts";

export function parseConfig(raw: unknown, source: string): PitcherConfig {
  const res = configSchema.safeParse(raw ?? {});
  if (!res.success) throw new ConfigError(`${source}: ${formatZodError(res.error)}`);
  return res.data;
}

export function loadConfig(file: string | undefined): { config: PitcherConfig; baseDir: string } {
  if (!file) return { config: parseConfig({}, "defaults"), baseDir: process.cwd() };
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(e as Error).message}`);
  }
  return { config: parseConfig(raw, file), baseDir: path.dirname(path.resolve(file)) };
}
