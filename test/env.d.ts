// Bindings the test pool adds beside the router's own (see vitest.config.ts).
declare namespace Cloudflare {
  interface Env {
    /** Where the test-only `recorder` Worker stores what it received. */
    RECORDINGS: KVNamespace;
    RECORDER: Fetcher;
  }
}
