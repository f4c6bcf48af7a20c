// mongodump `--archive` format (mongo-tools common/archive/spec.md): streaming writer and reader.
export {
  ArchiveReader,
  openArchive,
  type ArchiveDocumentEvent,
  type ArchiveEvent,
  type ArchiveHeader,
  type ArchiveNamespace,
  type ArchiveNamespaceEndEvent,
  type ArchiveReaderOptions,
} from "./archiveReader.js";
export {
  ArchiveWriter,
  type ArchiveNamespaceInput,
  type ArchiveNamespaceWritten,
  type ArchiveWriterOptions,
} from "./archiveWriter.js";
export { Crc64, crc64Ecma } from "./crc.js";
export { ArchiveError, namespaceName, type ArchiveErrorCode, type ArchiveErrorDetails } from "./errors.js";
export { ARCHIVE_MAGIC, ARCHIVE_VERSION, bsonProblem } from "./format.js";
