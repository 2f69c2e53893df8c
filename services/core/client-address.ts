import { BlockList, isIP } from "node:net";
import type { TLSSocket } from "node:tls";
import type { HttpRequest } from "./http-server.js";

/** Where a request really came from, as far as the trusted proxies tell. */
export interface ClientOrigin {
  /** The client's address (IPv4 written plainly, not IPv4-mapped). */
  readonly ip: string;
  /** `https` when the client's own connection was TLS. */
  readonly scheme: "http" | "https";
  /** The host the client asked for (with port when not the default). */
  readonly host: string;
  /** The full URL the client requested: scheme, host, path and query. */
  readonly url: string;
}

/** Strips the `::ffff:` of an IPv4-mapped IPv6 address. */
export function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * Decides which peers are reverse proxies whose forwarding headers are
 * believed. Built from `TRUSTED_PROXIES` (already validated by the config).
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  constructor(networks: readonly string[]) {
    this.#empty = networks.length === 0;
    for (const network of networks) {
      const [address = "", bits] = network.split("/");
      const family = isIP(address) === 6 ? "ipv6" : "ipv4";
      if (bits === undefined) this.#list.addAddress(address, family);
      else this.#list.addSubnet(address, Number(bits), family);
    }
  }

  /** Whether `address` (as the socket reports it) is a trusted proxy. */
  trusts(address: string): boolean {
    if (this.#empty || address === "") return false;
    const plain = plainAddress(address);
    const family = isIP(plain);
    if (family === 0) return false;
    return this.#list.check(plain, family === 6 ? "ipv6" : "ipv4");
  }

  /**
   * The request's origin. Forwarding headers count only when the peer is a
   * trusted proxy; then `X-Forwarded-For` is read from the right, skipping
   * trusted proxies, so the first untrusted hop is the client and whatever a
   * client wrote further left is ignored. `X-Real-IP` is the fallback.
   */
  origin(req: HttpRequest): ClientOrigin {
    const peer = plainAddress(req.socket.remoteAddress ?? "");
    const tls = (req.socket as Partial<TLSSocket>).encrypted === true;
    let ip = peer;
    let scheme: "http" | "https" = tls ? "https" : "http";
    let host = req.headers.host ?? "";
    if (this.trusts(peer)) {
      ip = this.#forwardedClient(req) ?? peer;
      const proto = firstValue(req.headers["x-forwarded-proto"])?.toLowerCase();
      if (proto === "https" || proto === "http") scheme = proto;
      const forwardedHost = firstValue(req.headers["x-forwarded-host"]);
      if (forwardedHost !== undefined && forwardedHost !== "") host = forwardedHost;
    }
    return { ip, scheme, host, url: `${scheme}://${host}${req.url ?? "/"}` };
  }

  #forwardedClient(req: HttpRequest): string | undefined {
    const header = req.headers["x-forwarded-for"];
    const hops = (Array.isArray(header) ? header.join(",") : (header ?? ""))
      .split(",")
      .map((hop) => plainAddress(hop.trim()))
      .filter((hop) => hop !== "");
    for (let i = hops.length - 1; i >= 0; i -= 1) {
      const hop = hops[i] ?? "";
      if (isIP(hop) === 0) return undefined; // a malformed entry: trust nothing left of it
      if (!this.trusts(hop)) return hop;
    }
    if (hops.length > 0) return hops[0];
    const real = firstValue(req.headers["x-real-ip"]);
    return real !== undefined && isIP(plainAddress(real)) !== 0 ? plainAddress(real) : undefined;
  }
}

/** The first of comma-separated header values (proxies may append). */
function firstValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value?.split(",", 1)[0]?.trim();
}
