from anonreid.proto.v1 import sighting_pb2 as _sighting_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishAck(_message.Message):
    __slots__ = ("sighting_id", "identity_id", "duplicate", "similarity", "new_identity", "rule", "candidates")
    SIGHTING_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    NEW_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    sighting_id: str
    identity_id: str
    duplicate: bool
    similarity: float
    new_identity: bool
    rule: str
    candidates: _containers.RepeatedCompositeFieldContainer[AssociationCandidate]
    def __init__(self, sighting_id: _Optional[str] = ..., identity_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., similarity: _Optional[float] = ..., new_identity: _Optional[bool] = ..., rule: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[AssociationCandidate, _Mapping]]] = ...) -> None: ...

class SightingBatch(_message.Message):
    __slots__ = ("sightings",)
    SIGHTINGS_FIELD_NUMBER: _ClassVar[int]
    sightings: _containers.RepeatedCompositeFieldContainer[_sighting_pb2.Sighting]
    def __init__(self, sightings: _Optional[_Iterable[_Union[_sighting_pb2.Sighting, _Mapping]]] = ...) -> None: ...

class PublishBatchAck(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[PublishAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[PublishAck, _Mapping]]] = ...) -> None: ...

class AssociationCandidate(_message.Message):
    __slots__ = ("identity_id", "similarity", "accepted", "reason", "detail")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    similarity: float
    accepted: bool
    reason: str
    detail: str
    def __init__(self, identity_id: _Optional[str] = ..., similarity: _Optional[float] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class IdentitySummary(_message.Message):
    __slots__ = ("identity_id", "cameras", "first_seen_us", "last_seen_us", "num_sightings", "first_seen_clock", "last_seen_clock")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_US_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_US_FIELD_NUMBER: _ClassVar[int]
    NUM_SIGHTINGS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_CLOCK_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_CLOCK_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    cameras: _containers.RepeatedScalarFieldContainer[str]
    first_seen_us: int
    last_seen_us: int
    num_sightings: int
    first_seen_clock: _sighting_pb2.StreamClock
    last_seen_clock: _sighting_pb2.StreamClock
    def __init__(self, identity_id: _Optional[str] = ..., cameras: _Optional[_Iterable[str]] = ..., first_seen_us: _Optional[int] = ..., last_seen_us: _Optional[int] = ..., num_sightings: _Optional[int] = ..., first_seen_clock: _Optional[_Union[_sighting_pb2.StreamClock, _Mapping]] = ..., last_seen_clock: _Optional[_Union[_sighting_pb2.StreamClock, _Mapping]] = ...) -> None: ...

class ListIdentitiesRequest(_message.Message):
    __slots__ = ("limit", "seen_since_us", "camera_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SEEN_SINCE_US_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    seen_since_us: int
    camera_id: str
    def __init__(self, limit: _Optional[int] = ..., seen_since_us: _Optional[int] = ..., camera_id: _Optional[str] = ...) -> None: ...

class ListIdentitiesResponse(_message.Message):
    __slots__ = ("identities",)
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[IdentitySummary]
    def __init__(self, identities: _Optional[_Iterable[_Union[IdentitySummary, _Mapping]]] = ...) -> None: ...

class GetTrajectoryRequest(_message.Message):
    __slots__ = ("identity_id",)
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    def __init__(self, identity_id: _Optional[str] = ...) -> None: ...

class TrajectoryStep(_message.Message):
    __slots__ = ("camera_id", "span", "sighting_ids", "clock")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    SIGHTING_IDS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    span: _sighting_pb2.TimeSpan
    sighting_ids: _containers.RepeatedScalarFieldContainer[str]
    clock: _sighting_pb2.StreamClock
    def __init__(self, camera_id: _Optional[str] = ..., span: _Optional[_Union[_sighting_pb2.TimeSpan, _Mapping]] = ..., sighting_ids: _Optional[_Iterable[str]] = ..., clock: _Optional[_Union[_sighting_pb2.StreamClock, _Mapping]] = ...) -> None: ...

class Trajectory(_message.Message):
    __slots__ = ("identity_id", "steps", "corrections")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CORRECTIONS_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    steps: _containers.RepeatedCompositeFieldContainer[TrajectoryStep]
    corrections: _containers.RepeatedCompositeFieldContainer[IdentityCorrection]
    def __init__(self, identity_id: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[TrajectoryStep, _Mapping]]] = ..., corrections: _Optional[_Iterable[_Union[IdentityCorrection, _Mapping]]] = ...) -> None: ...

class IdentityCorrection(_message.Message):
    __slots__ = ("kind", "camera_id", "tracklet_id", "from_identity", "to_identity", "sightings", "similarity", "at_us", "recorded_at_us")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKLET_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    TO_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SIGHTINGS_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    AT_US_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_US_FIELD_NUMBER: _ClassVar[int]
    kind: str
    camera_id: str
    tracklet_id: str
    from_identity: str
    to_identity: str
    sightings: int
    similarity: float
    at_us: int
    recorded_at_us: int
    def __init__(self, kind: _Optional[str] = ..., camera_id: _Optional[str] = ..., tracklet_id: _Optional[str] = ..., from_identity: _Optional[str] = ..., to_identity: _Optional[str] = ..., sightings: _Optional[int] = ..., similarity: _Optional[float] = ..., at_us: _Optional[int] = ..., recorded_at_us: _Optional[int] = ...) -> None: ...

class QueryByExampleRequest(_message.Message):
    __slots__ = ("sighting_id", "sighting", "k", "exclude_same_camera")
    SIGHTING_ID_FIELD_NUMBER: _ClassVar[int]
    SIGHTING_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SAME_CAMERA_FIELD_NUMBER: _ClassVar[int]
    sighting_id: str
    sighting: _sighting_pb2.Sighting
    k: int
    exclude_same_camera: bool
    def __init__(self, sighting_id: _Optional[str] = ..., sighting: _Optional[_Union[_sighting_pb2.Sighting, _Mapping]] = ..., k: _Optional[int] = ..., exclude_same_camera: _Optional[bool] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("sighting_id", "identity_id", "camera_id", "span", "similarity", "clock")
    SIGHTING_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    sighting_id: str
    identity_id: str
    camera_id: str
    span: _sighting_pb2.TimeSpan
    similarity: float
    clock: _sighting_pb2.StreamClock
    def __init__(self, sighting_id: _Optional[str] = ..., identity_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., span: _Optional[_Union[_sighting_pb2.TimeSpan, _Mapping]] = ..., similarity: _Optional[float] = ..., clock: _Optional[_Union[_sighting_pb2.StreamClock, _Mapping]] = ...) -> None: ...

class QueryByExampleResponse(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class OccupancyRequest(_message.Message):
    __slots__ = ("at_us", "window_us")
    AT_US_FIELD_NUMBER: _ClassVar[int]
    WINDOW_US_FIELD_NUMBER: _ClassVar[int]
    at_us: int
    window_us: int
    def __init__(self, at_us: _Optional[int] = ..., window_us: _Optional[int] = ...) -> None: ...

class CameraOccupancy(_message.Message):
    __slots__ = ("camera_id", "count", "identity_ids")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    count: int
    identity_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_id: _Optional[str] = ..., count: _Optional[int] = ..., identity_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class OccupancyResponse(_message.Message):
    __slots__ = ("cameras",)
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraOccupancy]
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraOccupancy, _Mapping]]] = ...) -> None: ...

class ForgetRequest(_message.Message):
    __slots__ = ("identity_id", "reason")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    reason: str
    def __init__(self, identity_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ForgetResponse(_message.Message):
    __slots__ = ("identity_id", "sightings_erased")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGHTINGS_ERASED_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    sightings_erased: int
    def __init__(self, identity_id: _Optional[str] = ..., sightings_erased: _Optional[int] = ...) -> None: ...
