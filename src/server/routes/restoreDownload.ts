/**
 * `GET /api/v1/restores/:id/download`: a restore's archive, with Range support (a cut download
 * resumes), behind a signed link that expires (so it can be handed to a browser or `curl` without
 * the admin key), or with the admin key itself. The job view carries a fresh link each time it is
 * read, valid for an hour at most and never past the archive's own expiry.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RestoreRecord } from "../../catalog/restores.js";
import { RestoreJobError } from "../../restore/jobs/index.js";
import { requireAdmin } from "../auth.js";
import type { ServerContext } from "../context.js";
import { DownloadLinks, downloadLinkError, sendFile } from "../download/index.js";
import { HttpError, notFound } from "../errors.js";

/** The longest a link is valid for. */
const LINK_MS = 3600_000;

const RENEW_HINT =
  "get a new link: GET /api/v1/restores/ID with the admin key (its downloadUrl), valid for an hour";

const downloadPath = (id: string) => `/api/v1/restores/${encodeURIComponent(id)}/download`;

/** A signed download link for a complete archive job, or undefined. */
export function downloadLinkOf(links: DownloadLinks, record: RestoreRecord): string | undefined {
  const delivery = record.delivery as { kind?: string };
  if (delivery.kind !== "archive" || record.status !== "complete" || record.expiresAt === null)
    return undefined;
  const expiresAt = new Date(Math.min(record.expiresAt, Date.now() + LINK_MS));
  return links.sign({ path: downloadPath(record.id), expiresAt });
}

export function registerRestoreDownload(
  app: FastifyInstance,
  ctx: ServerContext,
  links: DownloadLinks,
): void {
  app.route({
    method: ["GET", "HEAD"],
    url: "/api/v1/restores/:id/download",
    handler: async (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
      const signed = links.checkUrl(request.url);
      if (!signed.ok) {
        // No link at all: the admin key will do. A link that is wrong or expired is refused as such.
        if (signed.reason !== "missing") throw downloadLinkError(signed, RENEW_HINT);
        requireAdmin(request, ctx.catalog);
      }
      const record = ctx.catalog.restores.get(request.params.id);
      if (!record) throw notFound(`restore '${request.params.id}'`);
      if (!ctx.restores) throw new HttpError(503, "NO_DAEMON", "this server runs without restores");
      let file: string;
      try {
        file = ctx.restores.archivePath(record.id);
      } catch (error) {
        if (error instanceof RestoreJobError)
          throw new HttpError(error.status, error.code, error.message, error.hint);
        throw error;
      }
      const gzip = file.endsWith(".gz");
      const source = record.source as { deploymentName?: string };
      return sendFile(request, reply, {
        path: file,
        filename: `${source.deploymentName ?? "tidemark"}-${record.id.slice(0, 8)}.archive${gzip ? ".gz" : ""}`,
        contentType: gzip ? "application/gzip" : "application/octet-stream",
      });
    },
  });
}
