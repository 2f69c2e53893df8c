import { describe, expect, it } from "vitest";
import { checkLiteralHost, refusedReason } from "../../services/core/outbound/guard.js";

/** The reason a URL's literal host is refused, or undefined when it may be reached. */
function urlVerdict(url: string): string | undefined {
  const refused = checkLiteralHost(new URL(url), "TEST_ALLOW_PRIVATE");
  if (refused === undefined) return undefined;
  const reason = /^refused \S+ \(\S+\): (.+) address; set TEST_ALLOW_PRIVATE=true to allow$/.exec(refused.message)?.[1];
  expect(reason, refused.message).toBeDefined();
  return reason;
}

/** [URL, reason] (undefined: reachable). The URL parser normalises the odd IPv4 spellings and every IPv6 form first. */
const urls: readonly (readonly [string, string | undefined])[] = [
  ["http://127.0.0.1/", "loopback"],
  ["http://127.255.255.254/", "loopback"],
  ["http://2130706433/", "loopback"],
  ["http://0x7f000001/", "loopback"],
  ["http://0x7f.1/", "loopback"],
  ["http://127.1/", "loopback"],
  ["http://0177.0.0.1/", "loopback"],
  ["http://0/", "unspecified"],
  ["http://0.0.0.0/", "unspecified"],
  ["http://10.1.2.3/", "private"],
  ["http://012.1.2.3/", "private"],
  ["http://172.16.0.1/", "private"],
  ["http://192.168.0.1/", "private"],
  ["http://169.254.169.254/", "cloud metadata"],
  ["http://0xa9fea9fe/", "cloud metadata"],
  ["http://169.254.1.1/", "link-local"],
  ["http://100.64.0.1/", "shared (carrier-grade NAT)"],
  ["http://100.100.100.200/", "cloud metadata"],
  ["http://168.63.129.16/", "cloud metadata"],
  ["http://224.0.0.1/", "multicast"],
  ["http://255.255.255.255/", "broadcast"],
  ["http://240.0.0.1/", "reserved"],
  ["http://192.0.2.1/", "reserved"],
  ["http://198.18.0.1/", "reserved"],
  ["http://8.8.8.8/", undefined],
  ["http://172.32.0.1/", undefined],
  ["http://[::1]/", "loopback"],
  ["http://[0:0:0:0:0:0:0:1]/", "loopback"],
  ["http://[::]/", "unspecified"],
  ["http://[::ffff:127.0.0.1]/", "loopback"],
  ["http://[::ffff:7f00:1]/", "loopback"],
  ["http://[0:0:0:0:0:FFFF:127.0.0.1]/", "loopback"],
  ["http://[::ffff:169.254.169.254]/", "cloud metadata"],
  ["http://[::ffff:a9fe:a9fe]/", "cloud metadata"],
  ["http://[::ffff:10.1.2.3]/", "private"],
  ["http://[::ffff:0.0.0.0]/", "unspecified"],
  ["http://[::ffff:8.8.8.8]/", undefined],
  ["http://[::127.0.0.1]/", "loopback (in IPv4-compatible IPv6)"],
  ["http://[::7f00:1]/", "loopback (in IPv4-compatible IPv6)"],
  ["http://[::10.0.0.1]/", "private (in IPv4-compatible IPv6)"],
  ["http://[::8.8.8.8]/", "IPv4-compatible IPv6 (deprecated)"],
  ["http://[::ffff:0:127.0.0.1]/", "IPv4-translated (SIIT)"],
  ["http://[64:ff9b::127.0.0.1]/", "loopback (in NAT64)"],
  ["http://[64:ff9b::7f00:1]/", "loopback (in NAT64)"],
  ["http://[64:ff9b::a9fe:a9fe]/", "cloud metadata (in NAT64)"],
  ["http://[64:ff9b::10.0.0.1]/", "private (in NAT64)"],
  ["http://[64:ff9b::8.8.8.8]/", undefined],
  ["http://[64:ff9b:1::a00:1]/", "local-use NAT64"],
  ["http://[64:ff9b:1:7f00:1::]/", "local-use NAT64"],
  ["http://[2002:7f00:1::]/", "loopback (in 6to4)"],
  ["http://[2002:a01:203::1]/", "private (in 6to4)"],
  ["http://[2002:a9fe:a9fe::1]/", "cloud metadata (in 6to4)"],
  ["http://[2002:808:808::1]/", "6to4 (deprecated)"],
  ["http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"],
  ["http://[fe80::1]/", "link-local"],
  ["http://[fd12::1]/", "private (unique local)"],
  ["http://[fd00:ec2::254]/", "cloud metadata"],
  ["http://[ff02::1]/", "multicast"],
  ["http://[fec0::1]/", "site-local (deprecated)"],
  ["http://[2001:db8::1]/", "reserved"],
  ["http://[100::1]/", "discard-only"],
  ["http://[4000::1]/", "not global unicast (outside 2000::/3)"],
  ["http://[2606:4700:4700::1111]/", undefined],
  ["http://[2a00:1450:4001:82b::200e]/", undefined],
];

/** Addresses as a DNS lookup may return them (not normalised by a URL parser). */
const addresses: readonly (readonly [string, string | undefined])[] = [
  ["::ffff:7f00:1", "loopback"],
  ["::FFFF:127.0.0.1", "loopback"],
  ["0:0:0:0:0:ffff:a01:203", "private"],
  ["::ffff:169.254.169.254", "cloud metadata"],
  ["64:ff9b::c0a8:101", "private (in NAT64)"],
  ["fe80::1%eth0", "link-local"],
  ["127.0.0.1", "loopback"],
  ["93.184.215.14", undefined],
  ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", undefined],
  ["not-an-address", "not an IP address"],
];

describe("outbound address guard", () => {
  it("classifies every spelling of a URL's literal host", () => {
    expect(urls.length + addresses.length).toBeGreaterThanOrEqual(40);
    const verdicts = urls.map(([url]) => [url, urlVerdict(url)]);
    expect(verdicts).toEqual(urls);
  });

  it("classifies the addresses a lookup returns", () => {
    expect(addresses.map(([address]) => [address, refusedReason(address)])).toEqual(addresses);
  });

  it("leaves names to the connection's lookup", () => {
    expect(checkLiteralHost(new URL("http://localhost:8080/"), "TEST_ALLOW_PRIVATE")).toBeUndefined();
    expect(checkLiteralHost(new URL("https://partner.example.com/"), "TEST_ALLOW_PRIVATE")).toBeUndefined();
  });
});
