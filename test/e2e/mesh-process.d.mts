// Types of mesh-process.mjs (the harness that runs `npm start` for end-to-end tests).

/** An HTTP answer from the running mesh. */
export interface MeshResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = unknown>(): T;
}

/** The mesh that `scripts/start.mjs` runs, as a process of its own. */
export interface RunningMesh {
  /** Router port on 127.0.0.1. */
  port: number;
  /** The identity Worker's port on 127.0.0.1. */
  identityPort: number;
  /** The policy Worker's (admin API) port on 127.0.0.1. */
  policyPort: number;
  /** The local state directory (`--persist-to`) this mesh runs on. */
  persistTo: string;
  inspectorPort: number;
  /** Everything start.mjs printed so far. */
  output(): string;
  /** How the process ended, once it has. */
  exitStatus(): { code: number | null; signal: string | null; error?: Error } | undefined;
  /** GET `path` on the router with `Host: host` (and more headers). */
  call(host: string, path: string, headers?: Record<string, string>): Promise<MeshResponse>;
  /** Stops start.mjs and wrangler (their process groups) and removes the temporary state. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Router port to use when free (else any free port). Default 18787. */
  preferredPort?: number;
  /** More arguments for start.mjs. */
  args?: string[];
  readyTimeoutMs?: number;
  /** Keep local state under this directory (not removed on stop), to restart on it. */
  stateDir?: string;
  /** Send npm start's demo traffic to orders (default false: --no-traffic). */
  traffic?: boolean;
  /** Its requests per second (start.mjs's --rate; default start.mjs's own). */
  rate?: number;
}

export function freePort(preferred?: number): Promise<number>;
export function call(
  port: number,
  host: string,
  path: string,
  timeoutMs?: number,
  headers?: Record<string, string>,
): Promise<MeshResponse>;
export function startMesh(options?: StartOptions): Promise<RunningMesh>;
export function nodeBinary(): string;
/** Runs `npm run publish -- ARGS` from `cwd`, as a user would. */
export function runPublish(
  args: string[],
  options?: { cwd?: string },
): Promise<{ code: number | null; output: string }>;
/** Runs `meshctl ARGS` from `cwd` (env added to the process's). */
export function runMeshctl(
  args: string[],
  options?: { cwd?: string; env?: Record<string, string> },
): Promise<{ code: number | null; output: string }>;
/** Runs one command line through `sh -c` from `cwd`, as typed in a shell (env added). */
export function runShell(
  line: string,
  options?: { cwd?: string; env?: Record<string, string> },
): Promise<{ code: number | null; output: string }>;
