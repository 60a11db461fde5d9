// Dashboard sessions and login limits with a fake clock: idle and absolute
// expiry, a bounded number of sessions, form tokens compared exactly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { csrfMatches, SessionStore } from "../src/dashboard/sessions.js";
import { LoginLimit } from "../src/dashboard/login-limit.js";

test("a session ends when idle too long, and when too old however used", () => {
  let now = 1_000_000;
  const sessions = new SessionStore({ idleMs: 1000, maxAgeMs: 5000, maxSessions: 10 }, () => now);
  const idle = sessions.create("hash");
  now += 999;
  assert.ok(sessions.get(idle.id), "used just in time");
  now += 1000;
  assert.equal(sessions.get(idle.id), undefined, "idle for its whole allowance");
  const busy = sessions.create("hash");
  for (let i = 0; i < 9; i++) {
    now += 500;
    assert.ok(sessions.get(busy.id));
  }
  now += 500;
  assert.equal(sessions.get(busy.id), undefined, "five seconds after login, used or not");
  assert.equal(sessions.get("forged"), undefined);
});

test("sessions are bounded: the oldest login makes room", () => {
  let now = 0;
  const sessions = new SessionStore({ idleMs: 1e9, maxAgeMs: 1e9, maxSessions: 3 }, () => now);
  const made = Array.from({ length: 5 }, () => {
    now += 1;
    return sessions.create("hash");
  });
  assert.equal(sessions.size, 3);
  assert.deepEqual(
    made.map((session) => sessions.get(session.id) !== undefined),
    [false, false, true, true, true],
  );
  assert.notEqual(made[3]?.id, made[4]?.id);
  assert.notEqual(made[4]?.csrf, made[4]?.id);
});

test("a form token matches only exactly", () => {
  const session = new SessionStore().create("hash");
  assert.ok(csrfMatches(session, session.csrf));
  assert.ok(!csrfMatches(session, undefined));
  assert.ok(!csrfMatches(session, ""));
  assert.ok(!csrfMatches(session, session.csrf.slice(1)));
  assert.ok(!csrfMatches(session, `${session.csrf}x`));
  assert.ok(
    !csrfMatches(
      session,
      session.csrf.replace(/^./, (c) => (c === "A" ? "B" : "A")),
    ),
  );
});

test("login attempts per address are limited per window; the table of addresses is bounded", () => {
  let now = 0;
  const limit = new LoginLimit(3, 60_000, 100, () => now);
  assert.deepEqual(
    Array.from({ length: 5 }, () => limit.admit("10.0.0.1")),
    [true, true, true, false, false],
  );
  assert.ok(limit.admit("10.0.0.2"), "another address has its own allowance");
  now += 30_000;
  assert.equal(limit.retryAfterSeconds("10.0.0.1"), 30);
  now += 30_000;
  assert.ok(limit.admit("10.0.0.1"), "a new window");
  for (let i = 0; i < 1000; i++) limit.admit(`10.1.${i >> 8}.${i & 255}`);
  assert.ok((limit as unknown as { attempts: Map<string, unknown> }).attempts.size <= 100);
});
