// `npm run chaos`: the fault suite (about 3 minutes); `npm run chaos -- --seconds 10` for shorter phases.
import { parseArgs } from "node:util";
import { FAULTS, type Fault, formatReport, runChaos } from "./suite.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    fault: { type: "string", multiple: true },
  },
});
const phaseSeconds = Number(values.seconds);
if (!Number.isFinite(phaseSeconds) || phaseSeconds < 3) {
  console.error("usage: npm run chaos -- [--seconds N (3 or more, per phase)] [--fault sigkill|postgres-kill|sigterm|partner-faults ...]");
  process.exit(2);
}
const faults = (values.fault ?? [...FAULTS]) as Fault[];
const unknown = faults.filter((fault) => !FAULTS.includes(fault));
if (unknown.length > 0) {
  console.error(`unknown fault: ${unknown.join(", ")}; known: ${FAULTS.join(", ")}`);
  process.exit(2);
}
const started = Date.now();
const report = await runChaos({ phaseSeconds, faults, log: (line) => console.error(`chaos: ${line}`) });
console.log(formatReport(report));
console.log(`\n${report.clean ? "0 lost and 0 duplicated" : "LOST OR DUPLICATED CALLS (see above)"}; ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
process.exit(report.clean ? 0 : 1);
