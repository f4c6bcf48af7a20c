import { Long } from "bson";
import { CommandError, ErrorCode } from "./errors.js";

/** Where a cursor's next documents come from. */
export interface DocumentSource {
  /** The next document, or undefined when nothing more is available now. */
  next(): Buffer | undefined;
  /** Tailable cursors stay open at the end and can wait for more. */
  readonly tailable: boolean;
  /** For awaitData: resolves when more may be available, or after `timeoutMs`. */
  waitForMore?(timeoutMs: number): Promise<void>;
  /** Releases whatever the source holds (a transaction view, a snapshot). */
  close?(): void;
}

export interface OpenCursor {
  id: Long;
  ns: string;
  source: DocumentSource;
  awaitData: boolean;
  /** Default maxTimeMS for getMore on awaitData cursors (from the find command). */
  maxAwaitTimeMS?: number;
  /** The session (lsid id as hex) the cursor belongs to, for killAllSessions / endSessions. */
  sessionKey?: string;
  lastUsed: number;
}

/** Sizes MongoDB uses: 101 documents in a first batch by default, 16 MiB of BSON per batch. */
export const DEFAULT_FIRST_BATCH = 101;
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;

export class CursorManager {
  private readonly cursors = new Map<string, OpenCursor>();
  private nextId = 1n;

  open(ns: string, source: DocumentSource, extra: Partial<OpenCursor> = {}): OpenCursor {
    // Cursor ids are random-looking in MongoDB; increasing ones are easier to read in logs.
    const id = Long.fromBigInt(this.nextId++ + 1_000_000n);
    const cursor: OpenCursor = { id, ns, source, awaitData: false, lastUsed: Date.now(), ...extra };
    this.cursors.set(id.toString(), cursor);
    return cursor;
  }

  get(id: Long, ns: string): OpenCursor {
    const cursor = this.cursors.get(id.toString());
    if (!cursor) throw new CommandError(ErrorCode.CursorNotFound, `cursor id ${id} not found`);
    if (cursor.ns !== ns) {
      throw new CommandError(
        ErrorCode.Unauthorized,
        `Requested getMore on namespace '${ns}', but cursor belongs to '${cursor.ns}'`,
      );
    }
    cursor.lastUsed = Date.now();
    return cursor;
  }

  kill(id: Long): boolean {
    const cursor = this.cursors.get(id.toString());
    if (!cursor) return false;
    cursor.source.close?.();
    this.cursors.delete(id.toString());
    return true;
  }

  killForSession(sessionKey: string): void {
    for (const cursor of [...this.cursors.values()])
      if (cursor.sessionKey === sessionKey) this.kill(cursor.id);
  }

  killAll(): void {
    for (const cursor of [...this.cursors.values()]) this.kill(cursor.id);
  }

  get openCount(): number {
    return this.cursors.size;
  }
}

/**
 * Fills one batch from a source: up to `limit` documents and at most MAX_BATCH_BYTES (always
 * at least one document, as the server does).
 */
export function takeBatch(source: DocumentSource, limit: number): Buffer[] {
  const batch: Buffer[] = [];
  let bytes = 0;
  while (batch.length < limit) {
    const doc = source.next();
    if (!doc) break;
    batch.push(doc);
    bytes += doc.length;
    if (bytes >= MAX_BATCH_BYTES) break;
  }
  return batch;
}

/** A finite source over a generator, looking one document ahead so it knows when it is done. */
export class GeneratorSource implements DocumentSource {
  readonly tailable = false;
  private lookahead: IteratorResult<Buffer>;

  constructor(private readonly generator: Iterator<Buffer>) {
    this.lookahead = generator.next();
  }

  next(): Buffer | undefined {
    if (this.lookahead.done) return undefined;
    const value = this.lookahead.value;
    this.lookahead = this.generator.next();
    return value;
  }

  get exhausted(): boolean {
    return this.lookahead.done === true;
  }

  close(): void {
    this.generator.return?.(undefined);
  }
}

export function isExhausted(source: DocumentSource): boolean {
  return source instanceof GeneratorSource ? source.exhausted : false;
}
