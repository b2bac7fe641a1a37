// Types of workers.mjs (the repo's Workers and how wrangler runs here), for the TypeScript tests.

export const ROOT: string;
export const WRANGLER: string;
export const ROUTER_CONFIG: string;
export const DEFAULT_PERSIST_DIR: string;
/** One of the repository's Workers (scripts/workers.mjs). */
export interface WorkerManifest {
  name: string;
  config: string;
  source: string;
  build?: string;
  types?: { out: string; iface: string; runtime?: boolean };
  dev: "main" | { port: number; flag: string; what: string };
}
export const WORKERS: readonly WorkerManifest[];
export function worker(name: string): WorkerManifest;
export function workerVars(config: string): Record<string, string>;
/** The bindings a Worker's wrangler config declares. */
export interface WorkerBindings {
  vars: Record<string, string>;
  kvNamespaces: Record<string, string>;
  durableObjects: Record<string, { className: string; sqlite: boolean }>;
  services: Record<
    string,
    { service: string; entrypoint?: string; props?: Record<string, unknown> }
  >;
}
export function workerBindings(config: string): WorkerBindings;
export const WORKER_CONFIGS: readonly string[];
export const IDENTITY_CONFIG: string;
export const POLICY_CONFIG: string;
/** The router's ADMIN_TOKEN under `npm start` (local development only). */
export const DEV_ADMIN_TOKEN: string;
export function wranglerEnv(): Record<string, string | undefined>;
export function requireNode(command: string): void;
export function userPath(path: string): string;
