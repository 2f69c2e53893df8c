import { spawn, type ChildProcess } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const root = new URL("..", import.meta.url).pathname;

/**
 * A Funnel server (`all` roles, embedded stores) in a process group of its
 * own, so a fault can kill the whole group the way a crashed container
 * loses every process in it. Restarts reuse the data folder and the port,
 * as a supervisor (systemd, Kubernetes) would.
 */
export class ServerProcess {
  readonly url: string;
  #child: ChildProcess | undefined;

  constructor(
    readonly dir: string,
    readonly port: number,
    readonly env: Readonly<Record<string, string>>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the process and resolves once `/readyz` answers 200. */
  async start(): Promise<void> {
    const log = await open(join(this.dir, "server.log"), "a");
    const child = spawn(process.execPath, [join(root, "services/bin.js"), "all"], {
      env: { ...process.env, ...this.env, PORT: String(this.port) },
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
    });
    await log.close();
    this.#child = child;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the server exited during start-up (${child.exitCode ?? child.signalCode}); see ${join(this.dir, "server.log")}`);
      }
      if (await this.ready()) return;
      await sleep(100);
    }
    throw new Error(`the server did not become ready within 120 s; see ${join(this.dir, "server.log")}`);
  }

  /** Whether `/readyz` answers 200 now. */
  async ready(): Promise<boolean> {
    try {
      const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  }

  /** SIGKILL to the whole process group (Node and anything it started in its group). */
  async killGroup(): Promise<void> {
    const child = this.#child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    process.kill(-child.pid, "SIGKILL");
    await exited;
  }

  /** SIGTERM, then waits for the process to finish draining and exit. */
  async terminate(): Promise<number | null> {
    const child = this.#child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    return exited;
  }

  /** The pid of the embedded Postgres's postmaster (it runs in a process group of its own). */
  async postmasterPid(): Promise<number> {
    const text = await readFile(join(this.dir, "postgres", "cluster", "postmaster.pid"), "utf8");
    return Number(text.split("\n")[0]);
  }

  /** The embedded Postgres's application database. */
  async postgresUrl(): Promise<string> {
    const password = (await readFile(join(this.dir, "postgres", "password"), "utf8")).trim();
    return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${this.env.EMBEDDED_POSTGRES_PORT}/funnel`;
  }
}
