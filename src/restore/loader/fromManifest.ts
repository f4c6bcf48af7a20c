import type { ManifestCollection } from "../../snapshot/manifest.js";
import type { LoaderCollection } from "./collectionLoader.js";

/** A manifest's collection (a snapshot's, or a point in time's) as the loader takes it. */
export function loaderCollectionOf(
  collection: ManifestCollection,
  documents: () => AsyncIterable<Uint8Array>,
): LoaderCollection {
  const { namespace, type, options, indexes, md5, count, bytes } = collection;
  return {
    namespace,
    type,
    options,
    indexes,
    md5,
    count,
    bytes,
    documents: type === "view" ? undefined : documents,
  };
}
