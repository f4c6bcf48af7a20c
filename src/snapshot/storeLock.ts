/**
 * One lock per block store location, in this process. Groom checks that no snapshot refers to a
 * block and removes it under the lock; a snapshot writer records its reference and stores the
 * block under the lock. So a block a snapshot refers to is either seen referenced by groom, or
 * stored again after groom removed it, never lost in between. (The server is the one process that
 * writes and grooms snapshots; a second server on the same store would need a lock in the store.)
 */
const tails = new Map<string, Promise<unknown>>();

export async function withStoreLock<T>(location: string, action: () => Promise<T> | T): Promise<T> {
  const before = tails.get(location) ?? Promise.resolve();
  const run = before.then(action, action);
  const tail = run.catch(() => undefined);
  tails.set(location, tail);
  try {
    return await run;
  } finally {
    if (tails.get(location) === tail) tails.delete(location);
  }
}
