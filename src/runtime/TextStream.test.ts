import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TextStream } from "./TextStream.ts";

// A fake detokenizer: token n is the n-th piece.
const pieces = ["Hel", "lo", " wor", "ld", "!", " EN", "D here"];
const detok = { detokenize: (t: number[]) => t.map((i) => pieces[i]).join("") };

describe("TextStream", () => {
  it("streams deltas that add up to the text", () => {
    const s = new TextStream(detok, []);
    const out = [0, 1, 2, 3, 4].map((t) => s.push(t)).join("") + s.flush();
    assert.equal(out, "Hello world!");
  });

  it("cuts at a stop string, even one spread over tokens, and holds back its prefix", () => {
    const s = new TextStream(detok, [" END"]);
    const deltas = [0, 1, 2, 3, 4, 5, 6].map((t) => s.push(t));
    assert.equal(deltas.join(""), "Hello world!");
    assert.equal(deltas[5], "", "' EN' may start the stop string, so it waits");
    assert.equal(s.stopped, true);
    assert.equal(s.flush(), "");
  });

  it("releases a held prefix when it turns out not to be a stop string", () => {
    const s = new TextStream({ detokenize: (t) => t.map((i) => ["a", " E", "x"][i]).join("") }, [" END"]);
    assert.equal(s.push(0), "a");
    assert.equal(s.push(1), "");
    assert.equal(s.push(2), " Ex");
  });

  it("holds back an incomplete character", () => {
    // Token 1 holds the first byte of "é", token 2 the second.
    const s = new TextStream(
      {
        detokenize: (t) =>
          t
            .map((i) => ["a", "\ufffd", "é"][i])
            .join("")
            .replace("\ufffdé", "é"),
      },
      [],
    );
    assert.equal(s.push(0), "a");
    assert.equal(s.push(1), "");
    assert.equal(s.push(2), "é");
    assert.equal(s.flush(), "");
  });
});
