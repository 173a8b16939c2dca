import math

from anonreid.proto import EMBEDDING_DIM, codegen
from anonreid.proto.v1 import audit_pb2, gallery_pb2, gallery_pb2_grpc, sighting_pb2


def test_generated_code_matches_proto_sources():
    """Regenerating from the .proto files gives exactly the committed code."""
    assert codegen.stale_files(codegen.generate()) == []


def test_sighting_round_trip():
    s = sighting_pb2.Sighting(
        sighting_id="cam1-7-0003",
        camera_id="cam1",
        tracklet_id="7",
        span=sighting_pb2.TimeSpan(start_us=1_000, end_us=34_333),
        box=sighting_pb2.BoxSummary(x1=1, y1=2, x2=30, y2=90, num_boxes=3),
        embedding=[1.0 / math.sqrt(EMBEDDING_DIM)] * EMBEDDING_DIM,
        quality=0.9,
        model_version="cpu-0.1",
    )
    back = sighting_pb2.Sighting.FromString(s.SerializeToString())
    assert back == s and len(back.embedding) == EMBEDDING_DIM


def test_gallery_service_surface():
    methods = set(gallery_pb2.DESCRIPTOR.services_by_name["Gallery"].methods_by_name)
    assert methods == {"Publish", "PublishBatches", "ListIdentities", "GetTrajectory", "QueryByExample", "Occupancy",
                       "Forget"}
    for name in ("Publish", "PublishBatches"):
        publish = gallery_pb2.DESCRIPTOR.services_by_name["Gallery"].methods_by_name[name]
        assert publish.client_streaming and publish.server_streaming
    assert hasattr(gallery_pb2_grpc, "GalleryServicer")
    rec = audit_pb2.AuditRecord(attack="retrieval", camera_id="cam1", metric="rank1", value=0.1, chance=0.09)
    assert audit_pb2.AuditRecord.FromString(rec.SerializeToString()).metric == "rank1"
