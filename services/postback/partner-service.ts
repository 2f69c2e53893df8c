import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { PartnerService } from "../../gen/funnel/postback/v1/partner_pb.js";
import { definePaging } from "../core/paging.js";
import { partnerIdProblem, partnerProblems, samePartner, type PartnerConfig, type StoredPartner } from "./partner.js";
import { partnersFromCsv, partnersToCsv } from "./partner-csv.js";
import type { PartnerDirectory } from "./partner-directory.js";
import { eventName, methodProto, partnerFromProto, partnerToProto } from "./partner-proto.js";
import { renderRequest } from "./render.js";
import type { PartnerRepository } from "./partner-repository.js";
import { USER_AGENT } from "./outbound.js";
import { parseTemplate, parseUrlTemplate, SAMPLE_VALUES, TemplateError, type Template } from "./template.js";
import { withTransaction, type Pool } from "../core/postgres.js";

const MAX_CSV_BYTES = 4 * 1024 * 1024;
/**
 * Partners page by id. Without a page size every match comes in one answer: the partner
 * list is small, and the console and CLI read it whole.
 */
const PAGES = definePaging({
  method: PartnerService.method.listPartners,
  sizeField: "page_size",
  defaultSize: 1_000_000,
  zeroMeans: "every match",
  key: [(id) => partnerIdProblem(id) === undefined],
});

function requireId(id: string): void {
  const problem = partnerIdProblem(id);
  if (problem !== undefined) throw new ConnectError(`id: ${problem}`, Code.InvalidArgument);
}

/** A valid configuration, or `invalid_argument` listing every problem. */
function validated(partner: PartnerConfig): PartnerConfig {
  const problems = partnerProblems(partner);
  if (problems.length > 0) {
    throw new ConnectError(problems.map((p) => `partner.${p.field}: ${p.message}`).join("; "), Code.InvalidArgument);
  }
  return partner;
}

function template(field: string, source: string, parse: (source: string) => Template): Template {
  try {
    return parse(source);
  } catch (error) {
    if (error instanceof TemplateError) throw new ConnectError(`${field}: ${error.message}`, Code.InvalidArgument);
    throw error;
  }
}

/** Implements `funnel.postback.v1.PartnerService` (admin token). */
export function createPartnerService(deps: { pool: Pool; repository: PartnerRepository; directory: PartnerDirectory }): ServiceImpl<typeof PartnerService> {
  const { repository, directory } = deps;
  const find = async (id: string): Promise<StoredPartner> => {
    requireId(id);
    const partner = await repository.getPartner(id);
    if (partner === undefined) throw new ConnectError(`id: no partner "${id}"`, Code.NotFound);
    return partner;
  };
  return {
    async createPartner(req) {
      if (req.partner === undefined) throw new ConnectError("partner: required", Code.InvalidArgument);
      const stored = await repository.insertPartner(validated(partnerFromProto(req.partner)));
      if (stored === undefined) throw new ConnectError(`partner.id: partner "${req.partner.id}" already exists`, Code.AlreadyExists);
      directory.invalidate();
      return { partner: partnerToProto(stored) };
    },

    async updatePartner(req) {
      if (req.partner === undefined) throw new ConnectError("partner: required", Code.InvalidArgument);
      const stored = await repository.updatePartner(validated(partnerFromProto(req.partner)));
      if (stored === undefined) throw new ConnectError(`partner.id: no partner "${req.partner.id}"`, Code.NotFound);
      directory.invalidate();
      return { partner: partnerToProto(stored) };
    },

    async getPartner(req) {
      return { partner: partnerToProto(await find(req.id)) };
    },

    async listPartners(req) {
      if (req.query.length > 200) throw new ConnectError("query: at most 200 characters", Code.InvalidArgument);
      const limit = PAGES.size(req.pageSize);
      const filters = [req.query, req.enabled ?? null];
      const after = PAGES.after(req.pageToken, filters)?.[0] ?? "";
      const { partners, total } = await repository.searchPartners({ query: req.query, after, limit: limit + 1, ...(req.enabled !== undefined ? { enabled: req.enabled } : {}) });
      const page = PAGES.page(partners, limit, (partner) => [partner.id], filters);
      return {
        partners: page.rows.map(partnerToProto),
        nextPageToken: page.nextPageToken,
        totalCount: BigInt(total),
      };
    },

    async deletePartner(req) {
      requireId(req.id);
      const deleted = await repository.deletePartners([req.id]);
      if (deleted.length === 0) throw new ConnectError(`id: no partner "${req.id}"`, Code.NotFound);
      directory.invalidate();
      return {};
    },

    async importPartners(req) {
      if (Buffer.byteLength(req.csv) > MAX_CSV_BYTES) throw new ConnectError("csv: larger than 4 MiB", Code.InvalidArgument);
      const { partners, problems } = partnersFromCsv(req.csv);
      const errors = problems.map((p) => ({ line: p.line, partnerId: p.partnerId, column: p.column, message: p.message }));
      if (problems.length > 0) return { applied: false, created: [], updated: [], unchanged: [], deleted: [], errors };
      // A header row alone (say, an export of an emptied sheet) would delete
      // every partner: a mistake far more often than the intent.
      if (req.prune && !req.dryRun && partners.length === 0 && !req.confirmPruneAll) {
        throw new ConnectError("confirm_prune_all: the file lists no partner, so prune would delete every partner; set confirm_prune_all to do that", Code.InvalidArgument);
      }
      const result = await withTransaction(deps.pool, async (tx) => {
        await repository.lockPartners(tx);
        const existing = new Map((await repository.listPartners(tx)).map((partner) => [partner.id, partner]));
        const created: string[] = [];
        const updated: string[] = [];
        const unchanged: string[] = [];
        for (const { partner } of partners) {
          const before = existing.get(partner.id);
          if (before === undefined) created.push(partner.id);
          else if (samePartner(before, partner)) unchanged.push(partner.id);
          else updated.push(partner.id);
        }
        const listed = new Set(partners.map(({ partner }) => partner.id));
        const deleted = req.prune ? [...existing.keys()].filter((id) => !listed.has(id)) : [];
        if (!req.dryRun) {
          const same = new Set(unchanged);
          for (const { partner } of partners) if (!same.has(partner.id)) await repository.upsertPartner(tx, partner);
          if (deleted.length > 0) await repository.deletePartners(deleted, tx);
        }
        return { applied: !req.dryRun, created, updated, unchanged, deleted, errors: [] };
      });
      // After the commit: a read in between would otherwise cache the old partners again.
      if (result.applied) directory.invalidate();
      return result;
    },

    async exportPartners() {
      return { csv: partnersToCsv(await repository.listPartners()) };
    },

    async previewPostback(req) {
      // An unsaved partner (a form's draft) is checked as a whole, so every
      // field it gets wrong is named, as CreatePartner would name it.
      const draft = req.partner !== undefined ? validated(partnerFromProto(req.partner)) : undefined;
      const partner: PartnerConfig = draft ?? (await find(req.partnerId));
      const name = eventName(req.event);
      if (name === undefined) throw new ConnectError("event: required (download, install or authorization)", Code.InvalidArgument);
      const saved = partner.events[name];
      const overrides = draft === undefined ? req : { urlTemplate: "", bodyTemplate: "", contentType: "" };
      const contentType = overrides.contentType.trim() || saved.contentType || (overrides.bodyTemplate !== "" ? "application/json" : "");
      const bodySource = overrides.bodyTemplate !== "" ? overrides.bodyTemplate : saved.bodyTemplate;
      const event = {
        ...saved,
        urlTemplate: overrides.urlTemplate !== "" ? overrides.urlTemplate : saved.urlTemplate,
        method: overrides.bodyTemplate !== "" ? ("POST" as const) : saved.method,
        bodyTemplate: bodySource,
        contentType,
      };
      if (event.urlTemplate === "") throw new ConnectError(`url_template: partner "${partner.id}" has no ${name} URL template; pass one to preview`, Code.InvalidArgument);
      const templates = {
        url: template("url_template", event.urlTemplate, parseUrlTemplate),
        body: bodySource === "" ? undefined : template("body_template", bodySource, parseTemplate),
      };
      const sample = req.sample;
      const clickId = sample?.clickId || SAMPLE_VALUES.clickId;
      const request = renderRequest(
        event,
        templates,
        {
          stag: `${partner.id}_${clickId}`,
          partnerId: partner.id,
          clickId,
          params: { ...sample?.params },
          userId: sample?.userId || SAMPLE_VALUES.userId,
          deviceId: sample?.deviceId || SAMPLE_VALUES.deviceId,
          event: name,
          occurredAt: sample?.occurredAt !== undefined ? timestampDate(sample.occurredAt) : new Date(),
          deliveryId: SAMPLE_VALUES.deliveryId,
        },
        partner.timeoutMs,
      );
      return {
        method: methodProto(request.method),
        url: request.url,
        body: request.body ?? "",
        headers: { ...request.headers, "user-agent": USER_AGENT },
        wouldSend: partner.enabled && saved.enabled,
      };
    },
  };
}
