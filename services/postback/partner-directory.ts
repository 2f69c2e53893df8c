import { compilePartner, type CompiledPartner } from "./partner.js";
import type { PostbackRepository } from "./repository.js";

/**
 * Partners by id, read from Postgres at most once per `maxAgeMs` and shared
 * by every request and job of the process. Writes in this process refresh it
 * at once; writes in another process show within `maxAgeMs`.
 */
export function createPartnerDirectory(repository: PostbackRepository, maxAgeMs = 1_000) {
  let loaded: { at: number; byId: Map<string, CompiledPartner> } | undefined;
  // The read in progress; a write forgets it, so a read that started before the write is not kept.
  let loading: Promise<Map<string, CompiledPartner>> | undefined;
  const load = (): Promise<Map<string, CompiledPartner>> => {
    if (loading !== undefined) return loading;
    const reading: Promise<Map<string, CompiledPartner>> = repository
      .listPartners()
      .then((partners) => {
        const byId = new Map(partners.map((partner) => [partner.id, compilePartner(partner)]));
        if (loading === reading) loaded = { at: Date.now(), byId };
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
