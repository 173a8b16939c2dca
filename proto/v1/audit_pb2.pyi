from anonreid.proto.v1 import sighting_pb2 as _sighting_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditRecord(_message.Message):
    __slots__ = ("record_id", "attack", "camera_id", "metric", "value", "chance", "ci_low", "ci_high", "window", "num_samples", "model_version", "needs_ground_truth", "created_at_us", "num_identities", "interval_method", "collapsed", "control_low", "effective_samples")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ATTACK_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEEDS_GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    NUM_IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_METHOD_FIELD_NUMBER: _ClassVar[int]
    COLLAPSED_FIELD_NUMBER: _ClassVar[int]
    CONTROL_LOW_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    attack: str
    camera_id: str
    metric: str
    value: float
    chance: float
    ci_low: float
    ci_high: float
    window: _sighting_pb2.TimeSpan
    num_samples: int
    model_version: str
    needs_ground_truth: bool
    created_at_us: int
    num_identities: int
    interval_method: str
    collapsed: str
    control_low: float
    effective_samples: float
    def __init__(self, record_id: _Optional[str] = ..., attack: _Optional[str] = ..., camera_id: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., chance: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., window: _Optional[_Union[_sighting_pb2.TimeSpan, _Mapping]] = ..., num_samples: _Optional[int] = ..., model_version: _Optional[str] = ..., needs_ground_truth: _Optional[bool] = ..., created_at_us: _Optional[int] = ..., num_identities: _Optional[int] = ..., interval_method: _Optional[str] = ..., collapsed: _Optional[str] = ..., control_low: _Optional[float] = ..., effective_samples: _Optional[float] = ...) -> None: ...

class PrivacyAlert(_message.Message):
    __slots__ = ("record", "threshold", "comparison", "message")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    record: AuditRecord
    threshold: float
    comparison: str
    message: str
    def __init__(self, record: _Optional[_Union[AuditRecord, _Mapping]] = ..., threshold: _Optional[float] = ..., comparison: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class AuditSample(_message.Message):
    __slots__ = ("camera_id", "window", "bins", "height", "width", "anonymized_voxel", "reference_frame", "identity_ids", "model_version", "detections", "ground_truth")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    ANONYMIZED_VOXEL_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FRAME_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    window: _sighting_pb2.TimeSpan
    bins: int
    height: int
    width: int
    anonymized_voxel: bytes
    reference_frame: bytes
    identity_ids: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    detections: _containers.RepeatedCompositeFieldContainer[AuditBox]
    ground_truth: _containers.RepeatedCompositeFieldContainer[AuditBox]
    def __init__(self, camera_id: _Optional[str] = ..., window: _Optional[_Union[_sighting_pb2.TimeSpan, _Mapping]] = ..., bins: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., anonymized_voxel: _Optional[bytes] = ..., reference_frame: _Optional[bytes] = ..., identity_ids: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., detections: _Optional[_Iterable[_Union[AuditBox, _Mapping]]] = ..., ground_truth: _Optional[_Iterable[_Union[AuditBox, _Mapping]]] = ...) -> None: ...

class AuditBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "identity_id", "tracklet_id")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKLET_ID_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    identity_id: str
    tracklet_id: str
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., identity_id: _Optional[str] = ..., tracklet_id: _Optional[str] = ...) -> None: ...
