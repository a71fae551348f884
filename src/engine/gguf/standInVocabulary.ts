/**
 * A SentencePiece-style ("llama") vocabulary for stand-in models: control tokens, the 256
 * byte tokens (so byte fallback always works), printable characters, common English words
 * and pronounceable filler words up to the requested size. Every word's prefixes are in the
 * vocabulary, so llama.cpp's merge-based tokenizer can reach every word.
 */
export interface StandInVocabulary {
  tokens: string[];
  scores: number[];
  tokenTypes: number[];
  unknownId: number;
  bosId: number;
  eosId: number;
  controlTokenIds: number[];
}

const TYPE_NORMAL = 1;
const TYPE_UNKNOWN = 2;
const TYPE_CONTROL = 3;
const TYPE_BYTE = 6;
const SPACE = "\u2581";

const COMMON_WORDS = (
  "the of and to a in is it you that he was for on are with as I his they be at one have this from or had by " +
  "hot word but what some we can out other were all there when up use your how said an each she which do their " +
  "time if will way about many then them write would like so these her long make thing see him two has look more " +
  "day could go come did number sound no most people my over know water than call first who may down side been " +
  "now find any new work part take get place made live where after back little only round man year came show " +
  "every good me give our under name very through just form sentence great think say help low line differ turn " +
  "cause much mean before move right boy old too same tell does set three want air well also play small end put " +
  "home read hand port large spell add even land here must big high such follow act why ask men change went " +
  "light kind off need house picture try us again animal point mother world near build self earth father model " +
  "token pool device memory cache switch serve request queue batch load"
).split(" ");

const CONSONANTS = "bcdfghjklmnprstvwz".split("");
const VOWELS = "aeiou".split("");

export function buildStandInVocabulary(size: number): StandInVocabulary {
  if (size < 512) throw new Error(`stand-in vocabulary needs at least 512 tokens, got ${size}`);
  const tokens: string[] = [];
  const tokenTypes: number[] = [];
  const seen = new Set<string>();
  const add = (piece: string, type: number): void => {
    if (tokens.length >= size || seen.has(piece)) return;
    seen.add(piece);
    tokens.push(piece);
    tokenTypes.push(type);
  };
  add("<unk>", TYPE_UNKNOWN);
  add("<s>", TYPE_CONTROL);
  add("</s>", TYPE_CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, TYPE_BYTE);
  add(SPACE, TYPE_NORMAL);
  for (let c = 33; c < 127; c++) {
    add(String.fromCharCode(c), TYPE_NORMAL);
    add(SPACE + String.fromCharCode(c), TYPE_NORMAL);
  }
  const addWord = (word: string): void => {
    const piece = SPACE + word;
    for (let i = 2; i <= piece.length; i++) add(piece.slice(0, i), TYPE_NORMAL);
  };
  for (const w of COMMON_WORDS) addWord(w);
  // Pronounceable filler: CV, CVC, CVCV... in a fixed order until the vocabulary is full.
  const syllables: string[] = [];
  for (const c of CONSONANTS) for (const v of VOWELS) syllables.push(c + v);
  outer: for (const a of syllables) {
    addWord(a);
    for (const b of syllables) {
      if (tokens.length >= size) break outer;
      addWord(a + b);
    }
  }
  let n = 0;
  while (tokens.length < size) add(`${SPACE}w${n++}`, TYPE_NORMAL);
  // Longer pieces score higher so the tokenizer prefers whole words.
  const scores = tokens.map((t, i) => (tokenTypes[i] === TYPE_NORMAL ? t.length * 10 - i / size : 0));
  return { tokens, scores, tokenTypes, unknownId: 0, bosId: 1, eosId: 2, controlTokenIds: [0, 1, 2] };
}
