import { deserialize, type Document } from "bson";
import { rawArrayField } from "../../bson/elements.js";
import { CommandError, ErrorCode } from "../errors.js";
import type { ClientConnection } from "../connection.js";
import type { Deployment } from "../deployment.js";
import { Writer } from "../writer.js";
import type { SessionBinding } from "./sessionInfo.js";

/** What a command handler gets: the parsed command, its raw BSON, and the deployment. */
export class CommandContext {
  constructor(
    readonly deployment: Deployment,
    readonly connection: ClientConnection,
    readonly db: string,
    readonly name: string,
    readonly command: Document,
    readonly rawBody: Buffer,
    private readonly sequences: Map<string, Buffer[]>,
    readonly session: SessionBinding = {},
  ) {}

  /** A writer bound to this command's transaction or retryable-write session. */
  writer(): Writer {
    return new Writer(this.deployment.oplog, {
      transaction: this.session.transaction,
      retryable: this.session.retryable,
    });
  }

  /**
   * The documents of an array field as raw BSON, from an OP_MSG document sequence or from the
   * body, so inserted documents are stored exactly as the client sent them.
   */
  rawArray(field: string): Buffer[] {
    const sequence = this.sequences.get(field);
    if (sequence) return sequence;
    try {
      return rawArrayField(this.rawBody, field) ?? [];
    } catch (error) {
      throw new CommandError(ErrorCode.TypeMismatch, `${this.name}: ${(error as Error).message}`);
    }
  }

  /** An array field as documents, from a document sequence or the body. */
  documentArray(field: string): Document[] {
    const sequence = this.sequences.get(field);
    if (sequence) return sequence.map((doc) => deserialize(doc));
    const value = this.command[field] as unknown;
    return Array.isArray(value) ? (value as Document[]) : [];
  }

  /** The target collection name: the command's first value. */
  get collectionName(): string {
    return String(this.command[this.name]);
  }

  get ns(): string {
    return `${this.db}.${this.collectionName}`;
  }
}

export type CommandHandler = (ctx: CommandContext) => Document | Promise<Document>;

export interface CommandDefinition {
  names: string[];
  handler: CommandHandler;
  /** Allowed before authentication (the handshake and the SASL conversation). */
  noAuth?: boolean;
  /** A write command: fails with NotWritablePrimary if the member stepped down (fault). */
  write?: boolean;
}
