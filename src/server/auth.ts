import type { FastifyRequest } from "fastify";
import type { Catalog } from "../catalog/index.js";
import type { DeploymentRecord } from "../catalog/deployments.js";
import { hashKey, keyMatches } from "../catalog/keys.js";
import { adminKeyHash } from "./adminKey.js";
import { forbidden, notFound, unauthorized } from "./errors.js";

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header?.startsWith("Bearer ")) return undefined;
  return header.slice("Bearer ".length).trim() || undefined;
}

/**
 * The route a request matched, as registered (`/api/v1/restores/:id`): what auth hooks decide on.
 * Never the raw URL, which may spell the same route with percent-escapes (`/api/v1/%72estores`)
 * or carry a query that looks like another path.
 */
export function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? "";
}

export function requireAdmin(request: FastifyRequest, catalog: Catalog): void {
  const key = bearer(request);
  const stored = adminKeyHash(catalog.db);
  if (!key || !stored || !keyMatches(key, stored)) throw unauthorized("admin");
}

/**
 * The deployment an agent request is for, checked against its key: an unknown key is 401, the
 * key of another deployment 403, so one agent can never read or write another's slices.
 */
export function requireAgent(
  request: FastifyRequest,
  catalog: Catalog,
  deploymentId: string,
): DeploymentRecord {
  const key = bearer(request);
  if (!key) throw unauthorized("agent");
  const owner = catalog.deployments.findByAgentKeyHash(hashKey(key));
  if (!owner) throw unauthorized("agent");
  if (owner.id !== deploymentId) {
    const target = catalog.deployments.get(deploymentId);
    if (!target) throw notFound(`deployment ${deploymentId}`);
    throw forbidden(`this agent key belongs to deployment '${owner.name}', not '${target.name}'`);
  }
  return owner;
}
