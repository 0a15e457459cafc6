// prng.ts: a deterministic PRNG (xorshift32) for the datapath tests, so a
// failure replays from its seed.
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}
