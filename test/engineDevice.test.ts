// The device port contract on the engine: two worker processes (1 thread each) sharing a
// host KV tier, serving the tiny real model stories260K.
import fs from "node:fs";
import { EngineDevice } from "../src/engine/EngineDevice.ts";
import { HostKvTier } from "../src/engine/HostKvTier.ts";
import { describeDevicePort } from "./devicePort.contract.ts";
import { servedModel } from "./fakes/servedModel.ts";
import { STORIES } from "./helpers.ts";

describeDevicePort("EngineDevice (stories260K)", async () => {
  const hostKv = HostKvTier.temporary("pitcher-contract-");
  let ends: number[] = [];
  const file = { path: STORIES, fingerprint: "stories260K", vocabularySize: 512 };
  // stories260K names no pooling type: as an embedding model, its vector is the last token's state.
  const models = [
    ...["m", "m-end"].map((id) => servedModel(id, { contextTokens: 1024, maxBatch: 2 }, file)),
    servedModel("embed", { contextTokens: 1024, maxBatch: 2 }, { ...file, embedding: true }),
  ];
  const options = { threads: 1, gpu: false as const, hostKv, models, prefillChunkTokens: 64, endTokens: (id: string) => (id === "m-end" ? ends : []) };
  const a = new EngineDevice("a", options);
  const b = new EngineDevice("b", options);
  await Promise.all([a.start(), b.start()]);
  return {
    a,
    b,
    modelId: "m",
    endModelId: "m-end",
    setEndTokens: (t) => (ends = t),
    prompt: [1, 403, 407, 261, 378, 284, 266, 300, 1, 19, 99, 30],
    embedModelId: "embed",
    corrupt: (id) => {
      const file = hostKv.paths(id).state;
      fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    },
    crash: (d) => (d as EngineDevice).kill(),
    close: async () => {
      await a.stop();
      await b.stop();
      hostKv.close();
    },
  };
});
