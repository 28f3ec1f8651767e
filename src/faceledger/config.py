"""Settings: defaults, overridden by ``<data_dir>/config.toml``, then by FACELEDGER_* variables.

Every setting that changes a result (thresholds, test-time augmentation, detector passes)
is recorded with the result, so a figure can always be traced to the settings that made it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faceledger.errors import ConfigError

DEFAULT_DATA_DIR = Path("~/.local/share/faceledger").expanduser()


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Guards applied before and while decoding untrusted images."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 60_000_000
    min_side: int = 16


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """How faces are looked for.

    The first pass runs on a copy downscaled so that its longer side is at most
    ``first_pass_max_side``; when it finds nothing, passes at full size and then upsampled
    (up to ``max_upsample``) follow, stopping as soon as a face is found or the smallest
    face size the operator asked for (``min_face_px``) has been covered.

    ``rescue``: when every pass finds nothing, one last pass runs that detector (default
    "dlib-cnn", dlib's CNN) on a copy at most ``rescue_max_side`` pixels on its longer side.
    It finds the turned and partly hidden faces HOG misses: with it every one of the 9,525
    LFW DevTrain photos yields a face, 41 of them only through this pass. Only images in
    which HOG finds nothing pay for it: about 0.5 s for 250 x 250, and a 1-megapixel photo
    without any face takes about 1.6 s in all here (the HOG passes, then the CNN pass),
    within the documented bound of 2 s for a probe with no face (docs/evaluation.md).
    "none" turns it off, for an operator who prefers a quick "no face" to a rescued one.
    """

    backend: str = "dlib-hog"
    first_pass_max_side: int = 640
    max_upsample: int = 1
    min_face_px: int = 40
    rescue: str = "dlib-cnn"
    rescue_max_side: int = 400


@dataclass(frozen=True, slots=True)
class EmbedderSettings:
    """Which embedding model, and test-time augmentation.

    ``flip`` averages the descriptor of the face and of its mirror image: more accurate,
    one more network pass per face. ``onnx_model`` is a local path to an operator-supplied
    ONNX model directory (``model.onnx`` + ``manifest.json``) used instead of dlib.
    """

    backend: str = "dlib"
    flip: bool = True
    onnx_model: str | None = None


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """Exact search up to ``exact_max`` faces per gallery, HNSW above it."""

    # Chosen from bench/index_search.py (docs/index.md): exact stays <= ~3 ms per probe up to
    # 100k; above it, HNSW with efSearch 1024 keeps recall@50 >= 0.99 of exact search at 1M.
    exact_max: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 1024


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """Sign-in: lockout, session and token lifetimes, password hashing cost.

    After ``lockout_failures`` wrong passwords or second-factor codes in a row an account is
    locked for ``lockout_minutes``. An activation code works for ``activation_hours``. The
    Argon2 costs default to argon2-cffi's (RFC 9106, low memory); raising them re-hashes each
    password at its owner's next sign-in.
    """

    lockout_failures: int = 5
    lockout_minutes: int = 15
    session_hours: int = 12
    token_max_days: int = 90
    bootstrap_minutes: int = 60
    #: How long an account's one-time activation code works (after creation or a reset).
    activation_hours: int = 72
    password_min_length: int = 12
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The audit log: how often a signed checkpoint is written on its own.

    A checkpoint is also written on demand (``faceledger audit checkpoint``) and before
    every export; ``checkpoint_every`` = 0 turns the periodic ones off.
    ``checkpoint_minutes``: while ``faceledger serve`` runs, a checkpoint is also signed
    this often when entries were added since the last one (0 turns the timer off).
    """

    checkpoint_every: int = 1000
    checkpoint_minutes: float = 5.0

    def __post_init__(self) -> None:
        if self.checkpoint_every < 0:
            raise ConfigError(
                f"setting 'audit.checkpoint_every': {self.checkpoint_every} must not be negative"
            )
        if not 0 <= self.checkpoint_minutes < 1e6:
            raise ConfigError(
                f"setting 'audit.checkpoint_minutes': {self.checkpoint_minutes} must be 0 (off) "
                "or a positive number of minutes"
            )


#: A WebAuthn relying-party id: a host name, lowercase (``[web] rp_id``).
_RP_ID = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")

#: The values ``[web] secure_cookies`` takes (see :class:`WebSettings`).
SECURE_COOKIE_CHOICES = ("auto", "always", "never")


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The web pages (docs/web.md): their session cookie, idle timeout and front-end files.

    ``secure_cookies``: ``"auto"`` marks the session cookie ``Secure`` unless the request came
    over plain HTTP to a loopback address (development on 127.0.0.1, ::1 or localhost);
    ``"always"`` marks it ``Secure`` on every request (behind a TLS-terminating proxy);
    ``"never"`` only for a test rig. ``idle_minutes``: a page session unused for longer is
    ended and the person signs in again. ``assets_dir``: where ``npm ci`` put the third-party
    files (None: ``web-assets/node_modules`` beside the source tree). ``rp_id``: the host name
    browsers' WebAuthn device credentials are made for (the service's host name, or a domain it is
    under); ``origin``: the page origin their signatures must name (``https://host[:port]``; None:
    the request's own scheme, host and port, accepted only when that host is ``rp_id`` or under it).
    ``enrol_root``: the folder on the server under which the gallery pages may enrol a folder or a
    CSV manifest (None: the pages enrol nothing from the server's disk; the CLI still does).
    """

    secure_cookies: str = "auto"
    idle_minutes: int = 30
    assets_dir: Path | None = None
    rp_id: str = "localhost"
    origin: str | None = None
    enrol_root: Path | None = None

    def __post_init__(self) -> None:
        if self.secure_cookies not in SECURE_COOKIE_CHOICES:
            raise ConfigError(
                f"setting 'web.secure_cookies': {self.secure_cookies!r} is not one of "
                f"{', '.join(SECURE_COOKIE_CHOICES)}"
            )
        if not 1 <= self.idle_minutes <= 24 * 60:
            raise ConfigError(f"setting 'web.idle_minutes': {self.idle_minutes} must be 1-{24 * 60} minutes")
        if not _RP_ID.fullmatch(self.rp_id):
            raise ConfigError(
                f"setting 'web.rp_id': {self.rp_id!r} is not a host name (e.g. faceledger.agency.example; "
                "no scheme, port or path)"
            )
        if self.origin is not None:
            parts = urlsplit(self.origin)
            host = parts.hostname or ""
            if (
                parts.scheme not in {"https", "http"}
                or (parts.scheme == "http" and host != "localhost")
                or parts.path not in {"", "/"}
                or parts.query
                or not (host == self.rp_id or host.endswith("." + self.rp_id))
            ):
                raise ConfigError(
                    f"setting 'web.origin': {self.origin!r} must be https://<host>[:port] (http only for "
                    f"localhost), with its host {self.rp_id!r} (web.rp_id) or a name under it"
                )


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    image: ImageLimits = field(default_factory=ImageLimits)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    web: WebSettings = field(default_factory=WebSettings)
    # None: use the calibrated default of the model (see faceledger/data/calibration.json).
    threshold: float | None = None
    # Faces scoring under it are turned down at enrolment and flagged in a probe. 30 is where
    # the error-versus-discard curve on LFW DevTrain flattens (docs/evaluation.md, eval quality).
    quality_floor: float = 30.0
    top_k: int = 10
    workers: int = 0  # 0: one per CPU core
    # None: SQLite at <data_dir>/faceledger.db; else any SQLAlchemy URL (e.g. postgresql+psycopg://...).
    database_url: str | None = None

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_SECTIONS: dict[str, type[Any]] = {
    "image": ImageLimits,
    "detector": DetectorSettings,
    "embedder": EmbedderSettings,
    "index": IndexSettings,
    "audit": AuditSettings,
    "accounts": AccountSettings,
    "web": WebSettings,
}


# Settings whose default is None, and the type a value given for them must have.
_OPTIONAL_TYPES: dict[str, type[Any]] = {
    "threshold": float,
    "onnx_model": str,
    "database_url": str,
    "assets_dir": Path,
    "origin": str,
    "enrol_root": Path,
}


def _coerce(name: str, value: Any, default: Any) -> Any:
    if value is None:
        return None
    key = name.rsplit(".", 1)[-1].removeprefix("FACELEDGER_")
    kind = type(default) if default is not None else _OPTIONAL_TYPES.get(key.lower(), str)
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is Path:
            return Path(value).expanduser()
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: {value!r} is not a valid {kind.__name__}") from exc


def _apply(obj: Any, values: dict[str, Any], prefix: str, *, strict: bool = True) -> Any:
    changes: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in known:
            if not strict:
                continue
            raise ConfigError(f"unknown setting {prefix}{key!r}")
        current = getattr(obj, key)
        if key in _SECTIONS and isinstance(value, dict):
            changes[key] = _apply(current, value, f"{prefix}{key}.", strict=strict)
        else:
            changes[key] = _coerce(prefix + key, value, current)
    return dataclasses.replace(obj, **changes)


def load_settings(data_dir: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings for a data directory: defaults < config.toml < FACELEDGER_* environment.

    Environment variables use ``__`` between section and key, e.g.
    ``FACELEDGER_EMBEDDER__FLIP=false`` or ``FACELEDGER_THRESHOLD=0.93``.
    """
    env = dict(os.environ if env is None else env)
    chosen = data_dir or env.get("FACELEDGER_DATA_DIR") or DEFAULT_DATA_DIR
    settings = Settings(data_dir=Path(chosen).expanduser())
    config_file = settings.data_dir / "config.toml"
    if config_file.is_file():
        try:
            values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file}: not valid TOML ({exc})") from exc
        values.pop("data_dir", None)
        settings = _apply(settings, values, "")
    nested: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("FACELEDGER_") or key == "FACELEDGER_DATA_DIR":
            continue
        path = key.removeprefix("FACELEDGER_").lower().split("__")
        target = nested
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    if nested:
        # Other tools share the FACELEDGER_ prefix (test settings, for one): ignore names we do not know.
        settings = _apply(settings, nested, "FACELEDGER_", strict=False)
    return settings
