/**
 * The snapshot schedule and retention rules (src/snapshot/policy.ts) with fixed clocks: which
 * classes a snapshot belongs to, when each class lets it go (Ops Manager's defaults, monthly in
 * calendar months), fifteen months of 6-hourly snapshots groomed every hour, failed, writing and
 * on-demand snapshots, when the next scheduled snapshot is due, and the schedule's settings.
 */
import { describe, expect, it } from "vitest";
import {
  expiredSnapshots,
  expiryOf,
  resolveSchedule,
  RETRY_AFTER_FAILURE_MS,
  scheduledSnapshotDue,
  snapshotClasses,
  SnapshotSchedule,
  type RetainedSnapshot,
  type SnapshotClass,
} from "../../src/snapshot/policy.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const DEFAULTS = SnapshotSchedule.parse({});

const iso = (ms: number) => new Date(ms).toISOString();
const at = (text: string) => Date.parse(text);

let counter = 0;
function snapshot(createdAt: number | string, fields: Partial<RetainedSnapshot> = {}): RetainedSnapshot {
  return {
    id: `s${++counter}`,
    trigger: "scheduled",
    status: "complete",
    createdAt: typeof createdAt === "string" ? at(createdAt) : createdAt,
    expiresAt: null,
    ...fields,
  };
}

/** The classes of each snapshot, by its creation time (ISO), for readable expectations. */
function classesByTime(snapshots: RetainedSnapshot[]): Record<string, SnapshotClass[]> {
  const classes = snapshotClasses(snapshots);
  return Object.fromEntries(snapshots.map((s) => [iso(s.createdAt), classes.get(s.id) ?? []]));
}

function expiry(one: RetainedSnapshot, all: RetainedSnapshot[] = [one], schedule = DEFAULTS) {
  const value = expiryOf(one, snapshotClasses(all).get(one.id) ?? [], schedule);
  return value === undefined ? undefined : iso(value);
}

describe("snapshot classes", () => {
  it("the first scheduled snapshot of a UTC day is daily, of an ISO week weekly, of a month monthly", () => {
    // Sunday 2025-06-29 .. Tuesday 2025-07-01, every 6 hours from Sunday 12:00 UTC.
    const snapshots = [
      "2025-06-29T12:00:00Z",
      "2025-06-29T18:00:00Z",
      "2025-06-30T00:00:00Z", // Monday: a new day and a new ISO week
      "2025-06-30T06:00:00Z",
      "2025-06-30T23:59:59.999Z",
      "2025-07-01T00:00:00Z", // Tuesday: a new day and a new month
      "2025-07-01T06:00:00Z",
    ].map((t) => snapshot(t));
    expect(classesByTime(snapshots)).toEqual({
      "2025-06-29T12:00:00.000Z": ["regular", "daily", "weekly", "monthly"],
      "2025-06-29T18:00:00.000Z": ["regular"],
      "2025-06-30T00:00:00.000Z": ["regular", "daily", "weekly"],
      "2025-06-30T06:00:00.000Z": ["regular"],
      "2025-06-30T23:59:59.999Z": ["regular"],
      "2025-07-01T00:00:00.000Z": ["regular", "daily", "monthly"],
      "2025-07-01T06:00:00.000Z": ["regular"],
    });
  });

  it("counts days, weeks and months in UTC, whatever order the snapshots come in", () => {
    // 23:30 UTC on a Sunday is Monday in UTC+1, but still Sunday (the old ISO week) in UTC.
    const snapshots = [
      snapshot("2025-03-10T01:00:00Z"), // Monday
      snapshot("2025-03-09T23:30:00Z"), // Sunday, listed second
      snapshot("2025-03-16T23:59:00Z"), // Sunday of the same ISO week as Monday the 10th
      snapshot("2025-03-17T00:00:00Z"), // next Monday
    ];
    expect(classesByTime(snapshots)).toEqual({
      "2025-03-10T01:00:00.000Z": ["regular", "daily", "weekly"],
      "2025-03-09T23:30:00.000Z": ["regular", "daily", "weekly", "monthly"],
      "2025-03-16T23:59:00.000Z": ["regular", "daily"],
      "2025-03-17T00:00:00.000Z": ["regular", "daily", "weekly"],
    });
  });

  it("ISO weeks cross years: Monday 2024-12-30 starts the week holding 2025-01-01", () => {
    const snapshots = [
      snapshot("2024-12-30T00:00:00Z"),
      snapshot("2025-01-01T00:00:00Z"),
      snapshot("2025-01-06T00:00:00Z"),
    ];
    expect(classesByTime(snapshots)).toEqual({
      "2024-12-30T00:00:00.000Z": ["regular", "daily", "weekly", "monthly"],
      "2025-01-01T00:00:00.000Z": ["regular", "daily", "monthly"],
      "2025-01-06T00:00:00.000Z": ["regular", "daily", "weekly"],
    });
  });

  it("on-demand snapshots are their own class and take no scheduled class from the others", () => {
    const onDemand = snapshot("2025-05-01T00:00:00Z", { trigger: "on_demand", expiresAt: null });
    const scheduled = snapshot("2025-05-01T06:00:00Z");
    const classes = snapshotClasses([onDemand, scheduled]);
    expect(classes.get(onDemand.id)).toEqual(["on_demand"]);
    expect(classes.get(scheduled.id)).toEqual(["regular", "daily", "weekly", "monthly"]);
  });

  it("failed and writing snapshots have no class and do not take one from the next", () => {
    const failed = snapshot("2025-05-01T00:00:00Z", { status: "failed" });
    const writing = snapshot("2025-05-01T03:00:00Z", { status: "writing" });
    const good = snapshot("2025-05-01T06:00:00Z");
    const classes = snapshotClasses([failed, writing, good]);
    expect(classes.has(failed.id)).toBe(false);
    expect(classes.has(writing.id)).toBe(false);
    expect(classes.get(good.id)).toEqual(["regular", "daily", "weekly", "monthly"]);
  });
});

describe("expiry with Ops Manager's defaults", () => {
  it("has the defaults: every 6 h kept 2 days, daily 7 days, weekly 4 weeks, monthly 13 months, on-demand 7 days", () => {
    expect(DEFAULTS).toMatchObject({
      intervalHours: 6,
      keepDays: 2,
      dailyKeepDays: 7,
      weeklyKeepWeeks: 4,
      monthlyKeepMonths: 13,
      onDemandKeepDays: 7,
      enabled: true,
    });
  });

  it("regular: 2 days; daily: 7 days; weekly: 4 weeks; monthly: 13 calendar months", () => {
    const monday = snapshot("2025-06-02T00:00:00Z"); // Monday, not the first of the month
    const tuesday = snapshot("2025-06-03T00:00:00Z");
    const later = snapshot("2025-06-03T06:00:00Z");
    const all = [snapshot("2025-06-01T00:00:00Z"), monday, tuesday, later];
    expect(expiry(later, all)).toBe("2025-06-05T06:00:00.000Z");
    expect(expiry(tuesday, all)).toBe("2025-06-10T00:00:00.000Z");
    expect(expiry(monday, all)).toBe("2025-06-30T00:00:00.000Z");
    // The first of June (a Sunday): monthly, 13 months on, not 13 × 30 days.
    expect(expiry(all[0], all)).toBe("2026-07-01T00:00:00.000Z");
    expect(expiry(snapshot("2024-02-01T12:00:00Z"))).toBe("2025-03-01T12:00:00.000Z");
    expect(expiry(snapshot("2023-03-01T00:00:00Z"))).toBe("2024-04-01T00:00:00.000Z");
  });

  it("monthly from the end of a month ends at the end of the shorter month, not in the one after", () => {
    // The schedule started on the 31st: that snapshot is January's monthly one.
    expect(expiry(snapshot("2025-01-31T00:00:00Z"))).toBe("2026-02-28T00:00:00.000Z");
    expect(expiry(snapshot("2023-01-31T18:00:00Z"))).toBe("2024-02-29T18:00:00.000Z");
    expect(expiry(snapshot("2025-03-31T00:00:00Z"), undefined, { ...DEFAULTS, monthlyKeepMonths: 1 })).toBe(
      "2025-04-30T00:00:00.000Z",
    );
    expect(expiry(snapshot("2024-05-31T00:00:00Z"))).toBe("2025-06-30T00:00:00.000Z");
  });

  it("a snapshot stays while its longest class keeps it, even when that class keeps less than regular", () => {
    const schedule = { ...DEFAULTS, keepDays: 3, dailyKeepDays: 1, weeklyKeepWeeks: 0, monthlyKeepMonths: 0 };
    const first = snapshot("2025-06-04T00:00:00Z");
    expect(expiry(first, [first], schedule)).toBe("2025-06-07T00:00:00.000Z");
  });

  it("expiredSnapshots lets a snapshot go exactly at its expiry, not a millisecond before", () => {
    const first = snapshot("2025-06-04T00:00:00Z"); // Wednesday: daily, weekly, monthly
    const second = snapshot("2025-06-04T06:00:00Z");
    const all = [first, second];
    const expiredAt = (now: string) => expiredSnapshots(all, DEFAULTS, at(now)).map((s) => s.id);
    expect(expiredAt("2025-06-06T05:59:59.999Z")).toEqual([]);
    expect(expiredAt("2025-06-06T06:00:00Z")).toEqual([second.id]);
    expect(expiredAt("2026-07-03T23:59:59.999Z")).toEqual([second.id]);
    expect(expiredAt("2026-07-04T00:00:00Z")).toEqual([first.id, second.id]);
  });

  it("failed snapshots go after keepDays, whatever their trigger", () => {
    const failed = snapshot("2025-06-01T00:00:00Z", { status: "failed" });
    const failedOnDemand = snapshot("2025-06-01T00:00:00Z", {
      status: "failed",
      trigger: "on_demand",
      expiresAt: at("2025-12-01T00:00:00Z"),
    });
    expect(expiry(failed)).toBe("2025-06-03T00:00:00.000Z");
    expect(expiry(failedOnDemand)).toBe("2025-06-03T00:00:00.000Z");
    expect(expiredSnapshots([failed, failedOnDemand], DEFAULTS, at("2025-06-03T00:00:00Z"))).toHaveLength(2);
  });

  it("a snapshot being written never expires", () => {
    const writing = snapshot("2020-01-01T00:00:00Z", { status: "writing" });
    const writingOnDemand = snapshot("2020-01-01T00:00:00Z", {
      status: "writing",
      trigger: "on_demand",
      expiresAt: at("2020-01-02T00:00:00Z"),
    });
    expect(expiry(writing)).toBeUndefined();
    expect(expiry(writingOnDemand)).toBeUndefined();
    expect(expiredSnapshots([writing, writingOnDemand], DEFAULTS, at("2030-01-01T00:00:00Z"))).toEqual([]);
  });

  it("on-demand snapshots go at their own expiresAt, else after onDemandKeepDays", () => {
    const explicit = snapshot("2025-06-01T00:00:00Z", {
      trigger: "on_demand",
      expiresAt: at("2025-09-01T00:00:00Z"),
    });
    const shortLived = snapshot("2025-06-01T00:00:00Z", {
      trigger: "on_demand",
      expiresAt: at("2025-06-01T01:00:00Z"),
    });
    const byDefault = snapshot("2025-06-01T00:00:00Z", { trigger: "on_demand" });
    const all = [explicit, shortLived, byDefault];
    expect(expiry(explicit, all)).toBe("2025-09-01T00:00:00.000Z");
    expect(expiry(shortLived, all)).toBe("2025-06-01T01:00:00.000Z");
    expect(expiry(byDefault, all)).toBe("2025-06-08T00:00:00.000Z");
    expect(expiry(byDefault, all, { ...DEFAULTS, onDemandKeepDays: 30 })).toBe("2025-07-01T00:00:00.000Z");
    const ids = (now: string) =>
      expiredSnapshots(all, DEFAULTS, at(now))
        .map((s) => s.id)
        .sort();
    expect(ids("2025-06-01T01:00:00Z")).toEqual([shortLived.id]);
    expect(ids("2025-06-08T00:00:00Z")).toEqual([shortLived.id, byDefault.id].sort());
    expect(ids("2025-09-01T00:00:00Z")).toEqual(all.map((s) => s.id).sort());
  });
});

/**
 * What should survive, worked out independently of policy.ts: each snapshot's classes fixed when
 * it was taken (the first of its UTC day, ISO week, month among every snapshot taken so far), and
 * how long each class keeps it; it stays while any of them does.
 */
class Oracle {
  private readonly days = new Set<string>();
  private readonly weeks = new Set<string>();
  private readonly months = new Set<string>();
  readonly keptBy = new Map<number, Partial<Record<SnapshotClass, number>>>();

  constructor(private readonly schedule: SnapshotSchedule = DEFAULTS) {}

  taken(t: number): void {
    const { keepDays, dailyKeepDays, weeklyKeepWeeks, monthlyKeepMonths } = this.schedule;
    const d = new Date(t);
    const dayKey = d.toISOString().slice(0, 10);
    const monday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
    monday.setUTCDate(monday.getUTCDate() - ((monday.getUTCDay() + 6) % 7));
    const weekKey = monday.toISOString().slice(0, 10);
    const monthKey = dayKey.slice(0, 7);
    const classes: Partial<Record<SnapshotClass, number>> = { regular: t + keepDays * DAY };
    if (!this.days.has(dayKey)) classes.daily = t + dailyKeepDays * DAY;
    if (!this.weeks.has(weekKey)) classes.weekly = t + weeklyKeepWeeks * 7 * DAY;
    if (!this.months.has(monthKey)) {
      // Calendar months on, the same day of the month and time (every monthly one here is on the 1st).
      expect(d.getUTCDate()).toBe(1);
      classes.monthly = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + monthlyKeepMonths, 1, d.getUTCHours());
    }
    this.days.add(dayKey);
    this.weeks.add(weekKey);
    this.months.add(monthKey);
    this.keptBy.set(t, classes);
  }

  /** The snapshots (creation times) that should be there at `now`. */
  survivors(now: number): number[] {
    return [...this.keptBy]
      .filter(([, classes]) => Object.values(classes).some((until) => until > now))
      .map(([t]) => t);
  }

  /** How many of `live` `kind` still keeps at `now`. */
  count(live: RetainedSnapshot[], kind: SnapshotClass, now: number): number {
    return live.filter((s) => (this.keptBy.get(s.createdAt)?.[kind] ?? -Infinity) > now).length;
  }
}

describe("fifteen months of 6-hourly snapshots, groomed every hour", () => {
  const start = at("2025-01-01T00:00:00Z"); // a Wednesday
  const end = at("2026-04-01T00:00:00Z"); // 15 months on

  /**
   * Runs the schedule hour by hour, a snapshot when due (complete at once) then groom, calling
   * `check` after each hour's groom.
   */
  function simulate(
    until: number,
    check: (now: number, live: RetainedSnapshot[], oracle: Oracle) => void,
    schedule = DEFAULTS,
  ) {
    const live: RetainedSnapshot[] = [];
    const taken: number[] = [];
    const oracle = new Oracle(schedule);
    for (let now = start; now <= until; now += HOUR) {
      if (scheduledSnapshotDue(live, schedule, now)) {
        live.push(snapshot(now));
        taken.push(now);
        oracle.taken(now);
      }
      const expired = new Set(expiredSnapshots(live, schedule, now).map((s) => s.id));
      for (let k = live.length - 1; k >= 0; k--) if (expired.has(live[k].id)) live.splice(k, 1);
      check(now, live, oracle);
    }
    return { live, taken, oracle };
  }

  it("takes one every 6 hours, and keeps exactly what each class keeps", () => {
    const { live, taken, oracle } = simulate(end, () => {});
    expect(taken).toHaveLength((end - start) / (6 * HOUR) + 1);
    expect(taken.every((t, k) => t === start + k * 6 * HOUR)).toBe(true);
    expect(live.map((s) => iso(s.createdAt))).toEqual(oracle.survivors(end).map(iso));

    // Regular: the last 2 days, every 6 hours (the one taken this hour included).
    expect(oracle.count(live, "regular", end)).toBe(8);
    expect(live.filter((s) => s.createdAt > end - 2 * DAY)).toHaveLength(8);
    // Daily: the last 7 midnights; weekly: the last 4 Mondays; monthly: the last 13 firsts.
    expect(oracle.count(live, "daily", end)).toBe(7);
    expect(oracle.count(live, "weekly", end)).toBe(4);
    expect(oracle.count(live, "monthly", end)).toBe(13);
    const days = (kind: SnapshotClass) =>
      live.filter((s) => (oracle.keptBy.get(s.createdAt)?.[kind] ?? 0) > end).map((s) => iso(s.createdAt));
    expect(days("daily")).toEqual(
      Array.from({ length: 7 }, (_, k) => iso(at("2026-03-26T00:00:00Z") + k * DAY)),
    );
    expect(days("weekly")).toEqual([
      "2026-03-09T00:00:00.000Z",
      "2026-03-16T00:00:00.000Z",
      "2026-03-23T00:00:00.000Z",
      "2026-03-30T00:00:00.000Z",
    ]);
    expect(days("monthly")).toEqual(Array.from({ length: 13 }, (_, k) => iso(Date.UTC(2025, 3 + k, 1))));
    // In all: 8 regular (2 of them also daily), 5 more dailies, 3 more Mondays, 12 more firsts.
    expect(live).toHaveLength(8 + 5 + 3 + 12);
    // 2025-03-01's monthly one went at 2026-04-01T00:00, exactly now.
    expect(live.some((s) => iso(s.createdAt).startsWith("2025-03-01"))).toBe(false);
  });

  it("at every hour of the last three months, exactly the snapshots each class keeps are there", () => {
    // From 13 months after the start on, there are always 13 monthly ones.
    const from = at("2026-01-01T00:00:00Z");
    let checks = 0;
    simulate(end, (now, live, oracle) => {
      if (now < from) return;
      checks++;
      const label = iso(now);
      expect(
        live.map((s) => s.createdAt),
        label,
      ).toEqual(oracle.survivors(now));
      expect(oracle.count(live, "regular", now), label).toBe(8);
      expect(oracle.count(live, "daily", now), label).toBe(7);
      expect(oracle.count(live, "weekly", now), label).toBe(4);
      expect(oracle.count(live, "monthly", now), label).toBe(13);
    });
    expect(checks).toBe((end - from) / HOUR + 1);
  });

  it("with other settings, never lets a snapshot go before the classes it was taken with allow", () => {
    // Classes are worked out from the snapshots that are left, so once a month's monthly one is
    // gone its next weekly one can count as the month's first and stay a little longer; keeping
    // more than asked is the safe side, letting go sooner must never happen.
    const schedules = [
      {
        ...DEFAULTS,
        intervalHours: 4,
        keepDays: 1,
        dailyKeepDays: 3,
        weeklyKeepWeeks: 2,
        monthlyKeepMonths: 2,
      },
      {
        ...DEFAULTS,
        intervalHours: 6,
        keepDays: 2,
        dailyKeepDays: 2.5,
        weeklyKeepWeeks: 0,
        monthlyKeepMonths: 0,
      },
      {
        ...DEFAULTS,
        intervalHours: 12,
        keepDays: 1,
        dailyKeepDays: 0,
        weeklyKeepWeeks: 4,
        monthlyKeepMonths: 1,
      },
    ];
    for (const schedule of schedules) {
      simulate(
        at("2025-05-01T00:00:00Z"),
        (now, live, oracle) => {
          const present = new Set(live.map((s) => s.createdAt));
          const missing = oracle.survivors(now).filter((t) => !present.has(t));
          expect(missing.map(iso), `${JSON.stringify(schedule)} at ${iso(now)}`).toEqual([]);
        },
        schedule,
      );
    }
  });
});

describe("scheduledSnapshotDue", () => {
  const t0 = at("2025-06-01T00:00:00Z");

  it("is due at once without snapshots, then every intervalHours after the last complete one", () => {
    expect(scheduledSnapshotDue([], DEFAULTS, t0)).toBe(true);
    const first = snapshot(t0);
    expect(scheduledSnapshotDue([first], DEFAULTS, t0 + 6 * HOUR - 1)).toBe(false);
    expect(scheduledSnapshotDue([first], DEFAULTS, t0 + 6 * HOUR)).toBe(true);
    const hourly = { ...DEFAULTS, intervalHours: 1 };
    expect(scheduledSnapshotDue([first], hourly, t0 + HOUR)).toBe(true);
    const twoSeconds = { ...DEFAULTS, intervalHours: 2 / 3600 };
    expect(scheduledSnapshotDue([first], twoSeconds, t0 + 1999)).toBe(false);
    expect(scheduledSnapshotDue([first], twoSeconds, t0 + 2000)).toBe(true);
  });

  it("on-demand snapshots do not move the schedule", () => {
    const scheduled = snapshot(t0);
    const onDemand = snapshot(t0 + 5 * HOUR, { trigger: "on_demand", expiresAt: t0 + DAY });
    expect(scheduledSnapshotDue([scheduled, onDemand], DEFAULTS, t0 + 6 * HOUR)).toBe(true);
    expect(scheduledSnapshotDue([onDemand], DEFAULTS, t0 + 5 * HOUR)).toBe(true);
  });

  it("not while any snapshot of the deployment is being written", () => {
    const old = snapshot(t0);
    const writing = snapshot(t0 + 7 * HOUR, { status: "writing" });
    const writingOnDemand = snapshot(t0 + 7 * HOUR, { status: "writing", trigger: "on_demand" });
    expect(scheduledSnapshotDue([old, writing], DEFAULTS, t0 + 8 * HOUR)).toBe(false);
    expect(scheduledSnapshotDue([old, writingOnDemand], DEFAULTS, t0 + 8 * HOUR)).toBe(false);
    expect(scheduledSnapshotDue([writing], DEFAULTS, t0 + 100 * DAY)).toBe(false);
  });

  it("after a failure: tries again after a pause (10 minutes, or the interval when shorter)", () => {
    const old = snapshot(t0);
    const failedAt = t0 + 6 * HOUR;
    const failed = snapshot(failedAt, { status: "failed" });
    expect(RETRY_AFTER_FAILURE_MS).toBe(10 * MINUTE);
    expect(scheduledSnapshotDue([old, failed], DEFAULTS, failedAt + MINUTE)).toBe(false);
    expect(scheduledSnapshotDue([old, failed], DEFAULTS, failedAt + 10 * MINUTE - 1)).toBe(false);
    expect(scheduledSnapshotDue([old, failed], DEFAULTS, failedAt + 10 * MINUTE)).toBe(true);
    // Without any complete one before it, the same.
    expect(scheduledSnapshotDue([failed], DEFAULTS, failedAt + 9 * MINUTE)).toBe(false);
    expect(scheduledSnapshotDue([failed], DEFAULTS, failedAt + 10 * MINUTE)).toBe(true);
    // An interval shorter than the pause: the interval.
    const short = { ...DEFAULTS, intervalHours: 2 / 3600 };
    expect(scheduledSnapshotDue([failed], short, failedAt + 1999)).toBe(false);
    expect(scheduledSnapshotDue([failed], short, failedAt + 2000)).toBe(true);
    // A failed on-demand snapshot does not pause the schedule.
    const failedOnDemand = snapshot(failedAt, { status: "failed", trigger: "on_demand" });
    expect(scheduledSnapshotDue([old, failedOnDemand], DEFAULTS, failedAt + MINUTE)).toBe(true);
  });

  it("never while the schedule is off", () => {
    const off = { ...DEFAULTS, enabled: false };
    expect(scheduledSnapshotDue([], off, t0)).toBe(false);
    expect(scheduledSnapshotDue([snapshot(t0)], off, t0 + 100 * DAY)).toBe(false);
  });
});

describe("resolveSchedule", () => {
  it("takes the defaults, the server's settings over them, and the deployment's over those", () => {
    expect(resolveSchedule(undefined, null)).toEqual(DEFAULTS);
    const server = { intervalHours: 12, keepDays: 3 };
    expect(resolveSchedule(server, null)).toEqual({ ...DEFAULTS, intervalHours: 12, keepDays: 3 });
    expect(resolveSchedule(server, { keepDays: 5, enabled: false })).toEqual({
      ...DEFAULTS,
      intervalHours: 12,
      keepDays: 5,
      enabled: false,
    });
    expect(resolveSchedule(undefined, { monthlyKeepMonths: 0, weeklyKeepWeeks: 0 })).toMatchObject({
      monthlyKeepMonths: 0,
      weeklyKeepWeeks: 0,
      intervalHours: 6,
    });
  });

  it("rejects bad values, with the setting named", () => {
    const bad: Array<Record<string, unknown>> = [
      { intervalHours: 0 },
      { intervalHours: -6 },
      { keepDays: 0 },
      { dailyKeepDays: -1 },
      { monthlyKeepMonths: 1.5 },
      { intervalHours: "6" },
      { enabled: "yes" },
      { maxDeltas: -1 },
      { onDemandKeepDays: 0 },
    ];
    for (const settings of bad) {
      const [key] = Object.keys(settings);
      expect(() => resolveSchedule(undefined, settings), JSON.stringify(settings)).toThrow(key);
      expect(() => resolveSchedule(settings, null), JSON.stringify(settings)).toThrow(key);
    }
    // A bad server value is rejected even when the deployment sets a good one for another key.
    expect(() => resolveSchedule({ keepDays: -1 }, { intervalHours: 1 })).toThrow("keepDays");
    // ...and a good deployment value replaces a bad server one.
    expect(resolveSchedule({ keepDays: -1 }, { keepDays: 1 }).keepDays).toBe(1);
  });

  it("rejects a setting it does not know (a typo would otherwise be ignored silently)", () => {
    expect(() => resolveSchedule(undefined, { intervalHour: 12 })).toThrow("intervalHour");
    const server: Record<string, unknown> = { keepdays: 3 };
    expect(() => resolveSchedule(server, null)).toThrow("keepdays");
  });
});

describe("classes recorded at completion", () => {
  it("a later snapshot does not take over the class of a deleted one", () => {
    const schedule = SnapshotSchedule.parse({ keepDays: 2, dailyKeepDays: 7 });
    const base = Date.parse("2025-06-02T00:00:00Z");
    const later = {
      id: "later",
      trigger: "scheduled" as const,
      status: "complete" as const,
      createdAt: base + 6 * 3_600_000,
      expiresAt: null,
      classes: ["regular" as const],
    };
    // The day's first (daily) snapshot was deleted: derived, "later" would now be the daily one.
    expect(snapshotClasses([{ ...later, classes: null }]).get("later")).toContain("daily");
    expect(snapshotClasses([later]).get("later")).toEqual(["regular"]);
    const threeDays = base + 3 * 86_400_000;
    expect(expiredSnapshots([later], schedule, threeDays).map((s) => s.id)).toEqual(["later"]);
    // A recorded daily keeps its period: an unrecorded one the same day is not daily.
    const recorded = {
      ...later,
      id: "first",
      createdAt: base,
      classes: ["regular" as const, "daily" as const],
    };
    const unrecorded = { ...later, id: "second", classes: null };
    expect(snapshotClasses([unrecorded, recorded]).get("second")).not.toContain("daily");
  });
});
