from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TimeSpan(_message.Message):
    __slots__ = ("start_us", "end_us")
    START_US_FIELD_NUMBER: _ClassVar[int]
    END_US_FIELD_NUMBER: _ClassVar[int]
    start_us: int
    end_us: int
    def __init__(self, start_us: _Optional[int] = ..., end_us: _Optional[int] = ...) -> None: ...

class BoxSummary(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "num_boxes", "mean_area", "velocity_x", "velocity_y")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    NUM_BOXES_FIELD_NUMBER: _ClassVar[int]
    MEAN_AREA_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_X_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_Y_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    num_boxes: int
    mean_area: float
    velocity_x: float
    velocity_y: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., num_boxes: _Optional[int] = ..., mean_area: _Optional[float] = ..., velocity_x: _Optional[float] = ..., velocity_y: _Optional[float] = ...) -> None: ...

class StreamClock(_message.Message):
    __slots__ = ("kind", "epoch_us")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[StreamClock.Kind]
        WALL: _ClassVar[StreamClock.Kind]
        RECORDING: _ClassVar[StreamClock.Kind]
    KIND_UNSPECIFIED: StreamClock.Kind
    WALL: StreamClock.Kind
    RECORDING: StreamClock.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    EPOCH_US_FIELD_NUMBER: _ClassVar[int]
    kind: StreamClock.Kind
    epoch_us: int
    def __init__(self, kind: _Optional[_Union[StreamClock.Kind, str]] = ..., epoch_us: _Optional[int] = ...) -> None: ...

class Sighting(_message.Message):
    __slots__ = ("sighting_id", "camera_id", "tracklet_id", "span", "box", "embedding", "quality", "model_version", "published_at_us", "event_at_us", "clock")
    SIGHTING_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKLET_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_US_FIELD_NUMBER: _ClassVar[int]
    EVENT_AT_US_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    sighting_id: str
    camera_id: str
    tracklet_id: str
    span: TimeSpan
    box: BoxSummary
    embedding: _containers.RepeatedScalarFieldContainer[float]
    quality: float
    model_version: str
    published_at_us: int
    event_at_us: int
    clock: StreamClock
    def __init__(self, sighting_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., tracklet_id: _Optional[str] = ..., span: _Optional[_Union[TimeSpan, _Mapping]] = ..., box: _Optional[_Union[BoxSummary, _Mapping]] = ..., embedding: _Optional[_Iterable[float]] = ..., quality: _Optional[float] = ..., model_version: _Optional[str] = ..., published_at_us: _Optional[int] = ..., event_at_us: _Optional[int] = ..., clock: _Optional[_Union[StreamClock, _Mapping]] = ...) -> None: ...
