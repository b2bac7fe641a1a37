/**
 * Who is calling the admin API, and what they may do. Two credentials authenticate:
 *  - `Authorization: Bearer <ADMIN_TOKEN>`, compared as SHA-256 digests in constant time (so
 *    neither the token nor its length leaks through timing: the router's `sameSecret`): an admin;
 *  - a JWT-SVID in `X-Mesh-SVID`, verified exactly as the router verifies one (core/identity/
 *    svid.ts against the mesh's JWKS, fetched through the IDENTITY binding), not revoked by the
 *    current config and — when bound to a client certificate — arriving with it. Its role is the
 *    one its `meshwork.dev/roles` claim names (the identity Worker sets it from the attesting
 *    WorkloadCredential's `roles`) while the current config still grants it — a role taken away
 *    counts at once, as a revocation does — or, by service name, ADMIN_SERVICES and
 *    VIEWER_SERVICES. The claim is worth only the signature: a token the mesh's keys did not sign
 *    fails verification before any claim is read.
 * A request with neither credential valid is refused as `unauthenticated`, saying no more than
 * that; a valid SVID with no role as `forbidden`. The reason goes to the audit log and the log.
 */
import type { AdminIdentity } from "../../durable-objects/policy-store.ts";
import type { AdminRole } from "../../core/identity/names.ts";
import { verifySvid, type VerifiedSvid } from "../../core/identity/svid.ts";
// The router's own checks, so an admin SVID is judged exactly as a caller's is. (Both Workers
// use them: they belong in a shared home for Worker-side identity code.)
import {
  clientCertificate,
  refusal,
  RevocationList,
  sameSecret,
} from "../router/identity/authenticator.ts";
import type { JwksCache } from "../router/identity/jwks.ts";
import { AdminError } from "./errors.ts";
import type { PolicySettings } from "./settings.ts";

/** The header holding a caller's JWT-SVID, as the router reads it. */
export const SVID_HEADER = "x-mesh-svid";
/** The header a client may send to say who is behind a shared credential (meshctl: `$USER`). */
export const AUTHOR_HEADER = "x-mesh-author";
/** Clock skew tolerated on an SVID's times, in seconds (the router's). */
export const CLOCK_SKEW_SECONDS = 30;
/** Longest X-Mesh-Author value recorded. */
const MAX_AUTHOR_NOTE = 64;

/** Control characters and bidirectional overrides: they could forge or hide text in a log. */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** An authenticated caller. */
export interface Admin {
  /** `admin` reads and writes; `viewer` only reads. */
  role: "admin" | "viewer";
  /** What the audit log and history record: `token` or the SPIFFE ID, with the client's note. */
  author: string;
}

const UNAUTHENTICATED =
  "the admin API needs Authorization: Bearer <ADMIN_TOKEN>, or an admin service's JWT-SVID in X-Mesh-SVID";

/**
 * The client's note on who it acts for (X-Mesh-Author), fit for a log line: printable
 * characters only, at most MAX_AUTHOR_NOTE of them; undefined when nothing is left.
 */
export function authorNote(header: string | null): string | undefined {
  if (header === null) return undefined;
  const note = header.replace(UNPRINTABLE, "").trim();
  return note === "" ? undefined : [...note].slice(0, MAX_AUTHOR_NOTE).join("");
}

/** Reads what the current config revokes and the roles it grants (from the PolicyStore). */
export type AdminIdentitySource = () => Promise<Pick<AdminIdentity, "revocations" | "grants">>;

/** Roles from the least to the most: `admin` may do whatever `viewer` may. */
const RANK: Record<AdminRole, number> = { viewer: 1, admin: 2 };
const highest = (roles: Iterable<AdminRole>) =>
  [...roles].reduce((best, role) => Math.max(best, RANK[role]), 0);

/**
 * The role an SVID has: what its claim names, but no more than a usable grant of the current
 * config still gives its service (an admin whose credential now says viewer is a viewer) — or
 * what the env lists give its service, if more; undefined for none, with why.
 */
export function roleOf(
  svid: Pick<VerifiedSvid, "service" | "roles">,
  grants: AdminIdentity["grants"],
  settings: Pick<PolicySettings, "adminServices" | "viewerServices">,
  now: number,
): { role: AdminRole } | { role: undefined; why: string } {
  const granted = grants
    .filter((g) => g.service === svid.service)
    .filter((g) => g.expires === undefined || Date.parse(g.expires) > now)
    .flatMap((g) => g.roles);
  const byClaim = Math.min(highest(svid.roles), highest(granted));
  if (byClaim === RANK.admin || settings.adminServices.includes(svid.service)) {
    return { role: "admin" };
  }
  if (byClaim === RANK.viewer || settings.viewerServices.includes(svid.service)) {
    return { role: "viewer" };
  }
  const claim =
    svid.roles.length === 0
      ? "its SVID claims no role"
      : `its SVID claims ${svid.roles.join(", ")}, which no usable WorkloadCredential of '${svid.service}' grants now`;
  return {
    role: undefined,
    why: `service '${svid.service}' has no admin role: ${claim}, and it is in neither ADMIN_SERVICES nor VIEWER_SERVICES`,
  };
}

export class AdminAuthenticator {
  readonly #settings: PolicySettings;
  readonly #jwks: JwksCache;
  readonly #readAdminIdentity: AdminIdentitySource;
  readonly #now: () => number;

  constructor(
    settings: PolicySettings,
    jwks: JwksCache,
    readAdminIdentity: AdminIdentitySource,
    now: () => number,
  ) {
    this.#settings = settings;
    this.#jwks = jwks;
    this.#readAdminIdentity = readAdminIdentity;
    this.#now = now;
  }

  /**
   * The caller, or an `unauthenticated` (no valid credential) or `forbidden` (a valid SVID with
   * no role) AdminError carrying what the audit log records.
   */
  async authenticate(
    request: Request,
    waitUntil: (promise: Promise<unknown>) => void,
  ): Promise<Admin> {
    const note = authorNote(request.headers.get(AUTHOR_HEADER));
    const withNote = (who: string) => (note === undefined ? who : `${who} (${note})`);
    const refuse = (actor: string, detail: string) =>
      new AdminError("unauthenticated", UNAUTHENTICATED, { refusal: { actor, detail } });

    const authorization = request.headers.get("authorization");
    const bearer = authorization === null ? null : /^Bearer +(\S+) *$/i.exec(authorization);
    const { adminToken } = this.#settings;
    if (bearer && adminToken !== undefined && (await sameSecret(bearer[1]!, adminToken))) {
      return { role: "admin", author: withNote("token") };
    }
    const token = request.headers.get(SVID_HEADER);
    if (token === null) {
      throw authorization === null
        ? refuse(withNote("anonymous"), "no credential")
        : refuse(
            withNote("anonymous"),
            adminToken === undefined
              ? "a bearer token, but ADMIN_TOKEN is not set (or too short)"
              : "a bearer token that is not ADMIN_TOKEN",
          );
    }
    let svid: VerifiedSvid;
    try {
      svid = await verifySvid(token, {
        trustDomain: this.#settings.trustDomain,
        key: (kid) => this.#jwks.resolve(kid, waitUntil),
        now: this.#now(),
        skewSeconds: CLOCK_SKEW_SECONDS,
      });
    } catch (error) {
      throw refuse(
        withNote("anonymous"),
        `an invalid JWT-SVID: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const actor = withNote(svid.subject);
    // Revocations and grants as the store has them now, not as KV will in a minute: a revoked
    // admin, or a role taken away, is out as soon as the change is committed. (One read per SVID
    // request; admin calls are few.)
    const { revocations, grants } = await this.#readAdminIdentity();
    const refused = refusal(
      svid,
      clientCertificate(request, true),
      new RevocationList(revocations),
    );
    if (refused !== undefined) throw refuse(actor, `JWT-SVID refused: ${refused}`);
    const decided = roleOf(svid, grants, this.#settings, this.#now());
    if (decided.role === undefined) {
      throw new AdminError(
        "forbidden",
        "this JWT-SVID is valid but grants no access to the admin API: give its WorkloadCredential roles (admin or viewer), or list its service in ADMIN_SERVICES or VIEWER_SERVICES",
        { refusal: { actor, detail: decided.why } },
      );
    }
    return { role: decided.role, author: actor };
  }
}
