import { describe, expect, it } from "vitest";
import { seededRandom } from "../random.ts";
import {
  adopt,
  admit,
  awaitingGrant,
  CLOSED,
  current,
  FAILURE,
  grantProbes,
  MESH_PROBE_WAIT_MS,
  openDuration,
  RESERVATION_GRACE_MS,
  PLAIN_SUCCESS,
  PROBE_EXPIRY_MS,
  PROBE_SUCCESS,
  record,
  refuses,
  windowCounts,
  type BreakerPolicy,
  type BreakerState,
} from "./breaker.ts";

const policy: BreakerPolicy = {
  consecutiveFailures: 5,
  failureRate: 0.5,
  minimumRequests: 20,
  windowMs: 10_000,
  baseOpenMs: 1_000,
  maxOpenMs: 8_000,
  openJitter: 0,
  halfOpenProbes: 2,
};
const noJitter = () => 0;

function feed(state: BreakerState, outcomes: readonly ("ok" | "fail")[], now: number, p = policy) {
  let s = state;
  for (const o of outcomes) s = record(s, p, o === "ok" ? PLAIN_SUCCESS : FAILURE, now, noJitter);
  return s;
}

describe("circuit breaker", () => {
  it("opens after 5 consecutive failures, not after 4, and a success resets the streak", () => {
    expect(feed(CLOSED, ["fail", "fail", "fail", "fail"], 0).kind).toBe("closed");
    expect(feed(CLOSED, ["fail", "fail", "fail", "fail", "ok", "fail"], 0).kind).toBe("closed");
    const opened = feed(CLOSED, ["fail", "fail", "fail", "fail", "fail"], 0);
    expect(opened).toEqual({ kind: "open", openedAt: 0, until: 1_000, trips: 1 });
    expect(admit(opened, policy, 999).admitted).toBe(false);
  });

  it("opens on a failure rate over the window once it holds the minimum requests", () => {
    // Alternating: never 5 in a row, but half fail.
    const pattern = Array.from({ length: 19 }, (_, i) => (i % 2 ? "ok" : "fail") as "ok" | "fail");
    const below = feed(CLOSED, pattern, 0);
    expect(below.kind).toBe("closed"); // 19 requests: under the minimum of 20
    expect(windowCounts(below, policy, 0)).toEqual({ requests: 19, failures: 10 });
    expect(feed(below, ["ok"], 0).kind).toBe("open"); // 20 requests, 10 failures: 50%
  });

  it("forgets outcomes older than the window", () => {
    const old = feed(
      CLOSED,
      Array(15)
        .fill("fail")
        .map((f, i) => (i % 3 ? f : "ok")),
      0,
    );
    expect(windowCounts(old, policy, 9_999).requests).toBe(15);
    expect(windowCounts(old, policy, 10_001).requests).toBe(0);
  });

  it("turns half-open when the open time is up, admits the probes only, and closes on their success", () => {
    const opened = feed(CLOSED, Array(5).fill("fail"), 0);
    expect(current(opened, 1_000).kind).toBe("half-open");
    let s = current(opened, 1_000);
    const first = admit(s, policy, 1_000);
    const second = admit(first.state, policy, 1_000);
    const third = admit(second.state, policy, 1_000);
    expect([first.admitted, second.admitted, third.admitted]).toEqual([true, true, false]);
    s = record(third.state, policy, PROBE_SUCCESS, 1_010, noJitter);
    expect(s.kind).toBe("half-open");
    s = record(s, policy, PROBE_SUCCESS, 1_020, noJitter);
    expect(s).toEqual(CLOSED);
  });

  it("gives back a probe never answered after PROBE_EXPIRY_MS, so it cannot hold it half-open", () => {
    const opened = feed(CLOSED, Array(5).fill("fail"), 0);
    let s = current(opened, 1_000);
    s = admit(s, policy, 1_000).state;
    s = admit(s, policy, 1_000).state;
    s = record(s, policy, PROBE_SUCCESS, 1_010, noJitter); // one answered, one lost
    expect(admit(s, policy, 1_000 + PROBE_EXPIRY_MS - 1).admitted).toBe(false);
    const later = admit(s, policy, 1_000 + PROBE_EXPIRY_MS);
    expect(later.admitted).toBe(true);
    expect(record(later.state, policy, PROBE_SUCCESS, 1_000 + PROBE_EXPIRY_MS, noJitter)).toEqual(
      CLOSED,
    );
  });

  it("opens again, for longer, when a probe fails; the open time doubles up to the cap", () => {
    let s = feed(CLOSED, Array(5).fill("fail"), 0);
    const opens: number[] = [];
    for (let trip = 0; trip < 6; trip++) {
      if (s.kind !== "open") throw new Error(`expected open, got ${s.kind}`);
      opens.push(s.until - s.openedAt);
      const now = s.until;
      s = record(admit(s, policy, now).state, policy, FAILURE, now, noJitter);
    }
    expect(opens).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  });

  it("adds jitter within its bound", () => {
    const jittery = { ...policy, openJitter: 0.2 };
    const random = seededRandom(3);
    for (let i = 0; i < 500; i++) {
      const d = openDuration(jittery, 2, random);
      expect(d).toBeGreaterThanOrEqual(2_000);
      expect(d).toBeLessThanOrEqual(2_400);
    }
  });

  it("takes batched reports: a streak spans batches, a success inside a batch ends it", () => {
    const batch = (successes: number, failures: number, trailingFailures: number) => ({
      successes,
      failures,
      trailingFailures,
      probeSuccesses: 0,
    });
    let s = record(CLOSED, policy, batch(3, 2, 2), 0, noJitter);
    expect(s.kind === "closed" && s.consecutive).toBe(2);
    s = record(s, policy, batch(0, 3, 3), 100, noJitter);
    expect(s.kind).toBe("open"); // 2 + 3 in a row
    expect(record(CLOSED, policy, batch(1, 4, 0), 0, noJitter).kind).toBe("closed");
  });

  it("adopts the mesh-wide state: open wins, a local open that lasts longer stays", () => {
    const globalOpen: BreakerState = { kind: "open", openedAt: 0, until: 5_000, trips: 1 };
    expect(adopt(CLOSED, globalOpen, 100)).toEqual({ ...globalOpen, awaitsGrant: true });
    const localOpen: BreakerState = { kind: "open", openedAt: 0, until: 9_000, trips: 2 };
    expect(adopt(localOpen, globalOpen, 100)).toEqual(localOpen);
    expect(adopt(localOpen, CLOSED, 100)).toEqual(localOpen);
  });

  it("closes a breaker open only on the mesh's word when the mesh closes", () => {
    const globalOpen: BreakerState = { kind: "open", openedAt: 0, until: 5_000, trips: 1 };
    const adopted = adopt(CLOSED, globalOpen, 100);
    expect(adopt(adopted, CLOSED, 200)).toEqual(CLOSED);
  });
});

describe("half-open probes, counted mesh-wide", () => {
  const mesh = { ...policy, halfOpenProbes: 1 };
  const globalOpen: BreakerState = { kind: "open", openedAt: 0, until: 5_000, trips: 1 };

  it("an isolate open on the mesh's word does not half-open on its own clock: it waits for a grant", () => {
    const adopted = adopt(CLOSED, globalOpen, 100);
    expect(awaitingGrant(adopted, 5_000)).toBe(true);
    expect(current(adopted, 5_000).kind).toBe("open");
    expect(admit(adopted, mesh, 5_000).admitted).toBe(false);
    expect(refuses(adopted, mesh, 6_000)).toBe(true);
  });

  it("probes once granted, and closes on the probe's success", () => {
    const adopted = adopt(CLOSED, globalOpen, 100);
    const granted = adopt(adopted, current(globalOpen, 5_100), 5_100, 1);
    expect(granted).toEqual({
      kind: "half-open",
      trips: 1,
      admitted: 0,
      successes: 0,
      allowance: 1,
    });
    const probe = admit(granted, mesh, 5_100);
    expect(probe.admitted).toBe(true);
    expect(admit(probe.state, mesh, 5_100).admitted).toBe(false);
    // Granted probes are kept while the mesh is still half-open and grants this isolate no more.
    expect(adopt(probe.state, current(globalOpen, 5_200), 5_200)).toEqual(probe.state);
    expect(record(probe.state, mesh, PROBE_SUCCESS, 5_300, noJitter)).toEqual(CLOSED);
  });

  it("without a grant while the mesh probes, refuses until the mesh says more", () => {
    const waiting = adopt(CLOSED, current(globalOpen, 5_100), 5_100);
    expect(waiting.kind).toBe("open");
    expect(refuses(waiting, mesh, 5_100)).toBe(true);
    expect(awaitingGrant(waiting, 5_100)).toBe(true);
  });

  it("closes a half-open breaker on probes' successes only, not on late plain ones", () => {
    const halfOpen = current(
      record(
        CLOSED,
        mesh,
        { successes: 0, failures: 5, trailingFailures: 5, probeSuccesses: 0 },
        0,
        noJitter,
      ),
      1_000,
    );
    expect(halfOpen.kind).toBe("half-open");
    // A success from a try sent before it opened, reported late, is no evidence.
    const late = record(halfOpen, mesh, PLAIN_SUCCESS, 1_010, noJitter);
    expect(late.kind).toBe("half-open");
    expect(record(late, mesh, PROBE_SUCCESS, 1_020, noJitter)).toEqual(CLOSED);
    // A report of several outcomes counts its probes' successes; any failure reopens it.
    const batch = { successes: 3, failures: 0, trailingFailures: 0, probeSuccesses: 1 };
    expect(record(halfOpen, mesh, batch, 1_030, noJitter)).toEqual(CLOSED);
    expect(record(halfOpen, mesh, FAILURE, 1_030, noJitter).kind).toBe("open");
  });

  it("probes on its own when no word comes from the mesh for MESH_PROBE_WAIT_MS after the open time", () => {
    const adopted = adopt(CLOSED, globalOpen, 100);
    expect(admit(adopted, mesh, 5_000 + MESH_PROBE_WAIT_MS - 1).admitted).toBe(false);
    const alone = admit(adopted, mesh, 5_000 + MESH_PROBE_WAIT_MS);
    expect(alone.admitted).toBe(true);
    expect(alone.state.kind).toBe("half-open");
  });

  it("reserves a probe while still open, so the isolate holding it probes the moment the time is up", () => {
    const object = globalOpen;
    const grant = grantProbes(object, mesh, 100)!;
    expect(grant).toEqual({ granted: 1, state: { ...globalOpen, reserved: 1 } });
    const reserved = grant.state;
    expect(grantProbes(reserved, mesh, 200)).toBeUndefined(); // one probe in all
    // At the open time the object is half-open with its reserved probe already out.
    expect(current(reserved, 5_000)).toMatchObject({ kind: "half-open", admitted: 1 });
    expect(grantProbes(reserved, mesh, 5_000)).toBeUndefined();
    // The isolate that was granted it: open until then, then a probe without asking again.
    const holder = adopt(adopt(CLOSED, object, 100), reserved, 150, 1);
    expect(holder).toEqual({ kind: "open", openedAt: 0, until: 5_000, trips: 1, granted: 1 });
    expect(admit(holder, mesh, 4_999).admitted).toBe(false);
    const probe = admit(holder, mesh, 5_000);
    expect(probe.admitted).toBe(true);
    expect(record(probe.state, mesh, PROBE_SUCCESS, 5_010, noJitter)).toEqual(CLOSED);
    // Another isolate, without a reservation, waits for the mesh at the open time.
    const other = adopt(CLOSED, reserved, 150);
    expect(awaitingGrant(other, 5_000)).toBe(true);
  });

  it("gives a reserved probe back when its holder has not answered within the grace", () => {
    const reserved = grantProbes(globalOpen, mesh, 100)!.state;
    expect(grantProbes(reserved, mesh, 5_000 + RESERVATION_GRACE_MS - 1)).toBeUndefined();
    // No call reached the holder, or it is gone: another isolate gets the probe.
    expect(grantProbes(reserved, mesh, 5_000 + RESERVATION_GRACE_MS)).toMatchObject({
      granted: 1,
      state: { kind: "half-open", admitted: 1 },
    });
  });

  it("grants every free probe to the first to ask, so one isolate closes it without flapping", () => {
    const three = { ...mesh, halfOpenProbes: 3 };
    const grant = grantProbes(globalOpen, three, 100)!;
    expect(grant.granted).toBe(3);
    expect(grantProbes(grant.state, three, 200)).toBeUndefined();
    let holder = adopt(CLOSED, grant.state, 150, grant.granted);
    for (let i = 0; i < 3; i++) {
      const probe = admit(holder, three, 5_000);
      expect(probe.admitted).toBe(true);
      holder = record(probe.state, three, PROBE_SUCCESS, 5_010, noJitter);
      expect(holder.kind).toBe(i < 2 ? "half-open" : "closed");
    }
    // The object closes on the three probes' successes reported together.
    const batch = { successes: 3, failures: 0, trailingFailures: 0, probeSuccesses: 3 };
    expect(record(grant.state, three, batch, 5_100, noJitter)).toEqual(CLOSED);
  });

  it("drops a reservation when the mesh opens again for another period", () => {
    const holder = adopt(CLOSED, globalOpen, 100, 1);
    const reopened: BreakerState = { kind: "open", openedAt: 5_050, until: 7_050, trips: 2 };
    expect(adopt(holder, reopened, 5_100)).toEqual({ ...reopened, awaitsGrant: true });
  });

  it("grants nothing for a closed breaker, and probes now for a half-open one", () => {
    expect(grantProbes(CLOSED, mesh, 0)).toBeUndefined();
    expect(grantProbes(globalOpen, mesh, 5_000)).toMatchObject({
      granted: 1,
      state: { kind: "half-open", admitted: 1 },
    });
  });

  it("a thousand isolates and one object: one probe in all, then every isolate closes", () => {
    // The object's breaker, stepped as BackendState does: open on the mesh's failures.
    let object: BreakerState = record(
      CLOSED,
      mesh,
      { successes: 0, failures: 5, trailingFailures: 5, probeSuccesses: 0 },
      0,
      noJitter,
    );
    let isolates: BreakerState[] = Array.from({ length: 1000 }, () => adopt(CLOSED, object, 10));
    // Past the open time every isolate gets a call, is refused, and asks for a probe.
    let probes = 0;
    const now = 1_000;
    isolates = isolates.map((local) => {
      expect(admit(local, mesh, now).admitted).toBe(false);
      const grant = grantProbes(object, mesh, now);
      const granted = grant?.granted ?? 0;
      if (grant) object = grant.state;
      const next = adopt(local, current(object, now), now, granted);
      const tried = admit(next, mesh, now);
      if (tried.admitted) probes++;
      return tried.state;
    });
    expect(probes).toBe(1);
    // The probe succeeds; the object closes; every isolate adopts that.
    object = record(object, mesh, PROBE_SUCCESS, now + 50, noJitter);
    expect(object.kind).toBe("closed");
    const after = isolates.map((local) =>
      local.kind === "half-open"
        ? record(local, mesh, PROBE_SUCCESS, now + 50, noJitter)
        : adopt(local, object, now + 1_000),
    );
    expect(after.every((s) => s.kind === "closed")).toBe(true);
  });
});
