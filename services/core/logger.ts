import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";
import type { LogLevel } from "./config.js";

export type { Logger } from "pino";

/**
 * Creates the process logger: JSON lines on stdout, human-readable only when
 * stdout is a terminal. Secrets never reach it: request headers are not logged,
 * and known secret fields are redacted as a second line of defence.
 * `destination` replaces stdout (tests read the lines).
 */
export function createLogger(level: LogLevel, pretty: boolean = process.stdout.isTTY, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["token", "*.token", "password", "*.password", "authorization", "*.authorization", "adminToken"],
      censor: "[redacted]",
    },
    // Levels by name ("level":"info"), as log pipelines filter them; pino-pretty prints its own.
    ...(pretty
      ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid" } } }
      : { formatters: { level: (label: string) => ({ level: label }) } }),
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
