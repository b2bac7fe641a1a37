// Types of main.mjs (meshctl as a function), for the TypeScript tests.

export interface MeshctlIO {
  /** A line of results (stdout). */
  print(line: string): void;
  /** A line of warnings or errors (stderr). */
  warn(line: string): void;
}

/** Runs one meshctl command line; resolves to the exit code (0, 1 failed, 2 usage). */
export function main(
  argv: string[],
  options: { io: MeshctlIO; env: Record<string, string | undefined> },
): Promise<number>;
