/**
 * CORS, off unless configured (`server.cors`): browsers on the allowed origins may call the
 * API, preflights (OPTIONS) included. @fastify/cors answers preflights and sets the headers;
 * this only maps the configuration and carries the headers onto streamed answers.
 */
import cors, { type FastifyCorsOptions } from "@fastify/cors";
import type { FastifyInstance } from "fastify";

/** `true`: any origin (`*`); a list: exactly those origins (scheme, host and port, as browsers send them). */
export type CorsSetting = boolean | string[];

/** How long a browser may cache a preflight's answer. */
const PREFLIGHT_MAX_AGE_S = 600;

export function corsOptions(setting: true | string[]): FastifyCorsOptions {
  return {
    origin: setting === true ? "*" : setting,
    methods: ["GET", "HEAD", "POST", "OPTIONS"],
    // Allowed request headers: those the preflight asks for (authorization, content-type,
    // the openai client's own), reflected.
    maxAge: PREFLIGHT_MAX_AGE_S,
    // A malformed preflight would get the plugin's plain-text 400; answer it like any other.
    strictPreflight: false,
  };
}

/** Registers CORS on `app` when `setting` turns it on; a no-op when off (the default). */
export function registerCors(app: FastifyInstance, setting: CorsSetting | undefined): void {
  if (!setting || (Array.isArray(setting) && setting.length === 0)) return;
  void app.register(cors, corsOptions(setting));
  // A streamed answer writes its head on the raw response (hijacked): copy the CORS headers
  // there too, or a browser could not read the stream.
  app.addHook("onRequest", async (_req, reply) => {
    for (const [name, value] of Object.entries(reply.getHeaders()))
      if ((name.startsWith("access-control-") || name === "vary") && value !== undefined) reply.raw.setHeader(name, value as string | number | string[]);
  });
}
