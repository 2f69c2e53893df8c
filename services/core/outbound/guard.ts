import { lookup, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { Agent } from "undici";

/**
 * Cloud metadata endpoints (AWS, GCP, Azure, Oracle: 169.254.169.254; ECS
 * 169.254.170.2; Alibaba 100.100.100.200; Azure's wire server 168.63.129.16,
 * which is otherwise public unicast; AWS over IPv6 fd00:ec2::254), named as
 * such in refusals.
 */
const METADATA = new Set(["169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "fd00:ec2::254"].map((address) => ipaddr.parse(address).toString()));

/** ipaddr.js's IPv4 range names, as refusals name them; a range not listed is "reserved". */
const IPV4_REASONS: Readonly<Record<string, string>> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "shared (carrier-grade NAT)",
  private: "private",
};

/** ipaddr.js's IPv6 range names, as refusals name them; a range not listed is "reserved". */
const IPV6_REASONS: Readonly<Record<string, string>> = {
  unspecified: "unspecified",
  linkLocal: "link-local",
  multicast: "multicast",
  loopback: "loopback",
  uniqueLocal: "private (unique local)",
  deprecatedSiteLocal: "site-local (deprecated)",
  discard: "discard-only",
  rfc6145: "IPv4-translated (SIIT)",
  teredo: "Teredo",
};

/** The well-known NAT64 prefix (RFC 6052); the rest of 64:ff9b::/32 that ipaddr.js calls rfc6052 is 64:ff9b:1::/48, for local use. */
const NAT64 = ipaddr.parseCIDR("64:ff9b::/96");
/** Where every global unicast IPv6 address lies (RFC 4291); anything else has no business on the internet. */
const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");

function ipv4Reason(address: ipaddr.IPv4): string | undefined {
  if (METADATA.has(address.toString())) return "cloud metadata";
  const range: string = address.range();
  return range === "unicast" ? undefined : (IPV4_REASONS[range] ?? "reserved");
}

/**
 * Judges the IPv4 address carried in two 16-bit groups of an IPv6 address:
 * its reason "(in VIA)" when it is not public, else `otherwise`.
 */
function embeddedReason(high: number | undefined, low: number | undefined, via: string, otherwise: string | undefined): string | undefined {
  const inner = new ipaddr.IPv4([(high ?? 0) >> 8, (high ?? 0) & 0xff, (low ?? 0) >> 8, (low ?? 0) & 0xff]);
  const reason = ipv4Reason(inner);
  return reason === undefined ? otherwise : `${reason} (in ${via})`;
}

function ipv6Reason(address: ipaddr.IPv6): string | undefined {
  if (METADATA.has(address.toString())) return "cloud metadata";
  const parts = address.parts;
  const range: string = address.range();
  switch (range) {
    case "ipv4Mapped":
      // The same host as the IPv4 address: a dual-stack socket connects to it.
      return ipv4Reason(address.toIPv4Address());
    case "rfc6052":
      // A NAT64 gateway (DNS64 networks) reaches the embedded IPv4 address.
      return address.match(NAT64) ? embeddedReason(parts[6], parts[7], "NAT64", undefined) : "local-use NAT64";
    case "6to4":
      return embeddedReason(parts[1], parts[2], "6to4", "6to4 (deprecated)");
    case "unicast":
      // ::a.b.c.d, IPv4-compatible (deprecated by RFC 4291); ipaddr.js has no range for it.
      if (parts.slice(0, 6).every((part) => part === 0)) return embeddedReason(parts[6], parts[7], "IPv4-compatible IPv6", "IPv4-compatible IPv6 (deprecated)");
      return address.match(GLOBAL_UNICAST) ? undefined : "not global unicast (outside 2000::/3)";
    default:
      return IPV6_REASONS[range] ?? "reserved";
  }
}

/**
 * Why a request may not go to `address`, or undefined when it may. Only
 * public unicast passes (IPv6 within 2000::/3), and not the cloud metadata
 * endpoints; every range ipaddr.js knows as special (loopback, private,
 * link-local, carrier-grade NAT, multicast, reserved, documentation…) is
 * refused. IPv6 forms that carry an IPv4 address are judged by it:
 * IPv4-mapped (`::ffff:7f00:1`) passes only when its IPv4 address would, the
 * well-known NAT64 prefix likewise; IPv4-compatible, 6to4, Teredo,
 * IPv4-translated and local-use NAT64 addresses never pass, and name the
 * embedded address when it is not public. A zone (`%eth0`) is ignored;
 * text that is no IP address is refused.
 */
export function refusedReason(address: string): string | undefined {
  const plain = address.replace(/%.*$/s, "");
  if (isIP(plain) === 0) return "not an IP address";
  const parsed = ipaddr.parse(plain);
  return parsed instanceof ipaddr.IPv4 ? ipv4Reason(parsed) : ipv6Reason(parsed);
}

/** A target whose address is refused (see {@link refusedReason}); names the setting that allows it. */
export class RefusedAddressError extends Error {
  readonly code = "EFUNNELREFUSED";
  constructor(host: string, address: string, reason: string, allowSetting: string) {
    super(`refused ${host} (${address}): ${reason} address; set ${allowSetting}=true to allow`);
    this.name = "RefusedAddressError";
  }
}

/** Checks a URL whose host is an IP literal (no lookup happens for those). */
export function checkLiteralHost(url: URL, allowSetting: string): RefusedAddressError | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) === 0) return undefined;
  const reason = refusedReason(host);
  return reason === undefined ? undefined : new RefusedAddressError(host, host, reason, allowSetting);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A connection pool for outbound requests (postbacks, consumer APIs). Unless
 * private addresses are allowed, every name is resolved by a lookup that
 * refuses the connection if any address it returns is refused, so the address
 * checked is the address connected to (no window for DNS rebinding).
 * `allowSetting` names the configuration variable that would allow them.
 */
export function createGuardedAgent(options: { allowPrivate: boolean; allowSetting: string; connectionsPerOrigin?: number }): Agent {
  const guardedLookup = (hostname: string, lookupOptions: LookupOptions, callback: LookupCallback): void => {
    lookup(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
      if (error !== null) return callback(error, []);
      for (const { address } of addresses) {
        const reason = refusedReason(address);
        if (reason !== undefined) return callback(new RefusedAddressError(hostname, address, reason, options.allowSetting), []);
      }
      const first = addresses[0];
      if (lookupOptions.all === true) callback(null, addresses);
      else callback(null, first?.address ?? "", first?.family);
    });
  };
  return new Agent({
    connections: options.connectionsPerOrigin ?? 128,
    keepAliveTimeout: 30_000,
    ...(options.allowPrivate ? {} : { connect: { lookup: guardedLookup } }),
  });
}
