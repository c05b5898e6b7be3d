"""Configuration from ``CERTCLOUD_*`` environment variables (nested with ``__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Certcloud's own certificate-policy OID (a UUID arc, RFC 4122 / X.667); never KFTC's.
DEFAULT_POLICY_OID = "2.25.271286366218458123356003116766787905379"
DEFAULT_TSA_POLICY_OID = f"{DEFAULT_POLICY_OID}.1"
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "dev"})
MIN_SECRET_LENGTH = 32


class Argon2Settings(BaseModel):
    """PIN-layer KDF cost (RFC 9106's second recommended option by default)."""

    time_cost: int = Field(3, ge=1, le=20)
    memory_kib: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(4, ge=1, le=16)
    # PIN derivations run on a pool of their own: this many threads (0: one per CPU core),
    # and at most ``max_waiting`` more wait for one; past that a PIN check is 429.
    workers: int = Field(0, ge=0, le=256)
    max_waiting: int = Field(64, ge=0, le=100_000)


class KeysSettings(BaseModel):
    """Where the server master key lives: ``local`` (key ring file in the data directory) or
    ``pkcs11`` (non-extractable AES keys inside a token). The token fields also serve a CA key
    kept in the token (``CERTCLOUD_CA__KEY_STORE=pkcs11``)."""

    kind: Literal["local", "pkcs11"] = "local"
    keyring_path: Path | None = None
    pkcs11_module: Path | None = None  # e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str = Field("certcloud", min_length=1, max_length=32)
    pin: SecretStr | None = None  # the token's user PIN, or:
    pin_file: Path | None = None  # a file holding it (one line)
    master_key_prefix: str = Field("certcloud-master", pattern=r"^[A-Za-z0-9._-]+$",
                                   max_length=32)
    # A running service re-reads the key list this often, so it wraps with a rotated key soon.
    refresh_seconds: float = Field(30.0, ge=0, le=3600)
    call_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # HMAC keys in the token (kind=pkcs11): the audit chain's, and the RRN lookup key
    # (`certcloud keys import-rrn-key` puts the existing CERTCLOUD_RRN_HMAC_KEY there).
    audit_key_label: str = Field("certcloud-audit-hmac", min_length=1, max_length=48)
    rrn_key_label: str = Field("certcloud-rrn-hmac", min_length=1, max_length=48)


class SensSettings(BaseModel):
    service_id: str = ""
    access_key: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    sender: str = ""
    base_url: str = "https://sens.apigw.ntruss.com"


class TwilioSettings(BaseModel):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    caller_id: str = ""
    base_url: str = "https://api.twilio.com"


class VerifierSettings(BaseModel):
    """``sandbox`` keeps messages in the database for /sandbox; ``provider`` sends SMS through
    NAVER Cloud SENS and places ARS calls through Twilio Voice."""

    kind: Literal["sandbox", "provider"] = "sandbox"
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    sens: SensSettings = SensSettings()
    twilio: TwilioSettings = TwilioSettings()


class CaSettings(BaseModel):
    common_name: str = "Certcloud Personal CA"
    organization: str = "Certcloud"
    country: str = "KR"
    policy_oid: str = DEFAULT_POLICY_OID
    user_key_algorithm: Literal["rsa2048", "p256"] = "rsa2048"
    validity_years: int = Field(20, ge=1, le=30)
    # Where `certcloud ca init` makes the CA key: a file, or inside the PKCS#11 token.
    key_store: Literal["file", "pkcs11"] = "file"
    key_label: str = Field("certcloud-ca", min_length=1, max_length=64)
    key_algorithm: Literal["rsa3072", "rsa4096", "p256", "p384"] = "rsa3072"

    @field_validator("policy_oid")
    @classmethod
    def _not_kftc(cls, value: str) -> str:
        if value.startswith("1.2.410.200005."):
            raise ValueError("policy_oid must be the service's own OID, not KFTC's")
        return value


class LimitsSettings(BaseModel):
    """Abuse limits (429 past them). SMS pumping costs money, so phones are limited hard."""

    verifications_per_client_per_minute: int = Field(600, ge=1)
    verifications_per_phone_per_10_minutes: int = Field(5, ge=1)
    wrong_codes_per_phone_per_hour: int = Field(10, ge=1)
    wrong_codes_per_client_per_hour: int = Field(1000, ge=1)
    signatures_per_certificate_per_minute: int = Field(60, ge=1)
    # POST /oauth2/token, counted before any secret is hashed: every attempt per source
    # address, and failed ones per client id (so a bank's own successes never count; one
    # address alone cannot lock a bank out).
    token_attempts_per_address_per_minute: int = Field(60, ge=1)
    token_failures_per_client_per_minute: int = Field(300, ge=1)
    # RRN lookups (v1 lookup, CSC credentials/list) of one bank client: an RRN is guessable.
    lookups_per_client_per_minute: int = Field(60, ge=1)
    # POST /v1/signatures/verify needs no account: checks per source address.
    signature_checks_per_address_per_minute: int = Field(120, ge=1)
    # POST /v1/identity/check of one relying-party client: each answer is an RRN oracle.
    identity_checks_per_client_per_minute: int = Field(30, ge=1)
    # Keep the counters in Redis instead of the database (e.g. redis://cache:6379/0).
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(1.0, gt=0, le=30)
    redis_key_prefix: str = Field("certcloud:rate:", min_length=1, max_length=100)


class StatusSettings(BaseModel):
    """Relying-party status (``CERTCLOUD_STATUS__*``): OCSP and CRL validity, caching, the
    delegated OCSP responder, and how replicas keep their in-process caches coherent."""

    ocsp_next_update_seconds: int = Field(86400, ge=600, le=7 * 86400)
    # Pre-signed responses are re-signed once less than this is left before nextUpdate.
    ocsp_refresh_before_seconds: int = Field(43200, ge=300)
    # Cache-Control max-age of GET replies (never past nextUpdate).
    ocsp_http_max_age_seconds: int = Field(3600, ge=0)
    crl_next_update_seconds: int = Field(7 * 86400, ge=3600, le=31 * 86400)
    # The CRL is re-issued once less than this is left before its nextUpdate.
    crl_refresh_before_seconds: int = Field(6 * 86400, ge=600)
    responder_validity_seconds: int = Field(7 * 86400, ge=3600, le=90 * 86400)
    responder_renew_before_seconds: int = Field(2 * 86400, ge=600)
    responder_key_algorithm: Literal["rsa2048", "p256"] = "rsa2048"
    presign: bool = True  # sign a response for every issued certificate ahead of queries
    memory_cache_entries: int = Field(20000, ge=0, le=10_000_000)
    crl_subprocess_min_entries: int = Field(2000, ge=0)  # build bigger CRLs in a child process
    refresh_interval_seconds: float = Field(30.0, gt=0, le=3600)
    sync_interval_seconds: float = Field(0.05, gt=0, le=5)
    lease_seconds: float = Field(10.0, ge=1, le=300)
    publish_timeout_seconds: float = Field(30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _consistent(self) -> StatusSettings:
        if not self.ocsp_refresh_before_seconds < self.ocsp_next_update_seconds:
            raise ValueError("ocsp_refresh_before_seconds must be below ocsp_next_update_seconds")
        if self.ocsp_http_max_age_seconds > self.ocsp_refresh_before_seconds:
            raise ValueError("ocsp_http_max_age_seconds must not exceed "
                             "ocsp_refresh_before_seconds")
        if not self.crl_refresh_before_seconds < self.crl_next_update_seconds:
            raise ValueError("crl_refresh_before_seconds must be below crl_next_update_seconds")
        if not (self.ocsp_next_update_seconds <= self.responder_renew_before_seconds
                < self.responder_validity_seconds):
            raise ValueError("need ocsp_next_update_seconds <= responder_renew_before_seconds "
                             "< responder_validity_seconds, so no response outlives its signer")
        return self


class TsaSettings(BaseModel):
    """The RFC 3161 time-stamping authority at POST /tsa (``CERTCLOUD_TSA__*``)."""

    # The TSA policy every TSTInfo names (and the only reqPolicy accepted): by default an arc
    # under the service's own UUID OID (2.25, X.667), so no registration is needed.
    policy_oid: str = Field(DEFAULT_TSA_POLICY_OID, pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$")
    # The accuracy stated in every token: the system clock's bound (keep it NTP-disciplined).
    accuracy_seconds: int = Field(1, ge=1, le=60)
    key_algorithm: Literal["rsa2048", "p256"] = "rsa2048"
    certificate_validity_seconds: int = Field(365 * 86400, ge=86400, le=5 * 366 * 86400)
    # A new TSA certificate (and key) is issued once the newest has less than this left.
    renew_before_seconds: int = Field(30 * 86400, ge=3600)
    # POST /tsa has no account: every request counts against its source address.
    requests_per_address_per_minute: int = Field(120, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> TsaSettings:
        if not self.renew_before_seconds < self.certificate_validity_seconds:
            raise ValueError("renew_before_seconds must be below certificate_validity_seconds")
        return self


class OAuthSettings(BaseModel):
    token_ttl_seconds: int = Field(900, ge=60, le=86400)
    issuer: str = "certcloud"
    audience: str = "certcloud-api"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CERTCLOUD_", env_nested_delimiter="__",
                                      extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    # One JSON line per request (logger certcloud.access, at INFO); OCSP cache hits, answered
    # before the middleware, are counted in /metrics but never logged.
    access_log: bool = True
    max_body_bytes: int = 64 * 1024
    database_timeout_seconds: float = Field(5.0, gt=0)
    sweep_interval_seconds: float = Field(60.0, gt=0)
    # A suspended (held) certificate not resumed within this many days is revoked for good.
    suspension_max_days: int = Field(30, ge=1, le=3650)
    # /docs, /redoc and /openapi.json; unset: served in development, not in production.
    docs_enabled: bool | None = None

    # Secrets. In development they are generated once into <data_dir>/secrets.json when unset;
    # production refuses to start without real values.
    rrn_hmac_key: SecretStr | None = None
    code_hmac_key: SecretStr | None = None
    # Comma-separated "kid:secret" pairs; the first signs tokens, all verify (rotation).
    token_signing_keys: SecretStr | None = None
    audit_hmac_key: SecretStr | None = None  # keys the audit chain (not with keys.kind=pkcs11)
    pin_pattern_key: SecretStr | None = None  # keys the birth-date patterns a PIN may not hold

    argon2: Argon2Settings = Argon2Settings()
    keys: KeysSettings = KeysSettings()
    verifier: VerifierSettings = VerifierSettings()
    ca: CaSettings = CaSettings()
    oauth: OAuthSettings = OAuthSettings()
    limits: LimitsSettings = LimitsSettings()
    status: StatusSettings = StatusSettings()
    tsa: TsaSettings = TsaSettings()

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def serves_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else not self.is_production

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'certcloud.db').resolve()}"

    @property
    def keyring_path(self) -> Path:
        return self.keys.keyring_path or self.data_dir / "keyring.json"

    @property
    def ca_dir(self) -> Path:
        return self.data_dir / "ca"
