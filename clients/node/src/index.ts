/**
 * Typed Connect and gRPC clients for every Funnel service, with a bearer token, a deadline
 * per call and retries of idempotent methods. See docs/clients.md.
 */
export { createFunnelClients, services, type FunnelClientOptions, type FunnelClients } from "./clients.js";
export { createAuthInterceptor, type TokenSource } from "./auth.js";
export { createRetryInterceptor, isIdempotent, type RetryEvent, type RetryOptions } from "./retry.js";
