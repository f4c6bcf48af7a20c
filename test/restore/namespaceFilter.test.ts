import { describe, expect, it } from "vitest";
import {
  createNamespaceFilter,
  createNamespaceRenamer,
  matchesPattern,
  splitNamespace,
} from "../../src/restore/loader/namespaceFilter.js";

describe("namespaceFilter", () => {
  it("splits a namespace at its first dot", () => {
    expect(splitNamespace("shop.orders.2024")).toEqual({ db: "shop", collection: "orders.2024" });
    expect(() => splitNamespace("shop")).toThrow(/invalid namespace 'shop'/);
    expect(() => splitNamespace(".x")).toThrow(/invalid namespace/);
  });

  it("matches * wildcards over whole namespaces, dots included", () => {
    expect(matchesPattern("shop.*", "shop.orders")).toBe(true);
    expect(matchesPattern("shop.*", "shop.orders.archive")).toBe(true);
    expect(matchesPattern("shop.*", "shopping.orders")).toBe(false);
    expect(matchesPattern("*.orders", "eu.orders")).toBe(true);
    expect(matchesPattern("*.orders", "eu.orders2")).toBe(false);
    expect(matchesPattern("s*p.o*s", "shop.orders")).toBe(true);
    expect(matchesPattern("shop.orders", "shopXorders")).toBe(false); // the dot is literal
    expect(matchesPattern("*", "anything.at.all")).toBe(true);
  });

  it("takes \\* as a literal star and escapes regex characters", () => {
    expect(matchesPattern("db.a\\*b", "db.a*b")).toBe(true);
    expect(matchesPattern("db.a\\*b", "db.axb")).toBe(false);
    expect(matchesPattern("db.(x)+[y]", "db.(x)+[y]")).toBe(true);
    expect(matchesPattern("db.$x$", "db.$x$")).toBe(true);
  });

  it("includes everything by default, then applies include and exclude", () => {
    const all = createNamespaceFilter();
    expect(all("a.b")).toBe(true);
    const filter = createNamespaceFilter({ include: ["shop.*", "crm.people"], exclude: ["shop.tmp*"] });
    expect(filter("shop.orders")).toBe(true);
    expect(filter("shop.tmp_1")).toBe(false);
    expect(filter("crm.people")).toBe(true);
    expect(filter("crm.leads")).toBe(false);
    const excludeOnly = createNamespaceFilter({ exclude: ["*.system.*"] });
    expect(excludeOnly("a.system.js")).toBe(false);
    expect(excludeOnly("a.b")).toBe(true);
  });

  it("renames with $variables$ and keeps unmatched namespaces", () => {
    const rename = createNamespaceRenamer([
      { from: "shop.$coll$", to: "archive.$coll$" },
      { from: "$db$.users", to: "$db$_old.people" },
    ]);
    expect(rename("shop.orders")).toBe("archive.orders");
    expect(rename("shop.orders.2024")).toBe("archive.orders.2024");
    expect(rename("crm.users")).toBe("crm_old.people");
    expect(rename("crm.leads")).toBe("crm.leads");
  });

  it("renames one exact namespace and uses the first matching rule", () => {
    const rename = createNamespaceRenamer([
      { from: "a.x", to: "b.y" },
      { from: "a.$c$", to: "c.$c$" },
    ]);
    expect(rename("a.x")).toBe("b.y");
    expect(rename("a.z")).toBe("c.z");
    expect(rename("a.x.y")).toBe("c.x.y");
  });

  it("reorders variables and refuses unknown ones or an invalid result", () => {
    const swap = createNamespaceRenamer([{ from: "$a$.$b$", to: "$b$.$a$" }]);
    expect(swap("db.coll")).toBe("coll.db");
    expect(() => createNamespaceRenamer([{ from: "a.$x$", to: "b.$y$" }])).toThrow(/\$y\$/);
    expect(() => createNamespaceRenamer([{ from: "$x$.$x$", to: "b.$x$" }])).toThrow(/twice/);
    const broken = createNamespaceRenamer([{ from: "a.$c$", to: "$c$" }]);
    expect(() => broken("a.b")).toThrow(/invalid namespace 'b'/);
  });
});
