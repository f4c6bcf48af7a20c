/**
 * mongorestore-style namespace selection and renaming, as pure functions.
 *
 * - `--nsInclude` / `--nsExclude` patterns: `db.collection` where `*` matches any run of
 *   characters (dots included) and `\*` / `\\` stand for a literal `*` / `\`.
 * - `--nsFrom` / `--nsTo` renames: `$name$` in the `from` pattern captures any run of characters,
 *   and the same `$name$` in `to` puts it back (`--nsFrom 'sales.$c$' --nsTo 'archive.$c$'`).
 *   Without variables a rule renames exactly one namespace.
 */

/** `db.collection` split at its first dot (collection names may hold more dots). */
export function splitNamespace(namespace: string): { db: string; collection: string } {
  const dot = namespace.indexOf(".");
  if (dot <= 0 || dot === namespace.length - 1) {
    throw new Error(`invalid namespace '${namespace}': expected <database>.<collection>`);
  }
  return { db: namespace.slice(0, dot), collection: namespace.slice(dot + 1) };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** The regular expression a `*`-wildcard pattern stands for (anchored at both ends). */
export function patternToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === "\\" && i + 1 < pattern.length) {
      source += escapeRegExp(pattern[++i]);
    } else if (char === "*") {
      source += "[\\s\\S]*";
    } else {
      source += escapeRegExp(char);
    }
  }
  return new RegExp(`^${source}$`);
}

/** Whether `namespace` matches the `*`-wildcard `pattern`. */
export function matchesPattern(pattern: string, namespace: string): boolean {
  return patternToRegExp(pattern).test(namespace);
}

export interface NamespaceFilterOptions {
  /** Namespaces to keep; none given keeps all (`--nsInclude`). */
  include?: readonly string[];
  /** Namespaces to leave out, applied after `include` (`--nsExclude`). */
  exclude?: readonly string[];
}

/** A predicate over source namespaces: included by some `include` pattern and by no `exclude`. */
export function createNamespaceFilter(options: NamespaceFilterOptions = {}): (namespace: string) => boolean {
  const include = (options.include ?? []).map(patternToRegExp);
  const exclude = (options.exclude ?? []).map(patternToRegExp);
  return (namespace) =>
    (include.length === 0 || include.some((re) => re.test(namespace))) &&
    !exclude.some((re) => re.test(namespace));
}

export interface RenameRule {
  from: string;
  to: string;
}

interface CompiledRule {
  regExp: RegExp;
  variables: string[];
  to: string;
}

const VARIABLE = /\$([A-Za-z0-9_]*)\$/g;

function compileRule(rule: RenameRule): CompiledRule {
  const variables: string[] = [];
  let source = "";
  let last = 0;
  for (const match of rule.from.matchAll(VARIABLE)) {
    source += escapeRegExp(rule.from.slice(last, match.index));
    if (variables.includes(match[1])) {
      throw new Error(`rename pattern '${rule.from}' uses $${match[1]}$ twice`);
    }
    variables.push(match[1]);
    source += "([\\s\\S]*?)";
    last = match.index + match[0].length;
  }
  source += escapeRegExp(rule.from.slice(last));
  for (const match of rule.to.matchAll(VARIABLE)) {
    if (!variables.includes(match[1])) {
      throw new Error(`rename target '${rule.to}' uses $${match[1]}$, which '${rule.from}' does not define`);
    }
  }
  return { regExp: new RegExp(`^${source}$`), variables, to: rule.to };
}

/**
 * Source namespace → target namespace, by the first rule whose `from` matches; namespaces no
 * rule matches keep their name. The result must still be `<db>.<collection>`.
 */
export function createNamespaceRenamer(rules: readonly RenameRule[]): (namespace: string) => string {
  const compiled = rules.map(compileRule);
  return (namespace) => {
    for (const rule of compiled) {
      const match = rule.regExp.exec(namespace);
      if (!match) continue;
      const renamed = rule.to.replace(VARIABLE, (_, name: string) => match[rule.variables.indexOf(name) + 1]);
      splitNamespace(renamed);
      return renamed;
    }
    return namespace;
  };
}
