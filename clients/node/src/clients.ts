import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { IngestService } from "../../../gen/funnel/ingest/v1/ingest_pb.js";
import { OpsService } from "../../../gen/funnel/ops/v1/ops_pb.js";
import { DeliveryService } from "../../../gen/funnel/postback/v1/delivery_pb.js";
import { PartnerService } from "../../../gen/funnel/postback/v1/partner_pb.js";
import { PostbackService } from "../../../gen/funnel/postback/v1/postback_pb.js";
import { SeenAdminService } from "../../../gen/funnel/seen/v1/admin_pb.js";
import { SeenFeedService } from "../../../gen/funnel/seen/v1/feed_pb.js";
import { SeenService } from "../../../gen/funnel/seen/v1/seen_pb.js";
import { TrackerService } from "../../../gen/funnel/tracker/v1/tracker_pb.js";
import { createAuthInterceptor, type TokenSource } from "./auth.js";
import { createRetryInterceptor, type RetryOptions } from "./retry.js";

/** Every Funnel service, by the name its client has in {@link FunnelClients}. */
export const services = {
  tracker: TrackerService,
  ingest: IngestService,
  seen: SeenService,
  seenAdmin: SeenAdminService,
  seenFeed: SeenFeedService,
  partners: PartnerService,
  deliveries: DeliveryService,
  postback: PostbackService,
  ops: OpsService,
} as const satisfies Record<string, DescService>;

export interface FunnelClientOptions {
  /** The API's address, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  /** Bearer token for every call (the admin token, a service token or a user's token). */
  readonly token?: TokenSource;
  /**
   * `connect` (the default): Connect's binary protocol over HTTP/1.1 or HTTP/2, through any
   * HTTP proxy. `grpc`: gRPC over HTTP/2 (prior knowledge on `http://`, ALPN on `https://`).
   */
  readonly protocol?: "grpc" | "connect";
  /** HTTP version of the `connect` protocol; `grpc` always uses HTTP/2. Default `1.1`. */
  readonly httpVersion?: "1.1" | "2";
  /**
   * Deadline of each call in milliseconds, covering its retries; a call overrides it with the
   * call option `timeoutMs` (0 or less: none). Default 30,000; 0 or less: no default deadline.
   */
  readonly timeoutMs?: number;
  /** Retries of idempotent methods (see {@link createRetryInterceptor}); `false` turns them off. */
  readonly retry?: RetryOptions | false;
  /** More interceptors, run for each attempt after the token is set. */
  readonly interceptors?: readonly Interceptor[];
}

/** A typed client for each Funnel service, sharing one transport. */
export type FunnelClients = { readonly [Name in keyof typeof services]: Client<(typeof services)[Name]> } & {
  /** The transport behind the clients, for `createClient` with a service of your own. */
  readonly transport: Transport;
  /** Closes the HTTP/2 connection, if any; calls after it open a new one. */
  close(): void;
};

/**
 * Creates a client for every Funnel service over one transport, with the token, deadline and
 * retries of `options`:
 *
 * ```ts
 * const funnel = createFunnelClients({ baseUrl: "http://127.0.0.1:8080", token: process.env.FUNNEL_ADMIN_TOKEN });
 * const { tracker } = await funnel.tracker.createTracker({ value: "spring-campaign" });
 * ```
 *
 * Interceptors run in this order: the token, then retries, then `options.interceptors` for
 * each attempt. The deadline is the transport's own (so the server is told it in
 * `grpc-timeout` or `connect-timeout-ms`), and spans every attempt.
 */
export function createFunnelClients(options: FunnelClientOptions): FunnelClients {
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) interceptors.push(createAuthInterceptor(options.token));
  if (options.retry !== false) interceptors.push(createRetryInterceptor(options.retry));
  interceptors.push(...(options.interceptors ?? []));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const common = { baseUrl: options.baseUrl, interceptors, defaultTimeoutMs: timeoutMs > 0 ? timeoutMs : undefined };
  const http2 = options.protocol === "grpc" || options.httpVersion === "2";
  // One session manager, kept here so that close() can end the HTTP/2 connection.
  const sessionManager = http2 ? new Http2SessionManager(options.baseUrl) : undefined;
  const transport =
    options.protocol === "grpc"
      ? createGrpcTransport({ ...common, sessionManager })
      : sessionManager !== undefined
        ? createConnectTransport({ ...common, httpVersion: "2", sessionManager, useBinaryFormat: true })
        : createConnectTransport({ ...common, httpVersion: "1.1", useBinaryFormat: true });
  const clients = Object.fromEntries(Object.entries(services).map(([name, service]) => [name, createClient(service, transport)]));
  return {
    ...(clients as { [Name in keyof typeof services]: Client<(typeof services)[Name]> }),
    transport,
    close: () => sessionManager?.abort(),
  };
}
