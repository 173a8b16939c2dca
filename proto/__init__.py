"""Wire contracts of anonreid (protobuf package ``anonreid.v1``).

The ``.proto`` sources live in ``proto/anonreid/v1/``; the generated modules in ``proto/v1/``
(``from anonreid.proto.v1 import sighting_pb2, gallery_pb2, gallery_pb2_grpc, audit_pb2``) are
produced by ``python -m anonreid.proto.codegen`` and never edited by hand: a test checks that
regenerating gives no diff.
"""

EMBEDDING_DIM = 256  # floats per Sighting.embedding

__all__ = ["EMBEDDING_DIM"]
