/**
 * A deployment's snapshot schedule and retention (Ops Manager's defaults), and which snapshots
 * it lets go. Pure functions of the snapshots and the clock, so the rules are tested on their own.
 *
 * A scheduled snapshot is taken every `intervalHours` and kept `keepDays`. The first scheduled
 * snapshot of a UTC day is also a daily one (kept `dailyKeepDays`), the first of an ISO week
 * (Monday, UTC) a weekly one (`weeklyKeepWeeks`), the first of a month a monthly one
 * (`monthlyKeepMonths`); a snapshot stays while any of its classes keeps it. An on-demand snapshot
 * stays until its own expiry (default `onDemandKeepDays`).
 */
import { z } from "zod";

export const SnapshotSchedule = z
  .object({
    intervalHours: z.number().positive().default(6),
    keepDays: z.number().positive().default(2),
    dailyKeepDays: z.number().nonnegative().default(7),
    weeklyKeepWeeks: z.number().nonnegative().default(4),
    monthlyKeepMonths: z.number().int().nonnegative().default(13),
    onDemandKeepDays: z.number().positive().default(7),
    /** A new base run once a collection's chain has this many deltas... */
    maxDeltas: z.number().int().nonnegative().default(7),
    /** ...or its deltas hold more than this share of the base's bytes. */
    maxDeltaFraction: z.number().nonnegative().default(0.5),
    /** Scheduled snapshots on (on-demand ones are always possible). */
    enabled: z.boolean().default(true),
  })
  // Strict: a misspelt setting ("intervalHour") is refused rather than silently left at its default.
  .strict();
export type SnapshotSchedule = z.infer<typeof SnapshotSchedule>;
export type SnapshotScheduleInput = z.input<typeof SnapshotSchedule>;

/** After a failed scheduled snapshot, the next try waits this long (or the interval, if shorter). */
export const RETRY_AFTER_FAILURE_MS = 10 * 60_000;

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** What the rules need of a snapshot. */
export interface RetainedSnapshot {
  id: string;
  trigger: "scheduled" | "on_demand";
  status: "writing" | "complete" | "failed";
  createdAt: number;
  /** When it expires regardless of its classes (on-demand), or null. */
  expiresAt: number | null;
  /**
   * Its classes as given when it completed (`snapshotClasses` then), so that deleting the first
   * snapshot of a day does not make a later one the daily one and keep it longer than asked.
   */
  classes?: readonly SnapshotClass[] | null;
}

export type SnapshotClass = "regular" | "daily" | "weekly" | "monthly" | "on_demand";

/** Monday 00:00 UTC of the ISO week holding `ms`. */
function weekStart(ms: number): number {
  const day = new Date(ms).getUTCDay(); // 0 Sunday
  const midnight = ms - (ms % DAY);
  return midnight - ((day + 6) % 7) * DAY;
}

function monthKey(ms: number): string {
  const date = new Date(ms);
  return `${date.getUTCFullYear()}-${date.getUTCMonth()}`;
}

/**
 * `months` calendar months after `ms`, on the same day of the month, or the month's last day when
 * it is shorter: 31 January + 1 month is 28 (29) February, not 3 (2) March as Date's overflow gives.
 */
function addMonths(ms: number, months: number): number {
  const date = new Date(ms);
  const day = date.getUTCDate();
  date.setUTCDate(1);
  date.setUTCMonth(date.getUTCMonth() + months);
  const lastDay = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate();
  date.setUTCDate(Math.min(day, lastDay));
  return date.getTime();
}

/**
 * The classes of each complete scheduled snapshot, and on-demand ones. A snapshot keeps the
 * classes it was given when it completed; one without (not yet recorded) is the daily, weekly or
 * monthly one if it is the first of its period, in creation order.
 */
export function snapshotClasses(snapshots: readonly RetainedSnapshot[]): Map<string, SnapshotClass[]> {
  const classes = new Map<string, SnapshotClass[]>();
  const seen = { day: new Set<number>(), week: new Set<number>(), month: new Set<string>() };
  const scheduled = snapshots
    .filter((s) => s.trigger === "scheduled" && s.status === "complete")
    .sort((a, b) => a.createdAt - b.createdAt);
  // Recorded classes first: their periods are taken whatever order the others come in.
  for (const snapshot of scheduled) {
    if (!snapshot.classes) continue;
    classes.set(snapshot.id, [...snapshot.classes]);
    if (snapshot.classes.includes("daily")) seen.day.add(snapshot.createdAt - (snapshot.createdAt % DAY));
    if (snapshot.classes.includes("weekly")) seen.week.add(weekStart(snapshot.createdAt));
    if (snapshot.classes.includes("monthly")) seen.month.add(monthKey(snapshot.createdAt));
  }
  for (const snapshot of scheduled) {
    if (snapshot.classes) continue;
    const own: SnapshotClass[] = ["regular"];
    const day = snapshot.createdAt - (snapshot.createdAt % DAY);
    if (!seen.day.has(day)) own.push("daily");
    seen.day.add(day);
    const week = weekStart(snapshot.createdAt);
    if (!seen.week.has(week)) own.push("weekly");
    seen.week.add(week);
    const month = monthKey(snapshot.createdAt);
    if (!seen.month.has(month)) own.push("monthly");
    seen.month.add(month);
    classes.set(snapshot.id, own);
  }
  for (const snapshot of snapshots)
    if (snapshot.trigger === "on_demand" && snapshot.status === "complete")
      classes.set(snapshot.id, ["on_demand"]);
  return classes;
}

/** When a snapshot expires under `schedule` (ms), or undefined while something else decides (writing). */
export function expiryOf(
  snapshot: RetainedSnapshot,
  classes: readonly SnapshotClass[],
  schedule: SnapshotSchedule,
): number | undefined {
  if (snapshot.status === "writing") return undefined;
  const t = snapshot.createdAt;
  // A failed attempt is kept a while, so that it can be seen and its reason read.
  if (snapshot.status === "failed") return t + schedule.keepDays * DAY;
  if (snapshot.expiresAt !== null) return snapshot.expiresAt;
  let expiry = t;
  for (const kind of classes) {
    const until =
      kind === "regular"
        ? t + schedule.keepDays * DAY
        : kind === "daily"
          ? t + schedule.dailyKeepDays * DAY
          : kind === "weekly"
            ? t + schedule.weeklyKeepWeeks * 7 * DAY
            : kind === "monthly"
              ? addMonths(t, schedule.monthlyKeepMonths)
              : t + schedule.onDemandKeepDays * DAY;
    expiry = Math.max(expiry, until);
  }
  return expiry;
}

/** The snapshots whose time is up at `now`. */
export function expiredSnapshots(
  snapshots: readonly RetainedSnapshot[],
  schedule: SnapshotSchedule,
  now: number,
): RetainedSnapshot[] {
  const classes = snapshotClasses(snapshots);
  return snapshots.filter((snapshot) => {
    const expiry = expiryOf(snapshot, classes.get(snapshot.id) ?? [], schedule);
    return expiry !== undefined && expiry <= now;
  });
}

/**
 * Whether a scheduled snapshot is due at `now`: none is being written, and the last scheduled
 * one that did not fail is `intervalHours` old (a failure is retried after a pause).
 */
export function scheduledSnapshotDue(
  snapshots: readonly RetainedSnapshot[],
  schedule: SnapshotSchedule,
  now: number,
): boolean {
  if (!schedule.enabled) return false;
  if (snapshots.some((s) => s.status === "writing")) return false;
  const interval = schedule.intervalHours * HOUR;
  const scheduled = snapshots.filter((s) => s.trigger === "scheduled");
  const lastGood = Math.max(
    -Infinity,
    ...scheduled.filter((s) => s.status === "complete").map((s) => s.createdAt),
  );
  const lastFailed = Math.max(
    -Infinity,
    ...scheduled.filter((s) => s.status === "failed").map((s) => s.createdAt),
  );
  if (now - lastGood < interval) return false;
  return now - lastFailed >= Math.min(interval, RETRY_AFTER_FAILURE_MS);
}

/** A deployment's schedule: the server's, with the deployment's own settings over it. */
export function resolveSchedule(
  server: SnapshotScheduleInput | undefined,
  deployment: Record<string, unknown> | null,
): SnapshotSchedule {
  return SnapshotSchedule.parse({ ...(server ?? {}), ...(deployment ?? {}) });
}
