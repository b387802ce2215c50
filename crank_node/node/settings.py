"""The node's settings: one typed, validated object, and where each value came from.

Layers, lowest precedence first: the defaults below, a TOML file
(``--config PATH``, flat ``key = value`` lines named like the fields), the
environment, command-line flags. Every field ``x`` is read from ``CRANK_X``
and ``--x`` (underscores as dashes), except:

* ``db_url``: also ``db_path`` in the file, ``CRANK_DB_PATH``, ``--db-path``
  (an SQLite file). One layer giving both forms is an error.
* ``rpc_urls``: ``CRANK_RPC_URLS`` (comma-separated) or ``CRANK_RPC_PRIMARY``,
  ``_SECONDARY``, ``_TERTIARY`` (not both forms); ``--rpc-url``, repeated.

An environment variable set to the empty string counts as unset. Relative
paths are relative to the working directory. :func:`load_settings` reads
nothing but the TOML file: no database is opened, no file created.

Secrets: RPC URLs (API keys in userinfo, path or query) and database URLs
(passwords) are masked wherever a value is shown (:func:`shown_value`) and
left out of ``repr``. The wallet file is only read by :meth:`CrankSettings.load_wallet`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from supervision.errors import CrankError
from supervision.logs import LOG_LEVELS

if TYPE_CHECKING:
    from solders.keypair import Keypair

    from actors.lock_actor import LockSettings
    from actors.rpc.config import RpcRouterConfig
    from actors.settlement import SettlementSettings
    from crank_node.node.http_server import HttpLimits
    from crank_node.node.intake_http import IntakeLimits
    from market import PriorityFeePolicy
    from storage.engine import TcpTimeouts

__all__ = [
    "DEFAULT_HTTP_ADDR",
    "DEFAULT_INTAKE_ADDR",
    "DEFAULT_RPC_URL",
    "ConfigFileError",
    "CrankSettings",
    "InvalidSettings",
    "Problem",
    "SettingsError",
    "env_names",
    "flag_name",
    "shown_value",
]

ENV_PREFIX = "CRANK_"
ENV_RPC_URLS = "CRANK_RPC_URLS"
ENV_RPC_ROLES = ("CRANK_RPC_PRIMARY", "CRANK_RPC_SECONDARY", "CRANK_RPC_TERTIARY")
DEFAULT_RPC_URL = "http://127.0.0.1:8899"  # a local validator's (and localnet's) first port
DEFAULT_HTTP_ADDR = "127.0.0.1:8787"  # the operator listener: /health, /status, /metrics
DEFAULT_INTAKE_ADDR = "127.0.0.1:8786"  # the public intake listener: /orders...
DEFAULT = "default"
DB_PATH = "db_path"  # an input-only key: an SQLite file, stored as db_url
_NOT_SHOWN: Any = object()  # a Problem about several values (a conflict) shows none

_ID_HELP = "this node's id in locks and logs (default: HOSTNAME-PID)"
_DB_HELP = "database URL (default: SQLite file var/crank.db in the working directory)"
_RPC_HELP = f"Solana JSON-RPC endpoint URLs, in order (default: {DEFAULT_RPC_URL})"
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
# Upper bounds that no sane operator reaches and a typo or a unit mix-up (seconds
# given as microseconds, an exponent) does: past them a duration overflows a timer
# or means "never", a count exhausts memory, a fee costs real money.
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
MAX_PRIORITY_FEE_MICRO_LAMPORTS = 10**12  # also the largest value u64 maths never nears
MAX_FEE_CAP_LAMPORTS = 1_000_000_000  # 1 SOL per settlement: beyond any sane cap
MAX_FEE_PAYER_FLOOR_LAMPORTS = 10**15  # a million SOL: any floor above is a typo


def _ms(default: int, description: str, *, upper: int, lower: int | None = None) -> Any:
    """A duration in milliseconds: positive (or at least ``lower``), at most ``upper``."""
    if lower is None:
        return Field(default, gt=0, le=upper, description=description)
    return Field(default, ge=lower, le=upper, description=description)


class SettingsError(CrankError):
    """The node's configuration is not valid."""


class ConfigFileError(SettingsError):
    """The configuration file cannot be read."""


class Problem(NamedTuple):
    """One bad setting: its key, its value as it may be shown, where it came from, why."""

    key: str
    value: Any
    source: str
    reason: str

    def __str__(self) -> str:
        shown = "" if self.value is _NOT_SHOWN else f" = {self.value!r}"
        return f"{self.key}{shown} (from {self.source}): {self.reason}"


class InvalidSettings(SettingsError):
    """The node's configuration is not valid."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"invalid configuration:\n{lines}")


def _is_postgresql(db_url: str) -> bool:
    from storage.urls import parse_database_url  # noqa: PLC0415  (slow import)

    return parse_database_url(db_url).get_backend_name() == "postgresql"


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _default_db_url() -> str:
    from storage.urls import DEFAULT_DB_PATH, sqlite_url  # noqa: PLC0415  (SQLAlchemy is slow to import)

    return sqlite_url(Path.cwd() / DEFAULT_DB_PATH)


class CrankSettings(BaseSettings):
    """Everything a node is told by its operator. Durations are in milliseconds."""

    # Only the values load_settings passes in: it layers file, environment and
    # flags itself, so it can record where each value came from.
    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    # Secrets (API keys, passwords) stay out of repr: repr=False.
    instance_id: str = Field(default_factory=_default_instance_id, description=_ID_HELP)
    db_url: str = Field(default_factory=_default_db_url, repr=False, description=_DB_HELP)
    rpc_urls: tuple[str, ...] = Field((DEFAULT_RPC_URL,), repr=False, description=_RPC_HELP)
    wallet_path: Path | None = Field(None, description="keypair file (Solana CLI JSON format)")
    polling_interval_ms: int = _ms(1000, "how often the order store is read", upper=MINUTE_MS)
    # An order this node's intake stores has its market read at once, or as soon as the
    # last read is this old (actors/order_monitor.py): rare orders wait for no poll, and a
    # busy market is read at most once per interval, each read matching a batch. 250:
    # README "Orders and the order poll" (100 cut the latency little more, for much CPU).
    intake_wakeup_ms: int = _ms(
        250,
        "least time between two reads of a market's orders asked for by the orders and "
        "cancels this node takes, or on PostgreSQL any node writes (0: none, they wait for "
        "polling_interval_ms)",
        lower=0,
        upper=MINUTE_MS,
    )
    max_concurrent_matches: int = Field(
        4096, ge=1, le=1_000_000, description="settlements in flight at once"
    )
    shutdown_timeout_ms: int = _ms(30000, "deadline for a phased stop", upper=HOUR_MS)
    # The RPC circuit breaker, under the names operators of cranks know: an endpoint
    # that fails error_threshold times in a row is paused for pause_duration_ms, then
    # half-opened with one probe (RpcRouterConfig's defaults: a unit test keeps them equal).
    error_threshold: int = Field(
        5, ge=1, le=10_000, description="consecutive RPC failures that pause an endpoint"
    )
    pause_duration_ms: int = _ms(
        30000, "how long a failing RPC endpoint is paused before a probe", upper=HOUR_MS
    )
    trace: bool = Field(default=False, description="log every actor message (trace lines)")
    # OpenTelemetry (the `otel` extra): unset, nothing is imported or sent. Set, each handled
    # message is a span sent to <endpoint>/v1/traces (supervision/otel.py); trace lines are
    # written too only with `trace`.
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector for trace spans, e.g. http://127.0.0.1:4318"
    )
    # The operator listener off loopback: both needed (validated with http_addr,
    # declared first so its check sees them).
    operator_allow_remote: bool = Field(
        default=False, description="let http_addr be other than loopback (needs a token file)"
    )
    operator_token_file: Path | None = Field(
        default=None, description="file (mode 0600) holding the operator listener's bearer token"
    )
    http_addr: str = Field(
        DEFAULT_HTTP_ADDR,
        description="HOST:PORT of the operator listener: /health, /status, /metrics",
    )
    intake_addr: str = Field(
        DEFAULT_INTAKE_ADDR, description="HOST:PORT of the public order intake listener"
    )
    # The intake listener's limits (crank_node/node/http_server.py, crank_node/node/intake_http.py).
    http_header_timeout_ms: int = _ms(10000, "time to receive a request head", upper=MINUTE_MS)
    http_body_timeout_ms: int = _ms(10000, "time to receive a request body", upper=MINUTE_MS)
    http_idle_timeout_ms: int = _ms(
        30000, "an idle keep-alive connection is closed after this", upper=10 * MINUTE_MS
    )
    # A signed order is under 2 KB; 16 KiB leaves room, and 1 MiB is far past any use.
    http_max_body_bytes: int = Field(
        16 * 1024, ge=1024, le=1024 * 1024, description="largest request body (413 above)"
    )
    http_max_connections: int = Field(
        1024,
        ge=16,
        le=1_000_000,
        description="intake connections held at once (also kept below the descriptor limit)",
    )
    rate_limit_client_per_s: float = Field(
        50.0, gt=0, le=1_000_000, description="intake requests per second per client address"
    )
    rate_limit_client_burst: int = Field(
        100, ge=1, le=1_000_000, description="requests a client address may send at once"
    )
    rate_limit_maker_per_s: float = Field(
        10.0, gt=0, le=1_000_000, description="signed orders and cancels per second per maker"
    )
    rate_limit_maker_burst: int = Field(
        20, ge=1, le=1_000_000, description="signed requests a maker may send at once"
    )
    log_level: str = Field("INFO", description=f"stderr log level: {', '.join(LOG_LEVELS)}")
    log_json_path: Path | None = Field(default=None, description="JSON-lines log file (rotated)")
    lease_ttl_ms: int = _ms(
        15000, "lease lifetime; renewed at a third", lower=300, upper=10 * MINUTE_MS
    )
    membership_interval_ms: int = _ms(5000, "heartbeat and rebalance period", upper=5 * MINUTE_MS)
    # Nodes on one SQLite file share one host clock, and NTP keeps hosts within
    # milliseconds: 2 s is far above both and above the noise of the check (a
    # heartbeat's write-to-commit delay, a pause), yet keeps order expiry within 2 s
    # of the truth and below the default lease's renewal margin (a third of 15 s),
    # so no live lease looks expired to a peer. Below 0.5 s a busy wait or a GC
    # pause would read as skew; above a minute the check protects nothing.
    clock_skew_max_ms: int = Field(
        2000, ge=500, le=60_000, description="clock disagreement with peers that stops work"
    )
    # RpcRouterConfig's knobs, with its defaults (a unit test keeps them equal).
    rpc_probe_interval_ms: int = _ms(30000, "health probe period", upper=HOUR_MS)
    rpc_attempt_timeout_ms: int = _ms(5000, "timeout of one attempt", upper=5 * MINUTE_MS)
    rpc_request_deadline_ms: int = _ms(15000, "default deadline of a request", upper=10 * MINUTE_MS)
    rpc_max_attempts: int = Field(
        10, ge=1, le=1000, description="attempts per request, retries included"
    )
    rpc_batch_max: int = Field(
        10,
        ge=1,
        le=100,
        description="JSON-RPC requests to one endpoint sent together as one batch, at most "
        "(1: one HTTP request each; an endpoint that refuses or caps batches gets one "
        "request per call from its first refusal on)",
    )
    rpc_send_fanout: int = Field(2, ge=1, le=64, description="endpoints a transaction is sent to")
    rpc_max_in_flight: int = Field(
        1000, ge=1, le=1_000_000, description="requests in flight (backpressure)"
    )
    rpc_low_priority_threshold: Fraction = Field(0.80, description="load refusing low priority")
    rpc_normal_priority_threshold: Fraction = Field(0.95, description="load refusing normal")

    settlement_claim_ttl_ms: int = _ms(
        30000, "a settlement claim's lifetime", lower=300, upper=10 * MINUTE_MS
    )
    # The detection delay of a confirmation is up to one interval: benchmarks/pipeline_bench.py
    # at 50 fills/s, p99 fill -> confirmed 2.45 slots at 200 ms and 2.28 at 100 ms, for 18%
    # more CPU per fill (a round is a getEpochInfo and a getSignatureStatuses, each time).
    settlement_status_interval_ms: int = _ms(
        200,
        "how often the chain is asked about settlements in flight (lower: confirmed sooner, "
        "for more RPC requests and CPU)",
        lower=20,
        upper=MINUTE_MS,
    )
    # A transaction is confirmed at a slot boundary: a status round as each slot arrives sees
    # it at once, where the timer sees it up to one interval late (actors/rpc/slot_feed.py).
    slot_feed_url: str = Field(
        "auto",
        repr=False,
        description="WebSocket PubSub URL whose slotSubscribe paces the settlement status "
        "rounds (a round as each slot arrives; settlement_status_interval_ms only while it "
        "is silent): 'auto' derives one from each RPC URL as Solana clients do (ws or "
        "wss, an explicit port + 1) and follows the first that answers, 'off' keeps the "
        "timer alone",
    )
    # A node no RPC endpoint answers cannot settle: past this it gives its markets and its
    # settlement claims to nodes that can (actors/rpc/reach.py). 30 s: two default lease
    # TTLs, so a blip (a breaker open for a few attempts, an endpoint restarting) never
    # moves a market, while an outage costs at most this plus one takeover before another
    # node settles what this one would have.
    chain_handover_ms: int = _ms(
        30000,
        "hand markets and settlements to other nodes after no RPC endpoint answered this long",
        lower=1000,
        upper=HOUR_MS,
    )
    priority_fee_micro_lamports: int = Field(
        1000,
        ge=0,
        le=MAX_PRIORITY_FEE_MICRO_LAMPORTS,
        description="compute-unit price; the floor when a percentile is set",
    )
    priority_fee_percentile: float | None = Field(
        None, gt=0, le=100, description="pay this percentile of recent fees (unset: fixed price)"
    )
    priority_fee_cap_micro_lamports: int = Field(
        1_000_000,
        ge=0,
        le=MAX_PRIORITY_FEE_MICRO_LAMPORTS,
        description="the most a percentile fee may reach",
    )
    # The hard cap: what one settlement may cost in priority fees (price x compute-unit
    # limit), whatever the price settings say. Paying more needs this raised on purpose.
    priority_fee_max_lamports: int = Field(
        100_000,
        ge=0,
        le=MAX_FEE_CAP_LAMPORTS,
        description="the most priority fee one settlement may cost, in lamports",
    )

    # Percentile fees are asked per market, with the token accounts its settlements
    # write, at this period (low priority: a late answer keeps the last price).
    priority_fee_refresh_ms: int = _ms(10000, "recent-fee refresh period", upper=10 * MINUTE_MS)
    # The compute-unit limit: simulated once per market (and after an attempt ran out),
    # plus the larger of the two margins (market.compute_unit_limit_for says why);
    # compute_unit_limit until known, or always when simulation is off.
    compute_unit_limit: int = Field(
        40_000, ge=1_000, le=1_400_000, description="compute units asked until simulated"
    )
    compute_unit_simulate: bool = Field(True, description="the limit from simulateTransaction")
    compute_unit_margin_percent: int = Field(
        20, ge=0, le=200, description="margin over the simulated units, in percent"
    )
    compute_unit_margin_units: int = Field(
        1000, ge=0, le=200_000, description="margin over the simulated units, at least"
    )
    # first_send: preflight on an attempt's first send, not on its resends
    # (actors/settlement/actor.py says why); always; never.
    settlement_preflight: Literal["first_send", "always", "never"] = Field(
        "first_send", description="when sendTransaction runs preflight"
    )
    # The fee payer's SOL: /health degraded below the floor, unhealthy below what the
    # next fee_payer_min_settlements settlements need (signatures, the hard priority
    # cap and the marker's rent each); a floor below that minimum adds nothing.
    fee_payer_floor_lamports: int = Field(
        100_000_000,
        ge=0,
        le=MAX_FEE_PAYER_FLOOR_LAMPORTS,
        description="fee payer balance below which /health is degraded",
    )
    fee_payer_min_settlements: int = Field(
        10, ge=1, le=1_000_000, description="settlements the fee payer must afford, else unhealthy"
    )

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @field_validator("instance_id")
    @classmethod
    def _check_instance_id(cls, value: str) -> str:
        if not value or len(value) > 200 or any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError("must be 1 to 200 printable characters without spaces")
        return value

    @field_validator("db_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url  # noqa: PLC0415  (slow import)
        from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

        from storage import StorageError  # noqa: PLC0415
        from storage.urls import parse_database_url  # noqa: PLC0415

        try:
            make_url(value)
        except ArgumentError:
            # The value may hold a password: say nothing of it.
            raise ValueError("cannot be parsed as a database URL") from None
        try:
            parse_database_url(value)
        except StorageError as error:  # its messages hide the password
            raise ValueError(str(error)) from None
        return value

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _split_rpc_urls(cls, value: Any) -> Any:
        return _split_list(value) if isinstance(value, str) else value

    @field_validator("rpc_urls")
    @classmethod
    def _check_rpc_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one RPC URL")
        for index, url in enumerate(value):
            reason = _rpc_url_problem(url)
            if reason:
                raise ValueError(f"entry {index + 1} ({_mask_rpc(url)}) {reason}")
        if len(set(value)) != len(value):
            raise ValueError("lists the same URL twice")
        return value

    @field_validator("slot_feed_url")
    @classmethod
    def _check_slot_feed_url(cls, value: str) -> str:
        if value in ("auto", "off"):
            return value
        reason = _rpc_url_problem(value, ("ws", "wss"), "'auto', 'off', or a ws:// or wss:// URL")
        if reason:
            raise ValueError(reason)
        return value

    @field_validator("wallet_path", "log_json_path", "operator_token_file", mode="before")
    @classmethod
    def _check_path(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @field_validator("otel_endpoint")
    @classmethod
    def _check_otel_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        reason = _rpc_url_problem(value)
        if reason is None and (urlsplit(value).query or urlsplit(value).fragment):
            reason = "must have no query or fragment (the OTLP path is added to it)"
        if reason:
            raise ValueError(reason)
        return value.rstrip("/")

    @field_validator("http_addr", "intake_addr")
    @classmethod
    def _check_http_addr(cls, value: str, info: ValidationInfo) -> str:
        host, port = _split_host_port(value)
        if info.field_name == "http_addr":
            _check_operator_exposure(host, info.data)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"not a log level; use one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("lease_ttl_ms")
    @classmethod
    def _check_lease_ttl(cls, value: int, info: ValidationInfo) -> int:
        # On PostgreSQL a dead connection must be found within the lease's life
        # (storage.TcpTimeouts): a TTL too short for that is refused here, not at start.
        from storage.engine import TcpTimeouts  # noqa: PLC0415  (keeps `config` light)

        db_url = info.data.get("db_url")
        if isinstance(db_url, str) and _is_postgresql(db_url):
            TcpTimeouts.for_lease_ttl(value / 1000)  # its ValueError names the smallest TTL
        return value

    @field_validator("membership_interval_ms")
    @classmethod
    def _check_membership(cls, value: int, info: ValidationInfo) -> int:
        ttl = info.data.get("lease_ttl_ms")
        if ttl is not None and value >= ttl:
            raise ValueError(f"must be below lease_ttl_ms ({ttl})")
        return value

    @field_validator("rpc_normal_priority_threshold")
    @classmethod
    def _check_normal_threshold(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("rpc_low_priority_threshold")
        if low is not None and value < low:
            raise ValueError(f"must be at least rpc_low_priority_threshold ({low})")
        return value

    @model_validator(mode="after")
    def _check_fee_cap(self) -> CrankSettings:
        # The price must fit the cap at the default limit (used until a simulation is
        # answered); at run time the cap also binds whatever the recent fees say.
        limit = self.compute_unit_limit
        cap = self.priority_fee_max_lamports
        prices = [("priority_fee_micro_lamports", self.priority_fee_micro_lamports)]
        if self.priority_fee_percentile is not None:
            prices.append(("priority_fee_cap_micro_lamports", self.priority_fee_cap_micro_lamports))
        for key, price in prices:
            lamports = price * limit // 1_000_000
            if lamports > cap:
                raise ValueError(
                    f"{key} = {price} costs {lamports} lamports per settlement at "
                    f"{limit} compute units, over priority_fee_max_lamports "
                    f"({cap}); lower it, or raise priority_fee_max_lamports on purpose"
                )
        return self

    @property
    def fee_payer_min_lamports(self) -> int:
        """What the next ``fee_payer_min_settlements`` settlements can cost at most:
        two signatures, the hard priority cap and the marker's rent each."""
        from market import LAMPORTS_PER_SIGNATURE, MARKER_RENT_LAMPORTS  # noqa: PLC0415

        each = 2 * LAMPORTS_PER_SIGNATURE + self.priority_fee_max_lamports + MARKER_RENT_LAMPORTS
        return self.fee_payer_min_settlements * each

    # -- what the rest of the node builds from it ---------------------------------

    @property
    def origins(self) -> Mapping[str, str]:
        """Each key's origin: ``default``, ``file PATH``, ``env NAME`` or ``flag --x``."""
        return {key: self._origins.get(key, DEFAULT) for key in type(self).model_fields}

    def http_host_port(self) -> tuple[str, int]:
        """``http_addr`` as the (host, port) a server binds (IPv6 without brackets)."""
        return _split_host_port(self.http_addr)

    def intake_host_port(self) -> tuple[str, int]:
        """``intake_addr`` as the (host, port) a server binds (IPv6 without brackets)."""
        return _split_host_port(self.intake_addr)

    def http_limits(self) -> HttpLimits:
        """The intake listener's connection limits (before the descriptor budget)."""
        from crank_node.node.http_server import HttpLimits  # noqa: PLC0415  (aiohttp is slow to import)

        return HttpLimits(
            header_timeout_s=self.http_header_timeout_ms / 1000,
            body_timeout_s=self.http_body_timeout_ms / 1000,
            idle_timeout_s=self.http_idle_timeout_ms / 1000,
            max_body_bytes=self.http_max_body_bytes,
            max_connections=self.http_max_connections,
        )

    def intake_limits(self) -> IntakeLimits:
        """Intake's body limits and its per-client and per-maker token buckets."""
        from crank_node.node.intake_http import IntakeLimits  # noqa: PLC0415  (aiohttp is slow to import)

        return IntakeLimits(
            max_body_bytes=self.http_max_body_bytes,
            body_timeout_s=self.http_body_timeout_ms / 1000,
            client_rate_per_s=self.rate_limit_client_per_s,
            client_burst=self.rate_limit_client_burst,
            maker_rate_per_s=self.rate_limit_maker_per_s,
            maker_burst=self.rate_limit_maker_burst,
        )

    @property
    def shutdown_timeout_s(self) -> float:
        return self.shutdown_timeout_ms / 1000

    def tcp_timeouts(self) -> TcpTimeouts | None:
        """The PostgreSQL connection's TCP timeouts, derived from the lease TTL (None on
        SQLite, which has no connection to lose). ValueError if the TTL is too short."""
        from storage.engine import TcpTimeouts  # noqa: PLC0415  (keeps `config` light)

        if not _is_postgresql(self.db_url):
            return None
        return TcpTimeouts.for_lease_ttl(self.lease_ttl_ms / 1000)

    def engine_options(self) -> dict[str, Any]:
        """What the node's database engine is opened with (:func:`storage.open_engine`),
        beyond the URL: on PostgreSQL, the TCP timeouts of the lease TTL and a deadline
        on every call's answer (``lock_timeout`` plus a third of the TTL), so a
        connection that hangs half-open costs an actor one deadline, not its life; a
        transaction left idle longer than a lease TTL (its node frozen or cut off
        mid-way) is ended by the server, since its row locks would block a takeover."""
        from storage.engine import DEFAULT_BUSY_TIMEOUT_MS  # noqa: PLC0415

        tcp = self.tcp_timeouts()
        return {
            "tcp_timeouts": tcp,
            "answer_timeout_ms": None
            if tcp is None
            else tcp.answer_timeout_ms(DEFAULT_BUSY_TIMEOUT_MS),
            "idle_in_transaction_timeout_ms": self.lease_ttl_ms,
        }

    def lock_settings(self) -> LockSettings:
        """The LockActor's settings: this node's id, lease TTL and membership period."""
        from actors.lock_actor import LockSettings  # noqa: PLC0415  (keeps `config` light)

        return LockSettings(
            node_id=self.instance_id,
            lease_ttl_s=self.lease_ttl_ms / 1000,
            membership_interval_s=self.membership_interval_ms / 1000,
            clock_skew_max_s=self.clock_skew_max_ms / 1000,
            chain_handover_s=self.chain_handover_ms / 1000,
        )

    def settlement_settings(self) -> SettlementSettings:
        """The SettlementActor's settings: claim TTL, in-flight bound, priority fee policy."""
        from actors.settlement import SettlementSettings  # noqa: PLC0415  (keeps `config` light)
        from market import FixedPriorityFee, PercentilePriorityFee  # noqa: PLC0415

        fee: PriorityFeePolicy = FixedPriorityFee(self.priority_fee_micro_lamports)
        if self.priority_fee_percentile is not None:
            fee = PercentilePriorityFee(
                self.priority_fee_percentile,
                cap_micro_lamports=self.priority_fee_cap_micro_lamports,
                floor_micro_lamports=self.priority_fee_micro_lamports,
            )
        return SettlementSettings(
            claim_ttl_s=self.settlement_claim_ttl_ms / 1000,
            status_interval_s=self.settlement_status_interval_ms / 1000,
            max_in_flight=self.max_concurrent_matches,
            fee_policy=fee,
            fee_refresh_s=self.priority_fee_refresh_ms / 1000,
            compute_unit_limit=self.compute_unit_limit,
            max_priority_fee_lamports=self.priority_fee_max_lamports,
            simulate_compute_units=self.compute_unit_simulate,
            compute_unit_margin_percent=self.compute_unit_margin_percent,
            compute_unit_margin_units=self.compute_unit_margin_units,
            preflight=self.settlement_preflight,
            chain_handover_s=self.chain_handover_ms / 1000,
            slot_feed_urls=self.pubsub_urls(),
        )

    def pubsub_urls(self) -> tuple[str, ...]:
        """The slot feed's URLs: ``slot_feed_url``, or one derived from each RPC URL in
        their order (the feed follows the first and moves on when it fails); none if
        'off'."""
        from actors.rpc.slot_feed import pubsub_url_for  # noqa: PLC0415  (keeps `config` light)

        if self.slot_feed_url == "off":
            return ()
        if self.slot_feed_url == "auto":
            return tuple(dict.fromkeys(pubsub_url_for(url) for url in self.rpc_urls))
        return (self.slot_feed_url,)

    def rpc_router_config(self) -> RpcRouterConfig:
        """The RpcRouter's configuration: one endpoint per URL, named by its masked URL."""
        from actors.rpc.config import RpcEndpoint, RpcRouterConfig  # noqa: PLC0415

        endpoints = tuple(
            RpcEndpoint(url, name=name)
            for url, name in zip(self.rpc_urls, _endpoint_names(self.rpc_urls), strict=True)
        )
        return RpcRouterConfig(
            endpoints=endpoints,
            failure_threshold=self.error_threshold,
            breaker_reset_s=self.pause_duration_ms / 1000,
            probe_interval_s=self.rpc_probe_interval_ms / 1000,
            attempt_timeout_s=self.rpc_attempt_timeout_ms / 1000,
            default_deadline_s=self.rpc_request_deadline_ms / 1000,
            max_attempts=self.rpc_max_attempts,
            send_fanout=self.rpc_send_fanout,
            batch_max=self.rpc_batch_max,
            max_in_flight=self.rpc_max_in_flight,
            low_threshold=self.rpc_low_priority_threshold,
            normal_threshold=self.rpc_normal_priority_threshold,
        )

    def load_wallet(self) -> Keypair:
        """The signing keypair from ``wallet_path`` (see
        :func:`crank_node.node.keypairs.load_keypair`)."""
        from crank_node.node.keypairs import load_keypair  # noqa: PLC0415  (solders is slow to import)

        if self.wallet_path is None:
            reason = f"not set; the node signs with it: {_how_to_set('wallet_path')}"
            raise InvalidSettings([Problem("wallet_path", _NOT_SHOWN, DEFAULT, reason)])
        return load_keypair(self.wallet_path)

    def shown(self) -> list[tuple[str, Any, str]]:
        """Every key with its value as it may be shown (secrets masked) and its origin."""
        origins = self.origins
        return [(key, shown_value(key, getattr(self, key)), origins[key]) for key in origins]


def env_names(key: str) -> tuple[str, ...]:
    """The environment variables that set ``key``."""
    if key == "rpc_urls":
        return (ENV_RPC_URLS, *ENV_RPC_ROLES)
    if key == "db_url":
        return ("CRANK_DB_URL", "CRANK_DB_PATH")
    return (ENV_PREFIX + key.upper(),)


def flag_name(key: str) -> str:
    """The command-line flag that sets ``key``."""
    return "--rpc-url" if key == "rpc_urls" else "--" + key.replace("_", "-")


# -- showing values -------------------------------------------------------------------


def shown_value(key: str, value: Any) -> Any:
    """``value`` as it may be printed or logged: secrets masked, paths as strings."""
    if key == "rpc_urls" and isinstance(value, list | tuple):
        return [_mask_rpc(str(url)) for url in value]
    if key in ("rpc_urls", "slot_feed_url"):
        return _mask_rpc(str(value))
    if key == "db_url":
        return _mask_db_url(value)
    return str(value) if isinstance(value, Path) else value


def _mask_rpc(url: str) -> str:
    from actors.rpc.redact import mask_url  # noqa: PLC0415  (importing actors starts slow)

    return mask_url(url)


def _mask_db_url(value: Any) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (slow import)
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        return make_url(str(value)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not shown: cannot be parsed, may hold a secret>"


def _endpoint_names(urls: tuple[str, ...]) -> list[str]:
    """Masked URLs; two that mask alike (keys in the path) get ``#1``, ``#2``."""
    masked = [_mask_rpc(url) for url in urls]
    return [f"{m} #{i + 1}" if masked.count(m) > 1 else m for i, m in enumerate(masked)]


def _rpc_url_problem(
    url: str,
    schemes: tuple[str, ...] = ("http", "https"),
    wanted: str = "an http:// or https:// URL",
) -> str | None:
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in schemes:
        return f"must be {wanted}"
    return None if host else "has no host"


def _check_operator_exposure(host: str, data: Mapping[str, Any]) -> None:
    """/status and /metrics off loopback only when asked for twice: the flag, and a
    token file (whose permissions are checked when the node reads it at start)."""
    from crank_node.node.http_server import is_loopback  # noqa: PLC0415  (aiohttp is slow to import)

    if is_loopback(host):
        return
    if not data.get("operator_allow_remote"):
        raise ValueError(
            "is not loopback: the operator listener (/health, /status, /metrics) would "
            "answer the network; set operator_allow_remote and operator_token_file to mean "
            "it, or keep it on 127.0.0.1 (intake_addr is the listener for makers)"
        )
    if data.get("operator_token_file") is None:
        raise ValueError(
            "is not loopback: operator_token_file must name the file (mode 0600) holding "
            "the bearer token the operator listener then requires"
        )


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT with a port 0..65535 (e.g. 127.0.0.1:8787, [::1]:8787)")
    return host, int(port)


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _how_to_set(key: str) -> str:
    envs = " or ".join(env_names(key))
    return f"give {flag_name(key)}, {envs}, or {key} in the config file"
