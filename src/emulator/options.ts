export interface EmulatorOptions {
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 27017. */
  port?: number;
  /** Replica set name. Default rs0. */
  replSet?: string;
  /** With `user` and `password`, every command but the handshake and SASL needs authentication. */
  user?: string;
  password?: string;
  /** Capped size of local.oplog.rs in MiB. Default 192. */
  oplogSizeMb?: number;
  /** Load the demo databases after start. */
  sampleData?: boolean;
  /** Seconds between periodic no-op oplog entries when nothing else is written. Default 10. */
  noopIntervalSeconds?: number;
  /** Where log lines go. Default: stderr. Pass () => {} to silence. */
  log?: (line: string) => void;
}

export interface ResolvedEmulatorOptions {
  host: string;
  port: number;
  replSet: string;
  user?: string;
  password?: string;
  oplogSizeMb: number;
  sampleData: boolean;
  noopIntervalSeconds: number;
  log: (line: string) => void;
}

export function resolveOptions(options: EmulatorOptions): ResolvedEmulatorOptions {
  if ((options.user === undefined) !== (options.password === undefined)) {
    throw new Error("emulator: --user and --password go together; give both or neither");
  }
  return {
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 27017,
    replSet: options.replSet ?? "rs0",
    user: options.user,
    password: options.password,
    oplogSizeMb: options.oplogSizeMb ?? 192,
    sampleData: options.sampleData ?? false,
    noopIntervalSeconds: options.noopIntervalSeconds ?? 10,
    log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
  };
}
