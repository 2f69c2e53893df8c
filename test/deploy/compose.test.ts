import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { BlockList } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { configVariables, deprecatedVariables, parseConfig } from "../../services/core/config.js";
import { nginxTemplate, templateVariables } from "../support/nginx.js";

const root = new URL("../..", import.meta.url).pathname;
const text = (path: string) => readFile(join(root, path), "utf8");

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test?: unknown; disable?: boolean };
  "x-healthcheck-reason"?: string;
  volumes?: string[];
  networks?: Record<string, { ipv4_address?: string }> | string[];
  deploy?: { replicas?: number };
  ports?: string[];
  profiles?: string[];
  depends_on?: Record<string, unknown>;
}
interface Compose {
  services: Record<string, Service>;
  networks?: Record<string, { ipam?: { config?: { subnet: string }[] } }>;
}

const compose = parse(await text("docker-compose.yml"), { maxAliasCount: -1 }) as Compose;
const services = Object.entries(compose.services);
/** The services `docker compose up` starts, without a `--profile`. */
const defaultServices = services.filter(([, service]) => service.profiles === undefined);
/** The services `--profile monitoring` adds. */
const monitoringServices = services.filter(([, service]) => service.profiles?.includes("monitoring") === true);
const pkg = JSON.parse(await text("package.json")) as { version: string; dependencies: Record<string, string> };
/** The services running Funnel's own image. */
const funnelServices = services.filter(([, service]) => service.image?.startsWith("funnel:") === true);

/** What `docker compose` makes of `${NAME:-default}` and friends, given `env`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}/g, (_match, name: string, op: string | undefined, arg: string | undefined) => {
    const set = env[name];
    if (op === undefined) return set ?? "";
    if (op.endsWith("?")) {
      if (set === undefined || (op === ":?" && set === "")) throw new Error(`${name} is required: ${arg}`);
      return set;
    }
    return set === undefined || (op === ":-" && set === "") ? (arg ?? "") : set;
  });
}

/** Environment variables the third-party images read, as their documentation names them. */
const imageVariables: Record<string, readonly string[]> = {
  postgres: ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"],
  "clickhouse/clickhouse-server": ["CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DB"],
  // Grafana reads any setting of grafana.ini as GF_<SECTION>_<KEY>.
  "grafana/grafana": ["GF_SECURITY_ADMIN_PASSWORD", "GF_USERS_ALLOW_SIGN_UP", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
};

/**
 * How many numbers a release tag of each image has: Postgres names a release
 * 17.6, ClickHouse 25.8.33.6 (25.8 alone is a moving LTS line), nginx and Node
 * 1.28.1. An image not listed needs three.
 */
const releaseParts: Record<string, number> = { postgres: 2, "clickhouse/clickhouse-server": 4, nginx: 3, node: 3, funnel: 3 };

/** Whether `image` names one release: `name:[v]version[-variant]`, or a digest. */
function isPinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const match = /^([a-z0-9./-]+):v?(\d+(?:\.\d+)*)(?:-[a-z0-9.-]+)?$/.exec(image);
  if (match === null) return false;
  return (match[2] ?? "").split(".").length >= (releaseParts[match[1] ?? ""] ?? 3);
}

describe("docker-compose.yml", () => {
  it("runs Postgres, ClickHouse, nginx, two API processes and a worker", () => {
    expect(defaultServices.map(([name]) => name).sort()).toEqual(["api", "clickhouse", "nginx", "postgres", "worker"]);
    expect(compose.services.api?.command).toEqual(["api"]);
    expect(compose.services.api?.deploy?.replicas).toBe(2);
    expect(compose.services.worker?.command).toEqual(["worker"]);
    // Only nginx is reachable from outside.
    expect(defaultServices.filter(([, service]) => service.ports !== undefined).map(([name]) => name)).toEqual(["nginx"]);
  });

  it("adds Prometheus and Grafana in the monitoring profile only, published on loopback alone", () => {
    expect(monitoringServices.map(([name]) => name).sort()).toEqual(["grafana", "prometheus"]);
    expect(services.length).toBe(defaultServices.length + monitoringServices.length);
    for (const [name, service] of monitoringServices) {
      expect(service.profiles, name).toEqual(["monitoring"]);
      for (const port of service.ports ?? []) expect(port, `${name} publishes ${port} beyond this host`).toMatch(/^127\.0\.0\.1:/);
    }
    // Nothing a default `up` starts waits for a service it does not start.
    for (const [name, service] of defaultServices) {
      for (const dependency of Object.keys(service.depends_on ?? {})) expect(compose.services[dependency]?.profiles, `${name} depends on ${dependency}`).toBeUndefined();
    }
  });

  it("mounts the repository's Prometheus and Grafana files, which provision the scrape config, the rules, the data source and the dashboard", async () => {
    const prometheus = compose.services.prometheus!;
    const grafana = compose.services.grafana!;
    expect(prometheus.volumes).toContain("./deploy/prometheus:/etc/prometheus:ro");
    expect(prometheus.command).toContain("--config.file=/etc/prometheus/prometheus.yml");
    expect(grafana.volumes).toEqual(
      expect.arrayContaining(["./deploy/grafana/provisioning:/etc/grafana/provisioning:ro", "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro"]),
    );
    for (const [name, service] of monitoringServices) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0] ?? "";
        if (source.startsWith("./")) expect(existsSync(join(root, source)), `${name}: ${source} does not exist`).toBe(true);
      }
    }
    const config = parse(await text("deploy/prometheus/prometheus.yml")) as {
      rule_files: string[];
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    for (const file of config.rule_files) expect(existsSync(join(root, "deploy/prometheus", file)), file).toBe(true);
    // Every process of api and worker is scraped on the metrics port compose gives it.
    for (const role of ["api", "worker"]) {
      const job = config.scrape_configs.find((scrape) => scrape.job_name === `funnel-${role}`);
      expect(job?.dns_sd_configs, role).toEqual([expect.objectContaining({ names: [role], port: Number(compose.services[role]?.environment?.METRICS_PORT) })]);
    }
    const datasources = parse(await text("deploy/grafana/provisioning/datasources/prometheus.yml")) as { datasources: { type: string; url: string; uid: string }[] };
    expect(datasources.datasources).toEqual([expect.objectContaining({ type: "prometheus", url: "http://prometheus:9090" })]);
    const providers = parse(await text("deploy/grafana/provisioning/dashboards/funnel.yml")) as { providers: { options: { path: string } }[] };
    expect(providers.providers.map((provider) => provider.options.path)).toEqual(["/etc/grafana/dashboards"]);
    expect(grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe("/etc/grafana/dashboards/funnel.json");
    expect(existsSync(join(root, "deploy/grafana/dashboards/funnel.json"))).toBe(true);
  });

  it("pins every image to a release, and tags Funnel's own with package.json's version", () => {
    for (const [name, service] of services) {
      expect(service.image, `${name}: image`).toBeDefined();
      expect(isPinned(service.image ?? ""), `${name}: ${service.image} is not pinned to a release`).toBe(true);
    }
    expect(funnelServices.map(([name]) => name).sort()).toEqual(["api", "worker"]);
    for (const [, service] of funnelServices) expect(service.image).toBe(`funnel:${pkg.version}`);
    expect(isPinned("nginx:latest")).toBe(false);
    expect(isPinned("postgres")).toBe(false);
    expect(isPinned("clickhouse/clickhouse-server:25.8")).toBe(false);
    expect(isPinned("prom/prometheus:v3")).toBe(false);
  });

  it("gives every service a healthcheck, or says why it has none", () => {
    for (const [name, service] of services) {
      if (service.healthcheck?.disable === true) {
        expect(service["x-healthcheck-reason"]?.length ?? 0, `${name}: healthcheck disabled without x-healthcheck-reason`).toBeGreaterThan(40);
      } else {
        expect(service.healthcheck?.test, `${name}: no healthcheck`).toBeDefined();
      }
    }
  });

  it("sets only variables Funnel's configuration knows, and they parse", () => {
    const known = new Set<string>(configVariables);
    for (const [name, service] of funnelServices) {
      const env = service.environment ?? {};
      for (const variable of Object.keys(env)) {
        expect(deprecatedVariables, `${name}: ${variable} is a deprecated name`).not.toContain(variable);
        expect(known.has(variable), `${name}: ${variable} is not a Funnel setting`).toBe(true);
      }
      // Separate roles need both servers and the token (docs/operations.md, "Process roles").
      expect(Object.keys(env)).toEqual(expect.arrayContaining(["DATABASE_URL", "CLICKHOUSE_URL", "FUNNEL_ADMIN_TOKEN", "TRUSTED_PROXIES"]));
      const values = Object.fromEntries(Object.entries(env).map(([key, value]) => [key, interpolate(String(value), { FUNNEL_ADMIN_TOKEN: "0123456789abcdef0123" })]));
      expect(() => parseConfig(values, "/app"), name).not.toThrow();
      expect(() => interpolate(String(env.FUNNEL_ADMIN_TOKEN), {}), "FUNNEL_ADMIN_TOKEN must be required").toThrow(/required/);
    }
  });

  it("sets only variables the other images read: nginx exactly its template's", async () => {
    const nginxVariables = templateVariables(await readFile(nginxTemplate, "utf8"));
    expect(Object.keys(compose.services.nginx?.environment ?? {}).sort()).toEqual(nginxVariables);
    for (const [name, service] of services) {
      if (name === "nginx" || funnelServices.some(([other]) => other === name)) continue;
      const allowed = imageVariables[(service.image ?? "").split(":")[0] ?? ""] ?? [];
      for (const variable of Object.keys(service.environment ?? {})) expect(allowed, `${name}: ${variable}`).toContain(variable);
    }
  });

  it("trusts exactly nginx's address, inside the network it is given", () => {
    const nginx = compose.services.nginx;
    const address = (nginx?.networks as Record<string, { ipv4_address?: string }>).funnel?.ipv4_address ?? "";
    for (const [, service] of funnelServices) expect(service.environment?.TRUSTED_PROXIES).toBe(address);
    const [network, bits] = (compose.networks?.funnel?.ipam?.config?.[0]?.subnet ?? "").split("/");
    const subnet = new BlockList();
    subnet.addSubnet(network ?? "", Number(bits));
    expect(subnet.check(address)).toBe(true);
  });

  it("mounts the repository's nginx files, whose template the API upstream fills", async () => {
    const nginx = compose.services.nginx!;
    expect(nginx.volumes).toEqual(["./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro", "./deploy/nginx/templates:/etc/nginx/templates:ro"]);
    for (const volume of nginx.volumes ?? []) expect(existsSync(join(root, volume.split(":")[0] ?? ""))).toBe(true);
    // The image renders templates/X.template into conf.d/X, which nginx.conf includes.
    expect(await text("deploy/nginx/nginx.conf")).toContain("include /etc/nginx/conf.d/funnel.conf;");
    expect(nginx.environment?.FUNNEL_API_ADDRESS).toBe(`api:${compose.services.api?.environment?.PORT}`);
    expect(nginx.ports).toEqual([`8080:${nginx.environment?.FUNNEL_HTTP_LISTEN}`, `8081:${nginx.environment?.FUNNEL_GRPC_LISTEN}`]);
  });

  it("serves metrics on a port of their own, reachable on the network, that nginx does not proxy", async () => {
    for (const [name, service] of funnelServices) {
      const config = parseConfig(Object.fromEntries(Object.entries(service.environment ?? {}).map(([key, value]) => [key, interpolate(String(value), { FUNNEL_ADMIN_TOKEN: "0123456789abcdef0123" })])), "/app");
      expect(config.metricsPort, name).not.toBe(config.port);
      // Loopback would hide it from a Prometheus in another container.
      expect(config.metricsHost, name).toBe("0.0.0.0");
    }
    const metricsPort = compose.services.api?.environment?.METRICS_PORT ?? "";
    expect(compose.services.nginx?.environment?.FUNNEL_API_ADDRESS).not.toContain(`:${metricsPort}`);
    expect(await readFile(nginxTemplate, "utf8")).not.toContain(metricsPort);
  });

  it("uses the same Postgres and ClickHouse releases as the test containers", async () => {
    const containers = await text("test/support/containers.ts");
    expect(containers).toContain(`"${compose.services.postgres?.image}"`);
    expect(containers).toContain(`"${compose.services.clickhouse?.image}"`);
  });
});

describe("Dockerfile", () => {
  it("builds from a pinned Node 22, without dev or embedded packages, runs as non-root with a /readyz healthcheck", async () => {
    const dockerfile = await text("Dockerfile");
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((match) => match[1] ?? "");
    expect(bases.length).toBeGreaterThanOrEqual(2);
    for (const base of bases) expect(isPinned(base) && base.startsWith("node:22."), base).toBe(true);
    expect(dockerfile).toMatch(/npm install --omit=dev --omit=optional/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n?.*\/readyz/m);
    // Everything the runtime loads is copied in.
    for (const dir of ["gen", "services", "cli"]) expect(dockerfile).toContain(`COPY ${dir} ./${dir}`);
    expect(await text(".dockerignore")).toMatch(/^node_modules$/m);
  });
});

describe("configuration variables", () => {
  it("parseConfig reads every listed variable and every deprecated name, nothing else", () => {
    const read = new Set<string>();
    const env = new Proxy({}, {
      get: (_target, name) => {
        if (typeof name === "string") read.add(name);
        return undefined;
      },
    });
    parseConfig(env, "/");
    expect([...read].sort()).toEqual([...configVariables, ...deprecatedVariables].sort());
  });

  it("docs/configuration.md documents exactly those", async () => {
    const page = await text("docs/configuration.md");
    const documented = [...page.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual([...configVariables, ...deprecatedVariables].sort());
  });
});
