/**
 * Bench client: the load-facing Worker. It calls `env.ECHO.fetch(request)` and nothing else, the
 * way an application Worker calls a service. The same code runs in every scenario; only what the
 * ECHO binding points at changes (bench/run.mjs writes the workerd config):
 *   direct → echo-v1 itself
 *   hop    → the bench hop Worker, which forwards to echo-v1 (the floor for any extra Worker hop)
 *   mesh   → the router's `Mesh` entrypoint with props { caller: "bench", target: "echo" }
 */
interface ClientEnv {
  ECHO: Fetcher;
}

export default {
  fetch(request: Request, env: ClientEnv): Promise<Response> {
    return env.ECHO.fetch(request);
  },
} satisfies ExportedHandler<ClientEnv>;
