"""Typed configuration: defaults in code, then a YAML file, then ``--set key=value`` overrides, then frozen.

Every section is a pydantic model that rejects unknown keys; :func:`load_config` turns validation
failures into one :class:`ConfigError` whose message names each bad key (dotted path) and the type it
expects, e.g. ``gallery.port: expected int, got 'abc'``. The defaults run the four-camera demo on one
machine (embedded Redis, local Ray, CPU).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from anonreid.orchestration.infra.files import load_yaml
from anonreid.orchestration.infra.timebase import DEFAULT_WINDOW_US


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EventsConfig(Section):
    window_us: int = Field(DEFAULT_WINDOW_US, gt=0, description="fixed window length in microseconds (33.3 ms)")
    num_bins: int = Field(5, gt=1, description="temporal bins of the voxel grid (B)")
    time_unit: str = Field(
        "", pattern=r"^$|^((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)?\s*(ns|us|µs|ms|s)?$",
        description="timestamp unit of replayed event files that do not record it: a power of ten from ns to s "
                    "(ns, 10us, 100us, ms, s), a scaled unit (2.5us) or seconds per tick (1e-4); empty = the "
                    "format's own (text files: inferred, with a warning)",
    )
    sensor: str = Field("", pattern=r"^$|^\d+x\d+$", description="WIDTHxHEIGHT of replayed event files that do not "
                        "record it (e.g. Event-ReId chunk files: 640x480); empty = the file's own")


class RedisConfig(Section):
    url: str = Field("", description="redis://[:password@]host:port/db; empty starts an embedded Redis")
    password: str = Field("", description="password for url (or set it in the url)")
    embedded_dir: str = Field(".build/redis", description="data directory of the embedded Redis")


class RayConfig(Section):
    address: str = Field("", description="join an existing Ray cluster (ray://... or host:port); empty starts one")
    num_cpus: int = Field(2, ge=0, description="CPUs for a local Ray instance (0 = all)")
    namespace: str = Field("anonreid", description="Ray namespace for the named actors")


class CameraLink(Section):
    """An allowed walk between two cameras and how long it takes (gallery association constraint)."""

    src: str = Field(..., description="camera the person leaves")
    dst: str = Field(..., description="camera the person reaches")
    min_transit_s: float = Field(0.0, ge=0, description="fastest possible walk, seconds")
    max_transit_s: float = Field(600.0, gt=0, description="slowest plausible walk, seconds")
    bidirectional: bool = Field(True, description="the same link also holds from dst to src")


class GalleryConfig(Section):
    host: str = Field("127.0.0.1", description="gRPC bind / connect host")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = any free port)")
    metrics_port: int = Field(9100, ge=0, le=65535, description="Prometheus metrics port (0 = any free port)")
    embedding_dim: int = Field(256, gt=0, description="length of every sighting embedding")
    index_type: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto", description="FAISS index: auto (exact below auto_ivf_min entries, IVF above), exact, IVF or HNSW")
    index_device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto = GPU when faiss has one")
    auto_ivf_min: int = Field(10_000, gt=0, description="entries from which index_type auto switches to IVF")
    ivf_nlist: int = Field(0, ge=0, description="IVF lists, trained once 39 x nlist vectors are stored "
                           "(0 = about 4 sqrt(N), retrained as the gallery grows fourfold)")
    ivf_nprobe: int = Field(0, ge=0, description="IVF lists probed per search (0 = the fewest reaching ivf_recall)")
    ivf_recall: float = Field(0.95, gt=0, le=1, description="recall@10 against exact search that nprobe = 0 "
                              "calibrates for, on the stored embeddings when the IVF is trained")
    hnsw_m: int = Field(32, gt=1, description="HNSW neighbours per node")
    hnsw_ef_search: int = Field(128, gt=0, description="HNSW search breadth")
    faiss_threads: int = Field(1, ge=0, description="FAISS OpenMP threads (1: fastest for one query at a time; 0 = all)")
    similarity_threshold: float = Field(0.7, ge=-1, le=1, description="score (tracklet appearance +- transit) a new "
                                        "tracklet needs to join an identity (chosen on four simulated worlds with "
                                        "`anonreid bench association`)")
    association_k: int = Field(32, gt=0, description="nearest stored sightings considered per new sighting")
    association_candidates: int = Field(8, gt=0, description="identities of those neighbours scored per decision (the "
                                        "ones with the most similar sightings): each costs a tracklet-level comparison")
    correction_horizon_s: float = Field(10.0, ge=0, description="stream seconds after its first sighting during which "
                                        "a tracklet's identity is decided again with each update (merge, move, "
                                        "detach: recorded corrections); 0 = decided once")
    correction_threshold: float = Field(0.6, ge=-1, le=1, description="score a tracklet needs within the correction "
                                        "horizon, on its mean embedding (steadier than a first sighting), to stay "
                                        "with or move to an identity")
    identity_prototypes: int = Field(2, gt=0, description="a tracklet is compared with an identity through the mean "
                                     "of its best N similarities to the identity's tracklet mean embeddings")
    merge_every_s: float = Field(10.0, ge=0, description="stream seconds between identity merge passes: identities "
                                 "that look alike as a whole and could be one person become one (recorded "
                                 "corrections of kind merge); 0 = never")
    merge_threshold: float = Field(0.5, ge=-1, le=1, description="similarity of two identities' mean appearance (the "
                                   "normalised sum of their tracklets' mean embeddings) from which a merge pass "
                                   "joins them (0.5: docs/BENCHMARKS.md, 'The merge bar at 0.5')")
    merge_window_s: float = Field(300.0, gt=0, description="stream seconds back a merge pass looks: identities seen "
                                  "since then take part (bounds its cost in a large gallery)")
    transit_bonus: float = Field(0.1, ge=0, description="similarity added when the walk from/to the identity's "
                                 "neighbouring sighting fits the link's (learned) transit window")
    reentry_penalty: float = Field(0.1, ge=0, description="similarity taken off a walk no transit window covers "
                                   "(no link, slower than the window, back on the same camera): people leave and return")
    same_camera_gap_s: float = Field(3.0, ge=0, description="a tracklet starting this soon after another of the "
                                     "identity on the same camera continues it (a tracker fragment); later = a return")
    transit_confident: float = Field(0.1, ge=0, description="a match this far above the threshold teaches the "
                                     "transit model its walk")
    transit_min_samples: int = Field(5, gt=0, description="confident walks a link needs before its learned window "
                                     "replaces the configured one")
    transit_max_samples: int = Field(200, gt=0, description="confident walks kept per link (the latest)")
    transit_margin_s: float = Field(1.0, ge=0, description="the learned window spans the walks seen, this much wider "
                                    "on each side")
    camera_ids: list[str] = Field(["cam1", "cam2", "cam3", "cam4"], min_length=1, description="known cameras")
    camera_links: list[CameraLink] = Field([], description="allowed transitions; empty = every pair, default times")
    min_transit_s: float = Field(1.0, ge=0, description="fastest walk between two cameras when links are not listed")
    max_transit_s: float = Field(600.0, gt=0, description="slowest walk between two cameras when links are not listed")
    occupancy_window_s: float = Field(10.0, gt=0, description="occupancy counts identities seen this long before 'at'")
    query_k: int = Field(10, gt=0, description="matches returned by a query when k = 0")
    max_query_k: int = Field(1000, gt=0, description="largest k a query may ask for")
    list_limit: int = Field(100, gt=0, description="identities listed when limit = 0")
    max_list_limit: int = Field(10_000, gt=0, description="largest limit a listing may ask for")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=4096, description="largest gRPC message sent or received")
    max_workers: int = Field(16, gt=0, description="gRPC threads for unary RPCs and health checks (publish streams "
                             "get max_publish_streams threads more, so operators and probes are answered meanwhile)")
    max_publish_streams: int = Field(64, gt=0, description="Publish streams open at once (each holds a thread); "
                                     "more get RESOURCE_EXHAUSTED")
    max_streams_per_peer: int = Field(32, gt=0, description="Publish streams open at once from one client address")
    max_streams_per_token: int = Field(16, gt=0, description="Publish streams open at once per bearer token "
                                       "(with security.tokens_file)")
    publish_idle_timeout_s: float = Field(120.0, gt=0, description="close a Publish stream that sends nothing this "
                                          "long (DEADLINE_EXCEEDED; the client reopens it when it has a sighting)")
    keepalive_time_s: float = Field(60.0, gt=0, description="HTTP/2 ping of each connection this often, so the "
                                    "streams of a vanished peer are closed")
    keepalive_timeout_s: float = Field(20.0, gt=0, description="close a connection whose ping is not answered "
                                       "within this")
    max_clock_skew_s: float = Field(300.0, ge=0, description="how far past the gallery clock a published "
                                    "span.end_us or published_at_us may be")
    max_sensor_width: int = Field(1280, gt=0, description="widest camera sensor, px: published boxes lie inside")
    max_sensor_height: int = Field(800, gt=0, description="tallest camera sensor, px: published boxes lie inside")
    grace_s: float = Field(5.0, ge=0, description="graceful-stop time for in-flight RPCs")
    redis_prefix: str = Field("anonreid:gallery", min_length=1, description="prefix of every gallery Redis key")
    retention_s: float = Field(0.0, ge=0, description="erase sightings this long after ingest (Redis TTL + sweeper); 0 = keep")
    retention_sweep_s: float = Field(60.0, gt=0, description="how often the sweeper erases expired sightings from FAISS")
    access_log_maxlen: int = Field(100_000, gt=0, description="approximate length bound of the access audit stream")
    snapshot_dir: str = Field("", description="write index snapshots here (restart = snapshot + Redis tail); "
                              "empty = restart rebuilds from Redis")
    snapshot_interval_s: float = Field(300.0, gt=0, description="seconds between index snapshots (and at clean stop)")
    snapshot_max_tail: int = Field(100_000, gt=0, description="sightings changed since the last snapshot that "
                                   "bring the next one forward")



class DetectorConfig(Section):
    """Stage 4, detect (events/detection.py, ``ActivityDetector``): people boxes from event activity.
    Sizes are in sensor pixels; "per window" means per ``events.window_us``."""

    cell: int = Field(4, ge=1, description="cell size of the count image, px")
    decay: float = Field(0.5, ge=0, lt=1, description="weight of the previous activity image (0 = no temporal "
                         "smoothing)")
    threshold: float = Field(0.08, gt=0, description="smoothed events per pixel per window above which a cell "
                             "is active")
    close_iterations: int = Field(2, ge=0, description="binary closing iterations (3x3 cells) bridging gaps "
                                  "inside a person")
    min_height: float = Field(16.0, ge=0, description="smallest box height kept, px")
    min_area: float = Field(160.0, ge=0, description="smallest box area kept, px^2")
    min_aspect: float = Field(0.6, gt=0, description="smallest height / width of a person box (a box cut by the "
                              "sensor's left or right edge may be narrower)")
    max_aspect: float = Field(8.0, gt=0, description="largest height / width of a person box")
    min_fill: float = Field(0.15, ge=0, le=1, description="active cells / box cells below this is scattered "
                            "noise, not a body")
    merge_gap: float = Field(6.0, ge=0, description="stacked boxes (head, torso, legs) this close vertically, px, "
                             "and overlapping horizontally by merge_overlap are merged")
    merge_overlap: float = Field(0.5, ge=0, lt=1, description="horizontal overlap, as a fraction of the narrower "
                                 "box, above which stacked boxes are merged (people side by side stay apart)")
    hot_pixel_rate: float = Field(0.8, gt=0, le=1, description="a cell active in more than this fraction of recent "
                                  "windows is a hot pixel and masked out")
    hot_pixel_halflife: float = Field(60.0, gt=0, description="windows over which that fraction is averaged")
    noise_factor: float = Field(3.0, ge=0, description="a noisy sensor raises the threshold to this many times its "
                                "background rate (events per pixel per window, from the median cell's activity); "
                                "0 = a fixed threshold")

    @model_validator(mode="after")
    def _check(self) -> DetectorConfig:
        if self.max_aspect < self.min_aspect:
            raise ValueError(f"aspect range [min_aspect {self.min_aspect}, max_aspect {self.max_aspect}] is empty")
        return self


class TrackerConfig(Section):
    """Stage 5, track (nodes/tracking.py, ``Tracker``): IoU matching with constant-velocity prediction."""

    iou_threshold: float = Field(0.15, gt=0, lt=1, description="smallest IoU between a predicted track box and a "
                                 "detection that matches them")
    min_hits: int = Field(3, ge=1, description="matched windows before a new track is confirmed (one-off noise "
                          "blobs never become tracklets)")
    max_misses: int = Field(8, ge=0, description="unmatched windows a confirmed track survives on its prediction")
    velocity_smoothing: float = Field(0.5, gt=0, le=1, description="EMA weight of the newest velocity measurement")
    max_tracks: int = Field(64, ge=1, description="live tracks at most (memory stays bounded on pathological input)")
    max_gap_windows: int = Field(30, ge=0, description="windows without any event (gaps in a recording) that are "
                                 "bridged; a longer gap ends every track")
    hold_overlap: float = Field(0.5, gt=0, le=1, description="share of a confirmed track's predicted box that a "
                                "detection must cover to hold it; a detection holding two or more is a blob (two "
                                "people seen as one), which continues none of them: each is held inside it, the "
                                "windows not counting against max_misses")
    max_hold_windows: int = Field(150, ge=0, description="windows a track may be held inside a blob (5 s); "
                                  "0 = never held (a blob continues one track, the others coast out)")


class CameraConfig(Section):
    """The camera node (nodes/camera/): queues, batching, sampling of embeddings, sightings and audit;
    its detector and tracker are the subsections ``detector`` and ``tracker``."""

    queue_windows: int = Field(60, gt=0, description="windows buffered before the oldest are dropped (2 s)")
    max_batch: int = Field(8, gt=0, description="windows processed per batch (inference is batched across them)")
    embed_every: int = Field(20, gt=0, description="embed each tracked person every N windows (1.5 per second)")
    min_embeddings: int = Field(2, gt=0, description="embeddings a tracklet needs before its first sighting (one "
                                "missed or ended with fewer makes none: on a noisy sensor such short tracks are "
                                "mostly noise)")
    publish_every: int = Field(60, gt=0, description="windows between sighting updates of a live tracklet (2 s)")
    close_after_misses: int = Field(
        1, ge=0, description="publish a tracklet's open segment once the tracker has missed it this many windows in "
        "a row (what follows starts its next segment) instead of when the track ends, max_misses windows later; "
        "windows held inside a blob are not misses; 0 = only at the end"
    )
    anonymize_region: Literal["boxes", "full"] = Field(
        "boxes", description="boxes: run E_an on the boxes plus its receptive field (same output); full: whole frame"
    )
    halo_px: int = Field(8, ge=0, description="context around a box for E_an (>= its receptive-field radius)")
    redact_columns_min_aspect: float | None = Field(
        0.6, ge=0, description="when the models redact the head band: a box at least this wide for its height (a "
        "detection or track spanning two people; the world's true person boxes are 0.29-0.71, 5th-95th percentile) "
        "also loses, per pixel column, the band below the column's topmost event (events/redaction.py); null = the "
        "box's band only"
    )
    audit_every_s: float = Field(
        10.0, gt=0, description="stream seconds between audit-tap samples (each costs a full-frame E_an pass)"
    )
    audit_offset_s: float = Field(
        0.0, ge=0, description="stream seconds the audit schedule shifts by after the first sample (the demo "
        "spreads its cameras over audit_every_s so their full-frame E_an passes do not coincide)"
    )
    audit_maxlen: int = Field(500, gt=0, description="approximate length bound of each audit:<camera> stream")
    tile_every_s: float = Field(1.0, gt=0, description="stream seconds between console tiles (anonymized activity)")
    audit_burst: int = Field(3, gt=0, description="consecutive windows per audit sample (temporal context for E_rec)")
    audit_pending_bursts: int = Field(
        2, gt=0, description="audit bursts waiting for the tap's background thread (full-frame E_an, lowest CPU "
        "priority); on a live stream a burst beyond them is skipped and counted, so the camera never waits for it"
    )
    torch_threads: int = Field(1, ge=0, description="intra-op threads per camera node (0 = torch default)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available")
    model_dir: str = Field("", description="run directory with trained checkpoints; empty = shipped/random weights")
    metrics_port: int = Field(9101, ge=0, le=65535, description="Prometheus port of the first camera (+i per camera)")
    metrics_host: str = Field("127.0.0.1", description="bind address of the cameras' metrics endpoints (0.0.0.0 "
                              "where Prometheus scrapes from another host, as in the Helm chart)")
    packet_us: int = Field(10_000, gt=0, description="event packet length of live and replayed sources, us")
    placement: dict[str, str] = Field(
        {}, description="camera id -> Ray custom resource its actor must run on (a node label, e.g. zone-a)"
    )
    publish_backoff_max_s: float = Field(30.0, gt=0, description="longest wait between two tries of a failed "
                                         "publish to the gallery (the wait doubles from 1 s up to this)")
    detector: DetectorConfig = Field(DetectorConfig(), description="stage 4: people boxes from event activity")
    tracker: TrackerConfig = Field(TrackerConfig(), description="stage 5: per-camera tracklets")


class DemoConfig(Section):
    """``anonreid demo``: the whole system on one machine."""

    cameras: list[str] = Field(["cam1", "cam2", "cam3", "cam4"], min_length=1, description="cameras to run")
    duration_s: float = Field(0.0, ge=0, description="stop after this many seconds (0 = until Ctrl-C)")
    actor_cpus: float = Field(0.25, ge=0, description="Ray CPUs reserved per camera actor")
    adversary: bool = Field(True, description="run the adversary node (section `adversary`) on the cameras' audit tap")
    adversary_cpus: float = Field(0.25, ge=0, description="Ray CPUs reserved for the adversary actor")
    render_ahead_s: float = Field(
        90.0, ge=0, description="most seconds of each camera's world rendered ahead of the clock (a run no longer "
        "than this is rendered in full before the clock starts): the simulated sensors are the stimulus, not the "
        "system under test, so they do not compete with it for the CPU; 0 = render in step with the clock"
    )
    json_path: str = Field("", description="write the summary JSON here")
    link_slack_min_s: float = Field(1.0, ge=0, description="the gallery's camera links, made from the world's walks "
                                    "when gallery.camera_links is empty, allow a walk this much faster than the "
                                    "world's fastest (a tracklet ends a little after the person leaves the view)")
    link_slack_max_s: float = Field(2.0, ge=0, description="... and this much slower than the world's slowest (a "
                                    "detection starts a little after the person enters the next view)")


class ConsoleConfig(Section):
    """The operator web console (served beside the gallery by `gallery serve` and by the demo)."""

    enabled: bool = Field(True, description="serve the console")
    host: str = Field("127.0.0.1", description="bind address of the console")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port of the console (0 = any free port)")
    allowed_hosts: list[str] = Field([], description="host names the console answers to besides its bind address "
                                     "(and localhost / loopback addresses on a loopback bind, any IP literal on a "
                                     "wildcard bind): the Host of every request, and the Origin of every write, must "
                                     "name one (refuses DNS rebinding and cross-site writes)")
    allow_unauthenticated: bool = Field(False, description="serve write routes (forget) without access control "
                                        "(security.tokens_file empty) on a non-loopback bind; on a loopback bind "
                                        "they are served when Host and Origin are the console's own")
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="socket timeout of a console connection: a "
                                     "request whose line, headers or body stall longer is dropped")


class SecurityConfig(Section):
    """Transport security and access control for every gRPC server, client and the console."""

    tls: bool = Field(False, description="serve gRPC over TLS (plain-text connections are then refused)")
    mtls: bool = Field(False, description="also require client certificates signed by ca_cert")
    ca_cert: str = Field("", description="CA certificate (PEM) clients verify the server with")
    server_cert: str = Field("", description="server certificate (PEM)")
    server_key: str = Field("", description="server private key (PEM)")
    client_cert: str = Field("", description="client certificate (PEM), for mutual TLS")
    client_key: str = Field("", description="client private key (PEM), for mutual TLS")
    tokens_file: str = Field("", description="YAML of hashed bearer tokens with roles; empty = no access control")
    token: str = Field("", description="this node's own bearer token when it calls another service")


class SensorRealismConfig(Section):
    """Sensor realism randomised per camera (issue 18, sim-to-real). Off (the default): every camera keeps
    the world's fixed sensor above, the world the shipped models were trained on. On: each camera draws its
    own sensor from these (low, high) ranges with the world seed (log-uniform, except the threshold and its
    mismatch: uniform). Sources, each checked (2026-12-03) against the text named in its comment:
    v2e = the emulator of Hu, Liu, Delbruck, "v2e: From Video Frames to Realistic DVS Events", CVPRW 2021,
    github.com/SensorsINI/v2e at commit b0ae3bc: its command-line defaults (v2ecore/v2e_args.py), its
    presets (v2ecore/emulator.py, EventEmulator.set_dvs_params: 'clean', 'noisy') and its class defaults
    (EventEmulator.__init__); the paper's own section numbers were not verified. DAVIS346 = iniVation's
    DAVIS346 specification, contrast sensitivity 14.3 % ON / 22.5 % OFF (50 % of pixels responding), as
    quoted by EvaGaussians (Yu et al., arXiv 2405.20224v3, supplementary, their DAVIS346 dataset); the
    iniVation datasheet itself was not retrieved. Ranges without a source are the project's own, around
    the fixed world's values."""

    enabled: bool = Field(False, description="randomise each camera's sensor from these ranges (off = the fixed world)")
    per_pass: bool = Field(False, description="with enabled: a simulated dataset draws a new sensor for every pass "
                           "(training data that spans many sensors); the live world keeps each camera's own draw")
    fixed_share: float = Field(0.0, ge=0.0, le=1.0, description="with per_pass: the share of passes that keep "
                               "their camera's fixed sensor (the world with realism off) instead of a draw, so "
                               "training data spans both the fixed world and drawn sensors")
    # DAVIS346: ON 14.3 %, OFF 22.5 % contrast = ln 1.143 = 0.134 and ln 1.225 = 0.203; v2e --pos_thres and
    # --neg_thres default 0.2 (v2e_args.py; 0.2 in both presets too); upper end: the fixed world's least
    # sensitive camera (0.28), the project's own
    threshold: tuple[float, float] = Field((0.134, 0.28), description="mean of the ON and OFF thresholds (log)")
    # DAVIS346: OFF / ON = 0.203 / 0.134 = 1.52; either way round (Prophesee sensors set ON and OFF by separate
    # biases, bias_diff_on / bias_diff_off: docs.prophesee.ai, Hardware > Biases)
    off_on_ratio: tuple[float, float] = Field((1 / 1.52, 1.52), description="OFF threshold / ON threshold")
    # v2e --sigma_thres: 0.02 ('clean' preset) to 0.05 ('noisy' preset), 0.03 by default (v2e_args.py and
    # EventEmulator.__init__)
    threshold_sigma: tuple[float, float] = Field((0.02, 0.05), description="per-pixel threshold mismatch (std)")
    # v2e --refractory_period default 0.0005 s = 500 us (v2e_args.py; both presets and EventEmulator.__init__
    # set 0, off); the range around it is the project's own
    refractory_us: tuple[float, float] = Field((250.0, 1000.0), description="pixel refractory period, us")
    # v2e --cutoff_hz: 30 ('noisy' preset) to 300 (command-line default); 'clean' and EventEmulator.__init__
    # set 0 (unlimited); the cutoff is scaled by each pixel's intensity, (I + 20) / 275 for I in 0..255
    # (v2ecore/emulator_utils.py: rescale_intensity_frame, low_pass_filter), as events/world/simulator.py does
    cutoff_hz: tuple[float, float] = Field((30.0, 300.0), description="photoreceptor 3 dB bandwidth at full intensity")
    # v2e --shot_noise_rate_hz (ON+OFF, in the darkest parts of the scene): 0.001 (command-line default, "good
    # lighting") to 5.0 ('noisy' preset)
    shot_noise_hz: tuple[float, float] = Field((0.001, 5.0), description="shot-noise events per pixel per second")
    # v2e --leak_rate_hz: 0.01 (command-line default, "typical for normal illumination levels with Davis
    # cameras") to 0.1 ('noisy' preset, and EventEmulator.__init__'s default)
    leak_hz: tuple[float, float] = Field((0.01, 0.1), description="leak (ON) events per pixel per second")
    # no published figure found (v2e's EventEmulator has no hot-pixel parameter): around the fixed world's
    # 2e-4 and 30 Hz, the project's own
    hot_pixel_fraction: tuple[float, float] = Field((5e-5, 5e-4), description="fraction of hot pixels")
    hot_pixel_hz: tuple[float, float] = Field((10.0, 100.0), description="event rate of a hot pixel")

    @model_validator(mode="after")
    def _check(self) -> SensorRealismConfig:
        limits = {"threshold": (0.01, 2.0), "off_on_ratio": (0.25, 4.0), "threshold_sigma": (0.0, 1.0),
                  "refractory_us": (1.0, 1e6), "cutoff_hz": (1e-3, 1e6), "shot_noise_hz": (1e-9, 1e3),
                  "leak_hz": (1e-9, 1e3), "hot_pixel_fraction": (1e-9, 0.099), "hot_pixel_hz": (1e-9, 1e4)}
        for name, (floor, ceil) in limits.items():
            lo, hi = getattr(self, name)
            if not floor <= lo <= hi <= ceil:
                raise ValueError(f"realism.{name} must be a range [low, high] within {floor:g}..{ceil:g}, got "
                                 f"{getattr(self, name)}")
        return self


class WorldConfig(Section):
    """The synthetic four-camera world (anonreid.events.world): people, cameras, event sensor, live mode."""

    resolution: str = Field("320x240", description="sensor WIDTHxHEIGHT of every camera (640x480 like Event-ReId)")
    identities: int = Field(33, ge=2, le=9999, description="number of people (identities 001..N)")
    first_identity: int = Field(1, ge=1, le=9999, description="number of the first person: a world of people that "
                                "the same seed's smaller worlds do not hold (151 after a 150-identity world)")
    train_identities: int = Field(22, ge=1, description="the first N identities form the train split, the rest test")
    seed: int = Field(0, ge=0, description="world seed: same seed, byte-identical dataset")
    pass_seconds: float = Field(3.5, gt=0.2, le=60, description="length of one dataset pass (one person, one camera)")
    passes_per_camera: int = Field(1, ge=1, le=20, description="passes of every identity through every camera")
    outfit_days: int = Field(1, ge=1, le=64, description="days a person's passes are filmed on, each pass drawing "
                             "one: on day d >= 1 the person wears that day's outfit (the same body, gait, hair and "
                             "face; Person.on_another_day). 1: every pass on day 0, as the cameras film")
    window_us: int = Field(DEFAULT_WINDOW_US, gt=0, description="ground-truth window (boxes, reference frames) in us")
    threshold: float = Field(0.25, gt=0.01, le=2, description="mean contrast threshold (log intensity)")
    threshold_sigma: float = Field(0.03, ge=0, description="per-pixel threshold mismatch (std)")
    refractory_us: int = Field(500, ge=0, description="pixel refractory period in us")
    shot_noise_hz: float = Field(0.1, ge=0, description="shot-noise events per pixel per second (mean)")
    leak_hz: float = Field(0.05, ge=0, description="leak (ON) events per pixel per second")
    hot_pixel_fraction: float = Field(2e-4, ge=0, lt=0.1, description="fraction of hot pixels")
    hot_pixel_hz: float = Field(30.0, ge=0, description="event rate of a hot pixel")
    max_log_step: float = Field(0.5, gt=0, description="bound on per-pixel log change between rendered frames")
    min_fps: float = Field(60.0, gt=0, description="lowest internal render rate")
    max_fps: float = Field(150.0, gt=0, description="highest internal render rate (150: a frame per voxel bin)")
    lamp_flicker: bool = Field(False, description="the second camera's lamp flickers (9 Hz, 20 %)")
    realism: SensorRealismConfig = Field(SensorRealismConfig(), description="sensor realism randomised per camera")
    workers: int = Field(1, ge=1, le=64, description="processes used by `anonreid simulate`")
    live_split: Literal["train", "test", "all"] = Field("test", description="identities walking in live mode")
    live_arrival_s: float = Field(5.0, gt=0, description="mean seconds between people entering the live world")
    live_route_cameras: tuple[int, int] = Field((2, 4), description="min/max cameras on a live route")

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if self.train_identities >= self.identities:
            raise ValueError(f"train_identities ({self.train_identities}) must be < identities ({self.identities})")
        if self.first_identity + self.identities - 1 > 9999:
            raise ValueError(f"first_identity + identities - 1 must be <= 9999, got {self.first_identity + self.identities - 1}")
        parts = self.resolution.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and 16 <= int(p) <= 4096 for p in parts):
            raise ValueError(f"resolution must look like 320x240 (16..4096 each), got {self.resolution!r}")
        if self.min_fps > self.max_fps:
            raise ValueError(f"min_fps ({self.min_fps}) must be <= max_fps ({self.max_fps})")
        lo, hi = self.live_route_cameras
        if not 1 <= lo <= hi:
            raise ValueError(f"live_route_cameras must be 1 <= min <= max, got {self.live_route_cameras}")
        return self


class AdversaryConfig(Section):
    """The adversary node (nodes/adversary): attacks on the audit tap, policy, metrics."""

    policy: str = Field("", description="privacy policy YAML; empty = the shipped default_policy.yaml")
    cameras: list[str] = Field(["cam1", "cam2", "cam3", "cam4"], min_length=1, description="audit:<camera> streams read")
    window_samples: int = Field(60, gt=0, description="audit samples kept per camera (the sliding window attacked)")
    interval_s: float = Field(30.0, gt=0, description="seconds between attack rounds")
    min_samples: int = Field(4, gt=0, description="samples a camera needs before it is attacked")
    clip_windows: int = Field(3, gt=0, description="consecutive windows unrolled per E_rec clip (audit bursts)")
    max_new_clips: int = Field(3, gt=0, description="clips a round newly reconstructs per camera (the newest; "
                               "the rest of the window is scored from cached reconstructions): bounds a round's CPU")
    crop_hw: tuple[int, int] = Field((128, 64), description="person crop (h, w) on which SSIM / PSNR are computed")
    tile_hw: tuple[int, int] = Field((160, 96), description="tile (h, w) around a person the adaptive attacker trains on")
    metrics_port: int = Field(9120, ge=0, le=65535, description="Prometheus port (0 = any free port)")
    metrics_host: str = Field("127.0.0.1", description="bind address of the metrics endpoint (0.0.0.0 where "
                              "Prometheus scrapes from another host, as in the Helm chart)")
    model_dir: str = Field("", description="run directory with the attacker's checkpoints (e_rec, e_inv, attacker/); "
                           "empty = the shipped weights (models/weights/default)")
    enrollment: str = Field("world", description="enrollment photos: 'world' (the live world's people), a "
                            "dataset directory (world.h5), or '' for none")
    adaptive_every_s: float = Field(120.0, gt=0, description="seconds between adaptive-attacker refreshes")
    adaptive_steps: int = Field(10, ge=0, description="fine-tuning steps per refresh (0 = no adaptive attacker)")
    adaptive_budget_s: float = Field(30.0, gt=0, description="wall-time bound of one refresh")
    adaptive_pairs: int = Field(256, gt=0, description="(anonymized, reference) clips kept to train the adaptive attacker")
    adaptive_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the adaptive attacker's refreshes")
    adaptive_batch_size: int = Field(4, gt=0, description="(anonymized, reference) clips per adaptive-attacker step")
    grids_kept: int = Field(5, gt=0, description="image grids kept in Redis per camera")
    torch_threads: int = Field(1, ge=0, description="intra-op threads (0 = torch default)")
    background: bool = Field(True, description="run the attack loop at the lowest CPU priority (nice 19): on a "
                             "shared host the cameras' real-time work comes first, and the audit still progresses")


class Config(Section):
    events: EventsConfig = EventsConfig()
    redis: RedisConfig = RedisConfig()
    ray: RayConfig = RayConfig()
    gallery: GalleryConfig = GalleryConfig()
    camera: CameraConfig = CameraConfig()
    demo: DemoConfig = DemoConfig()
    security: SecurityConfig = SecurityConfig()
    console: ConsoleConfig = ConsoleConfig()
    world: WorldConfig = WorldConfig()
    adversary: AdversaryConfig = AdversaryConfig()


class ConfigError(ValueError):
    """Invalid configuration; the message names each bad key and the expected type."""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a mapping ({annotation.__name__})"
    return getattr(annotation, "__name__", str(annotation))


def _expected_type(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:  # list / dict element
            args = typing.get_args(current)
            current = args[-1] if args else Any
    return _type_name(current)


def _format_errors(exc: ValidationError, model: type[BaseModel], origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if err["type"] == "extra_forbidden":
            parent = _expected_type(model, loc[:-1]) if loc[:-1] else model.__name__
            lines.append(f"{key}: unknown key (not a field of {parent})")
            continue
        expected = _expected_type(model, loc)
        if err["type"] == "value_error" and isinstance(err.get("input"), dict):  # a section's own check
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
            continue
        got = err.get("input")
        detail = err["msg"]
        lines.append(f"{key}: expected {expected}, got {got!r} ({detail})")
    return f"invalid configuration ({origin}):\n  " + "\n  ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"gallery.port=50052"`` -> (["gallery", "port"], 50052); the value is read as a YAML scalar."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key.path=value")
    return [p.strip() for p in key.split(".")], yaml.safe_load(raw) if raw.strip() else ""


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


S = TypeVar("S", bound=Section)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    model: type[S] = Config,  # type: ignore[assignment]
    what: str = "config file",
) -> S:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides; validated and frozen.

    ``model`` is the section tree to validate against (the service :class:`Config` by default; the
    training presets use the same loader with their own model), ``what`` names the file in errors.
    """
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        loaded = load_yaml(path, what, ConfigError)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{what} {path} must hold a mapping, got {type(loaded).__name__}")
        data = loaded or {}
        origin = str(path)
    for text in overrides:
        keys, value = parse_override(text)
        nested: dict[str, Any] = {keys[-1]: value}
        for k in reversed(keys[:-1]):
            nested = {k: nested}
        data = _merge(data, nested)
    if overrides:
        origin += " + --set " + " ".join(overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, model, origin)) from None


def config_to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
