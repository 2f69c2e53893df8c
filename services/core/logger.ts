import { pino, type Logger } from "pino";
import type { LogLevel } from "./config.js";

export type { Logger } from "pino";

/**
 * Creates the process logger: JSON lines on stdout, human-readable only when
 * stdout is a terminal. Secrets never reach it: request headers are not logged,
 * and known secret fields are redacted as a second line of defence.
 */
export function createLogger(level: LogLevel, pretty: boolean = process.stdout.isTTY): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["token", "*.token", "password", "*.password", "authorization", "*.authorization", "adminToken"],
      censor: "[redacted]",
    },
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid" } } } : {}),
  });
}
