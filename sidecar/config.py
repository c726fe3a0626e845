"""Settings: defaults, then an optional YAML file, then environment variables (which win).

Every setting has an environment variable `SIDECAR_<NAME>` and a YAML key `<name>` (lower case).
The YAML file is named by `SIDECAR_CONFIG` or `pdex-sidecar serve --config FILE`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    upstream_url: str = "http://localhost:8080/fhir"
    public_url: str = "http://localhost:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # 0: no metrics listener
    data_dir: Path = Path(".data")
    store_url: str = ""  # postgresql://USER:PASS@HOST:PORT/DB (replicas share it), sqlite:///PATH; unset: data_dir
    files_dir: str = ""  # job files, on a volume every replica mounts; unset: {data_dir}/files
    job_lease_seconds: float = 30.0
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 60.0
    upstream_pool_size: int = 64
    log_level: str = "INFO"
    fhir_packages_dir: str = ""
    access_token_lifetime: int = 300
    clock_skew_seconds: float = 30.0
    jwks_cache_seconds: float = 300.0
    state_refresh_seconds: float = 0.25
    lookback_years: int = 5
    prior_auth_months: int = 12
    drug_prior_authorizations: bool = False
    service_date_timezone: str = "UTC"
    sensitive_data_dir: str = ""
    sensitive_categories: str = "sud,hiv,mental-health,reproductive-health"
    disclosure_cache_seconds: float = 30.0
    payer_identifiers: str = ""
    payer_organization: str = ""
    member_identifier_system: str = ""
    member_match_consent_required: bool = False
    member_match_member_id: bool = True
    match_threshold: float = 20.0
    match_margin: float = 6.0
    match_individual_minimum: float = 8.0
    match_weights_file: str = ""
    match_name_frequency_seconds: float = 60.0
    match_window_seconds: float = 3600.0
    match_card_variants: int = 3
    match_failure_floor: int = 20
    match_failure_rate: float = 0.9
    job_concurrency: int = 2
    export_retention_seconds: float = 86400.0
    export_since_floor: bool = False  # PDex 2.2.0 §pdex-176: `_since` is never silently rewritten
    bulk_match_concurrency: int = 4
    pull_batch_size: int = 1000
    pull_retries: int = 5
    pull_backoff_seconds: float = 1.0
    pull_no_match_retry_days: float = 30.0
    pull_interval_days: float = 90.0
    pull_optin_check_hours: float = 24.0
    member_oidc_issuer: str = ""
    member_oidc_client_id: str = ""
    member_oidc_client_secret: str = ""
    member_oidc_subject_system: str = ""
    member_templates_dir: str = ""
    member_session_minutes: float = 30.0

    @property
    def upstream_base(self) -> str:
        return self.upstream_url.rstrip("/")

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def public_fhir_base(self) -> str:
        return f"{self.public_base}/fhir"

    @property
    def job_files_dir(self) -> Path:
        return Path(self.files_dir) if self.files_dir else self.data_dir / "files"

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.service_date_timezone)

    @property
    def sensitive_category_list(self) -> list[str]:
        return [c.strip() for c in self.sensitive_categories.split(",") if c.strip()]

    def validate(self) -> "Settings":
        for name in ("upstream_url", "public_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"{name} must be an absolute http(s) URL, got {getattr(self, name)!r}")
            if parts.query or parts.fragment:
                raise ConfigError(f"{name} must not carry a query or fragment")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port out of range: {self.port}")
        if not 0 <= self.metrics_port < 65536 or self.metrics_port == self.port:
            raise ConfigError(f"metrics_port must be 0 (off) or a port other than port, got {self.metrics_port}")
        if self.upstream_pool_size < 1:
            raise ConfigError("upstream_pool_size must be at least 1")
        if not 0 < self.access_token_lifetime <= 3600:
            raise ConfigError("access_token_lifetime must be between 1 and 3600 seconds")
        if not 0 <= self.clock_skew_seconds <= 300:
            raise ConfigError("clock_skew_seconds must be between 0 and 300")
        if self.state_refresh_seconds <= 0:
            raise ConfigError("state_refresh_seconds must be positive")
        if self.store_url and not self.store_url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ConfigError("store_url must be postgresql://USER:PASS@HOST:PORT/DB or sqlite:///PATH")
        if self.job_lease_seconds < 3:
            raise ConfigError("job_lease_seconds must be at least 3")
        if not 1 <= self.lookback_years <= 100:
            raise ConfigError("lookback_years must be between 1 and 100")
        if not 1 <= self.prior_auth_months <= 120:
            raise ConfigError("prior_auth_months must be between 1 and 120")
        if self.match_margin < 0 or self.match_window_seconds <= 0 or self.match_card_variants < 1 \
                or self.match_name_frequency_seconds <= 0:
            raise ConfigError("match_margin, match_window_seconds, match_card_variants and match_name_frequency_seconds "
                              "must be positive")
        if not 0 < self.match_failure_rate <= 1:
            raise ConfigError("match_failure_rate must be in (0, 1]")
        if self.job_concurrency < 1 or self.bulk_match_concurrency < 1 or self.export_retention_seconds <= 0:
            raise ConfigError("job_concurrency, bulk_match_concurrency and export_retention_seconds must be positive")
        if self.pull_batch_size < 1 or self.pull_retries < 0 or self.pull_backoff_seconds < 0:
            raise ConfigError("pull_batch_size must be positive; pull_retries and pull_backoff_seconds not negative")
        if self.pull_no_match_retry_days < 0 or self.pull_interval_days <= 0:
            raise ConfigError("pull_no_match_retry_days must not be negative and pull_interval_days positive")
        if self.pull_optin_check_hours <= 0 or self.member_session_minutes <= 0:
            raise ConfigError("pull_optin_check_hours and member_session_minutes must be positive")
        if self.member_oidc_issuer and not (self.member_oidc_client_id and self.member_oidc_subject_system):
            raise ConfigError("member_oidc_issuer needs member_oidc_client_id and member_oidc_subject_system")
        organization = self.payer_organization.strip()
        system, _, value = organization.partition("|")
        literal = organization.startswith("Organization/") and organization != "Organization/"
        if organization and not literal and not (system and value):
            raise ConfigError("payer_organization must be Organization/id or system|value")
        if self.disclosure_cache_seconds < 0:
            raise ConfigError("disclosure_cache_seconds must not be negative")
        try:
            ZoneInfo(self.service_date_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"service_date_timezone: unknown time zone {self.service_date_timezone!r}") from exc
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    default = _FIELDS[name].default
    try:
        if isinstance(default, bool):
            return _boolean(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: cannot read {raw!r} ({exc})") from exc


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get("SIDECAR_CONFIG")
    if path:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(document, dict):
            raise ConfigError(f"config file {path} must hold a mapping")
        for key, raw in document.items():
            if key not in _FIELDS:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw)
    for name in _FIELDS:
        raw = env.get(f"SIDECAR_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw)
    return Settings(**values).validate()
