import { compilePartner, type CompiledPartner } from "./partner.js";
import type { PartnerRepository } from "./partner-repository.js";

/**
 * Partners by id, shared by every request and job of the process. It is
 * checked against Postgres at most once per `maxAgeMs`: a cheap version of
 * the table (count and a hash of ids and update times) first, and only when
 * that changed are the partners read again, reusing the compiled templates
 * of those whose update time did not change (compiling 10,000 partners takes
 * most of a second). Writes in this process are seen at once; writes in
 * another process within `maxAgeMs`.
 */
export function createPartnerDirectory(repository: Pick<PartnerRepository, "listPartners" | "partnersVersion">, maxAgeMs = 1_000) {
  let loaded: { at: number; version: string; byId: Map<string, CompiledPartner> } | undefined;
  /** The partners of the last read, kept across writes for their compiled templates. */
  let previous = new Map<string, CompiledPartner>();
  // The read in progress; a write forgets it, so a read that started before the write is not kept.
  let loading: Promise<Map<string, CompiledPartner>> | undefined;
  const read = async (): Promise<{ version: string; byId: Map<string, CompiledPartner> }> => {
    const version = await repository.partnersVersion();
    if (loaded !== undefined && loaded.version === version) return { version, byId: loaded.byId };
    // Read after the version: the partners are at least as new as it (a change in between costs one more read).
    const partners = await repository.listPartners();
    const byId = new Map(
      partners.map((partner) => {
        const known = previous.get(partner.id);
        return [partner.id, known !== undefined && known.config.updatedAt.getTime() === partner.updatedAt.getTime() ? known : compilePartner(partner)] as const;
      }),
    );
    return { version, byId };
  };
  const load = (): Promise<Map<string, CompiledPartner>> => {
    if (loading !== undefined) return loading;
    const reading: Promise<Map<string, CompiledPartner>> = read()
      .then(({ version, byId }) => {
        if (loading === reading) {
          loaded = { at: Date.now(), version, byId };
          previous = byId;
        }
        return byId;
      })
      .finally(() => {
        if (loading === reading) loading = undefined;
      });
    loading = reading;
    return reading;
  };
  return {
    /** The partner with this id, or undefined when there is none. */
    async get(id: string): Promise<CompiledPartner | undefined> {
      const byId = loaded !== undefined && Date.now() - loaded.at < maxAgeMs ? loaded.byId : await load();
      return byId.get(id);
    },
    /** Forgets what was read, so the next `get` reads again. */
    invalidate(): void {
      loaded = undefined;
      loading = undefined;
    },
  };
}

export type PartnerDirectory = ReturnType<typeof createPartnerDirectory>;
