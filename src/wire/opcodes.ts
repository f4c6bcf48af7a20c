/** Wire protocol opcodes Tidemark speaks (MongoDB manual, "Legacy Opcodes" and "OP_MSG"). */
export const OpCode = {
  OP_REPLY: 1,
  OP_QUERY: 2004,
  OP_COMPRESSED: 2012,
  OP_MSG: 2013,
} as const;

export const HEADER_SIZE = 16;

/** The largest message a MongoDB 7.0 server accepts (maxMessageSizeBytes). */
export const MAX_MESSAGE_SIZE = 48_000_000;

export const OpMsgFlag = {
  checksumPresent: 1 << 0,
  moreToCome: 1 << 1,
  exhaustAllowed: 1 << 16,
} as const;
