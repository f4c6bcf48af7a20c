/**
 * Polls `probe` until it returns a value (anything but `undefined` or `false`) and resolves with
 * it; throws `timed out waiting for <what>` once `timeoutMs` has passed. An error the probe throws
 * ends the wait at once. `intervalMs` is the pause between two probes: shorter where a state to
 * catch may not last long.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
