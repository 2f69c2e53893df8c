import { expect, test } from "vitest";
import { formatReport, runChaos } from "../../chaos/suite.js";

// The short version of `npm run chaos`: every fault, with a few seconds of load each.
test("under every fault, nothing acknowledged is lost or duplicated and the server recovers by itself", async () => {
  const report = await runChaos({ phaseSeconds: 4, settleSeconds: 60 });
  console.log(formatReport(report));
  for (const phase of report.phases) {
    for (const kind of phase.kinds) {
      expect(kind.acknowledged, `${phase.fault} ${kind.kind}: calls acknowledged`).toBeGreaterThan(0);
      expect({ fault: phase.fault, kind: kind.kind, lost: kind.lost, duplicates: kind.duplicates }).toEqual({ fault: phase.fault, kind: kind.kind, lost: 0, duplicates: 0 });
    }
  }
  const byFault = new Map(report.phases.map((phase) => [phase.fault, phase]));
  expect(byFault.get("postgres-kill")?.recoverMs).toBeLessThan(30_000);
  const inFlight = byFault.get("sigkill")?.deliveriesRecoverMs;
  if (inFlight !== undefined) expect(inFlight).toBeLessThan(60_000);
}, 180_000);
