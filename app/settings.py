"""Configuration from ``CERTCLOUD_*`` environment variables (nested with ``__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Certcloud's own certificate-policy OID (a UUID arc, RFC 4122 / X.667); never KFTC's.
DEFAULT_POLICY_OID = "2.25.271286366218458123356003116766787905379"
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "dev"})
MIN_SECRET_LENGTH = 32


class Argon2Settings(BaseModel):
    """PIN-layer KDF cost (RFC 9106's second recommended option by default)."""

    time_cost: int = Field(3, ge=1, le=20)
    memory_kib: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(4, ge=1, le=16)


class KeysSettings(BaseModel):
    """Where the server master key lives: ``local`` (key ring file in the data directory)."""

    kind: Literal["local"] = "local"
    keyring_path: Path | None = None


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

    @field_validator("policy_oid")
    @classmethod
    def _not_kftc(cls, value: str) -> str:
        if value.startswith("1.2.410.200005."):
            raise ValueError("policy_oid must be the service's own OID, not KFTC's")
        return value


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
    max_body_bytes: int = 64 * 1024
    database_timeout_seconds: float = Field(5.0, gt=0)

    # Secrets. In development they are generated once into <data_dir>/secrets.json when unset;
    # production refuses to start without real values.
    rrn_hmac_key: SecretStr | None = None
    code_hmac_key: SecretStr | None = None
    # Comma-separated "kid:secret" pairs; the first signs tokens, all verify (rotation).
    token_signing_keys: SecretStr | None = None

    argon2: Argon2Settings = Argon2Settings()
    keys: KeysSettings = KeysSettings()
    verifier: VerifierSettings = VerifierSettings()
    ca: CaSettings = CaSettings()
    oauth: OAuthSettings = OAuthSettings()

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

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
