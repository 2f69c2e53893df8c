export { createFunnel, type Funnel, type FunnelOptions, type FunnelStats, type Rejection } from "./funnel.js";
export type { EventName, EventTypes } from "./events.js";
export type { ListOptions, SeenClient, SeenMark } from "./seen.js";
export { FunnelError } from "./wire.js";
export { Code } from "@connectrpc/connect";
