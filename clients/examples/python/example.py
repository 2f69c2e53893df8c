"""Calls a running Funnel over gRPC with the code generated from proto/.

Creates a tracker and reads it back with the admin token, then sends one analytics event
without a token, and prints what the server answered as one JSON line. The address is
FUNNEL_GRPC_TARGET (default 127.0.0.1:8080); the admin token is FUNNEL_ADMIN_TOKEN or the
file admin-token in FUNNEL_DATA_DIR (default ./data), as the embedded server writes it.
"""

import json
import os
import pathlib

import grpc
from google.protobuf import struct_pb2

from funnel.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from funnel.tracker.v1 import tracker_pb2, tracker_pb2_grpc

target = os.environ.get("FUNNEL_GRPC_TARGET", "127.0.0.1:8080")
token = os.environ.get("FUNNEL_ADMIN_TOKEN") or (pathlib.Path(os.environ.get("FUNNEL_DATA_DIR", "data")) / "admin-token").read_text().strip()
admin = [("authorization", f"Bearer {token}")]

# The API speaks gRPC over HTTP/2 with prior knowledge on its plain port.
with grpc.insecure_channel(target) as channel:
    trackers = tracker_pb2_grpc.TrackerServiceStub(channel)
    created = trackers.CreateTracker(tracker_pb2.CreateTrackerRequest(value="from-python"), metadata=admin, timeout=10)
    fetched = trackers.GetTracker(tracker_pb2.GetTrackerRequest(uuid=created.tracker.uuid), metadata=admin, timeout=10)

    data = struct_pb2.Struct()
    data.update({"element_type": "movie", "page_type": "category"})
    sent = ingest_pb2_grpc.IngestServiceStub(channel).Send(ingest_pb2.Event(event="element_click", data=data), timeout=10)

    try:
        trackers.GetTracker(tracker_pb2.GetTrackerRequest(uuid=created.tracker.uuid), timeout=10)
        without_token = "OK"
    except grpc.RpcError as error:
        without_token = error.code().name

print(json.dumps({
    "tracker": fetched.tracker.uuid,
    "value": fetched.tracker.value,
    "event_id": sent.event_id,
    "status": ingest_pb2.EventStatus.Name(sent.status),
    "without_token": without_token,
}))
