"""The settings model and its layers, without files: defaults, environment, flags."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from actors.lock_actor import LockSettings
from actors.rpc.config import RpcRouterConfig
from crank_node.node.settings import (
    DEFAULT_HTTP_ADDR,
    DEFAULT_RPC_URL,
    CrankSettings,
    InvalidSettings,
)
from crank_node.node.settings_layers import load_settings
from storage.urls import sqlite_url

SECRET_RPC = "https://user:pa55@rpc.example.com/v2/APIKEY123?api-key=QUERYKEY"


def load(env: dict[str, str] | None = None, **flags: Any) -> CrankSettings:
    """Settings from exactly ``env`` (not the process's environment) and ``flags``."""
    return load_settings(environ=env or {}, flags=flags)


def problem_for(env: dict[str, str] | None = None, **flags: Any) -> InvalidSettings:
    with pytest.raises(InvalidSettings) as caught:
        load(env, **flags)
    return caught.value


def test_defaults_apply_when_nothing_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no file, environment or flag, every key has its documented default and says so."""
    monkeypatch.chdir(tmp_path)
    settings = load()
    assert settings.shutdown_timeout_ms == 30000
    assert settings.http_addr == DEFAULT_HTTP_ADDR == "127.0.0.1:8787"
    assert settings.rpc_urls == (DEFAULT_RPC_URL,)
    assert settings.db_url == sqlite_url(tmp_path / "var" / "crank.db")
    assert settings.instance_id == f"{socket.gethostname()}-{os.getpid()}"
    assert settings.wallet_path is None and settings.trace is False
    assert set(settings.origins.values()) == {"default"}


def test_loading_touches_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the default SQLite setting creates neither the database file nor its folder."""
    monkeypatch.chdir(tmp_path)
    load()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "raw", "key", "expected"),
    [
        (
            "CRANK_DB_URL",
            "postgresql+psycopg://u@db/crank",
            "db_url",
            "postgresql+psycopg://u@db/crank",
        ),
        ("CRANK_DB_PATH", "/srv/crank/node.db", "db_url", sqlite_url("/srv/crank/node.db")),
        ("CRANK_RPC_URLS", "http://a:1, http://b:2", "rpc_urls", ("http://a:1", "http://b:2")),
        ("CRANK_RPC_PRIMARY", "http://a:1", "rpc_urls", ("http://a:1",)),
        ("CRANK_INSTANCE_ID", "node-7", "instance_id", "node-7"),
        ("CRANK_WALLET_PATH", "/keys/id.json", "wallet_path", Path("/keys/id.json")),
        ("CRANK_POLLING_INTERVAL_MS", "250", "polling_interval_ms", 250),
        ("CRANK_MAX_CONCURRENT_MATCHES", "3", "max_concurrent_matches", 3),
        ("CRANK_SHUTDOWN_TIMEOUT_MS", "45000", "shutdown_timeout_ms", 45000),
        ("CRANK_ERROR_THRESHOLD", "9", "error_threshold", 9),
        ("CRANK_PAUSE_DURATION_MS", "1500", "pause_duration_ms", 1500),
        ("CRANK_TRACE", "true", "trace", True),
        ("CRANK_HTTP_ADDR", "127.0.0.2:9000", "http_addr", "127.0.0.2:9000"),
        ("CRANK_INTAKE_ADDR", "0.0.0.0:9000", "intake_addr", "0.0.0.0:9000"),
        ("CRANK_HTTP_MAX_BODY_BYTES", "4096", "http_max_body_bytes", 4096),
        ("CRANK_RATE_LIMIT_MAKER_PER_S", "2.5", "rate_limit_maker_per_s", 2.5),
        ("CRANK_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        (
            "CRANK_LOG_JSON_PATH",
            "/var/log/crank.jsonl",
            "log_json_path",
            Path("/var/log/crank.jsonl"),
        ),
        ("CRANK_LEASE_TTL_MS", "20000", "lease_ttl_ms", 20000),
        ("CRANK_RPC_MAX_IN_FLIGHT", "50", "rpc_max_in_flight", 50),
    ],
)
def test_every_operator_environment_name_sets_its_key(
    name: str, raw: str, key: str, expected: Any
) -> None:
    """Each CRANK_* name operators use sets its key, parsed to the key's type, and is named as the source."""
    settings = load({name: raw})
    assert getattr(settings, key) == expected
    assert settings.origins[key] == f"env {name}"


def test_the_three_rpc_role_names_give_the_endpoints_in_order() -> None:
    """CRANK_RPC_PRIMARY, _SECONDARY and _TERTIARY become rpc_urls in that order, all named."""
    settings = load(
        {
            "CRANK_RPC_TERTIARY": "http://c:3",
            "CRANK_RPC_PRIMARY": "http://a:1",
            "CRANK_RPC_SECONDARY": "http://b:2",
        }
    )
    assert settings.rpc_urls == ("http://a:1", "http://b:2", "http://c:3")
    assert settings.origins["rpc_urls"] == (
        "env CRANK_RPC_PRIMARY, CRANK_RPC_SECONDARY, CRANK_RPC_TERTIARY"
    )


def test_the_slot_feed_follows_every_rpc_endpoints_pubsub_in_their_order() -> None:
    """'auto': one PubSub URL per RPC URL (port + 1, ws/wss), first first, duplicates
    once; an explicit URL alone; 'off' none. The settlement actor gets them all, so its
    feed outlives the first endpoint."""
    settings = load(
        {
            "CRANK_RPC_PRIMARY": "http://a:8899",
            "CRANK_RPC_SECONDARY": "https://b.example/rpc",
            "CRANK_RPC_TERTIARY": "http://a:8899/",
        }
    )
    expected = ("ws://a:8900", "wss://b.example/rpc", "ws://a:8900/")
    assert settings.pubsub_urls() == expected
    assert settings.settlement_settings().slot_feed_urls == expected
    assert load(slot_feed_url="wss://feed.example/ws").pubsub_urls() == ("wss://feed.example/ws",)
    assert load(slot_feed_url="off").settlement_settings().slot_feed_urls == ()


def test_flags_win_over_the_environment() -> None:
    """A flag beats the environment for the same key; other keys keep their own sources."""
    settings = load(
        {"CRANK_POLLING_INTERVAL_MS": "250", "CRANK_ERROR_THRESHOLD": "7"},
        polling_interval_ms="100",
    )
    assert settings.polling_interval_ms == 100
    assert settings.origins["polling_interval_ms"] == "flag --polling-interval-ms"
    assert settings.error_threshold == 7
    assert settings.origins["error_threshold"] == "env CRANK_ERROR_THRESHOLD"


def test_a_db_path_flag_wins_over_a_db_url_in_the_environment() -> None:
    """--db-path (a higher layer) replaces CRANK_DB_URL: the two forms only conflict within one layer."""
    settings = load({"CRANK_DB_URL": "postgresql://u@db/crank"}, db_path="/tmp/flag.db")
    assert settings.db_url == sqlite_url("/tmp/flag.db")
    assert settings.origins["db_url"] == "flag --db-path"


def test_an_empty_environment_variable_counts_as_unset() -> None:
    """CRANK_TRACE= (empty) leaves the default instead of failing to parse."""
    settings = load({"CRANK_TRACE": "", "CRANK_POLLING_INTERVAL_MS": "  "})
    assert settings.trace is False
    assert settings.origins["trace"] == "default"


def test_both_database_forms_in_the_environment_are_refused_naming_both() -> None:
    """CRANK_DB_URL with CRANK_DB_PATH is an error on db_url saying which variable to drop."""
    error = problem_for({"CRANK_DB_URL": "sqlite:///a.db", "CRANK_DB_PATH": "b.db"})
    assert [problem.key for problem in error.problems] == ["db_url"]
    assert "drop CRANK_DB_PATH to use the URL, or CRANK_DB_URL" in str(error)


def test_both_rpc_forms_in_the_environment_are_refused() -> None:
    """CRANK_RPC_URLS with any CRANK_RPC_<ROLE> is an error on rpc_urls naming both."""
    error = problem_for({"CRANK_RPC_URLS": "http://a:1", "CRANK_RPC_PRIMARY": "http://b:2"})
    assert [problem.key for problem in error.problems] == ["rpc_urls"]
    assert "CRANK_RPC_URLS and CRANK_RPC_PRIMARY" in str(error)


def test_a_secondary_rpc_without_a_primary_is_refused() -> None:
    """CRANK_RPC_SECONDARY alone is an error naming the missing CRANK_RPC_PRIMARY."""
    error = problem_for({"CRANK_RPC_SECONDARY": "http://b:2"})
    assert "without CRANK_RPC_PRIMARY" in str(error)


@pytest.mark.parametrize(
    ("env", "key", "reason"),
    [
        ({"CRANK_MAX_CONCURRENT_MATCHES": "many"}, "max_concurrent_matches", "valid integer"),
        ({"CRANK_POLLING_INTERVAL_MS": "-5"}, "polling_interval_ms", "greater than 0"),
        ({"CRANK_PAUSE_DURATION_MS": "0"}, "pause_duration_ms", "greater than 0"),
        ({"CRANK_POLLING_INTERVAL_MS": "1.5"}, "polling_interval_ms", "valid integer"),
        ({"CRANK_TRACE": "perhaps"}, "trace", "valid boolean"),
        ({"CRANK_HTTP_ADDR": "localhost"}, "http_addr", "HOST:PORT"),
        ({"CRANK_HTTP_ADDR": "127.0.0.1:70000"}, "http_addr", "0..65535"),
        ({"CRANK_HTTP_ADDR": "0.0.0.0:8787"}, "http_addr", "set operator_allow_remote"),
        ({"CRANK_HTTP_ADDR": "[::]:8787"}, "http_addr", "is not loopback"),
        ({"CRANK_INTAKE_ADDR": "nowhere"}, "intake_addr", "HOST:PORT"),
        ({"CRANK_HTTP_MAX_BODY_BYTES": "1073741824"}, "http_max_body_bytes", "less than or equal"),
        ({"CRANK_HTTP_HEADER_TIMEOUT_MS": "0"}, "http_header_timeout_ms", "greater than 0"),
        ({"CRANK_RATE_LIMIT_CLIENT_PER_S": "0"}, "rate_limit_client_per_s", "greater than 0"),
        ({"CRANK_LOG_LEVEL": "LOUD"}, "log_level", "not a log level"),
        ({"CRANK_RPC_URLS": "ws://rpc:1"}, "rpc_urls", "http:// or https://"),
        ({"CRANK_RPC_URLS": "http://a:1,http://a:1"}, "rpc_urls", "same URL twice"),
        ({"CRANK_INSTANCE_ID": "two words"}, "instance_id", "without spaces"),
        ({"CRANK_OTEL_ENDPOINT": "grpc://collector:4317"}, "otel_endpoint", "http:// or https://"),
        ({"CRANK_OTEL_ENDPOINT": "http://:4318"}, "otel_endpoint", "has no host"),
        ({"CRANK_OTEL_ENDPOINT": "http://c:4318/?x=1"}, "otel_endpoint", "no query"),
        ({"CRANK_DB_URL": "mysql://u@h/db"}, "db_url", "unsupported database URL"),
        ({"CRANK_MEMBERSHIP_INTERVAL_MS": "20000"}, "membership_interval_ms", "below lease_ttl_ms"),
        (
            {"CRANK_RPC_LOW_PRIORITY_THRESHOLD": "1.5"},
            "rpc_low_priority_threshold",
            "less than or equal to 1",
        ),
    ],
)
def test_each_bad_value_is_refused_naming_the_key_the_value_the_source_and_why(
    env: dict[str, str], key: str, reason: str
) -> None:
    """A bad value raises InvalidSettings whose problem names the key, shows the value, the env name and the reason."""
    ((name, raw),) = env.items()
    error = problem_for(env)
    assert [problem.key for problem in error.problems] == [key]
    problem = error.problems[0]
    assert problem.source == f"env {name}"
    assert reason in problem.reason
    assert f"{key} = " in str(error) and f"(from env {name})" in str(error)
    assert raw.split(",")[0] in str(problem.value)


def test_the_otel_endpoint_is_off_by_default_and_read_from_env_or_flag() -> None:
    """Unset by default (no export); the environment or the flag sets it, a trailing slash
    dropped."""
    assert load().otel_endpoint is None
    assert load({"CRANK_OTEL_ENDPOINT": "http://127.0.0.1:4318/"}).otel_endpoint == (
        "http://127.0.0.1:4318"
    )
    assert load(otel_endpoint="https://otel.example").otel_endpoint == "https://otel.example"


def test_every_bad_key_is_reported_at_once() -> None:
    """Two bad keys give one error listing both, so an operator fixes them in one go."""
    error = problem_for({"CRANK_POLLING_INTERVAL_MS": "-1", "CRANK_LOG_LEVEL": "LOUD"})
    assert {problem.key for problem in error.problems} == {"polling_interval_ms", "log_level"}


@pytest.mark.parametrize(
    ("env", "secret"),
    [
        ({"CRANK_DB_URL": "mysql://bob:hunter2@db/crank"}, "hunter2"),
        ({"CRANK_DB_URL": "postgresql://bob:hunter2@db"}, "hunter2"),
        ({"CRANK_DB_URL": "::not a url hunter2::"}, "hunter2"),
        ({"CRANK_RPC_URLS": "ftp://rpc.example.com/v2/APIKEY123"}, "APIKEY123"),
        ({"CRANK_RPC_URLS": f"{SECRET_RPC},{SECRET_RPC}"}, "APIKEY123"),
    ],
)
def test_a_bad_secret_value_is_masked_in_the_error(env: dict[str, str], secret: str) -> None:
    """Errors about database or RPC URLs never quote a password or API key, nor chain pydantic's error (which would)."""
    error = problem_for(env)
    assert secret not in str(error)
    assert secret not in repr(error.problems)
    assert error.__context__ is None and error.__cause__ is None


def test_repr_of_the_settings_hides_urls_that_may_carry_secrets() -> None:
    """repr(settings) (what a careless log line prints) shows neither RPC API keys nor database passwords."""
    settings = load({"CRANK_RPC_URLS": SECRET_RPC, "CRANK_DB_URL": "postgresql://bob:hunter2@db/c"})
    text = repr(settings)
    assert "APIKEY123" not in text and "QUERYKEY" not in text and "pa55" not in text
    assert "hunter2" not in text
    assert "polling_interval_ms=1000" in text


def test_shown_values_mask_rpc_urls_and_database_passwords() -> None:
    """shown() masks each RPC URL with mask_url and the database password, and keeps the origins."""
    settings = load({"CRANK_RPC_URLS": SECRET_RPC, "CRANK_DB_URL": "postgresql://bob:hunter2@db/c"})
    shown = {key: (value, source) for key, value, source in settings.shown()}
    assert shown["rpc_urls"] == (["https://rpc.example.com/***?***"], "env CRANK_RPC_URLS")
    assert shown["db_url"] == ("postgresql://bob:***@db/c", "env CRANK_DB_URL")


def test_lock_settings_carry_the_node_id_and_the_lease_timings_in_seconds() -> None:
    """lock_settings() builds the LockActor's LockSettings from instance_id and the *_ms keys."""
    settings = load(
        {"CRANK_INSTANCE_ID": "n1", "CRANK_LEASE_TTL_MS": "9000"}, membership_interval_ms="3000"
    )
    lock = settings.lock_settings()
    assert isinstance(lock, LockSettings)
    assert (lock.node_id, lock.lease_ttl_s, lock.membership_interval_s) == ("n1", 9.0, 3.0)


def test_the_rpc_router_config_defaults_are_the_routers_own() -> None:
    """With no RPC knob set, rpc_router_config() equals RpcRouterConfig.from_urls(urls): no default drifts."""
    settings = load({"CRANK_RPC_URLS": "http://a:1,http://b:2"})
    built = settings.rpc_router_config()
    reference = RpcRouterConfig.from_urls(["http://a:1", "http://b:2"])
    assert dataclasses.asdict(built) == dataclasses.asdict(reference)


def test_the_rpc_knobs_reach_the_router_config_in_its_units() -> None:
    """Each RPC key (rpc_*, and the breaker's error_threshold and pause_duration_ms) lands on
    its RpcRouterConfig field, milliseconds turned into seconds."""
    built = load(
        {"CRANK_PAUSE_DURATION_MS": "2500", "CRANK_RPC_SEND_FANOUT": "1"},
        error_threshold="2",
        rpc_request_deadline_ms="4000",
        rpc_low_priority_threshold="0.5",
    ).rpc_router_config()
    assert (built.breaker_reset_s, built.send_fanout, built.failure_threshold) == (2.5, 1, 2)
    assert (built.default_deadline_s, built.low_threshold) == (4.0, 0.5)


def test_endpoints_whose_masked_urls_collide_get_distinct_names() -> None:
    """Two URLs differing only in a path API key are told apart by number, never by the key."""
    urls = "https://rpc.example.com/v2/KEYONE,https://rpc.example.com/v2/KEYTWO"
    names = [
        endpoint.name for endpoint in load({"CRANK_RPC_URLS": urls}).rpc_router_config().endpoints
    ]
    assert names == ["https://rpc.example.com/*** #1", "https://rpc.example.com/*** #2"]


def test_the_http_address_splits_into_host_and_port_ipv6_included() -> None:
    """http_host_port() gives what a server binds; an IPv6 host keeps its brackets in http_addr."""
    assert load().http_host_port() == ("127.0.0.1", 8787)
    settings = load({"CRANK_HTTP_ADDR": "[::1]:0"})
    assert settings.http_addr == "[::1]:0"
    assert settings.http_host_port() == ("::1", 0)


def test_loading_the_wallet_without_a_wallet_path_says_how_to_set_one() -> None:
    """load_wallet() with no wallet_path raises InvalidSettings naming the key, its flag and env name."""
    with pytest.raises(InvalidSettings) as caught:
        load().load_wallet()
    assert caught.value.problems[0].key == "wallet_path"
    assert "--wallet-path" in str(caught.value) and "CRANK_WALLET_PATH" in str(caught.value)


def test_the_settings_object_is_immutable() -> None:
    """Settings are frozen: the actors share one object and none may change it."""
    settings = load()
    with pytest.raises(ValueError, match="frozen"):
        settings.polling_interval_ms = 5  # type: ignore[misc]


def test_a_remote_operator_address_needs_the_flag_and_a_token_file_both() -> None:
    """http_addr off loopback is refused with the flag alone (no token file named), and
    accepted with both; intake_addr may be 0.0.0.0 without either (it faces makers)."""
    remote = {"CRANK_HTTP_ADDR": "0.0.0.0:8787", "CRANK_OPERATOR_ALLOW_REMOTE": "true"}
    error = problem_for(remote)
    assert [problem.key for problem in error.problems] == ["http_addr"]
    assert "operator_token_file" in error.problems[0].reason
    settings = load({**remote, "CRANK_OPERATOR_TOKEN_FILE": "/etc/crank/token"})
    assert settings.operator_token_file == Path("/etc/crank/token")
    assert load({"CRANK_INTAKE_ADDR": "0.0.0.0:8786"}).intake_host_port() == ("0.0.0.0", 8786)
