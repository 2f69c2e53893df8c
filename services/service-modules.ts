import { ingestModule } from "./ingest/module.js";
import type { ServiceModule } from "./module-contract.js";
import { postbackModule } from "./postback/module.js";
import { seenModule } from "./seen/module.js";
import { trackerModule } from "./tracker/module.js";

/**
 * Every service of the suite, in start order. The contract they implement is
 * in `services/module-contract.ts`.
 */
export const serviceModules: readonly ServiceModule[] = [trackerModule, ingestModule, seenModule, postbackModule];
