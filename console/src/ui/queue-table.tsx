import type { QueueStatus } from "../../../gen/funnel/ops/v1/ops_pb.js";
import { formatSeconds } from "./common.js";
import { Table, type Column } from "./table.js";

/** Job queues with their jobs by state; each queue's name links where `link` says. */
export function QueueTable(props: { caption: string; showCaption?: boolean; queues: readonly QueueStatus[]; link: (queue: QueueStatus) => string; current?: string }) {
  const columns: readonly Column<QueueStatus>[] = [
    { header: "Queue", rowHeader: true, cell: (q) => <a href={props.link(q)}>{q.name}</a> },
    { header: "Queued", cell: (q) => q.queued.toString() },
    { header: "Active", cell: (q) => q.active.toString() },
    { header: "Retrying", cell: (q) => q.retrying.toString() },
    { header: "Failed", cell: (q) => q.failed.toString() },
    { header: "Dead", cell: (q) => q.dead.toString() },
    { header: "Oldest waiting", cell: (q) => (q.oldestWaitingSeconds > 0 ? formatSeconds(q.oldestWaitingSeconds) : "—") },
  ];
  return (
    <Table
      caption={props.caption}
      showCaption={props.showCaption ?? false}
      columns={columns}
      rows={props.queues}
      rowKey={(q) => q.name}
      rowAttributes={(q) => ({ "aria-current": q.name === props.current ? "true" : undefined })}
    />
  );
}
