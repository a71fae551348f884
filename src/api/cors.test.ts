// CORS on a real socket: off by default (a preflight is a 404 like any unknown route, and no
// answer carries CORS headers); when configured, preflights are answered and every answer to
// an allowed origin carries Access-Control-Allow-Origin, streamed answers included.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { parseConfig } from "../config/loadConfig.ts";
import type { CorsSetting } from "./cors.ts";
import { rawExchange } from "./testing/rawHttp.ts";
import { assertOpenAiError, setup, TIMEOUTS } from "./testing/testApp.ts";

const APP = "https://app.example.com";
const preflight = (origin: string) =>
  `OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: ${origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n`;
const post = (origin: string, body: object) => {
  const json = JSON.stringify(body);
  return `POST /v1/completions HTTP/1.1\r\nHost: x\r\nOrigin: ${origin}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`;
};

function listening(cors?: CorsSetting) {
  const { app } = setup(TIMEOUTS, cors === undefined ? {} : { cors });
  let port = 0;
  before(async () => {
    await app.listen({ host: "127.0.0.1", port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  after(() => app.close());
  return () => port;
}

describe("CORS off (the default)", () => {
  const port = listening();

  it("a preflight is 404 in the OpenAI body, and no answer carries CORS headers", async () => {
    const pre = await rawExchange(port(), preflight(APP));
    assertOpenAiError(pre, 404, "not_found");
    assert.equal(pre.headers["access-control-allow-origin"], undefined);
    const r = await rawExchange(port(), post(APP, { model: "tiny", prompt: "hi", max_tokens: 2 }));
    assert.equal(r.status, 200);
    assert.equal(r.headers["access-control-allow-origin"], undefined);
  });

  it("the configuration's default is off", () => {
    assert.equal(parseConfig({}, "test").server.cors, false);
  });
});

describe("CORS on for a list of origins", () => {
  const port = listening([APP]);

  it("answers a preflight from an allowed origin: 204, the origin, methods, the asked headers, max-age", async () => {
    const r = await rawExchange(port(), preflight(APP));
    assert.equal(r.status, 204);
    assert.equal(r.headers["access-control-allow-origin"], APP);
    assert.match(r.headers["access-control-allow-methods"]!, /POST/);
    assert.equal(r.headers["access-control-allow-headers"], "authorization, content-type");
    assert.equal(r.headers["access-control-max-age"], "600");
    assert.match(r.headers.vary!, /Origin/);
  });

  it("gives another origin no Access-Control-Allow-Origin", async () => {
    const r = await rawExchange(port(), preflight("https://evil.example.com"));
    assert.equal(r.headers["access-control-allow-origin"], undefined);
    const p = await rawExchange(port(), post("https://evil.example.com", { model: "tiny", prompt: "hi", max_tokens: 2 }));
    assert.equal(p.headers["access-control-allow-origin"], undefined);
  });

  it("an actual request, streamed or not, and an error answer carry the origin", async () => {
    const plain = await rawExchange(port(), post(APP, { model: "tiny", prompt: "hi", max_tokens: 2 }));
    assert.equal(plain.status, 200);
    assert.equal(plain.headers["access-control-allow-origin"], APP);
    const streamed = await rawExchange(port(), post(APP, { model: "tiny", prompt: "hi", max_tokens: 2, stream: true }));
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers["content-type"]!, /text\/event-stream/);
    assert.equal(streamed.headers["access-control-allow-origin"], APP);
    assert.match(streamed.text, /data: \[DONE\]/);
    const refused = await rawExchange(port(), post(APP, { model: "nope", prompt: "hi" }));
    assertOpenAiError(refused, 404, "model_not_found");
    assert.equal(refused.headers["access-control-allow-origin"], APP);
  });
});

describe("CORS on for any origin", () => {
  const port = listening(true);

  it("answers with *", async () => {
    const r = await rawExchange(port(), preflight("http://localhost:3000"));
    assert.equal(r.status, 204);
    assert.equal(r.headers["access-control-allow-origin"], "*");
    const p = await rawExchange(port(), post("http://localhost:3000", { model: "tiny", prompt: "hi", max_tokens: 2 }));
    assert.equal(p.headers["access-control-allow-origin"], "*");
  });

  it("the configuration takes true or a list of origins, and refuses what is not an origin", () => {
    assert.equal(parseConfig({ server: { cors: true } }, "test").server.cors, true);
    assert.deepEqual(parseConfig({ server: { cors: [APP] } }, "test").server.cors, [APP]);
    assert.throws(() => parseConfig({ server: { cors: ["https://app.example.com/"] } }, "test"), /server\.cors/);
    assert.throws(() => parseConfig({ server: { cors: "*" } }, "test"), /server\.cors/);
  });
});
