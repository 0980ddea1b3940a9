/**
 * The snapshot browser and restore previews: a directory of a snapshot one level at a
 * time (viewer), one file downloaded (operator, audited: it hands backed-up data to
 * the caller's machine, which a restore below the restore roots does not), and what
 * restoring a source to a moment would do (viewer; nothing starts). daemon/browse.ts
 * checks paths and bounds sizes; daemon/restore-preview.ts builds the plan.
 */
import type { FastifyReply } from 'fastify';
import { SnapshotBrowser, contentDisposition, type Download } from '../../daemon/browse.js';
import { DownloadTickets } from '../../daemon/download-tickets.js';
import { LifeboatError } from '../../errors.js';
import { previewGroupRestore, previewRestore } from '../../daemon/restore-preview.js';
import type { ApiContext } from '../context.js';
import { FileTicket, GroupPlanQuery, GroupRestorePlan, NameParam, RestorePlan, RestorePlanQuery, SnapshotParams, SnapshotPathQuery, SnapshotTree, TicketParam } from '../dto.js';
import { route, type Route } from '../route.js';

/** Streams a file being dumped; a client that goes away stops the child rather than let it write into a closed pipe. */
function send(file: Download, reply: FastifyReply): FastifyReply {
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) file.abort();
  });
  reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', String(file.size))
    .header('content-disposition', contentDisposition(file.name))
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store');
  return reply.send(file.stream);
}

export function snapshotRoutes({ d, role }: ApiContext): Route[] {
  const browser = new SnapshotBrowser(d.config);
  const tickets = new DownloadTickets();
  return [
    route({
      method: 'GET', url: '/api/v1/repositories/:name/snapshots/:id/tree', role: 'viewer',
      summary: "One directory of a snapshot (?path=/abs/dir, default /): its entries, one level, at most 2000 (truncated says so); a file's path gives that one entry",
      params: SnapshotParams, query: SnapshotPathQuery,
      response: { status: 200, description: 'the directory', schema: SnapshotTree },
      handler: ({ params, query }) => browser.list(params.name, params.id, query.path),
    }),
    route({
      method: 'GET', url: '/api/v1/repositories/:name/snapshots/:id/file', role: 'operator', audited: true,
      summary: 'Download one file of a snapshot (?path=/abs/file), streamed; at most 1 GiB (restore larger ones); 4 downloads at once',
      params: SnapshotParams, query: SnapshotPathQuery,
      response: { status: 200, description: "the file's bytes (application/octet-stream, attachment)" },
      handler: async ({ params, query }, reply) => send(await browser.open(params.name, params.id, query.path), reply),
    }),
    route({
      method: 'POST', url: '/api/v1/repositories/:name/snapshots/:id/file-ticket', role: 'operator',
      summary: 'A one-use link to download one file of a snapshot (?path=/abs/file) without the token: for a browser, which then streams it to disk; it lapses after 60 s',
      params: SnapshotParams, query: SnapshotPathQuery,
      response: { status: 201, description: 'the link', schema: FileTicket },
      handler: async ({ params, query }, reply, who) => {
        const found = await browser.downloadable(params.name, params.id, query.path);
        const token = who.token as NonNullable<typeof who.token>;
        const { ticket, expiresAt } = tickets.issue({ repository: params.name, snapshot: found.snapshot, path: found.path, actor: token.name, role: token.role });
        reply.code(201);
        return { url: `/api/v1/downloads/${ticket}`, expires_at: new Date(expiresAt).toISOString() };
      },
    }),
    route({
      // Public: the ticket is the credential, taken by this first use. The audit trail names
      // the operator who asked for it, and not the ticket.
      method: 'GET', url: '/api/v1/downloads/:ticket', audited: true, auditPath: '/api/v1/downloads/(ticket)',
      summary: 'Downloads the file a ticket names (POST …/file-ticket), once, streamed, audited under the operator who asked for it',
      params: TicketParam,
      response: { status: 200, description: "the file's bytes (application/octet-stream, attachment)" },
      handler: async ({ params }, reply, who) => {
        const t = tickets.take(params.ticket);
        if (!t) throw new LifeboatError('NOT_FOUND', 'this download link was used already, lapsed (links last 60 s) or never issued', { hint: 'ask for a new one: Download in the snapshot browser, or POST …/file-ticket' });
        who.token = { name: t.actor, role: t.role } as NonNullable<typeof who.token>;
        return send(await browser.open(t.repository, t.snapshot, t.path), reply);
      },
    }),
    route({
      method: 'GET', url: '/api/v1/sources/:name/restore-plan', role: 'viewer',
      summary: 'What restoring the source to a moment (?time=) or from a snapshot (?snapshot=) would do, and what would refuse it now (?target= to check one; else one is suggested below the restore roots); starts nothing',
      params: NameParam, query: RestorePlanQuery,
      response: { status: 200, description: 'the plan', schema: RestorePlan },
      handler: ({ params, query }, _reply, who) => previewRestore(d, role(who), params.name, query),
    }),
    route({
      method: 'GET', url: '/api/v1/groups/:name/restore-plan', role: 'viewer',
      summary: "What restoring the group to a point (?point=) or the newest at or before a moment (?time=; neither: the newest point) would do: a new directory per member below the restore roots, the group restore's dry-run plan, and what would refuse it; starts nothing",
      params: NameParam, query: GroupPlanQuery,
      response: { status: 200, description: 'the plan', schema: GroupRestorePlan },
      handler: ({ params, query }, _reply, who) => previewGroupRestore(d, role(who), params.name, query),
    }),
  ];
}
