// Types of workerd.mjs (run built Workers on the workerd binary), for the TypeScript tests.

export const WORKERD: string;
export const COMPATIBILITY_DATE: string;
/** The router's ADMIN_TOKEN in the bench and the real-HTTP tests. */
export const LOCAL_ADMIN_TOKEN: string;
export function str(text: string): string;

/** Binding declarations, as capnp text. */
export const binding: {
  text(name: string, value: string): string;
  service(name: string, service: string, entrypoint?: string, props?: object): string;
  kv(name: string, service: string): string;
  /** An Analytics Engine binding delivering to `service` (needs `experimental`). */
  analyticsEngine(name: string, service: string): string;
  jsonFile(name: string, file: string): string;
};

export function modulesOf(dir: string, main: string, from: string): string;

export function routerService(
  modules: string,
  options: {
    kv: string;
    vars?: Record<string, string>;
    name?: string;
    /** Bind the BackendState objects of this router service instead of having its own. */
    backendStateFrom?: string;
    /** Bind IDENTITY to this identity Worker service (entrypoint Identity). */
    identity?: string;
    /** Bind MESH_ANALYTICS as an Analytics Engine binding delivering to this service. */
    analytics?: string;
    /** Bind POLICY to this service's RouterReports entrypoint. */
    policy?: string;
  },
): ServiceConfig;
/** The identity Worker's vars, as its wrangler.toml sets them. */
export const IDENTITY_VARS: Record<string, string>;
export function identityService(
  modules: string,
  options: { kv: string; vars?: Record<string, string> },
): ServiceConfig;
export function echoService(modules: string, version: number): ServiceConfig;

export type ServiceConfig =
  | { name: string; modules: string; bindings: string[]; extra?: string }
  | { name: string; network: string[] };

export interface SocketConfig {
  name: string;
  port: number;
  service: string;
}

export function writeWorkerdConfig(
  dir: string,
  services: ServiceConfig[],
  sockets: SocketConfig[],
): string;
export function listening(port: number): Promise<boolean>;
export function tail(path: string, lines?: number): string;

export interface RunningWorkerd {
  pid: number;
  logPath: string;
  log(): string;
  exited(): { code: number | null; signal: string | null } | null;
  stop(): Promise<void>;
}

export function startWorkerd(
  dir: string,
  sockets: { name: string; port: number }[],
  options?: { timeoutMs?: number; experimental?: boolean },
): Promise<RunningWorkerd>;
