import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "./ports.js";

const root = new URL("../..", import.meta.url).pathname;

/** The repository's nginx template (the same file docker-compose.yml mounts). */
export const nginxTemplate = join(root, "deploy/nginx/templates/funnel.conf.template");

/**
 * The nginx executable, or undefined when it is not installed. Besides PATH,
 * the sbin folders are searched: Debian installs nginx in /usr/sbin, which a
 * non-root PATH often lacks.
 */
export function findNginx(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "nginx");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Replaces `${NAME}` for the given names only, as the nginx image's envsubst
 * step does; nginx's own `$variables` stay. A name the template uses but
 * `values` lacks is an error, so a renamed variable cannot slip through.
 */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\$\{([A-Z0-9_]+)\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`the nginx template uses \${${name}}, which has no value`);
    return value;
  });
}

/** The `${NAME}` variables a template uses. */
export function templateVariables(template: string): string[] {
  return [...new Set([...template.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((match) => match[1] ?? ""))].sort();
}

export interface RunningNginx {
  /** HTTP/1.1 listener: Connect, gRPC-Web, the plain routes. */
  readonly httpUrl: string;
  /** HTTP/2 cleartext listener: gRPC. */
  readonly grpcUrl: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** Stops nginx (fast shutdown) and removes its folder. */
  stop(): Promise<void>;
}

/**
 * Starts a real nginx in the foreground, as the current user, with the
 * repository's template in front of `apiAddress` (`host:port`). Everything it
 * writes (pid, temp files, logs) goes to a fresh temporary folder.
 */
export async function startNginx(binary: string, apiAddress: string): Promise<RunningNginx> {
  const dir = await mkdtemp(join(tmpdir(), "funnel-nginx-"));
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const funnel = renderTemplate(await readFile(nginxTemplate, "utf8"), {
    FUNNEL_API_ADDRESS: apiAddress,
    FUNNEL_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    FUNNEL_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
  });
  await writeFile(join(dir, "funnel.conf"), funnel);
  const user = userInfo();
  // Only a root master switches its workers to another user; keep them as we are.
  const userLine = user.uid === 0 ? `user ${user.username};` : "";
  const temp = (name: string) => `${name}_temp_path ${join(dir, name)};`;
  await writeFile(
    join(dir, "nginx.conf"),
    `daemon off;
${userLine}
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 256; }
http {
  access_log ${join(dir, "access.log")};
  ${["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(temp).join("\n  ")}
  include ${join(dir, "funnel.conf")};
}
`,
  );

  let stderr = "";
  const child: ChildProcess = spawn(binary, ["-p", `${dir}/`, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));

  const stop = async (): Promise<void> => {
    if (running) {
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };

  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!running) {
      const log = await readFile(join(dir, "error.log"), "utf8").catch(() => "");
      await stop();
      throw new Error(`nginx exited at start-up:\n${stderr}${log}`);
    }
    const ready = await fetch(`${httpUrl}/nginx-health`).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not answer within 10 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { httpUrl, grpcUrl: `http://127.0.0.1:${grpcPort}`, httpPort, grpcPort, stop };
}
