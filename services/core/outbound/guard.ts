import { lookup, type LookupAddress, type LookupOptions } from "node:dns";
import { BlockList, isIP } from "node:net";
import { Agent } from "undici";

/** Address ranges outbound requests must not reach, with the reason given when one is refused. */
const RANGES: readonly (readonly [string, number, "ipv4" | "ipv6", string])[] = [
  ["0.0.0.0", 8, "ipv4", "unspecified"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "shared (carrier-grade NAT)"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.169.254", 32, "ipv4", "cloud metadata"],
  ["169.254.0.0", 16, "ipv4", "link-local"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "IETF protocol assignments"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "benchmarking"],
  ["224.0.0.0", 4, "ipv4", "multicast"],
  ["240.0.0.0", 4, "ipv4", "reserved"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  ["fd00:ec2::254", 128, "ipv6", "cloud metadata"],
  ["fc00::", 7, "ipv6", "private (unique local)"],
  ["fe80::", 10, "ipv6", "link-local"],
  ["ff00::", 8, "ipv6", "multicast"],
];

const ranges = RANGES.map(([network, prefix, family, reason]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return { list, family, reason };
});

/**
 * Why a request may not go to `address`, or undefined when it may: loopback,
 * private, link-local, metadata and other non-public ranges are refused.
 * IPv4-mapped IPv6 addresses are judged by their IPv4 address.
 */
export function refusedReason(address: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped?.[1] ?? address;
  const family = isIP(plain) === 4 ? "ipv4" : "ipv6";
  return ranges.find((range) => range.family === family && range.list.check(plain, family))?.reason;
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
