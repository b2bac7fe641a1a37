/**
 * Identity Worker entry: wires the two ways in to the same issuing code.
 *  - `fetch` (HTTP): the JWKS, health, and SVIDs for workloads outside Workers (app.ts), whose
 *    client certificates Cloudflare verified and reports in `request.cf`.
 *  - `Identity` (entrypoint for Workers' service bindings): SVIDs for Workers of the same
 *    account, attested by their binding's props, key certificates for the router, and a `fetch`
 *    serving the JWKS and health only (the router fetches the JWKS through its binding). Over a
 *    binding the caller writes `request.cf` itself, so no certificate is believed there.
 * The SigningKeys Durable Object holds the keys; it is exported here because this Worker binds it.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { ResourceName } from "../../core/config/schema.ts";
import { MeshError } from "../../core/errors.ts";
import { routerId, serviceOf } from "../../core/identity/names.ts";
import { bindingApp, httpApp, identityFor, issueContext, logFailure } from "./app.ts";
import {
  certifyRouterKey,
  issueSvid,
  parseSvidOptions,
  type IssuedSvid,
  type RouterKeyCertificate,
} from "./issuer.ts";
export { SigningKeys } from "../../durable-objects/signing-keys.ts";

/** What a binding to the Identity entrypoint says about its Worker. */
export interface IdentityProps {
  /** The calling Worker's service: the subject of its SVIDs is spiffe://<domain>/<service>. */
  service?: string;
}

/** What a Worker may ask of its SVID (the same as the HTTP body of `POST /v1/svid`). */
export interface SvidRequest {
  audience?: string | string[];
  ttlSeconds?: number;
}

/**
 * Runs an RPC method: MeshErrors cross the RPC boundary as Errors whose message starts with the
 * contract code (`forbidden: …`), since a thrown subclass arrives as a plain Error; anything else
 * is logged as a bug.
 */
async function rpc<T>(method: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const failure = logFailure(error, `Identity.${method}`);
    // No cause on purpose: it would cross to the caller, and it holds what only the log should
    // (why a proof failed, a bug's stack).
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`${failure.code}: ${failure.message}`);
  }
}

export class Identity extends WorkerEntrypoint<IdentityEnv, IdentityProps> {
  /** A JWT-SVID for the Worker the binding names, with the claims `options` asks for. */
  async svid(options?: SvidRequest): Promise<IssuedSvid> {
    return await rpc("svid", async () => {
      const service = this.caller();
      const parsed = parseSvidOptions(options);
      return issueSvid(
        await issueContext(this.env, (promise) => this.ctx.waitUntil(promise)),
        service,
        parsed,
      );
    });
  }

  /**
   * A certificate for the router's own public key (a P-256 JWK without `d`): a JWT of type
   * ROUTER_KEY_TYPE whose `cnf.jwk` is the key. Only a binding whose props name the router may
   * ask: any other Worker with such a certificate could sign passports as the router.
   */
  async certifyRouterKey(publicJwk: JsonWebKey): Promise<RouterKeyCertificate> {
    return await rpc("certifyRouterKey", async () => {
      const service = this.caller();
      const { trustDomain } = identityFor(this.env).settings;
      const router = serviceOf(routerId(trustDomain), trustDomain);
      if (service !== router) {
        throw new MeshError(
          "forbidden",
          `only the router (props.service = "${router}") may have its key certified; this binding's props name '${service}'`,
        );
      }
      return certifyRouterKey(
        await issueContext(this.env, (promise) => this.ctx.waitUntil(promise)),
        publicJwk,
      );
    });
  }

  /** The JWKS and health; anything else (`POST /v1/svid` above all) is 404 `no_route`. */
  override fetch(request: Request): Promise<Response> {
    return Promise.resolve(bindingApp.fetch(request, this.env, this.ctx));
  }

  /** The service the binding's props name; throws when they name none, or not a service. */
  private caller(): string {
    const service = (this.ctx.props as IdentityProps | undefined)?.service;
    if (service === undefined) {
      throw new MeshError(
        "unauthenticated",
        'the Identity entrypoint takes the caller from its binding\'s props, and these name no service: bind it with props = { service = "<your service>" }',
      );
    }
    if (!ResourceName.safeParse(service).success) {
      throw new MeshError(
        "unauthenticated",
        `the binding's props.service ${JSON.stringify(service).slice(0, 80)} is not a service name (a DNS label: lower-case letters, digits and '-', 1-63 characters)`,
      );
    }
    return service;
  }
}

export default {
  fetch(request, env, ctx) {
    return httpApp.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<IdentityEnv>;
