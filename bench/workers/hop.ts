/**
 * Bench hop: an empty Worker between the client and echo-v1 that only forwards. The `hop`
 * scenario measures what any extra Worker hop costs, the floor under the router's own overhead.
 */
interface HopEnv {
  ECHO: Fetcher;
}

export default {
  fetch(request: Request, env: HopEnv): Promise<Response> {
    return env.ECHO.fetch(request);
  },
} satisfies ExportedHandler<HopEnv>;
