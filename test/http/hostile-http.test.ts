// The router's HTTP entry over real sockets, on workerd itself: odd Host values (only the
// platform builds a URL from a raw Host, so only this tier can send them), an unreachable
// endpoint, and a fuzz test throwing random methods, paths, Hosts and headers at the router. Every
// answer must be a backend's or one of the contract's errors, and workerd must log nothing
// uncaught.
//
// The fuzz runs 500 cases with a fixed seed in `npm test`; run it longer with
//   FUZZ_RUNS=20000 FUZZ_SEED=$RANDOM npx vitest run --project http
// (a failure prints the seed and the shrunk counterexample to replay it).
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MESH_ERROR_STATUS } from "../../core/errors.ts";
import { normalizePath } from "../../core/path-normalization.ts";
import {
  rawRequest,
  startWorkerdMesh,
  type RawResponse,
  type WorkerdMesh,
} from "./workerd-mesh.ts";

const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261126);

const service = (name: string, endpoints: object[], spec: object = {}) => ({
  apiVersion: "meshwork.dev/v1",
  kind: "Service",
  metadata: { name },
  spec: { endpoints, ...spec },
});

// A config that gives random requests many paths through the router: regex, header and prefix
// matches, a rewrite, a redirect, CORS, a pin, a dangling backend, an unreachable endpoint.
const CONFIG = [
  service("echo", [{ binding: "ECHO_V1" }], {
    backendPinning: { enabled: true, allowZeroWeight: true },
  }),
  service("echo-v1", [{ binding: "ECHO_V1" }]),
  service("echo-v2", [{ binding: "ECHO_V2" }]),
  service("gone", [{ url: "http://127.0.0.1:9" }]),
  {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name: "echo" },
    spec: {
      parentRefs: [{ name: "echo" }],
      rules: [
        {
          matches: [{ path: { type: "RegularExpression", value: "/items/[0-9]+" } }],
          backendRefs: [{ name: "echo-v2" }],
        },
        {
          matches: [{ headers: [{ type: "RegularExpression", name: "x-user", value: "(a+)+$" }] }],
          backendRefs: [
            { name: "echo-v2", weight: 1 },
            { name: "missing", weight: 1 },
          ],
        },
        {
          matches: [{ path: { value: "/v2" } }],
          filters: [
            {
              type: "URLRewrite",
              urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } },
            },
          ],
          backendRefs: [{ name: "echo-v2" }],
        },
        {
          matches: [{ path: { value: "/old" } }],
          filters: [
            {
              type: "RequestRedirect",
              requestRedirect: { path: { type: "ReplaceFullPath", replaceFullPath: "/new" } },
            },
          ],
        },
        {
          matches: [{ path: { value: "/api" } }],
          filters: [
            {
              type: "CORS",
              cors: { allowOrigins: ["https://*.example.com"], allowMethods: ["*"] },
            },
          ],
          backendRefs: [{ name: "echo-v1" }],
        },
        {
          matches: [{ path: { value: "/" } }],
          backendRefs: [
            { name: "echo-v1", weight: 9 },
            { name: "echo-v2", weight: 0 },
          ],
        },
      ],
    },
  },
];

let mesh: WorkerdMesh | undefined;

beforeAll(async () => {
  mesh = await startWorkerdMesh(CONFIG);
}, 60_000);

afterAll(async () => {
  await mesh?.stop();
});

function running(): WorkerdMesh {
  if (!mesh) throw new Error("workerd did not start (see beforeAll)");
  return mesh;
}

const get = (host: string, path = "/") =>
  rawRequest(running().port, `GET ${path} HTTP/1.1\r\nHost: ${host}`);

function expectMeshError(response: RawResponse, code: keyof typeof MESH_ERROR_STATUS): string {
  expect(response.status).toBe(MESH_ERROR_STATUS[code]);
  expect(response.headers.get("x-mesh-error")).toBe(code);
  const body = JSON.parse(response.body) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  return body.error.message;
}

/** Lines workerd logged about errors nobody caught. */
const uncaught = () =>
  running()
    .log()
    .split("\n")
    .filter((line) => /uncaught/i.test(line));

describe("odd Host values over real HTTP", () => {
  it("attack: Host echo:99999, echo:abc and a Host with a space get 400 bad_request in JSON, not a plain 500", async () => {
    for (const host of ["echo:99999", "echo:abc", "ec ho", "echo:", "echo:1:2", "[zz]"]) {
      const response = await get(host);
      const message = expectMeshError(response, "bad_request");
      expect(message, host).toMatch(/is not a valid host\[:port\]|cannot be parsed/);
      expect(response.headers.get("x-request-id"), host).toBeTruthy();
    }
    expect(uncaught()).toEqual([]);
  });

  it("routes a well-formed Host as before", async () => {
    const response = await get("echo-v2.mesh:8787", "/hello");
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ service: "echo-v2", path: "/hello" });
  });

  it("an unreachable endpoint is upstream_error 502", async () => {
    expectMeshError(await get("gone"), "upstream_error");
  });
});

// --- the fuzz test ------------------------------------------------------------------------------

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
// Characters of a URI path (RFC 3986), and a few workerd passes on although they are not ('"',
// '{', '|', '^', '\'); it refuses '<' and '`' itself, before any Worker runs.
const PATH_CHARS = "abcxyzAZ09-._~!$&'()*+,;=:@%/\"{|^\\";
const QUERY_CHARS = "abcxyzAZ09-._~!$&'()*+,;=:@%/?";
const VALUE_CHARS = ` \t!"#$%&'()*+,-./0123456789:;<=>?@AZaz[\\]^_\`{|}~`;

const token = (chars: string, min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...chars), minLength: min, maxLength: max });

// Methods workerd's HTTP server knows (it answers any other with its own 501 before a Worker
// runs, as Cloudflare's edge does); CONNECT opens a tunnel and is left out.
const method = fc.constantFrom(
  ..."GET HEAD POST PUT DELETE PATCH OPTIONS TRACE PURGE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK ACL REPORT MERGE NOTIFY SUBSCRIBE UNSUBSCRIBE".split(
    " ",
  ),
);
const segment = fc.oneof(
  fc.constantFrom(
    "",
    ".",
    "..",
    "%2e%2e",
    "%2F",
    "%5c",
    "%",
    "%zz",
    "%61dmin",
    ".mesh",
    "%2Emesh",
    "items",
    "123",
    "v2",
    "api",
    "old",
    "status",
  ),
  token(PATH_CHARS, 0, 12),
);
const path = fc
  .tuple(fc.array(segment, { maxLength: 6 }), fc.option(token(QUERY_CHARS, 0, 16)))
  .map(([segments, query]) => `/${segments.join("/")}${query === null ? "" : `?${query}`}`);
const host = fc.oneof(
  fc.constantFrom(
    "echo",
    "echo-v1",
    "echo-v2",
    "gone",
    "nowhere",
    "ECHO.mesh",
    "echo:8787",
    "127.0.0.1",
  ),
  fc
    .tuple(fc.constantFrom("echo", "echo-v2", "x"), fc.integer({ min: 0, max: 200_000 }))
    .map(([h, p]) => `${h}:${p}`),
  // An empty or blank Host is refused by workerd itself (400) before any Worker runs.
  token(`${TCHAR}:[]@ /`, 1, 30).filter((h) => h.trim() !== ""),
);
const header = fc.tuple(
  fc.oneof(
    fc.constantFrom(
      "x-mesh-backend",
      "x-user",
      "origin",
      "access-control-request-method",
      "x-request-id",
      "traceparent",
      "cookie",
      "x-echo-status",
      "x-mesh-caller",
    ),
    token(TCHAR, 1, 16).filter(
      (name) =>
        !/^(host|content-length|transfer-encoding|connection|expect|te|upgrade|trailer|keep-alive)$/i.test(
          name,
        ),
    ),
  ),
  token(VALUE_CHARS, 0, 40).map((value) => value.trim()),
);
const request = fc.record({
  method,
  path,
  host,
  headers: fc.array(header, { maxLength: 5 }),
  body: fc.option(token(VALUE_CHARS, 0, 64)),
});

/** Where the router will send a request path, if anywhere: its normal form (as the router reads it). */
function normalPath(path: string): string | undefined {
  try {
    const normalized = normalizePath(new URL(`http://x${path}`).pathname, "reject");
    return normalized.ok ? normalized.path : undefined;
  } catch {
    return undefined;
  }
}

/** What a response may be: the contract error table, or something the config makes the router do. */
function classify(
  req: { method: string; path: string },
  response: RawResponse,
): string | undefined {
  const code = response.headers.get("x-mesh-error");
  if (code !== undefined) {
    if (!(code in MESH_ERROR_STATUS)) return `unknown X-Mesh-Error ${code}`;
    if (response.status !== MESH_ERROR_STATUS[code as keyof typeof MESH_ERROR_STATUS]) {
      return `X-Mesh-Error ${code} with status ${response.status}`;
    }
    if (code === "internal_error") return `internal_error: ${response.body}`;
    if (!response.headers.get("x-request-id")) return `${code} without X-Request-Id`;
    if (req.method !== "HEAD") {
      const body = JSON.parse(response.body) as { error?: { code?: string } };
      if (body.error?.code !== code) return `error body does not say ${code}: ${response.body}`;
    }
    return undefined;
  }
  // The router's own endpoint: every spelling of /.mesh/status, and nothing else under /.mesh/.
  if (normalPath(req.path)?.startsWith("/.mesh/")) {
    if (response.headers.has("x-echo-service")) return `a backend answered ${req.path}`;
    if (response.status !== 200) return `${req.path}: ${response.status} without X-Mesh-Error`;
    if (req.method !== "HEAD" && JSON.parse(response.body).router !== "meshwork-router") {
      return `${req.path}: not the router's status: ${response.body.slice(0, 200)}`;
    }
    return undefined;
  }
  // A backend's answer: echo names itself in a header (HEAD answers have no body).
  const backend = response.headers.get("x-echo-service");
  if (backend === "echo-v1" || backend === "echo-v2") return undefined;
  // The mesh answering for the route: a redirect, or a CORS preflight.
  if (response.status >= 300 && response.status < 400 && response.headers.has("location")) {
    return undefined;
  }
  if (req.method === "OPTIONS" && response.status === 200 && response.body === "") return undefined;
  return `neither a backend's answer nor a contract error: ${response.status} ${response.body.slice(0, 200)}`;
}

describe("fuzz: random methods, paths, Hosts and headers", () => {
  it(`every answer is a backend's or a contract error, nothing uncaught (${FUZZ_RUNS} runs, seed ${FUZZ_SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const lines = [`${req.method} ${req.path} HTTP/1.1`, `Host: ${req.host}`];
        for (const [name, value] of req.headers) lines.push(`${name}: ${value}`);
        const body = req.body ?? "";
        if (req.body !== null) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
        const response = await rawRequest(running().port, lines.join("\r\n"), body);
        const problem = classify(req, response);
        if (problem) throw new Error(problem);
      }),
      { numRuns: FUZZ_RUNS, seed: FUZZ_SEED, endOnFailure: false },
    );
    expect(uncaught()).toEqual([]);
  }, 300_000);
});
