import type { CommandSet } from "../command.js";
import { deliveryCommands } from "./deliveries.js";
import { ingestCommands } from "./ingest.js";
import { opsCommands } from "./ops.js";
import { partnerCommands } from "./partners.js";
import { seenCommands } from "./seen.js";
import { sqlCommands } from "./sql.js";
import { tokenCommands } from "./tokens.js";
import { trackerCommands } from "./trackers.js";

/** Every command set of the CLI, in help order. */
export const commandSets: readonly CommandSet[] = [opsCommands, trackerCommands, ingestCommands, seenCommands, tokenCommands, partnerCommands, deliveryCommands, sqlCommands];
