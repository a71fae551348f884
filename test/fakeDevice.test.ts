// The device port contract on the fake device the pool's unit tests use: it must do what
// the engine does.
import { describeDevicePort } from "./devicePort.contract.ts";
import { FakeClock } from "./fakes/FakeClock.ts";
import { FakeDevice } from "./fakes/FakeDevice.ts";
import { FakeHostTier } from "./fakes/FakeHostTier.ts";
import { servedModel } from "./fakes/servedModel.ts";

describeDevicePort("FakeDevice", async () => {
  const hostTier = new FakeHostTier();
  const clock = new FakeClock();
  let ends: number[] = [];
  const models = [
    ...["m", "m-end"].map((id) => servedModel(id, { contextTokens: 1024, maxBatch: 2 }, { fingerprint: "one-file" })),
    servedModel("embed", { contextTokens: 1024, maxBatch: 2 }, { embedding: true }),
  ];
  const options = { hostTier, clock, models, endTokens: (id: string) => (id === "m-end" ? ends : []) };
  const a = new FakeDevice("a", options);
  const b = new FakeDevice("b", options);
  await Promise.all([a.start(), b.start()]);
  return {
    a,
    b,
    modelId: "m",
    endModelId: "m-end",
    setEndTokens: (t) => (ends = t),
    prompt: [1, 403, 407, 261, 378, 284, 266, 300, 1, 19, 99, 30],
    embedModelId: "embed",
    corrupt: (id) => hostTier.corrupt(id),
    crash: (d) => (d as FakeDevice).crash(),
    close: async () => {
      await a.stop();
      await b.stop();
    },
  };
});
