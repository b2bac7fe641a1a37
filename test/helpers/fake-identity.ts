/**
 * An identity Worker stand-in for router tests: the mesh's keys made in the test, a JWKS served
 * through what looks like the router's IDENTITY binding, SVIDs signed on demand (with any part
 * changed, for the attacks), router keys certified — and every call to it counted, so a test can
 * show that a warm router does not wait for it.
 */
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { identityIssuer, ROUTER_KEY_TYPE, routerId, spiffeId } from "../../core/identity/names.ts";

export interface SvidOptions {
  kid?: string;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  /** Seconds from now (negative: in the past). */
  issuedAt?: number;
  ttlSeconds?: number;
  jti?: string;
}

interface MeshKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export class FakeIdentity {
  readonly trustDomain: string;
  private readonly keys: MeshKey[] = [];
  jwksFetches = 0;
  certifications = 0;
  /** When set, every call fails (the identity Worker down). */
  down = false;
  /** The JWKS answer's `Cache-Control: max-age`, in seconds. */
  maxAgeSeconds = 300;
  private counter = 0;
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;

  private constructor(trustDomain: string) {
    this.trustDomain = trustDomain;
  }

  static async create(trustDomain = "meshwork.local"): Promise<FakeIdentity> {
    const identity = new FakeIdentity(trustDomain);
    await identity.addKey("key-1");
    return identity;
  }

  /** Publishes another key (and makes it the one that signs). */
  async addKey(kid: string): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    this.keys.unshift({ kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid } });
  }

  /** Takes a key out of the JWKS (retired). */
  removeKey(kid: string): void {
    const i = this.keys.findIndex((k) => k.kid === kid);
    if (i >= 0) this.keys.splice(i, 1);
  }

  /** Makes every JWKS fetch from now on hang until `resume()` (counted when it starts). */
  hold(): void {
    this.held = new Promise((resolve) => (this.release = resolve));
  }

  resume(): void {
    this.release?.();
    this.held = undefined;
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.keys.map((k) => ({ ...k.publicJwk, alg: "ES256", use: "sig" })) };
  }

  /** What the router's IDENTITY binding is. */
  binding() {
    return {
      fetch: async (input: RequestInfo | URL): Promise<Response> => {
        this.jwksFetches++;
        if (this.held) await this.held;
        if (this.down) throw new Error("identity Worker unreachable");
        const url = new URL(input instanceof Request ? input.url : String(input));
        if (url.pathname !== "/.well-known/jwks.json") return new Response("", { status: 404 });
        return Response.json(this.jwks(), {
          headers: { "cache-control": `public, max-age=${this.maxAgeSeconds}` },
        });
      },
      certifyRouterKey: async (
        publicJwk: JsonWebKey,
      ): Promise<{ certificate: string; expiresAt: string }> => {
        this.certifications++;
        if (this.down) throw new Error("identity Worker unreachable");
        const now = Math.floor(Date.now() / 1000);
        const key = this.keys[0]!;
        const certificate = await new SignJWT({
          cnf: { jwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y } },
        })
          .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: ROUTER_KEY_TYPE })
          .setIssuer(identityIssuer(this.trustDomain))
          .setSubject(routerId(this.trustDomain))
          .setIssuedAt(now)
          .setExpirationTime(now + 3600)
          .setJti(`cert-${++this.counter}`)
          .sign(key.privateKey);
        return { certificate, expiresAt: new Date((now + 3600) * 1000).toISOString() };
      },
    };
  }

  /** A JWT-SVID for `service`, as the identity Worker signs it, with `options` changing it. */
  svid(service: string, options: SvidOptions = {}): Promise<string> {
    const key =
      this.keys.find((k) => k.kid === (options.kid ?? this.keys[0]!.kid)) ?? this.keys[0]!;
    const iat = Math.floor(Date.now() / 1000) + (options.issuedAt ?? -5);
    return new SignJWT({
      iss: identityIssuer(this.trustDomain),
      sub: spiffeId(this.trustDomain, service),
      aud: routerId(this.trustDomain),
      jti: options.jti ?? `svid-${++this.counter}-${crypto.randomUUID()}`,
      ...options.claims,
    })
      .setProtectedHeader({
        alg: "ES256",
        kid: options.kid ?? key.kid,
        typ: "JWT",
        ...options.header,
      })
      .setIssuedAt(iat)
      .setExpirationTime(iat + (options.ttlSeconds ?? 300))
      .sign(key.privateKey);
  }
}
