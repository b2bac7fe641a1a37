/**
 * Fast, well-mixed, non-cryptographic string hashing for consistent hashing and for naming
 * immutable snapshot entries. Not for anything an attacker must not predict.
 */

/** A 53-bit hash of `text` (cyrb53-style: two 32-bit lanes of multiply-xorshift). */
export function hash53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** `hash53` mapped into the open interval (0, 1), for rendezvous scores. */
export function hashUnit(text: string, seed = 0): number {
  return (hash53(text, seed) + 0.5) / 2 ** 53;
}

/** A short hex digest of `text`, for content-addressed keys. */
export function hashHex(text: string): string {
  return hash53(text).toString(16).padStart(14, "0");
}
