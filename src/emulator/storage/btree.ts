import { createRequire } from "node:module";

// sorted-btree is CommonJS with `exports.default`; ESM interop differs between Node and the
// test transformer, so load it with require, which means the same in both.
const require = createRequire(import.meta.url);
const sortedBtree = require("sorted-btree") as typeof import("sorted-btree");

export const BTree = sortedBtree.default;
export type BTree<K, V> = InstanceType<typeof sortedBtree.default<K, V>>;
