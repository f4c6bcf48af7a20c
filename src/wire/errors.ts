/** A message that breaks the wire protocol; the connection that sent it is closed. */
export class WireProtocolError extends Error {
  override readonly name = "WireProtocolError";
}
