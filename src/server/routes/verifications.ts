import type { FastifyInstance, FastifyRequest } from "fastify";
import { VerificationAnswer } from "../../protocol/agentProtocol.js";
import { requireAdmin, requireAgent } from "../auth.js";
import type { ServerContext } from "../context.js";
import { parseBody } from "../parseBody.js";
import { Verifications } from "../verification.js";
import { findDeployment } from "./deployments.js";

type WithVerification = FastifyRequest<{ Params: { id: string; verificationId: string } }>;

/**
 * `tidemark headdb verify` (admin key): POST starts a verification (202 `{id, state}`), GET reads
 * it (`VerificationView`), advancing it when the agent's answer is in and the head database has
 * caught up. The agent answers under its own key (see `VerificationAnswer`).
 */
export function registerVerificationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { catalog } = ctx;
  const verifications = new Verifications(ctx);

  app.post(
    "/api/v1/deployments/:id/verifications",
    async (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
      requireAdmin(request, catalog);
      const verification = verifications.start(findDeployment(ctx, request.params.id));
      return reply.code(202).send({ id: verification.id, state: verification.state });
    },
  );

  app.get("/api/v1/deployments/:id/verifications/:verificationId", async (request: WithVerification) => {
    requireAdmin(request, catalog);
    return verifications.view(findDeployment(ctx, request.params.id), request.params.verificationId);
  });

  app.post(
    "/api/v1/agent/deployments/:id/verifications/:verificationId",
    async (request: WithVerification) => {
      const record = requireAgent(request, catalog, request.params.id);
      catalog.deployments.touchAgent(record.id);
      const answer = parseBody(VerificationAnswer, request.body);
      const stored = verifications.answer(record, request.params.verificationId, answer);
      return { ok: true, duplicate: !stored };
    },
  );
}
