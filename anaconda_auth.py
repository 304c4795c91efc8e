"""Log a person into Anaconda, keep their API key safe, and make authenticated requests.

One file, ``anaconda_auth.py``, that speaks the same files and settings as the ``anaconda-auth``
package (``~/.anaconda/config.toml``, ``ANACONDA_AUTH_*`` variables, ``.env``, the token store
``~/.anaconda/keyring``) so a user can switch between the two without logging in again.

Vendoring: copy this file into your project. It needs Python 3.9+ and ``urllib3`` (1.26 or 2.x)
for network calls. ``certifi`` (CA bundle), ``keyring`` (OS key stores), ``truststore``
(``ssl_verify = "truststore"``) and ``tomli`` (config.toml on Python < 3.11) are used when
importable. Nothing heavy is imported until a code path needs it, so ``import anaconda_auth``
and ``python -m anaconda_auth api-key`` stay close to the interpreter's own start-up time.

Public API::

    config = resolve_config()              # or resolve_config("my-site", ssl_verify=False)
    api_key = get_api_key(config)          # TokenNotFoundError / TokenExpiredError
    login(config)                          # interactive; login(config, api_key=...) stores a key
    logout(config)
    response = request("GET", "/api/account", config=config)
    whoami(config)
    is_logged_in("my-site")                # offline; a site name or domain works as a config
    Client("my-site", user_agent="my-app/1.0").get("/api/...")   # settings held for many calls

The module reads top to bottom in the order data flows: errors, files (atomic writes, locks),
configuration, token storage, HTTP, OpenID Connect flows, public API, then what only the command
line needs: editing config.toml, and the command line itself.
"""

from __future__ import annotations

import os
import sys
import time

__version__ = "0.1.0"

# Undocumented behaviour of others this module relies on, each marked "Undocumented:" where it is
# used; if one changes, a test says so and the module degrades as stated:
# * http.client raises a bare OSError (no errno) when a proxy refuses CONNECT. Else such a
#   refusal is retried like a network failure: slower, same message (tests/test_http.py
#   test_proxy_refusing_credentials_is_not_retried).
# * urllib.request.proxy_bypass reads the system's proxy exceptions (macOS, Windows). Without
#   it every host uses the system's proxy (test_system_proxy_exceptions_and_their_absence).
# * Panel sets _login_endpoint on the provider's class while `panel serve` starts. Else a bad
#   setting shows only when the first visitor logs in, as a traceback in the server's log
#   (tests/panel test_bad_settings_stop_the_start_with_one_line_naming_the_setting).

__all__ = [
    "AnacondaAuthError",
    "AuthenticationError",
    "Client",
    "Config",
    "ConfigError",
    "DeviceFlowDenied",
    "DeviceFlowError",
    "DeviceFlowTimeout",
    "HTTPError",
    "InvalidTokenError",
    "KeyExpiringWarning",
    "LoginRequiredError",
    "NetworkError",
    "Response",
    "StorageError",
    "TokenExpiredError",
    "TokenNotFoundError",
    "UnknownSiteName",
    "client_factory",
    "get_api_key",
    "is_logged_in",
    "login",
    "logout",
    "request",
    "resolve_config",
    "whoami",
]

# ``typing`` costs milliseconds at start-up; mypy treats this name as always true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any, Callable, NoReturn, Protocol


    JSONDict = dict[str, Any]

    class _KeyStore(Protocol):
        """What both token stores (_FileStore, _SystemStore) do; only type checkers see this."""

        description: str  # for messages: "file <path>" or "system keyring (<backend>)"
        may_fail: bool  # an OS keyring that fails is passed over for the file, not fatal

        def get(self, username: str) -> str | None: ...

        def replace(self, username: str, change: Callable[[str | None], str]) -> None: ...

        def move(self, old: str, new: str, value: str) -> None: ...

        def delete(self, username: str) -> bool: ...

KEYRING_SERVICE = "Anaconda Cloud"
TOKEN_INFO_VERSION = 2
DEFAULT_DOMAIN = "anaconda.com"
LEGACY_DOMAINS: dict[str, tuple[str, ...]] = {"anaconda.com": ("id.anaconda.cloud", "anaconda.cloud")}
CLI_NAME = "python -m anaconda_auth"


# =================================================================================================
# Errors
# Every error this module raises derives from AnacondaAuthError and carries a message that says
# what went wrong, where (file, variable, host) and what to do. Names follow the reference
# package so callers can port their ``except`` clauses.
# =================================================================================================


class AnacondaAuthError(Exception):
    """Base class of every error raised by anaconda_auth."""

    response: Response | None = None  # the HTTP response behind the error, when there is one


class ConfigError(AnacondaAuthError, ValueError):
    """A setting is invalid; the message names its source (file and line, or variable)."""


class UnknownSiteName(ConfigError):
    """The requested site is not configured."""


class StorageError(AnacondaAuthError):
    """The token store cannot be read or written; nothing stored was changed."""


class AuthenticationError(AnacondaAuthError):
    """Logging in failed."""


class InvalidTokenError(AuthenticationError):
    """The server refused the API key that was sent."""


class TokenNotFoundError(AnacondaAuthError):
    """No API key is stored or configured for the site."""


class LoginRequiredError(AnacondaAuthError):
    """The server requires a login and no API key was sent."""


class TokenExpiredError(AnacondaAuthError):
    """The API key has expired."""


class DeviceFlowError(AuthenticationError):
    """The device authorization grant failed."""


class DeviceFlowTimeout(DeviceFlowError):
    """The device code expired before the user approved it."""


class DeviceFlowDenied(DeviceFlowError):
    """The user denied the device authorization request."""


class NetworkError(AnacondaAuthError):
    """A request could not be completed (connection, TLS, proxy or timeout)."""


class HTTPError(AnacondaAuthError):
    """A response had an error status; ``.response`` is the Response."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


class KeyExpiringWarning(UserWarning):
    """The API key in use expires within ``expiry_warning_days`` (given once per process;
    ``warnings.filterwarnings("ignore", category=KeyExpiringWarning)`` silences it)."""


class _ProcessCaches:
    """All the process remembers between calls, each because it pays for itself: urllib3 pools
    (keep-alive saves a TCP and TLS handshake), OpenID discovery (a network round trip), the
    proxies found in the environment (scanning it costs ~50 µs a request), the parsed file
    store (re-read only when the file changes), the warnings already given, urllib3's Retry
    subclass (made on first use: urllib3 is imported lazily), and the sites a Panel server
    checked at start. What one Config implies hangs off that Config instead. Tests start each
    case with ``reset()``.

    More keep ``request()`` within a few µs of raw urllib3 (without them a loopback request
    cost ~65 µs more, measured with tests/bench/bench_request.py): parsed URLs, each origin's
    connection pool (what PoolManager.urlopen works out again on every call), one Retry and
    one Timeout per value (urllib3 derives new ones, never changes them), and the stored
    tokens and key expiries already decoded (a stored key is read on every request)."""

    def __init__(self) -> None:
        self.pools: dict[tuple[Any, ...], Any] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything; the pools' connections are closed."""
        for pool in self.pools.values():
            pool.clear()
        self.pools = {}
        self.discovery: dict[str, JSONDict] = {}
        self.proxies: dict[tuple[Any, ...], tuple[dict[str, str], bool]] = {}
        self.file_store: dict[str, tuple[tuple[int, int, int], dict[str, dict[str, str]]]] = {}
        self.warned: set[str] = set()
        self.retry_class: Any = None
        self.parsed_urls: dict[str, tuple[tuple[str, str, int | None], str]] = {}
        self.origin_pools: dict[tuple[Any, ...], Any] = {}
        self.retries: dict[int, Any] = {}
        self.timeouts: dict[Any, Any] = {}
        self.decoded_tokens: dict[str, JSONDict] = {}
        self.key_expiries: dict[str, float | None] = {}
        # Site name from oauth_extra_params (None: ANACONDA_AUTH_SITE or the default site) ->
        # its Config and discovery document, checked when Panel installed the handler.
        self.panel_sites: dict[str | None, tuple[Config, JSONDict]] = {}


_caches = _ProcessCaches()


class _Output:
    """Whether this run of the CLI is --quiet: then stderr carries errors only (no notices or
    warnings, not even the deprecation line for legacy settings, said while reading them)."""

    quiet = False


def _warn_once(message: str, category: type[Warning] = UserWarning) -> None:
    """Emit a warning once per process (a fallback repeated on every call is noise)."""
    if message not in _caches.warned:
        _caches.warned.add(message)
        import warnings

        # Point at the caller's own line, however deep in this module the warning was found:
        # the first frame outside this file (stacklevel 2 is _warn_once's caller).
        here = sys._getframe(0).f_code.co_filename
        frame, level = sys._getframe(1), 2
        while frame.f_back is not None and frame.f_code.co_filename == here:
            frame, level = frame.f_back, level + 1
        warnings.warn(message, category, stacklevel=level)


# =================================================================================================
# Files
# One atomic writer and one cross-process lock for everything this module writes (the token
# store and config.toml): readers see the old file or the new one, never half of it, and a secret
# is never written where someone else placed the path (see _trusted_target).
# =================================================================================================


def _trusted_target(path: str) -> str:
    """The real path ``path`` is written at, or StorageError when someone else could redirect it.

    Symlinks are followed, as the user expects of dotfiles, but only links owned by the user, by
    root, or by the owner of the directory holding the link (who could replace it anyway; the
    rule of Linux's fs.protected_symlinks, checked here because realpath() bypasses it). The
    directory that receives the file must not be writable by everyone unless it is sticky (as
    /tmp is), and must belong to the user or root (root may write into a user's home: sudo -E).
    """
    if not hasattr(os, "geteuid"):  # Windows: no owners to compare
        return os.path.realpath(path)
    import stat

    uid = os.geteuid()
    pending = [p for p in os.path.abspath(path).split(os.sep) if p]
    current, hops = os.sep, 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            current = os.path.normpath(os.path.join(candidate, *pending))
            break
        if not stat.S_ISLNK(info.st_mode):
            current = candidate
            continue
        if info.st_uid not in (uid, 0, os.stat(current).st_uid):
            raise StorageError(
                f"Refusing to write {path}: {candidate} is a symlink owned by uid "
                f"{info.st_uid}, not by you, root or the owner of {current}, so someone else "
                f"chose where it points. Nothing was written; remove it (rm {candidate}) if you "
                "did not make it.")
        hops += 1
        if hops > 40:
            import errno

            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        target = os.readlink(candidate)
        if os.path.isabs(target):
            current = os.sep
        pending[:0] = [p for p in target.split(os.sep) if p]
    directory = os.path.dirname(current)
    while not os.path.isdir(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)  # it will be created inside the nearest one
    info = os.stat(directory)
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise StorageError(
            f"Refusing to write {path}: {directory} is writable by everyone without the sticky "
            "bit, so anyone could replace the file. Nothing was written; run chmod o-w "
            f"{directory}, or choose a private directory.")
    if uid != 0 and info.st_uid not in (uid, 0):
        raise StorageError(
            f"Refusing to write {path}: {directory} belongs to uid {info.st_uid}, not to you, "
            "so its owner could replace the file. Nothing was written; choose a directory you "
            "own.")
    return current


def _make_private_directories(directory: str) -> None:
    """``os.makedirs`` with every directory it creates 0700: makedirs gives the parents it
    creates the umask's mode (0777 under umask 000), not the one asked for."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent != directory:
        _make_private_directories(parent)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise


def _remove_leftover_temp_files(directory: str, prefix: str) -> None:
    """Delete ``.<prefix>…XXXXXXXX.tmp`` files a writer killed mid-write left (they may hold a
    key). Call only under the lock every writer of those files holds, so none is in use."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(f".{prefix}") and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # not ours to remove after all; it is never read as the store


def _write_file_atomically(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` (through a trusted symlink, at its target) so readers see old or new,
    never half.

    The temp file lives in the target's directory so the rename cannot cross file systems.
    """
    import tempfile

    target = _trusted_target(path)
    directory = os.path.dirname(target)
    _make_private_directories(directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        _keep_owner(target, tmp)
        try:
            os.replace(tmp, target)
        except OSError as e:
            import errno

            if e.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            # A file bind-mounted on its own (a container's ``-v file:file``) cannot be
            # replaced, only rewritten in place; callers hold the lock, so no writer races us.
            _rewrite_in_place(target, data)
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _keep_owner(target: str, replacement: str) -> None:
    """Give the new file the old one's owner when root replaces a user's file (``sudo -E``):
    the rename would otherwise leave the user a token store they can no longer read."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return
    # Only the directory's owner: a file someone else put in a shared directory (/tmp) must
    # not be handed back to them with root's key in it.
    if info.st_uid != 0 and info.st_uid == os.stat(os.path.dirname(target)).st_uid:
        os.chown(replacement, info.st_uid, info.st_gid)


def _rewrite_in_place(path: str, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


class _FileLock:
    """An exclusive cross-process lock on ``<path>.lock`` (fcntl on POSIX, msvcrt on Windows).

    The lock lives beside the data file because the data file itself is replaced by rename.
    """

    def __init__(self, path: str) -> None:
        self.data_path = path
        self.path = ""
        self.fd = -1

    def __enter__(self) -> _FileLock:  # noqa: PYI034 - typing.Self costs an import
        target = _trusted_target(self.data_path)
        self.path = target + ".lock"
        _make_private_directories(os.path.dirname(self.path))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(self.fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        _remove_leftover_temp_files(os.path.dirname(target), os.path.basename(target) + ".")
        return self

    def __exit__(self, *exc: object) -> None:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)
        os.close(self.fd)  # closing releases the fcntl lock


# =================================================================================================
# Configuration
# Turns files and variables into one immutable Config. Sources, highest first: explicit
# arguments, ANACONDA_AUTH_* environment, secret files, .env, the selected [sites.<name>] table,
# legacy ANACONDA_CLOUD_* / [plugin.cloud], [plugin.auth], conda settings, defaults. Reading
# configuration never writes anything and never touches the network; the one writer, for the
# sites commands, has its own section after the public API (Editing config.toml).
# =================================================================================================

# Field kinds drive parsing and validation: how a string from the environment becomes a value.
_FIELDS: dict[str, tuple[str, Any]] = {
    "site": ("optstr", None),
    "preferred_token_storage": ("storage", "anaconda-keyring"),
    "domain": ("domain", DEFAULT_DOMAIN),
    "auth_domain_override": ("optdomain", None),
    "api_key": ("secret", None),
    "keyring": ("keyring", None),
    "keyring_path": ("path", None),
    "ssl_verify": ("ssl", True),
    "extra_headers": ("headers", None),
    "client_id": ("str", "b4ad7f1d-c784-46b5-a9fe-106e50441f5a"),
    "redirect_uri": ("str", "http://127.0.0.1:8000/auth/oidc"),
    "openid_config_path": ("str", "/.well-known/openid-configuration"),
    "oidc_request_headers": ("dict", {"User-Agent": f"anaconda-auth/{__version__}"}),
    "login_success_path": ("str", "/app/local-login-success"),
    "login_error_path": ("str", "/app/local-login-error"),
    "use_unified_repo_api_key": ("bool", False),
    "hash_hostname": ("bool", True),
    "proxy_servers": ("dict", None),
    "client_cert": ("optstr", None),
    "client_cert_key": ("optstr", None),
    "use_device_flow": ("bool", True),
    "env_manager_channel": ("str", "anaconda-cloud"),
    "env_manager_package": ("str", "anaconda-env-manager"),
    "env_manager_version": ("envversion", None),
    # Ours: how long the browser flow's loopback listener waits (seconds); how many days
    # before a key expires to start saying so (0: never).
    "login_timeout": ("float", 300.0),
    "expiry_warning_days": ("days", 30),
    # Ours: false never launches a browser, as --no-browser (CI images, installers).
    "open_browser": ("bool", True),
}
_DICT_KINDS = ("dict", "headers", "keyring")
_SECRET_FIELDS = ("api_key", "keyring")
_PATH_FIELDS = ("keyring_path", "client_cert", "client_cert_key")
# A header name or an inline value holding one of these words is treated as a credential.
_SECRET_WORDS = ("auth", "token", "cookie", "secret", "key", "pass")
_NOT_IN_HEADER_NAMES = ' :()<>@,;"/[]?={}'
_TRUE_WORDS = ("1", "true", "t", "yes", "y", "on")
_FALSE_WORDS = ("0", "false", "f", "no", "n", "off")


class Config:
    """The resolved settings of one site: an immutable value.

    Build it with ``resolve_config()``; derive a changed copy with ``config.replace(...)``.
    ``sources`` maps each field to a description of where its value came from.
    """

    site: str
    preferred_token_storage: str
    domain: str
    auth_domain_override: str | None
    api_key: str | None
    keyring: Mapping[str, Mapping[str, str]] | None
    keyring_path: str
    ssl_verify: bool | str
    extra_headers: Mapping[str, str] | None
    client_id: str
    redirect_uri: str
    openid_config_path: str
    oidc_request_headers: Mapping[str, str] | None
    login_success_path: str
    login_error_path: str
    use_unified_repo_api_key: bool
    hash_hostname: bool
    proxy_servers: Mapping[str, str] | None
    client_cert: str | None
    client_cert_key: str | None
    use_device_flow: bool
    env_manager_channel: str
    env_manager_package: str
    env_manager_version: str | None
    login_timeout: float
    expiry_warning_days: int
    open_browser: bool
    sources: Mapping[str, str]
    config_path: str

    _request_site: _Site | None  # what request() derives from this Config, made on first use

    __slots__ = (*_FIELDS, "sources", "config_path", "_request_site")

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str], config_path: str):
        for name in _FIELDS:
            object.__setattr__(self, name, _freeze(values[name]))
        object.__setattr__(self, "sources", _freeze(dict(sources)))
        object.__setattr__(self, "config_path", config_path)
        object.__setattr__(self, "_request_site", None)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Config is immutable; use config.replace({name}=...)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mappings inside are not hashable

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={_masked(n, getattr(self, n))!r}" for n in _FIELDS)
        return f"Config({shown})"

    def as_dict(self) -> dict[str, Any]:
        """Plain (mutable, unmasked) values of every field."""
        return {n: _thaw(getattr(self, n)) for n in _FIELDS}

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed; values are validated like explicit arguments."""
        values = self.as_dict()
        sources = dict(self.sources)
        for name, raw in changes.items():
            if name not in _FIELDS:
                raise ConfigError(f"replace({name}=...): unknown setting {name!r}")
            values[name] = _parse_field(name, raw, f"argument {name}=")
            sources[name] = f"argument {name}="
        _finish_values(values, sources, home=None, environ=None)
        return Config(values, sources, self.config_path)

    @property
    def auth_domain(self) -> str:
        return self.auth_domain_override or self.domain

    @property
    def well_known_url(self) -> str:
        from urllib.parse import urljoin

        return urljoin(f"https://{self.auth_domain}", self.openid_config_path)

    @property
    def login_success_url(self) -> str:
        from urllib.parse import urljoin

        return urljoin(f"https://{self.domain}", self.login_success_path)

    @property
    def login_error_url(self) -> str:
        from urllib.parse import urljoin

        return urljoin(f"https://{self.domain}", self.login_error_path)


def _freeze(value: Any) -> Any:
    """Read-only views of nested mappings, so a Config really cannot change."""
    if isinstance(value, dict):
        from types import MappingProxyType

        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def _thaw(value: Any) -> Any:
    if hasattr(value, "items") and not isinstance(value, (str, bytes)):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def _masked(name: str, value: Any) -> Any:
    """What may be shown of a setting: secrets and credentials never are."""
    if value is None or value == "":
        return value
    if name in _SECRET_FIELDS:
        return "********"
    if name in ("extra_headers", "oidc_request_headers") and hasattr(value, "items"):
        return {_header_name_shown(k): ("********" if _is_secret_header(k) else v)
                for k, v in value.items()}
    if name == "proxy_servers" and hasattr(value, "items"):
        return {k: _mask_url_password(v) for k, v in value.items()}
    return _thaw(value)


def _header_name_shown(name: str) -> str:
    """A header name as it may be shown: cut at the first character no header name has,
    because what follows a ':' or a space is often a value (``Authorization: Bearer <key>``)."""
    for i, c in enumerate(name):
        if not (c.isascii() and c.isprintable()) or c in _NOT_IN_HEADER_NAMES:
            return name[:i] + "********"
    return name


def _is_http_method(method: str) -> bool:
    """A method is an HTTP token, as a header name is: a space or line break in it would
    split the request line (injection)."""
    return bool(method) and _header_name_shown(method) == method


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.rpartition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:********@{host}"


# -- Sources --------------------------------------------------------------------------------------
# Each source yields (field, raw value, source label). Text sources (environment, secret files,
# .env) give strings that are parsed by kind; TOML gives typed values.


def _env_items(environ: Mapping[str, str], prefix: str) -> Iterator[tuple[str, str, str]]:
    """(lowercased name after prefix, value, variable name) for variables with ``prefix``."""
    for name, value in environ.items():
        if name.upper().startswith(prefix):
            yield name[len(prefix) :].lower(), value, name


def _read_text(path: str, what: str, unreadable_ok: bool = False) -> str | None:
    """A UTF-8 text file's content; None when there is no such file (a directory of that name,
    like a virtualenv called .env, is not one) or, if ``unreadable_ok``, it cannot be read; a
    ConfigError naming the file otherwise. Every file this module reads is read here."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path (only from a program)
        if unreadable_ok:
            return None
        reason = e.strerror if isinstance(e, OSError) else e
        raise ConfigError(f"{_clip(path, 300)}: cannot read {what} ({reason})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: {what} is not UTF-8 text ({e.reason} at byte {e.start}). "
                          "Save it as UTF-8.") from None


def _read_dotenv(path: str) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (python-dotenv's common subset); {} when absent."""
    text = _read_text(path, ".env file")
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value[:1] in ("'", '"') and value[0] in value[1:]:  # quoted, maybe then a comment
            value = value[1 : value.index(value[0], 1)]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def _read_secrets_dir(path: str) -> dict[str, str]:
    """Secret files (Docker/Kubernetes style): file name = variable name, content = value."""
    try:
        names = os.listdir(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path (only from a program)
        return {}
    values = {}
    for name in names:
        if name.upper().startswith("ANACONDA_"):
            # Unreadable entries of a shared secrets directory are not ours; a secret that is
            # not text is a mistake worth naming.
            text = _read_text(os.path.join(path, name), "secret file", unreadable_ok=True)
            if text is not None:
                values[name] = text.strip()
    return values


def _read_config_toml(path: str) -> dict[str, Any]:
    """The parsed config.toml; {} when the file does not exist."""
    text = _read_text(path, "config file")
    if text is None:
        return {}
    simple = _parse_simple_toml(text)
    return simple if simple is not None else _parse_config_toml(path, text)


def _parse_config_toml(path: str, text: str) -> dict[str, Any]:
    """``text`` parsed by tomllib (tomli before 3.11); a syntax error names the line."""
    if not text:
        return {}  # no TOML parser needed for nothing
    toml = _import_toml(path)
    try:
        parsed: dict[str, Any] = toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}. Fix the TOML syntax there (the file ends at line "
                          f"{text.count(chr(10)) + 1}).") from None
    return parsed


# -- Reading config.toml --------------------------------------------------------------------------
# tomllib's imports (typing, datetime, re, string) cost more than the whole api-key command,
# so the plain subset of TOML that config.toml files are written in is read here: tables,
# ``key = value`` with strings, booleans, decimal integers and inline tables. Anything else
# (arrays, floats, dates, multi-line strings, dotted keys, TOML 1.1's additions) and anything
# invalid returns None, and tomllib reads the file, with its own error messages.
#
# The lexer below serves this reader and the config.toml editor (its own section, after the
# public API): small pure functions over (text, pos) that return what they read and the
# position after it. Each problem is a ValueError from _toml_error, naming the line; the
# reader turns them into "not mine, ask tomllib", the editor into a ConfigError.
_BARE_KEY_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_BARE_VALUE_CHARACTERS = _BARE_KEY_CHARACTERS | frozenset("+.:")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# An escape means a character, or (a number) that many hex digits of a code point follow.
_TOML_ESCAPES: dict[str, str | int] = {
    "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "u": 4, "U": 8}
# TOML 1.1 adds \e and \xHH. tomli 2.3+ reads them, tomllib up to 3.13 refuses them, so the
# reader leaves them to the installed parser; the editor only scans text that parser accepted.
_TOML_1_1_ESCAPES: dict[str, str | int] = {**_TOML_ESCAPES, "e": "\x1b", "x": 2}


def _toml_error(text: str, pos: int, what: str) -> ValueError:
    """The lexer's one error: what is wrong, and on which line of ``text``."""
    return ValueError(f"line {text.count(chr(10), 0, pos) + 1}: {what}")


def _toml_skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _toml_line_end(text: str, pos: int) -> int:
    """Position just after the newline ending the line that holds ``pos`` (or the end)."""
    newline = text.find("\n", pos)
    return len(text) if newline < 0 else newline + 1


def _toml_finish_line(text: str, pos: int) -> int:
    """After a header or a value (or on an empty line): an optional comment, then the line end."""
    pos = _toml_skip_blank(text, pos)
    if pos < len(text) and not text.startswith(("#", "\n", "\r\n"), pos):
        raise _toml_error(text, pos, "unexpected text after a value or header")
    return _toml_line_end(text, pos)


def _toml_basic_string(text: str, pos: int, escapes: Mapping[str, str | int]) -> tuple[str, int]:
    """The single-line ``"..."`` string at ``pos``: its value and the position after it."""
    out: list[str] = []
    i = pos + 1
    while i < len(text) and text[i] not in '"\n':
        if text[i] != "\\":
            out.append(text[i])
            i += 1
            continue
        code = text[i + 1 : i + 2]
        meaning = escapes.get(code)
        if meaning is None:
            raise _toml_error(text, i, f"invalid escape '\\{code}' in a string")
        if isinstance(meaning, str):
            out.append(meaning)
            i += 2
            continue
        digits = text[i + 2 : i + 2 + meaning]
        scalar = int(digits, 16) if len(digits) == meaning and _HEX_DIGITS.issuperset(digits) else -1
        if not (0 <= scalar < 0xD800 or 0xDFFF < scalar <= 0x10FFFF):
            raise _toml_error(text, i, f"'\\{code}{digits}' is not a Unicode character")
        out.append(chr(scalar))
        i += 2 + meaning
    if i >= len(text) or text[i] != '"':
        raise _toml_error(text, pos, "unterminated string")
    return "".join(out), i + 1


def _toml_literal_string(text: str, pos: int) -> tuple[str, int]:
    close = text.find("'", pos + 1)
    if close < 0 or "\n" in text[pos:close]:
        raise _toml_error(text, pos, "unterminated string")
    return text[pos + 1 : close], close + 1


def _toml_parse_key(
    text: str, pos: int, escapes: Mapping[str, str | int]
) -> tuple[tuple[str, ...], int]:
    """The dotted key (``a."b.c".'d'``) at ``pos``: its parts and the position after it."""
    parts: list[str] = []
    while True:
        pos = _toml_skip_blank(text, pos)
        if text.startswith('"', pos):
            part, pos = _toml_basic_string(text, pos, escapes)
        elif text.startswith("'", pos):
            part, pos = _toml_literal_string(text, pos)
        else:
            end = pos
            while end < len(text) and text[end] in _BARE_KEY_CHARACTERS:
                end += 1
            if end == pos:
                raise _toml_error(text, pos, "expected a key")
            part, pos = text[pos:end], end
        parts.append(part)
        pos = _toml_skip_blank(text, pos)
        if not text.startswith(".", pos):
            return tuple(parts), pos
        pos += 1


def _toml_bare_end(text: str, pos: int) -> int:
    """The end of the bare value (number, boolean, date) at ``pos``; a date and a time may be
    separated by a space, as TOML allows."""
    end = pos
    while end < len(text) and text[end] in _BARE_VALUE_CHARACTERS:
        end += 1
    if (end - pos == 10 and text[pos + 4] == text[pos + 7] == "-"
            and text.startswith(" ", end) and text[end + 1 : end + 2].isdigit()):
        end += 1
        while end < len(text) and text[end] in "0123456789:.+-Zz":
            end += 1
    return end


def _parse_simple_toml(text: str) -> dict[str, Any] | None:
    """``text`` read as the plain subset, or None: tomllib decides the rest."""
    if "\r" in text.replace("\r\n", "") or any(_is_toml_control(c) for c in text):
        return None  # a lone CR or a control character: tomllib says what is wrong
    root: dict[str, Any] = {}
    table = root
    headers: set[tuple[str, ...]] = set()
    inline_tables: set[int] = set()
    pos = 0
    try:
        while pos < len(text):
            pos = _toml_skip_blank(text, pos)
            if text.startswith("[", pos):
                table, pos = _simple_toml_header(text, pos + 1, root, headers, inline_tables)
            elif pos < len(text) and not text.startswith(("#", "\n", "\r\n"), pos):
                pos = _simple_toml_pair(text, pos, table, inline_tables)
            pos = _toml_finish_line(text, pos)
    except ValueError:
        return None
    return root


def _is_toml_control(c: str) -> bool:
    return (c < " " and c not in "\t\n\r") or c == "\x7f"


def _simple_toml_header(text: str, pos: int, root: dict[str, Any], headers: set[tuple[str, ...]],
                        inline_tables: set[int]) -> tuple[dict[str, Any], int]:
    """The table a ``[a.b]`` header opens (made if new) and the position after the ``]``."""
    keys, pos = _simple_toml_key(text, pos)
    if not text.startswith("]", pos) or keys in headers:
        raise _toml_error(text, pos, "not a plain table header")
    headers.add(keys)
    table = root
    for key in keys:
        table = table.setdefault(key, {})
        if not isinstance(table, dict) or id(table) in inline_tables:
            raise _toml_error(text, pos, "a header that extends a value")
    return table, pos + 1


def _simple_toml_key(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    keys, end = _toml_parse_key(text, pos, _TOML_ESCAPES)
    if "\\" in text[pos:end]:  # bare keys have none: a quoted key with a backslash
        raise _toml_error(text, pos, "a backslash in a key")
    return keys, end


def _simple_toml_pair(text: str, pos: int, table: dict[str, Any], inline_tables: set[int]) -> int:
    """Read ``key = value`` into ``table``; the position after the value."""
    keys, pos = _simple_toml_key(text, pos)
    if len(keys) != 1 or keys[0] in table or not text.startswith("=", pos):
        raise _toml_error(text, pos, "not a plain key = value")
    table[keys[0]], pos = _simple_toml_value(text, _toml_skip_blank(text, pos + 1), inline_tables)
    return pos


def _simple_toml_value(text: str, pos: int, inline_tables: set[int]) -> tuple[Any, int]:
    if text.startswith(('"""', "'''"), pos):
        raise _toml_error(text, pos, "a multi-line string")
    if text.startswith('"', pos):
        return _toml_basic_string(text, pos, _TOML_ESCAPES)
    if text.startswith("'", pos):
        return _toml_literal_string(text, pos)
    if text.startswith("{", pos):
        table: dict[str, Any] = {}
        inline_tables.add(id(table))
        pos = _toml_skip_blank(text, pos + 1)
        while not text.startswith("}", pos):
            pos = _toml_skip_blank(text, _simple_toml_pair(text, pos, table, inline_tables))
            if text.startswith(",", pos):  # a key must follow: a trailing comma is TOML 1.1
                pos = _toml_skip_blank(text, pos + 1)
                if text.startswith("}", pos):
                    raise _toml_error(text, pos, "a trailing comma")
            elif not text.startswith("}", pos):
                raise _toml_error(text, pos, "expected ',' or '}'")
        return table, pos + 1
    end = _toml_bare_end(text, pos)
    word = text[pos:end]
    if word in ("true", "false"):
        return word == "true", end
    digits = word[1:] if word[:1] in "+-" else word
    if digits.isdigit() and digits.isascii() and (digits == "0" or digits[0] != "0"):
        return int(word), end
    raise _toml_error(text, pos, "not a plain value")


def _import_toml(path: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        return __import__("tomli")
    except ImportError:
        raise ConfigError(
            f"Python {sys.version_info[0]}.{sys.version_info[1]} needs the 'tomli' package to "
            f"read or edit {path} (pip install tomli)"
        ) from None


def _toml_table(document: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    table: Any = document
    for key in keys:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    return table if isinstance(table, dict) else {}


# Conda's own search path (conda.base.constants.SEARCH_PATH), read without importing conda.
_CONDARC_KEYS = {
    "ssl_verify": "ssl_verify",
    "proxy_servers": "proxy_servers",
    "client_ssl_cert": "client_cert",
    "client_ssl_cert_key": "client_cert_key",
}


def _condarc_paths(environ: Mapping[str, str], home: str) -> list[str]:
    roots = ["/etc/conda", "/var/lib/conda"]
    if environ.get("CONDA_ROOT"):
        roots.append(environ["CONDA_ROOT"])
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    roots += [os.path.join(xdg, "conda"), os.path.join(home, ".config", "conda")]
    roots.append(os.path.join(home, ".conda"))
    paths = [os.path.join(r, n) for r in dict.fromkeys(roots) for n in (".condarc", "condarc")]
    paths.append(os.path.join(home, ".condarc"))
    if environ.get("CONDA_PREFIX"):
        paths += [os.path.join(environ["CONDA_PREFIX"], n) for n in (".condarc", "condarc")]
    if environ.get("CONDARC"):
        paths.append(environ["CONDARC"])
    return paths


def _read_condarc(path: str) -> dict[str, Any]:
    """The few top-level keys we need from a .condarc, parsed from a small YAML subset.

    Conda settings are YAML; pulling in a YAML parser for four keys would cost more than the
    whole module. Supported: ``key: scalar`` lines and one level of indented ``name: value``
    mappings (``proxy_servers``), with comments and quotes.
    """
    try:
        content = _read_text(path, "conda settings file")
    except ConfigError as e:  # conda's file, our lowest source: never a reason to stop
        _warn_once(f"{e} Its settings were ignored.")
        return {}
    lines = (content or "").splitlines()
    found: dict[str, Any] = {}
    current: dict[str, str] | None = None
    for line in lines:
        text = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not text.strip():
            continue
        key, sep, value = text.strip().partition(":")
        value = _yaml_scalar(value)
        if not line[0].isspace():
            current = None
            if sep and key in _CONDARC_KEYS:
                if value == "" and key == "proxy_servers":
                    current = found[key] = {}
                elif value.startswith("{") and value.endswith("}"):  # a flow mapping
                    found[key] = {_yaml_scalar(k): _yaml_scalar(v) for k, _, v in (
                        item.partition(":") for item in value[1:-1].split(",") if item.strip())}
                elif value != "":
                    found[key] = value
        elif current is not None and sep:
            current[_yaml_scalar(key)] = value
    return found


def _yaml_scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _conda_values(environ: Mapping[str, str], home: str) -> list[tuple[str, Any, str]]:
    merged: dict[str, tuple[Any, str]] = {}
    for path in _condarc_paths(environ, home):
        for key, value in _read_condarc(path).items():
            merged[key] = (value, f"{path} ({key})")
    for key in ("ssl_verify", "client_ssl_cert", "client_ssl_cert_key"):
        var = f"CONDA_{key.upper()}"
        if environ.get(var):
            merged[key] = (environ[var], f"environment variable {var}")
    return [(_CONDARC_KEYS[k], v, label) for k, (v, label) in merged.items() if v not in ({}, "")]


# -- Parsing and validation -----------------------------------------------------------------------


def _clip(text: str, limit: int = 100) -> str:
    """Some text as a message may quote it: one line of printable characters (others
    escaped), at most ``limit`` of them. A 1 MB value must not become a 1 MB message."""
    shown = text if text.isprintable() else repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _quoted(value: Any) -> str:
    """``repr(value)`` for a message, clipped like _clip."""
    return _clip(repr(value))


def _bad(source: str, problem: str, fix: str) -> ConfigError:
    """The one shape of every configuration error: where, what, and what to do."""
    return ConfigError(f"{source}: {problem}. {fix}")


def _parse_bool(value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise _bad(source, f"{_quoted(value)} is not a boolean", "Use true or false (also 1/0, yes/no, on/off)")


def _parse_json_dict(value: Any, source: str) -> Any:
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError as e:
            raise _bad(source, f"not valid JSON ({e})", 'Give a JSON object like {"key": "value"}')
    if not isinstance(value, dict):
        raise _bad(source, f"expected a JSON object or table, got {type(value).__name__}",
                   'Give a JSON object like {"key": "value"}')
    return value


def _normalize_domain(value: Any, source: str) -> str:
    """``https://Foo.COM:8443/path`` -> ``Foo.COM:8443``, as the reference normalises domains.

    Split by hand: urllib.parse costs more to import than api-key may spend in total.
    """
    if not isinstance(value, str):
        raise _bad(source, f"{_quoted(value)} is not a domain name", "Give a host name like anaconda.com")
    text = value.split("://", 1)[1] if value.startswith(("http://", "https://")) else value
    netloc = text
    for separator in "/?#":
        netloc = netloc.split(separator, 1)[0]
    if not netloc:
        raise _bad(source, f"{_quoted(value)} does not look like a domain name",
                   "Give a host name like anaconda.com")
    problem = _domain_problem(netloc)
    if problem:
        # A user name may come with a password: such a value is never shown.
        shown = "the value" if "@" in netloc else _quoted(value)
        raise _bad(source, f"{shown} is not a domain name: {problem}",
                   "Give a host name like anaconda.com, with a :port if needed")
    return netloc


def _domain_problem(netloc: str) -> str | None:
    """Why ``host[:port]`` cannot be a site's domain, or None. Checked when the value is read:
    a value URL parsers read differently (``evil.test@anaconda.com`` holds a user name, ``a\\b``
    a backslash) is refused then, instead of reaching the URL parser at request time."""
    if "@" in netloc:
        return "it holds a user name ('@'); a site's domain is only a host"
    if netloc.startswith("["):
        host, bracket, rest = netloc[1:].partition("]")
        if not bracket or not _is_ipv6(host):
            return "an IPv6 address is written in brackets, like [::1]:8443"
        if rest and not rest.startswith(":"):
            return "only a :port may follow the brackets"
    else:
        host, _, _ = netloc.partition(":")
        rest = netloc[len(host):]
        if rest.count(":") > 1:
            return "an IPv6 address is written in brackets, like [::1]:8443"
        if not host or any(not c.isprintable() or c.isspace() or c in "\\[]%" for c in host):
            return "it has characters a host name never has"
    if len(host) > 253:
        return "it is longer than any host name (253 characters)"
    port = rest[1:]
    if rest and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return "the port must be a number from 1 to 65535"
    return None if host.isascii() else _idn_problem(host)


def _idn_problem(host: str) -> str | None:
    """Why a host name with non-ASCII letters cannot be used, or None: it is encoded as urllib3
    will encode it for the request (IDNA 2008, through the idna package), so a name is refused
    here rather than at the first request."""
    import urllib3  # only for a non-ASCII name: rare, and api-key must start fast

    try:
        import idna  # noqa: F401 - urllib3 needs it for such a name
    except ImportError:
        return ("it has non-ASCII letters, which need the idna package to be encoded: install "
                "idna, or give the name's ASCII form (xn--...)")
    try:
        urllib3.util.parse_url(f"https://{host}/")
    except urllib3.exceptions.LocationParseError:
        return ("it is not a valid internationalized domain name (IDNA 2008); give the name's "
                "ASCII form (xn--...)")
    return None


def _is_ipv6(text: str) -> bool:
    import ipaddress  # only for a bracketed domain: rare, and api-key must start fast

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _parse_field(name: str, raw: Any, source: str, home: str | None = None,
                 environ: Mapping[str, str] | None = None) -> Any:
    """Validate one raw value of field ``name`` (text from env, .env and secret files, or a
    TOML or argument value of any type)."""
    kind = _FIELDS[name][0]
    if kind in _DICT_KINDS:
        value = _parse_json_dict(raw, source)
        if kind == "keyring":
            ok = all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
                     for v in value.values())
            fix = 'Give {"Anaconda Cloud": {"<domain>": "<stored token>"}}'
        else:
            ok = all(isinstance(v, str) for v in value.values())
            fix = ('Give string values, like {"https": "http://proxy:3128"}' if name == "proxy_servers"
                   else 'Give string values, like {"X-Team": "data-science"}')
        if not ok:
            raise _bad(source, "has values of the wrong type", fix)
        return value
    if kind == "bool":
        return _parse_bool(raw, source)
    if kind == "float":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise _bad(source, f"{_quoted(raw)} is not a number", "Give a number of seconds") from None
    if kind == "ssl":
        return _parse_ssl_verify(raw, source, home, environ)
    if kind == "days":
        try:
            days = int(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            days = -1
        if isinstance(raw, (bool, float)) or days < 0:
            raise _bad(source, f"{_quoted(raw)} is not a number of days",
                       "Give a whole number of days, like 30 (0 turns the warning off)")
        return days
    if not isinstance(raw, str):
        shown = f"a {type(raw).__name__}" if name in _SECRET_FIELDS else _quoted(raw)  # no secret
        raise _bad(source, f"{shown} is not a string", "Quote the value")
    if name in _PATH_FIELDS and ("\0" in raw or len(raw) > 4096):
        # open() would raise ValueError for the NUL (a .env file can hold one), and the
        # error of a 1 MB path would be 1 MB long.
        raise _bad(source, "is not a file path (it holds a NUL character or is longer than "
                   "4096 characters)", "Give the path of a file")
    if kind == "storage" and raw not in ("anaconda-keyring", "system"):
        raise _bad(source, f"{_quoted(raw)} is not a token storage",
                   "Use 'anaconda-keyring' (the file ~/.anaconda/keyring) or 'system'")
    if kind == "domain" or (kind == "optdomain" and raw != ""):
        return _normalize_domain(raw, source)
    if kind == "envversion" and raw and not raw.startswith((">", "=", "<", "!")):
        return f"={raw}"
    return raw


def _parse_ssl_verify(raw: Any, source: str, home: str | None,
                      environ: Mapping[str, str] | None) -> bool | str:
    """The setting as written (a path is expanded by _finish_values, so a site written to
    config.toml keeps its ``~``); a path is checked where ``home`` and ``environ`` put it."""
    # The reference keeps env "false" as a CA-bundle path string; we read it as the word it is.
    if isinstance(raw, bool):
        return raw
    if not isinstance(raw, str):
        raise _bad(source, f"{_quoted(raw)} must be a boolean or a string",
                   "Use true, false, \"truststore\" or the path of a CA bundle")
    word = raw.strip().lower()
    if word in _TRUE_WORDS + _FALSE_WORDS:
        return word in _TRUE_WORDS
    if word == "truststore":
        return "truststore"
    if not os.path.exists(_expand_path(raw, home, environ)):
        raise _bad(source, f"the CA bundle {_quoted(raw)} does not exist",
                   "Give the path of an existing PEM file or directory, true, false or truststore")
    return raw


def _text_values(
    items: Iterator[tuple[str, str, str]], label: Callable[[str], str]
) -> list[tuple[str, Any, str]]:
    """Field values from ``NAME=value`` text: ``__`` nests into dict fields, JSON is decoded."""
    out: list[tuple[str, Any, str]] = []
    nested: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for key, value, var in items:
        field, sep, sub = key.partition("__")
        if field not in _FIELDS:
            continue
        is_dict = _FIELDS[field][0] in _DICT_KINDS
        if not sep:
            out.append((field, _parse_json_dict(value, label(var)) if is_dict else value, label(var)))
        elif is_dict:
            target, labels = nested.setdefault(field, ({}, []))
            *parents, leaf = sub.split("__")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
            labels.append(label(var))
    # Nested variables come last so they win over the JSON form of the same field, as in the
    # reference (the two deep-merge).
    out += [(field, value, " + ".join(labels)) for field, (value, labels) in nested.items()]
    return out


def _text_lookup(mappings: tuple[Mapping[str, str], ...], name: str) -> str | None:
    """The first non-empty value of variable ``name`` (any case) in ``mappings``."""
    for mapping in mappings:
        for key, value, _ in _env_items(mapping, name):
            if key == "" and value:
                return value
    return None


# -- Site selection -------------------------------------------------------------------------------


def _lookup_site(
    sites: Mapping[str, Any], wanted: str, config_path: str, by_name: bool = True
) -> str | None:
    """The key of the site named ``wanted``, or else the one whose domain is ``wanted``."""
    if by_name and wanted in sites:
        return wanted
    try:
        wanted_domain = _normalize_domain(wanted, "site")
    except ConfigError:
        return None
    matches = [
        name for name, table in sites.items()
        if isinstance(table, dict) and isinstance(table.get("domain"), str)
        and _normalize_domain(table["domain"], f"{config_path} [sites.{name}]") == wanted_domain
    ]
    if len(matches) > 1:
        raise ConfigError(
            f"The domain {wanted} matches more than one configured site ({', '.join(matches)}) "
            f"in {config_path}. Select the site by its name instead."
        )
    return matches[0] if matches else None


def _select_site(
    sites: Mapping[str, Any],
    requested_site: str | None,
    requested_domain: str | None,
    default_site: str | None,
    config_path: str,
) -> str | None:
    """Which [sites.<name>] table applies: by request, by domain, or the default site."""
    if requested_site:
        found = _lookup_site(sites, requested_site, config_path)
        if found is None and requested_site != DEFAULT_DOMAIN:
            raise UnknownSiteName(
                f"The site name {_clip(requested_site)} has not been configured in {config_path}. "
                f"List the sites with: {CLI_NAME} sites list"
            )
        return found
    if requested_domain:
        # The reference compares the raw string; we compare normalised domains (https://b.com/
        # and b.com are the same site).
        return _lookup_site(sites, requested_domain, config_path, by_name=False)
    if default_site:
        found = _lookup_site(sites, default_site, config_path)
        if found is None and default_site != DEFAULT_DOMAIN:
            raise UnknownSiteName(
                f"The site or domain {_clip(default_site)} has not been configured in {config_path}. "
                f"Fix default_site there (or ANACONDA_DEFAULT_SITE), or add the site."
            )
        return found
    return next(iter(sites), None)


def _configured_sites(
    document: Mapping[str, Any], environ: Mapping[str, str], config_path: str
) -> dict[str, dict[str, Any]]:
    """[sites.<name>] tables, then sites from ANACONDA_SITES (JSON) and ANACONDA_SITES__<N>__<F>."""
    sites: dict[str, dict[str, Any]] = {}
    for name, table in _toml_table(document, "sites").items():
        if not isinstance(table, dict):
            raise _bad(f"{config_path} [sites]", f"sites.{name} is not a table",
                       f'Write it as [sites.{name}] with domain = "..."')
        sites[name] = dict(table)
    for key, value, var in _env_items(environ, "ANACONDA_SITES"):
        if key == "":
            for name, table in _parse_json_dict(value, f"environment variable {var}").items():
                if not isinstance(table, dict):
                    raise _bad(f"environment variable {var}", f"site {_quoted(name)} is not an object",
                               'Give {"<name>": {"domain": "..."}}')
                sites.setdefault(name, {}).update(table)
        elif key.startswith("__") and key.count("__") >= 2:
            _, name, *fields = key.split("__")
            target = sites.setdefault(name, {})
            for field in fields[:-1]:  # ANACONDA_SITES__X__PROXY_SERVERS__HTTPS nests
                target = target.setdefault(field, {})
            target[fields[-1]] = value
    return sites


# -- Merge ----------------------------------------------------------------------------------------


def _merge(target: dict[str, Any], value: dict[str, Any]) -> None:
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(target.get(key), dict):
            _merge(target[key], item)
        else:
            target[key] = item


def _apply(
    values: dict[str, Any], sources: dict[str, str], layer: list[tuple[str, Any, str]],
    lenient: bool = False, home: str | None = None, environ: Mapping[str, str] | None = None,
) -> None:
    """Lay one source over the values so far; dicts deep-merge as in the reference. A
    ``lenient`` source (conda's files) has its invalid values skipped with a warning. Paths
    are checked where ``home`` and ``environ`` put them."""
    for field, raw, source in layer:
        try:
            value = _parse_field(field, raw, source, home, environ)
        except ConfigError as e:
            if not lenient:
                raise
            _warn_once(f"{e} (ignored: conda's setting)")
            continue
        if isinstance(value, dict) and isinstance(values.get(field), dict):
            merged = _thaw(values[field])
            _merge(merged, value)
            values[field] = merged
            sources[field] = f"{sources[field]} + {source}"
        else:
            values[field] = value
            sources[field] = source


def _toml_layer(table: Mapping[str, Any], label: str) -> list[tuple[str, Any, str]]:
    return [(k, v, f"{label} {k}") for k, v in table.items() if k in _FIELDS]


def _finish_values(
    values: dict[str, Any], sources: dict[str, str], home: str | None,
    environ: Mapping[str, str] | None,
) -> None:
    """Derived values: empty optionals become None; keyring_path, a CA path and the client
    certificate's paths are expanded (``~`` and ``$VARS``)."""
    for name, (kind, _) in _FIELDS.items():
        if values[name] == "" and (kind.startswith("opt") or kind in ("secret", "envversion")):
            values[name] = None
    path = values["keyring_path"]
    if not path:
        base = _home_dir(os.environ if environ is None else environ, home)
        values["keyring_path"] = os.path.join(base, ".anaconda", "keyring")
    else:
        values["keyring_path"] = _expand_path(path, home, environ)
    verify = values["ssl_verify"]
    if isinstance(verify, str) and verify != "truststore":
        values["ssl_verify"] = _expand_path(verify, home, environ)
    for name in ("client_cert", "client_cert_key"):
        if values[name]:
            values[name] = _expand_path(values[name], home, environ)


def _expand_path(path: str, home: str | None, environ: Mapping[str, str] | None) -> str:
    if environ is not None and "$" in path:
        import string

        path = string.Template(path).safe_substitute(environ)
    if home and (path == "~" or path.startswith(("~/", "~" + os.sep))):
        path = home + path[1:]  # ~user stays for expanduser
    return os.path.abspath(os.path.expanduser(path))


def _home_dir(environ: Mapping[str, str], home: str | None = None) -> str:
    """The home directory: the one given, else $HOME of ``environ``, else the OS's idea."""
    return home or environ.get("HOME") or os.path.expanduser("~")


def _config_path(environ: Mapping[str, str], home: str) -> str:
    configured = environ.get("ANACONDA_CONFIG_TOML")
    if configured:
        return _expand_path(configured, home, environ)
    return os.path.join(home, ".anaconda", "config.toml")


class _Sources:
    """Every file and mapping a Config is resolved from, each read once: resolving several
    sites (``sites list``) reads the files once, not once a site."""

    __slots__ = ("conda", "config_path", "cwd", "document", "dotenv", "environ", "home",
                 "secrets", "secrets_dir")

    def __init__(self, environ: Mapping[str, str], cwd: str | None, home: str | None) -> None:
        self.environ = environ
        self.home = home = _home_dir(environ, home)
        if cwd is None:
            try:
                cwd = os.getcwd()
            except FileNotFoundError:  # the working directory was removed: there is no .env
                cwd = os.devnull
        self.cwd = cwd
        self.config_path = _config_path(environ, home)
        self.document = _read_config_toml(self.config_path)
        self.dotenv = _read_dotenv(os.path.join(cwd, ".env"))
        self.secrets_dir = environ.get("ANACONDA_SECRETS_DIR", "/run/secrets")
        self.secrets = _read_secrets_dir(_expand_path(self.secrets_dir, home, environ))
        self.conda = _conda_values(environ, home)


def resolve_config(
    site: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
    home: str | None = None,
    **overrides: Any,
) -> Config:
    """Resolve the settings of ``site`` (a site name or domain; default: the default site).

    ``overrides`` are explicit values for any Config field and win over every other source.
    ``environ``, ``cwd`` and ``home`` default to the process's own.
    """
    for name in overrides:
        if name not in _FIELDS:
            raise ConfigError(f"resolve_config({name}=...): unknown setting {name!r}")
    return _resolve(_Sources(os.environ if environ is None else environ, cwd, home), site,
                    overrides)


def _text_layer(mapping: Mapping[str, str], prefix: str, describe: str) -> list[tuple[str, Any, str]]:
    joiner = "" if describe.endswith("/") else " "
    return _text_values(_env_items(mapping, prefix), lambda var: f"{describe}{joiner}{var}")


def _first_text(field: str, *layers: list[tuple[str, Any, str]]) -> str | None:
    """Layers are lists of (field, raw value, source), later entries winning. The value of ``field`` in the highest layer that sets it to a non-empty string."""
    for layer in layers:
        for name, value, _ in reversed(layer):
            if name == field and isinstance(value, str) and value:
                return value
    return None


def _resolve(sources: _Sources, site: str | None, overrides: Mapping[str, Any]) -> Config:
    """Build the layers from ``sources``, choose the site, merge lowest first."""
    environ, document, config_path = sources.environ, sources.document, sources.config_path
    dotenv_path = os.path.join(sources.cwd, ".env")
    # Highest first, in the reference's order.
    explicit = [(k, v, f"argument {k}=") for k, v in overrides.items() if v is not None]
    auth_env = _text_layer(environ, "ANACONDA_AUTH_", "environment variable")
    auth_secrets = _text_layer(sources.secrets, "ANACONDA_AUTH_",
                               f"secret file {sources.secrets_dir}/")
    auth_dotenv = _text_layer(sources.dotenv, "ANACONDA_AUTH_", f"{dotenv_path}:")
    legacy = (
        _toml_layer(_toml_table(document, "plugin", "cloud"), f"{config_path} [plugin.cloud]")
        + _text_layer(sources.dotenv, "ANACONDA_CLOUD_", f"{dotenv_path}:")
        + _text_layer(sources.secrets, "ANACONDA_CLOUD_", f"secret file {sources.secrets_dir}/")
        + _text_layer(environ, "ANACONDA_CLOUD_", "environment variable")
    )
    plugin_auth = _toml_layer(_toml_table(document, "plugin", "auth"), f"{config_path} [plugin.auth]")

    default_site = _text_lookup((environ, sources.secrets, sources.dotenv),
                                "ANACONDA_DEFAULT_SITE") or document.get("default_site")
    sites = _configured_sites(document, environ, config_path)
    top = (explicit, auth_env, auth_secrets, auth_dotenv)
    requested_site = site or _first_text("site", *top)
    requested_domain = _first_text("domain", *top)
    chosen = _select_site(
        sites, requested_site, requested_domain,
        default_site if isinstance(default_site, str) else None, config_path,
    )
    site_layer = []
    if chosen is not None:
        in_file = _toml_table(document, "sites", chosen)
        site_layer = [
            (field, value, f"{config_path} [sites.{chosen}] {field}" if in_file.get(field) == value
             else f"environment variable ANACONDA_SITES (site {chosen}, {field})")
            for field, value in sites[chosen].items() if field in _FIELDS
        ]

    values = {name: default for name, (_, default) in _FIELDS.items()}
    where = {name: "default" for name in _FIELDS}
    _apply(values, where, sources.conda, True, sources.home, environ)
    for layer in (plugin_auth, legacy, site_layer, auth_dotenv, auth_secrets, auth_env, explicit):
        _apply(values, where, layer, False, sources.home, environ)
    _warn_legacy(legacy)
    _finish_values(values, where, sources.home, environ)
    if chosen is not None:
        values["site"], where["site"] = chosen, (
            f"{config_path} [sites.{chosen}]" if _toml_table(document, "sites", chosen)
            else f"environment variable ANACONDA_SITES (site {chosen})")
    elif requested_domain and not requested_site:
        values["site"], where["site"] = values["domain"], "domain"  # a domain with no site
    else:  # the reference's implicit site, whatever [plugin.auth] or legacy settings say
        values["site"], where["site"] = DEFAULT_DOMAIN, "implicit default site"
    return Config(values, where, config_path)


def _warn_legacy(legacy: list[tuple[str, Any, str]]) -> None:
    if not legacy:
        return
    fields = ", ".join(f'"{f}"' for f in sorted({f for f, _, _ in legacy}))
    message = (
        "The following fields have been set using legacy environment variables prefixed with "
        f"'ANACONDA_CLOUD_' or in the 'plugin.cloud' section of config.toml: {fields}. Rename the "
        "variables to ANACONDA_AUTH_..., or the section to [plugin.auth]."
    )
    if message not in _caches.warned and not _Output.quiet:
        print(f"anaconda_auth: deprecated: {message}", file=sys.stderr)
    _warn_once(message, DeprecationWarning)


def configured_sites(
    *, environ: Mapping[str, str] | None = None, home: str | None = None,
    cwd: str | None = None,
) -> tuple[list[str], str | None, str]:
    """(site names in file order, the default site's name, config path) as ``sites`` shows them."""
    return _site_names(_Sources(os.environ if environ is None else environ, cwd, home))


def _site_names(sources: _Sources) -> tuple[list[str], str | None, str]:
    path = sources.config_path
    sites = _configured_sites(sources.document, sources.environ, path)
    if not sites:
        return [DEFAULT_DOMAIN], DEFAULT_DOMAIN, path
    default = _resolve(sources, None, {}).site
    return list(sites), default if default in sites else None, path


def _coerce_config(config: Config | str | None, site: Config | str | None, function: str) -> Config:
    """The Config that a public function's ``config`` (or the reference's ``site=``) names.

    Either may be a Config, a site name, a configured site's domain, or None (the default site);
    giving both is an error, as in the reference. Anything else is a TypeError naming the accepted
    types, so a wrong argument never ends in an AttributeError deep inside.
    """
    if site is not None:
        if config is not None:
            raise ValueError(f"{function}(): give the site once, as config or as site=, not both")
        config = site
    if config is None:
        return resolve_config()
    if isinstance(config, Config):
        return config
    if isinstance(config, str):
        if not config.strip():
            raise UnknownSiteName(f"{function}(): the site name is empty; give a site name or "
                                  "domain, or None for the default site")
        return resolve_config(config)
    raise TypeError(f"{function}(): config must be a Config, a site name or domain (str), or "
                    f"None for the default site, not {type(config).__name__}")


# =================================================================================================
# Token storage
# Owns the stored API keys: the reference's payload format (base64 of compact JSON under service
# "Anaconda Cloud", user = domain), the file store ~/.anaconda/keyring (private, atomic, locked,
# never overwritten when corrupt), the OS keyring through ``keyring`` (every call under a
# timeout), legacy-domain migration, and the one place that decides which key is used.
# Storage never touches the network.
# =================================================================================================

_SYSTEM_KEYRING_TIMEOUT = 5.0
_BASE64_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


# -- The start-up shortcut ------------------------------------------------------------------------
# The api-key path decodes three small JSON documents (the token store, the stored token, the
# key's claims). The json module imports re (and with it enum, functools, collections): more
# start-up time than the rest of the command. So the plain JSON those documents are written in
# (objects, arrays, strings, integers, true, false, null) is read here with str methods alone;
# anything else, and anything invalid, goes to json.loads, which gives its own errors (the
# tests force that fallback). Like the TOML reader, it uses nothing but str methods.
_JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                 "t": "\t"}


def _json_loads(text: str) -> Any:
    """``json.loads(text)``, without importing json for plain documents."""
    try:
        value, end = _plain_json_value(text, _json_skip(text, 0))
        if _json_skip(text, end) == len(text):
            return value
    except (ValueError, RecursionError):
        pass  # not plain JSON: json.loads reads it, or says what is wrong
    import json

    return json.loads(text)


def _json_skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _plain_json_value(text: str, pos: int) -> tuple[Any, int]:
    """The plain JSON value at ``pos`` and the position after it; ValueError for anything else."""
    if text.startswith('"', pos):
        return _plain_json_string(text, pos)
    if text.startswith(("{", "["), pos):
        return _plain_json_container(text, pos)
    for word, value in (("true", True), ("false", False), ("null", None)):
        if text.startswith(word, pos):
            return value, pos + len(word)
    start = pos + text.startswith("-", pos)
    end = start
    while end < len(text) and text[end] in "0123456789":
        end += 1
    digits = text[start:end]
    if not digits or (digits[0] == "0" and digits != "0") or text.startswith((".", "e", "E"), end):
        raise ValueError("not a plain JSON value")
    return int(text[pos:end]), end


def _plain_json_container(text: str, pos: int) -> tuple[Any, int]:
    """An object or an array."""
    keyed = text[pos] == "{"
    closer = "}" if keyed else "]"
    items: list[Any] = []
    pos = _json_skip(text, pos + 1)
    if not text.startswith(closer, pos):
        while True:
            if keyed:
                if not text.startswith('"', pos):
                    raise ValueError("expected a key")
                key, pos = _plain_json_string(text, pos)
                pos = _json_skip(text, pos)
                if not text.startswith(":", pos):
                    raise ValueError("expected ':'")
                pos = _json_skip(text, pos + 1)
            value, pos = _plain_json_value(text, pos)
            items.append((key, value) if keyed else value)
            pos = _json_skip(text, pos)
            if text.startswith(closer, pos):
                break
            if not text.startswith(",", pos):
                raise ValueError("expected ','")
            pos = _json_skip(text, pos + 1)
    return (dict(items) if keyed else items), pos + 1


def _plain_json_string(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    i = pos + 1
    while True:
        end = text.find('"', i)
        if end < 0:
            raise ValueError("unterminated string")
        slash = text.find("\\", i, end)
        stop = end if slash < 0 else slash
        chunk = text[i:stop]
        if not chunk.isprintable() and any(c < " " for c in chunk):
            raise ValueError("a control character in a string")
        out.append(chunk)
        if slash < 0:
            return "".join(out), end + 1
        code = text[slash + 1 : slash + 2]
        if code == "u":
            digits = text[slash + 2 : slash + 6]
            if len(digits) != 4 or not _HEX_DIGITS.issuperset(digits) or (
                    0xD800 <= int(digits, 16) <= 0xDFFF):
                raise ValueError("a \\u escape json.loads reads")  # surrogates pair up there
            out.append(chr(int(digits, 16)))
            i = slash + 6
        elif code in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[code])
            i = slash + 2
        else:
            raise ValueError("an invalid escape")


# base64 imports re as well; binascii is the C code underneath it.


def _b64decode(text: str, urlsafe: bool = False) -> bytes:
    """Strict base64 (or unpadded base64url) decoding; ValueError on anything else."""
    import binascii

    if urlsafe:
        text = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    if not isinstance(text, str) or not text or not _BASE64_CHARACTERS.issuperset(text):
        raise ValueError("not base64")
    return binascii.a2b_base64(text)


def _encode_token(domain: str, api_key: str, username: str | None = None,
                  repo_tokens: list[Any] | None = None) -> str:
    """The stored value, byte-identical to the reference's TokenInfo (None fields omitted)."""
    import base64
    import json

    payload: JSONDict = {"domain": domain, "api_key": api_key}
    if username is not None:
        payload["username"] = username
    payload["repo_tokens"] = repo_tokens or []
    payload["version"] = TOKEN_INFO_VERSION
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _decode_token(value: Any, where: str) -> JSONDict:
    """A stored value back to its payload (a copy: callers may change it); StorageError naming
    ``where`` when it is damaged."""
    decoded = _caches.decoded_tokens.get(value) if isinstance(value, str) else None
    if decoded is None:
        decoded = _decode_token_once(value, where)
        if isinstance(value, str):
            _remember(_caches.decoded_tokens, value, decoded)
    copied: JSONDict = _json_copy(decoded)
    return copied


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` in a bounded cache: a process that sees many keys starts again at 64."""
    if len(cache) >= 64:
        cache.clear()
    cache[key] = value


def _json_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    return [_json_copy(v) for v in value] if isinstance(value, list) else value


def _decode_token_once(value: Any, where: str) -> JSONDict:
    try:
        payload = _json_loads(_b64decode(value).decode("utf-8"))
    except (TypeError, ValueError):
        raise StorageError(
            f"{where} is not a valid stored token (expected base64-encoded JSON). "
            f"Log in again with: {CLI_NAME} login --force"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("api_key"), str):
        raise StorageError(
            f"{where} has no api_key. Log in again with: {CLI_NAME} login --force"
        )
    payload.setdefault("repo_tokens", [])
    payload.setdefault("version", TOKEN_INFO_VERSION)
    return payload


# -- The file store -------------------------------------------------------------------------------


def _storage_error(path: str, error: OSError, doing: str) -> StorageError:
    if isinstance(error, IsADirectoryError):
        problem = "is a directory, not the token store file"
    elif isinstance(error, PermissionError):
        problem = "cannot be accessed (permission denied)"
    else:
        problem = f"failed: {error.strerror or error}"
    import errno

    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        fix = "Free some space on that file system, then try again."
    elif error.errno == errno.EROFS:
        fix = ("Remount that file system read-write, or set keyring_path to a writable place, "
               "then try again.")
    else:
        fix = ("Fix or move that path aside (the file should be a regular file with mode 600), "
               "then log in again.")
    return StorageError(f"{path} {problem} while {doing}. Nothing was changed. {fix}")


def _file_store_read(path: str) -> dict[str, dict[str, str]]:
    """The whole file store; {} when the file is missing or empty."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise _storage_error(path, e, "reading stored API keys") from None
    except UnicodeDecodeError:
        text = "\0"
    if not text.strip():
        return {}
    try:
        data = _json_loads(text)
    except ValueError as e:
        raise StorageError(
            f"{path} is not valid JSON ({e}). It was left as it is. Move it aside "
            f"(mv {path} {path}.bad) and log in again; copy any other entries back by hand."
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(entries, dict) and all(isinstance(v, str) for v in entries.values())
        for entries in data.values()
    ):
        raise StorageError(
            f"{path} does not have the token store layout "
            '{"<service>": {"<domain>": "<token>"}}. It was left as it is. Move it aside '
            f"(mv {path} {path}.bad) and log in again."
        )
    return data


def _file_store_write(path: str, data: Mapping[str, Mapping[str, str]]) -> None:
    import json

    try:
        # json.dump's default separators and no newline: the reference's exact bytes.
        _write_file_atomically(path, json.dumps(data).encode("utf-8"))
    except OSError as e:
        raise _storage_error(path, e, "saving the API key") from None


class _FileStore:
    """The reference's ``~/.anaconda/keyring`` file, done safely."""

    may_fail = False

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"file {path}"

    def get(self, username: str) -> str | None:
        # Every request() asks for the key: re-read the file only when it changed (a write
        # replaces the file, so its inode changes too).
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _storage_error(self.path, e, "reading stored API keys") from None
        signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = _caches.file_store.get(self.path)
        if cached is None or cached[0] != signature:
            cached = _caches.file_store[self.path] = (signature, _file_store_read(self.path))
        return cached[1].get(KEYRING_SERVICE, {}).get(username)

    def update(self, change: Callable[[dict[str, str]], bool]) -> None:
        """Read, ``change`` the service's entries in place, write back: all under the lock."""
        try:
            lock = _FileLock(self.path)
            lock.__enter__()
        except OSError as e:
            raise _storage_error(self.path, e, "locking the token store") from None
        try:
            data = _file_store_read(self.path)
            entries = data.setdefault(KEYRING_SERVICE, {})
            if change(entries):
                _file_store_write(self.path, data)
        finally:
            lock.__exit__()

    def replace(self, username: str, change: Callable[[str | None], str]) -> None:
        """Set the entry to ``change(its value)``, read and written under one lock."""
        def put(entries: dict[str, str]) -> bool:
            entries[username] = change(entries.get(username))
            return True

        self.update(put)

    def move(self, old: str, new: str, value: str) -> None:
        """Rename entry ``old`` to ``new`` (holding ``value``), keeping a ``new`` already there."""
        def rename(entries: dict[str, str]) -> bool:
            entries.setdefault(new, value)
            entries.pop(old, None)
            return True

        self.update(rename)

    def delete(self, username: str) -> bool:
        deleted = []

        def remove(entries: dict[str, str]) -> bool:
            deleted.append(entries.pop(username, None) is not None)
            return deleted[0]

        if not os.path.exists(self.path):
            return False
        self.update(remove)
        return deleted[0]


# -- The OS keyring -------------------------------------------------------------------------------


def _start_daemon_thread(target: Callable[[], Any], name: str) -> Any:
    """Start ``target`` in a daemon thread that Ctrl-C is never delivered to.

    The kernel hands a process-wide SIGINT to any thread not blocking it, and Python acts on it
    only in the main thread: one taken by a helper thread left the main thread asleep in
    select() or a lock until its timeout (a login that ignored Ctrl-C). The thread inherits the
    mask, set around its start so there is no window, and so do the threads it starts (the
    login listener's per-connection threads).
    """
    import signal
    import threading

    thread = threading.Thread(target=target, daemon=True, name=name)
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no per-thread signal masks
        thread.start()
        return thread
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread


def _call_with_timeout(function: Callable[..., Any], *args: Any) -> Any:
    """Run a keyring call in a daemon thread: a locked Secret Service must not hang a login."""

    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(function(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(e)

    thread = _start_daemon_thread(run, "anaconda_auth-keyring")
    thread.join(_SYSTEM_KEYRING_TIMEOUT)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {_SYSTEM_KEYRING_TIMEOUT:g} s")
    if error:
        raise error[0]
    return result[0] if result else None


class _SystemStore:
    """The OS keyring (macOS Keychain, Windows Credential Manager, Secret Service) via keyring."""

    may_fail = True

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.description = f"system keyring ({type(backend).__module__}.{type(backend).__name__})"

    def get(self, username: str) -> str | None:
        value = _call_with_timeout(self.backend.get_password, KEYRING_SERVICE, username)
        return value if isinstance(value, str) else None

    def set(self, username: str, value: str) -> None:
        _call_with_timeout(self.backend.set_password, KEYRING_SERVICE, username, value)

    def replace(self, username: str, change: Callable[[str | None], str]) -> None:
        self.set(username, change(self.get(username)))

    def move(self, old: str, new: str, value: str) -> None:
        self.set(new, value)
        self.delete(old)

    def delete(self, username: str) -> bool:
        if self.get(username) is None:
            return False
        _call_with_timeout(self.backend.delete_password, KEYRING_SERVICE, username)
        return True


def _system_backend() -> Any:
    """The ``keyring`` package's backend, or raise saying why there is no usable OS keyring."""
    try:
        import keyring
    except ImportError:
        raise RuntimeError("the 'keyring' package is not installed") from None
    backend = _call_with_timeout(keyring.get_keyring)
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if name.startswith(("keyring.backends.fail", "keyring.backends.null")) or (
        name == "keyring.backends.chainer.ChainerBackend" and not backend.backends
    ):
        raise RuntimeError(f"no OS keyring is available ({name})")
    return backend


class _UnreachableStore:
    """An OS keyring that did not answer in time while being set up: it may hold keys, so it
    stays in the list, failing every call; reads and saves then fall back to the file (with
    the warning) and logout reports the key it could not delete, as with a keyring that hangs
    later, in get or delete."""

    may_fail = True

    def __init__(self, error: TimeoutError) -> None:
        self.error = str(error)
        self.description = "system keyring"

    def get(self, username: str) -> str | None:
        raise TimeoutError(self.error)

    def replace(self, username: str, change: Callable[[str | None], str]) -> None:
        raise TimeoutError(self.error)

    def move(self, old: str, new: str, value: str) -> None:
        raise TimeoutError(self.error)

    def delete(self, username: str) -> bool:
        raise TimeoutError(self.error)


def _stores(config: Config) -> list[_KeyStore]:
    """Where keys are kept, preferred first: [system, file] or [file]."""
    file_store = _FileStore(config.keyring_path)
    if config.preferred_token_storage != "system":
        return [file_store]
    try:
        return [_SystemStore(_system_backend()), file_store]
    except TimeoutError as e:
        return [_UnreachableStore(e), file_store]
    except Exception as e:  # noqa: BLE001 - any other keyring failure means "use the file"
        _warn_system_fallback(e, file_store)
        return [file_store]


def _warn_system_fallback(error: BaseException, fallback: _KeyStore) -> None:
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    _warn_once(f"The system keyring is not usable ({reason}); using the {fallback.description} "
               "instead.")


# -- Loading and saving keys ----------------------------------------------------------------------


def _load_stored_token(config: Config) -> tuple[JSONDict | None, str]:
    """(payload, where it came from) for the site's domain; legacy domains migrate on read.

    With ``system`` storage the file is read too when the OS keyring has no entry, as the
    reference's keyring chain does, so switching storage does not log anybody out.
    """
    stores = _stores(config)
    for store in stores:
        try:
            payload = _load_from_store(store, config.domain)
        except Exception as e:
            if not store.may_fail:
                raise
            _warn_system_fallback(e, stores[-1])
            continue
        if payload is not None:
            return payload, store.description
    return None, " and ".join(store.description for store in stores)


def _load_from_store(store: _KeyStore, domain: str) -> JSONDict | None:
    value = store.get(domain)
    if value is not None:
        return _decode_token(value, f"{store.description}, entry {domain}")
    for legacy in LEGACY_DOMAINS.get(domain, ()):
        value = store.get(legacy)
        if value is not None:
            return _migrate_legacy(store, domain, legacy, value)
    return None


def _migrate_legacy(store: _KeyStore, domain: str, legacy: str, value: str) -> JSONDict:
    """Move an ``anaconda.cloud`` entry to ``anaconda.com``, as the reference does on read."""
    payload = _decode_token(value, f"{store.description}, entry {legacy}")
    payload["domain"], payload["version"] = domain, TOKEN_INFO_VERSION
    encoded = _encode_token(domain, payload["api_key"], payload.get("username"),
                            payload.get("repo_tokens"))
    try:
        store.move(legacy, domain, encoded)
    except Exception as e:  # noqa: BLE001 - moving is a courtesy; the key was read
        _warn_once(f"Could not move the {legacy} entry to {domain} in {store.description} "
                   f"({e}); using it where it is.")
    return payload


def _save_api_key(config: Config, api_key: str) -> str:
    """Store ``api_key`` for the site; keeps the stored username and repo tokens. Returns where."""
    stores = _stores(config)

    def with_new_key(value: str | None) -> str:
        try:
            old = _decode_token(value, "") if value else {}
        except StorageError:
            old = {}  # a damaged entry is the one being replaced
        return _encode_token(config.domain, api_key, old.get("username"), old.get("repo_tokens"))

    def save(store: _KeyStore) -> str:
        store.replace(config.domain, with_new_key)
        return store.description

    try:
        return save(stores[0])
    except AnacondaAuthError:
        raise
    except Exception as e:
        if len(stores) == 1:
            raise
        _warn_system_fallback(e, stores[-1])
        return save(stores[-1])


def _delete_stored_tokens(config: Config) -> bool:
    """Delete the site's entries (and legacy ones) from every store that may hold them.

    An OS keyring that cannot be reached is an error here, not a fallback: the key stored
    there would still log the user in once the keyring answers again.
    """
    names = (config.domain, *LEGACY_DOMAINS.get(config.domain, ()))
    deleted = False
    unreachable = None
    for store in _stores(config):
        try:
            for name in names:
                deleted = store.delete(name) or deleted
        except Exception as e:
            if not store.may_fail:
                raise
            unreachable = f"{store.description}: {type(e).__name__}: {e}"
    if unreachable:
        raise StorageError(
            f"Could not reach the system keyring ({unreachable}); a key stored there was not "
            "deleted. Unlock the keyring and run logout again."
            + (" The file store's entry was deleted." if deleted else ""))
    return deleted


def _jwt_claims(token: str) -> JSONDict | None:
    """The claims of a JWT, read without checking the signature; None when not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = _json_loads(_b64decode(parts[1], urlsafe=True).decode("utf-8"))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def key_expiry(api_key: str) -> float | None:
    """Epoch seconds (UTC) when ``api_key`` expires, from its JWT ``exp``; None when unknown."""
    if api_key in _caches.key_expiries:
        return _caches.key_expiries[api_key]
    import math

    exp = (_jwt_claims(api_key) or {}).get("exp")
    at = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) and (
        math.isfinite(exp)) else None
    _remember(_caches.key_expiries, api_key, at)
    return at


class _KeyExpiry:
    """When a key expires, decided in this one place: ``at`` (epoch seconds, None when the key
    has no ``exp``), ``expired``, ``seconds_left`` (None when unknown), ``days_left`` (whole
    days, None when unknown or expired) and ``date`` (UTC text, or "unknown")."""

    __slots__ = ("at", "days_left", "expired", "seconds_left")

    def __init__(self, api_key: str, now: float | None = None) -> None:
        # time.time() is seconds since the epoch in UTC whatever the local zone (the reference
        # compared a local-time datetime with a UTC one and was off by the zone offset).
        self.at = key_expiry(api_key)
        now = time.time() if now is None else now
        self.seconds_left = None if self.at is None else self.at - now
        self.expired = self.seconds_left is not None and self.seconds_left < 0
        self.days_left = (None if self.seconds_left is None or self.expired
                          else int(self.seconds_left // 86400))

    @property
    def date(self) -> str:
        return "unknown" if self.at is None else _format_utc(self.at)

    def within_days(self, days: int) -> bool:
        """Whether the key expires, not yet expired, within ``days`` days (0: never true)."""
        return (days > 0 and self.seconds_left is not None and not self.expired
                and self.seconds_left < days * 86400)


def _warn_if_expiring(config: Config, api_key: str, where: str,
                      expiry: _KeyExpiry | None = None) -> None:
    """Say once per process (KeyExpiringWarning) that the key in use expires soon."""
    expiry = expiry or _KeyExpiry(api_key)
    if not expiry.within_days(config.expiry_warning_days) or expiry.days_left is None:
        return
    when = "in less than a day" if expiry.days_left == 0 else (
        f"in {expiry.days_left} day{'s' if expiry.days_left != 1 else ''}")
    fix = ("Replace it there before then." if _configured_key_source(config) else
           f"Renew it with: {_relogin_command(config)}")
    _warn_once(f"The API key for {config.domain} (from {where}) expires on {expiry.date}, "
               f"{when}. {fix}", KeyExpiringWarning)


def _format_utc(epoch: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, ValueError, OSError):  # exp of 1e20 or NaN: still never a crash
        return f"{epoch:g} (seconds since 1970, not a representable date)"


def _configured_key_source(config: Config) -> str | None:
    """Where a key set in the configuration comes from (an env variable, .env, a secret file,
    config.toml, an argument), where no login can replace it; None when the key is stored."""
    if config.api_key:
        return config.sources.get("api_key", "configuration")
    if config.keyring:
        return f"keyring setting from {config.sources.get('keyring', 'configuration')}"
    return None


def _key_is_configured(config: Config) -> bool:
    """Whether the key comes from the configuration, where no login can replace it."""
    return _configured_key_source(config) is not None


def _login_command(config: Config) -> str:
    at = "" if config.site == DEFAULT_DOMAIN else f" --at {config.site}"
    return f"{CLI_NAME}{at} login"


def _relogin_command(config: Config) -> str:
    """How to replace a stored key: log in again, or store again a key that was handed over
    (a machine provisioned with --with-token has no browser to log in with)."""
    login = _login_command(config)
    return f"{login} --force (or {login} --with-token for a key you were given)"


def _find_api_key(config: Config) -> tuple[str | None, str]:
    """(key, where it came from): config api_key, then the config keyring, then the store."""
    configured = _configured_key_source(config)
    if config.api_key:
        return config.api_key, str(configured)
    if config.keyring:
        entries = config.keyring.get(KEYRING_SERVICE, {})
        where = str(configured)
        for name in (config.domain, *LEGACY_DOMAINS.get(config.domain, ())):
            if name in entries:
                return _decode_token(entries[name], f"{where}, entry {name}")["api_key"], where
        return None, where
    payload, where = _load_stored_token(config)
    return (payload["api_key"] if payload else None), where


# =================================================================================================
# HTTP
# Owns every network call: ``request()`` and the ``Response`` it returns, on urllib3 alone (1.26
# and 2.x). One connection pool per (TLS, proxy, client certificate) setting, kept for the
# process; the bearer key only to the site's own hosts over https (or loopback); retries with
# backoff that never resend a body the server may have seen. Nothing here writes to disk.
# =================================================================================================

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_RETRY_AFTER = 60.0  # seconds
_DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
_MAX_REDIRECTS = 5
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


class Response:
    """A complete HTTP response: ``status``, ``reason``, ``headers`` (case-insensitive),
    ``body`` (bytes), ``url`` (after redirects), ``text``, ``json()``, ``ok``,
    ``raise_for_status()``."""

    __slots__ = ("body", "headers", "key_note", "reason", "sent_auth", "status", "url")

    def __init__(self, status: int, reason: str, headers: Mapping[str, str], body: bytes,
                 url: str, sent_auth: bool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.url = url
        self.sent_auth = sent_auth  # whether the final request carried the bearer key
        # request() adds which key went (or why none did), for the 401/403 messages.
        self.key_note: _KeyNote | None = None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def text(self) -> str:
        content_type = self.headers.get("Content-Type", "")
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            kind = self.headers.get("Content-Type") or "no content type"
            raise HTTPError(
                f"The response from {self.url} (HTTP {self.status}, {kind}) is not JSON: "
                f"{_excerpt(self.text)}", self,
            ) from None

    def error_code(self) -> str | None:
        """``error.code`` of an Anaconda JSON error body, if there is one."""
        try:
            error = self.json().get("error")
        except (AnacondaAuthError, AttributeError):
            return None
        return error.get("code") if isinstance(error, dict) else None

    def raise_for_status(self) -> None:
        """Raise for 4xx/5xx: LoginRequiredError / InvalidTokenError when the server says
        ``auth_required``, else HTTPError with the status and a short excerpt of the body."""
        if self.ok:
            return
        error: AnacondaAuthError
        explained = f" {self.key_note.explain(self)}" if self.key_note else ""
        if self.status in (401, 403) and self.error_code() == "auth_required":
            # The reference's sentence first (callers match on it), then what happened to
            # which key and what to do.
            if self.sent_auth:
                error = InvalidTokenError("Your API key or login token is invalid." + explained)
            else:
                error = LoginRequiredError(
                    "You must login before using this API endpoint or provide an api_key to "
                    "your client." + explained
                )
            error.response = self
            raise error
        side = "Client" if self.status < 500 else "Server"
        raise HTTPError(
            f"{self.status} {side} Error: {self.reason} for url: {self.url}"
            + (f": {_excerpt(self.text)}" if self.body else "")
            + (explained if self.status in (401, 403) else ""), self,
        )


# error.code values that mean the credential itself was refused (the reference's API answers
# auth_required; OAuth resource servers answer invalid_token, RFC 6750), not a missing permission.
_AUTH_ERROR_CODES = frozenset({"auth_required", "invalid_token"})


class _KeyNote:
    """Which key a request carried, or why it carried none: what a 401/403 message says."""

    __slots__ = ("config", "key", "source", "why_none")

    def __init__(self, config: Config, key: str | None, source: str, why_none: str = "") -> None:
        self.config, self.key, self.source, self.why_none = config, key, source, why_none

    def explain(self, response: Response) -> str:
        config = self.config
        if self.source == "the api_key argument":
            fix = "Pass a key the site accepts."
        elif self.source == _configured_key_source(config):
            fix = "Update or unset it there: a login would not replace it."
        else:
            fix = f"Log in again with: {_relogin_command(config)}"
        if self.key and not response.sent_auth:
            return (f"The API key from {self.source} was not sent to {response.url}: a "
                    "redirect left the site's own hosts.")
        if self.key:
            expiry = _KeyExpiry(self.key)
            if expiry.expired:
                return (f"The API key from {self.source} expired on {expiry.date}. {fix}")
            host = _host_port(response.url)[1]
            if response.status == 403 and response.error_code() not in _AUTH_ERROR_CODES:
                # A key the site knows, without the right to this resource: not revoked.
                return (f"{host} did not allow the API key from {self.source} to access this "
                        "resource: use a key of an account that has access to it.")
            return (f"{host} refused the API key from {self.source}: it "
                    f"was revoked, or is a key for another site. {fix}")
        if self.why_none:
            return self.why_none
        return (f"No API key for {config.domain} was found in {self.source}. Log in with: "
                f"{_login_command(config)}")


def _excerpt(text: str, limit: int = 200) -> str:
    """A short one-line piece of server text, safe to print."""
    flat = _printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _printable(value: Any) -> str:
    """Server text for the terminal: no escape sequences (they could rewrite the screen)."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


# -- Request headers ------------------------------------------------------------------------------

def _client_hostname(hashed: bool) -> str:
    """X-Client-Hostname as the reference sends it: blake2b-16 of the host name, URL-safe."""
    import socket

    try:
        name = socket.gethostname()
    except OSError:
        name = ""
    name = name.removesuffix(".local")
    if hashed:
        import base64
        import hashlib

        digest = hashlib.blake2b(name.encode(), digest_size=16, person=b"hostname").digest()
        name = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return name


class _Site:
    """What request() derives from one Config, computed once and kept on it (a Config never
    changes): headers, the hosts that may get the key, TLS options per CA variables."""

    __slots__ = ("base_url", "config", "headers", "hosts", "tls")
    base_url: str
    headers: dict[str, str]
    hosts: set[tuple[str, int | None]]

    def __init__(self, config: Config) -> None:
        self.config = config
        self.base_url = f"https://{config.domain}/"
        headers = {
            "User-Agent": f"anaconda-auth/{__version__} (anaconda_auth.py)",
            "X-Client-Hostname": _client_hostname(config.hash_hostname),
            "Accept": "*/*",
        }
        ours = {name.lower() for name in headers}
        extra = config.extra_headers or {}
        _check_headers(extra, f"extra_headers from {config.sources.get('extra_headers')}")
        for name, value in extra.items():
            if name.lower() not in ours:  # extra headers never override ours
                headers[name] = value
        self.headers = headers
        # The origins that may receive the key: (host, port), 443 when the domain names none.
        self.hosts = {_host_port(f"https://{domain}")[1:]
                      for domain in (config.domain, config.auth_domain)}
        self.tls: dict[tuple[Any, ...], tuple[tuple[str, Any], ...]] = {}


def _site_for(config: Config) -> _Site:
    site = config._request_site
    if site is None:
        site = _Site(config)
        object.__setattr__(config, "_request_site", site)  # derived, so Config stays immutable
    return site


def _check_headers(headers: Mapping[str, str], source: str) -> None:
    """Refuse line breaks and control characters, which would split the request (injection)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"{source}: header names and values must be strings")
        shown = _header_name_shown(name)
        if not name or shown != name:
            raise ConfigError(f"{source}: {shown!r} is not a valid header name (a header name is "
                              "a single word like X-Header; give its value separately).")
        if any(c < " " and c != "\t" or c == "\x7f" for c in value):
            raise ConfigError(f"{source}: the header {name!r} contains a line break or a control "
                              "character. Remove it.")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(f"{source}: the value of header {name!r} has characters HTTP "
                              "headers cannot carry (only Latin-1).") from None


def _request_headers(site: _Site, headers: Mapping[str, str] | None,
                     api_version: str | None) -> dict[str, str]:
    """Ours and the configured extra headers, overridden by the caller's in any letter case."""
    given = dict(headers or {})
    if api_version and "api-version" not in {name.lower() for name in given}:
        given["Api-Version"] = api_version
    if not given:
        return dict(site.headers)
    _check_headers(given, "request(headers=...)")
    names = {name.lower() for name in given}
    merged = {k: v for k, v in site.headers.items() if k.lower() not in names}
    merged.update(given)
    return merged


# -- Bearer key -----------------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, str, int | None]:
    """(scheme, lower-case host, port) of ``url``, the port defaulting by scheme, as urllib3
    parses it.

    The decision who may get the key and the connection urllib3 makes must come from the same
    parser: parsers disagree on odd URLs (``https://evil.test\\@anaconda.com/``).
    """
    return _parse_url(url)[0]


def _parse_url(url: str) -> tuple[tuple[str, str, int | None], str]:
    """(``_host_port(url)``, the request target: path and query), parsed once per URL."""
    found = _caches.parsed_urls.get(url)
    if found is None:
        import urllib3

        try:
            parsed = urllib3.util.parse_url(url)
        except urllib3.exceptions.LocationParseError:
            raise ValueError(f"{url!r} is not a valid URL") from None
        scheme = (parsed.scheme or "").lower()
        port = parsed.port or {"https": 443, "http": 80}.get(scheme)
        found = ((scheme, (parsed.host or "").lower(), port), parsed.request_uri)
        if len(_caches.parsed_urls) >= 256:  # a program calling many URLs: start again
            _caches.parsed_urls.clear()
        _caches.parsed_urls[url] = found
    return found


def _may_carry_key(origin: tuple[str, str, int | None], site: _Site) -> bool:
    """The key goes only to the site's own hosts, and only over https unless on loopback."""
    scheme, host, port = origin
    if scheme != "https" and not (scheme == "http" and host in _LOOPBACK_HOSTS):
        return False
    return (host, port) in site.hosts


def _bearer_key(config: Config, api_key: str | None) -> tuple[str | None, _KeyNote]:
    """The key to send, and a note of where it came from (or why there is none): explicit,
    configured (no expiry check, as the reference), or stored and unexpired. A missing or
    expired stored key sends nothing and raises nothing."""
    if api_key:
        return _sendable(api_key, "the api_key argument", ConfigError), _KeyNote(
            config, api_key, "the api_key argument")
    if config.api_key:
        source = str(_configured_key_source(config))
        key = _sendable(config.api_key, source, ConfigError)
        _warn_if_expiring(config, key, source)  # a configured key expires too
        return key, _KeyNote(config, key, source)
    try:
        stored, where = _find_api_key(config)
    except StorageError as e:
        return None, _KeyNote(config, None, "", f"The stored key could not be read: {e}")
    if not stored:
        return None, _KeyNote(config, None, where)
    expiry = _KeyExpiry(stored)
    if expiry.expired:
        fix = ("Update or unset it there: a login would not replace it."
               if _key_is_configured(config) else
               f"Log in again with: {_relogin_command(config)}")
        return None, _KeyNote(config, None, where, f"The API key from {where} expired on "
                              f"{expiry.date}, so none was sent. {fix}")
    _warn_if_expiring(config, stored, where, expiry)
    return _sendable(stored, where, StorageError), _KeyNote(config, stored, where)


def _sendable(key: str, source: str, error: type[AnacondaAuthError]) -> str:
    """``key`` if it can go in an Authorization header; else an error naming where it came
    from. http.client would refuse a line break with a ValueError that quotes the header, key
    included, and a NUL would go out as is."""
    if any(c < " " or "\x7f" <= c <= "\x9f" or c > "\xff" for c in key):
        raise error(f"The API key from {source} contains a line break, a control character or a "
                    "character HTTP headers cannot carry, so it was not sent. Check that the "
                    "key was copied whole and alone.")
    return key


# -- TLS and proxies ------------------------------------------------------------------------------


def _tls_options_for(site: _Site) -> tuple[tuple[str, Any], ...]:
    """The site's TLS pool options, recomputed only when a CA variable changes."""
    key = _environment_key(_CA_BUNDLE_VARIABLES) if site.config.ssl_verify is True else ()
    options = site.tls.get(key)
    if options is None:
        options = site.tls[key] = _tls_options(site.config)
    return options


def _tls_options(config: Config) -> tuple[tuple[str, Any], ...]:
    """urllib3 pool options for ``ssl_verify``, client certificates and CA variables."""
    options: dict[str, Any] = {}
    verify = config.ssl_verify
    if verify is False:
        options["cert_reqs"] = "CERT_NONE"
        _warn_once(
            f"TLS certificate verification is disabled (ssl_verify from "
            f"{config.sources.get('ssl_verify')}); connections can be intercepted."
        )
    elif verify == "truststore":
        options["ssl_context"] = _truststore_context()
    else:
        bundle = verify if isinstance(verify, str) else _default_ca_bundle()
        options["cert_reqs"] = "CERT_REQUIRED"
        if bundle and os.path.isdir(bundle):
            options["ca_cert_dir"] = bundle
        elif bundle:
            options["ca_certs"] = bundle
    if config.client_cert:
        options["cert_file"] = config.client_cert
        if config.client_cert_key:
            options["key_file"] = config.client_cert_key
    return tuple(sorted(options.items(), key=lambda item: item[0]))


def _default_ca_bundle() -> str | None:
    """REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE; else certifi; else None (the
    system store)."""
    for name in _CA_BUNDLE_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def _truststore_context() -> Any:
    """A new truststore context: one per Config, because urllib3 loads a client certificate
    into the context it is given, which must not then serve another site."""
    try:
        truststore = __import__("truststore")
    except ImportError:
        raise ConfigError(
            'ssl_verify = "truststore" needs the truststore package (Python 3.10+): '
            "pip install truststore"
        ) from None
    import ssl

    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _proxy_for(origin: tuple[str, str, int | None], config: Config) -> str | None:
    """The proxy for a URL's ``origin``: ``proxy_servers`` from the configuration (keys as requests and
    conda use them: ``scheme://host``, ``scheme``, ``all://host``, ``all``), else the
    environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), else the system's settings."""
    scheme, host, port = origin
    if config.proxy_servers:
        for key in (f"{scheme}://{host}", scheme, f"all://{host}", "all"):
            if config.proxy_servers.get(key):
                return config.proxy_servers[key]
        return None
    proxies, from_environment = _discovered_proxies()
    if not proxies:
        return None
    if from_environment:
        bypass = _no_proxy_matches(host, port, proxies.get("no", ""))
    else:
        import urllib.request

        # Undocumented: urllib.request.proxy_bypass reads the system's exceptions (macOS,
        # Windows registry). Should it go, the proxy is used for every host.
        system_bypass = getattr(urllib.request, "proxy_bypass", None)
        bypass = bool(system_bypass and system_bypass(host))
    return None if bypass else proxies.get(scheme) or proxies.get("all")


def _no_proxy_matches(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether NO_PROXY exempts ``host``, as Python's urllib and requests read it: "*" exempts
    every host; an entry (leading dots ignored, any case) exempts that name and the names
    below it; an entry with ``:port`` only that port. Ours, not urllib's undocumented
    proxy_bypass_environment, so that a change there cannot move requests off the proxy."""
    if no_proxy.strip() == "*":
        return True
    host = host.lower().strip("[]")
    names = {host} if port is None else {host, f"{host}:{port}"}
    for entry in no_proxy.lower().split(","):
        entry = entry.strip().lstrip(".")
        if entry and any(name == entry or name.endswith("." + entry) for name in names):
            return True
    return False


def _environment_key(names: tuple[str, ...]) -> tuple[Any, ...]:
    """A fingerprint of some environment variables, to know when to recompute what depends on
    them (a dozen names per request, ~0.6 µs each)."""
    return tuple(map(os.environ.get, names))


_PROXY_VARIABLES = tuple(variable for name in ("http", "https", "all", "no") for variable in (
    f"{name}_proxy", f"{name.upper()}_PROXY")) + ("REQUEST_METHOD",)  # CGI drops HTTP_PROXY
def _discovered_proxies() -> tuple[dict[str, str], bool]:
    """(proxies, whether they came from the environment), recomputed only when a proxy
    variable changes: scanning the whole environment on every request costs more than the
    request itself."""
    key = _environment_key(_PROXY_VARIABLES)
    if key not in _caches.proxies:
        import urllib.request

        from_environment = urllib.request.getproxies_environment()
        proxies = from_environment or urllib.request.getproxies()  # system settings otherwise
        _caches.proxies[key] = (proxies, bool(from_environment))
    return _caches.proxies[key]


def _pool(tls: tuple[tuple[str, Any], ...], proxy: str | None) -> Any:
    """The process's pool for this TLS and proxy setting, made on first use."""
    key = (tls, proxy)
    pool = _caches.pools.get(key)
    if pool is None:
        import urllib3

        options = dict(tls)
        if options.get("cert_reqs") == "CERT_NONE":
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if proxy:
            proxy_url, proxy_headers = _split_proxy_credentials(proxy)
            pool = urllib3.ProxyManager(proxy_url, proxy_headers=proxy_headers, num_pools=10,
                                        **options)
        else:
            pool = urllib3.PoolManager(num_pools=10, **options)
        _caches.pools[key] = pool
    return pool


def _split_proxy_credentials(proxy: str) -> tuple[str, dict[str, str]]:
    """``http://user:pass@host:port`` -> (``http://host:port``, Proxy-Authorization header)."""
    from urllib.parse import unquote, urlsplit

    if "://" not in proxy:
        proxy = f"http://{proxy}"
    parts = urlsplit(proxy)
    if parts.username is None:
        return proxy, {}
    import base64

    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    host = parts.netloc.rpartition("@")[2]
    header = "Basic " + base64.b64encode(credentials.encode()).decode()
    return f"{parts.scheme}://{host}", {"Proxy-Authorization": header}


# -- Retries, timeouts, errors --------------------------------------------------------------------

def _retry(retries: int | None) -> Any:
    """Backoff with jitter on connection errors and 429/502/503/504, honouring Retry-After.

    Idempotent methods retry every failure that is not permanent. Other methods (POST, PATCH)
    retry only a connection that could not be opened (refused, timed out): anything later, a
    TLS handshake included, may have come after the body went out, and a body is never sent
    twice.
    """
    count = 3 if retries is None else retries
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ConfigError(f"request(retries={_quoted(retries)}): give a whole number >= 0")
    retry = _caches.retries.get(count)
    if retry is None:
        retry = _caches.retries[count] = _retry_class()(
            total=count, connect=count, read=count, status=count, redirect=False,
            allowed_methods=_IDEMPOTENT_METHODS, status_forcelist=_RETRY_STATUSES,
            backoff_factor=0.5, raise_on_status=False, respect_retry_after_header=True,
        )
    return retry


def _retry_class() -> Any:
    if _caches.retry_class is None:
        import random

        import urllib3

        class _Retry(urllib3.Retry):
            def get_backoff_time(self) -> float:
                base = float(super().get_backoff_time())
                return base * (0.5 + random.random()) if base else 0.0

            def get_retry_after(self, response: Any) -> float | None:
                # A malformed Retry-After falls back to backoff instead of failing the request;
                # a very long one is capped (we do not sleep for an hour inside request()).
                try:
                    seconds = super().get_retry_after(response)
                except urllib3.exceptions.InvalidHeader:
                    return None
                return None if seconds is None else min(float(seconds), _MAX_RETRY_AFTER)

            def increment(self, method: Any = None, url: Any = None, response: Any = None,
                          error: Any = None, _pool: Any = None, _stacktrace: Any = None) -> Any:
                if error is not None and (_is_permanent_failure(error) or (
                        str(method).upper() not in _IDEMPOTENT_METHODS
                        and not _is_connect_failure(error))):
                    raise urllib3.exceptions.MaxRetryError(_pool, url, error) from error
                return super().increment(method, url, response, error, _pool, _stacktrace)

        _caches.retry_class = _Retry
    return _caches.retry_class


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the exceptions behind it: urllib3 wraps the original in ``reason``
    (MaxRetryError), ``original_error`` (ProxyError) or its first argument, Python in
    ``__cause__`` / ``__context__``."""
    pending: list[Any] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None),
                    getattr(current, "original_error", None), *current.args[:1]]


def _is_connect_failure(error: BaseException) -> bool:
    """The connection was never opened, so nothing was sent: urllib3's NewConnectionError
    (refused, unreachable, no such host) and ConnectTimeoutError, also behind a ProxyError."""
    import urllib3

    reached = getattr(error, "original_error", error)  # ProxyError: the proxy could not be reached
    return isinstance(reached, urllib3.exceptions.ConnectTimeoutError)  # includes NewConnection


def _is_permanent_failure(error: BaseException) -> bool:
    """Failures that the same request will meet again: retrying only delays the message. A
    certificate that did not verify, and a proxy that answered our CONNECT with a refusal
    (http.client raises a bare OSError, without errno, for any status but 200)."""
    import ssl

    # Undocumented: the bare OSError. Should http.client raise another, a refused CONNECT is
    # retried like a network failure (slower; the message is the same).
    return any(isinstance(e, ssl.SSLCertVerificationError)
               or (type(e) is OSError and e.errno is None) for e in _error_chain(error))


def _timeout(timeout: None | float | tuple[float, float]) -> Any:
    """A urllib3 Timeout for seconds, or a (connect, read) pair of them."""
    key = tuple(timeout) if isinstance(timeout, list) else timeout
    try:
        cached = _caches.timeouts.get(key)
    except TypeError:  # unhashable: refused just below
        cached = None
    if cached is not None:
        return cached
    import urllib3

    pair = _DEFAULT_TIMEOUT if key is None else key if isinstance(key, tuple) else (key, key)
    if len(pair) != 2 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in pair):
        raise ConfigError(f"request(timeout={timeout!r}): give seconds > 0, or a (connect, "
                          "read) pair of them")
    cached = _caches.timeouts[key] = urllib3.Timeout(connect=pair[0], read=pair[1])
    return cached


def _network_error(method: str, url: str, proxy: str | None, error: Exception) -> NetworkError:
    """One readable sentence for any urllib3 failure: the host and the cause."""
    import urllib3

    cause: Any = getattr(error, "reason", None) or error
    _, host, port = _host_port(url)
    where = f"{host}:{port}" if port else host
    text = str(cause)
    import ssl

    verify_failed = any(isinstance(e, ssl.SSLCertVerificationError) for e in _error_chain(error))
    if isinstance(cause, urllib3.exceptions.SSLError) or verify_failed:
        if verify_failed:
            return NetworkError(
                f"{method} {url}: the TLS certificate of {where} could not be verified "
                f"({_excerpt(text, 160)}). If a corporate proxy or firewall inspects TLS, point "
                "ssl_verify at its CA bundle (ANACONDA_AUTH_SSL_VERIFY=/path/to/ca.pem, or "
                "REQUESTS_CA_BUNDLE / SSL_CERT_FILE), or use ssl_verify = \"truststore\" to "
                "trust the operating system's store."
            )
        return NetworkError(f"{method} {url}: TLS error talking to {where}: {_excerpt(text, 200)}")
    if isinstance(cause, urllib3.exceptions.ProxyError) or isinstance(
            error, urllib3.exceptions.ProxyError):
        return NetworkError(f"{method} {url}: the proxy {_mask_url_password(proxy or '')} "
                            f"failed: {_excerpt(text, 200)}")
    # NewConnectionError is a subclass of ConnectTimeoutError: ask about it first.
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        inner = text.rpartition(": ")[2] if ": " in text else text
        return NetworkError(f"{method} {url}: could not connect to {where}: {inner}")
    if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
        return NetworkError(f"{method} {url}: timed out connecting to {where}")
    if any(isinstance(e, urllib3.exceptions.ReadTimeoutError) for e in _error_chain(error)):
        return NetworkError(f"{method} {url}: {where} did not answer in time (read timeout)")
    return NetworkError(f"{method} {url}: request to {where} failed: {_excerpt(text, 200)}")


# -- request() ------------------------------------------------------------------------------------


def request(
    method: str,
    url: str,
    *,
    config: Config | str | None = None,
    site: Config | str | None = None,
    api_key: str | None = None,
    auth: bool = True,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    body: None | bytes | str = None,
    fields: Mapping[str, str] | None = None,
    timeout: None | float | tuple[float, float] = None,
    retries: int | None = None,
    api_version: str | None = None,
) -> Response:
    """Send one HTTP request for the site and return the complete Response.

    ``config`` (or ``site=``) is a Config, a site name or domain, or None for the default site.
    ``url`` may be relative (joined onto ``https://<domain>``). ``json`` sends a JSON body,
    ``fields`` a form (or the query string for GET), ``body`` raw bytes. ``auth=False`` sends no
    key; ``api_key`` sends that key instead of the site's. ``timeout`` is seconds, or
    (connect, read); ``retries`` the number of retries (default 3). Redirects are followed (at
    most 5) and the key is dropped when one leaves the origin. Raises NetworkError when no
    response arrives; call ``raise_for_status()`` to turn error statuses into exceptions.
    """
    try:
        import urllib3  # noqa: F401 - here only to say clearly that it is missing
    except ImportError:
        raise AnacondaAuthError("Network calls need the urllib3 package (1.26 or 2.x): "
                                "pip install urllib3") from None
    config = _coerce_config(config, site, "request")
    site_info = _site_for(config)
    method = method.upper()
    if not _is_http_method(method):
        raise ConfigError(f"request(method=...): {_printable(repr(method))} is not an HTTP method "
                          "(one word, like GET, POST or DELETE).")
    if not url.startswith(("https://", "http://")):
        from urllib.parse import urljoin

        url = urljoin(site_info.base_url, url)
    all_headers = _request_headers(site_info, headers, api_version)
    payload = _encode_body(method, json, body, fields, all_headers)
    if payload is None and fields and method in ("GET", "HEAD", "DELETE"):
        from urllib.parse import urlencode

        url = f"{url}{'&' if '?' in url else '?'}{urlencode(fields)}"
    try:
        origin = _host_port(url)
    except ValueError as e:
        raise ConfigError(f"request(url=...): {e}") from None
    callers_auth = "authorization" in {name.lower() for name in all_headers}
    key = None
    note = None
    if auth and not callers_auth:
        if _may_carry_key(origin, site_info):
            key, note = _bearer_key(config, api_key)
        else:
            note = _KeyNote(config, None, "", f"No API key is sent to {origin[0]}://{origin[1]}: "
                            f"the key goes only to {config.domain}'s own hosts over https.")
    tls = _tls_options_for(site_info)
    for _ in range(_MAX_REDIRECTS + 1):
        proxy = _proxy_for(origin, config)
        sent_headers = dict(all_headers)
        # Plain http is allowed to loopback only, and not through a proxy: the key would travel
        # in clear to the proxy's host.
        if key and _may_carry_key(origin, site_info) and (origin[0] == "https" or not proxy):
            sent_headers["Authorization"] = f"Bearer {key}"
        response = _send(method, url, proxy, sent_headers, payload, tls, config, timeout, retries)
        location = response.headers.get("Location")
        if response.status not in (301, 302, 303, 307, 308) or not location:
            break
        url, origin, all_headers, key, method, payload = _follow_redirect(
            response, url, origin, all_headers, key, method, payload)
    else:
        raise NetworkError(f"{method} {url}: more than {_MAX_REDIRECTS} redirects; the server at "
                           f"{origin[1]} is redirecting in a loop.")
    if api_version:
        _check_api_version(response, api_version)
    response.key_note = note
    return response


def _follow_redirect(
    response: Response, url: str, origin: tuple[str, str, int | None], headers: dict[str, str],
    key: str | None, method: str, payload: bytes | None,
) -> tuple[str, tuple[str, str, int | None], dict[str, str], str | None, str, bytes | None]:
    """Where a redirect leads, and what may go there: credentials, ours or the caller's, never
    leave the origin; 303 (and 301/302 after POST) turn into GET without a body."""
    from urllib.parse import urljoin

    location = response.headers["Location"]
    try:
        next_url = urljoin(url, location)
        next_origin = _host_port(next_url)
    except ValueError:
        raise NetworkError(f"{method} {url} was redirected to an invalid location "
                           f"{_excerpt(location, 100)!r}") from None
    if next_origin != origin:
        key = None
        headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
        method, payload = ("HEAD" if method == "HEAD" else "GET"), None
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return next_url, next_origin, headers, key, method, payload


def _encode_body(method: str, json_body: Any, body: None | bytes | str,
                 fields: Mapping[str, str] | None, headers: dict[str, str]) -> bytes | None:
    typed = "content-type" in {name.lower() for name in headers}  # the caller's wins
    if json_body is not None:
        import json

        if not typed:
            headers["Content-Type"] = "application/json"
        return json.dumps(json_body).encode("utf-8")
    if fields is not None and method not in ("GET", "HEAD", "DELETE"):
        from urllib.parse import urlencode

        if not typed:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urlencode(fields).encode("ascii")
    return body.encode("utf-8") if isinstance(body, str) else body


def _send(method: str, url: str, proxy: str | None, headers: dict[str, str],
          payload: bytes | None, tls: tuple[tuple[str, Any], ...], config: Config,
          timeout: None | float | tuple[float, float], retries: int | None) -> Response:
    import urllib3

    if config.ssl_verify == "truststore" and getattr(urllib3, "__version__", "").startswith("1."):
        _check_truststore_host(method, url)
    options = {"body": payload, "headers": headers, "redirect": False, "preload_content": True,
               "retries": _retry(retries), "timeout": _timeout(timeout)}
    try:
        if proxy:
            raw = _pool(tls, proxy).urlopen(method, url, **options)
        else:
            raw = _urlopen_direct(method, url, tls, options)
    except urllib3.exceptions.HTTPError as e:
        raise _network_error(method, url, proxy, e) from None
    return Response(raw.status, raw.reason or "", raw.headers, raw.data or b"", url,
                    "authorization" in {name.lower() for name in headers})


def _urlopen_direct(method: str, url: str, tls: tuple[tuple[str, Any], ...],
                    options: dict[str, Any]) -> Any:
    """What PoolManager.urlopen does without a proxy, with the origin's pool kept here between
    calls (up to 64 origins; the manager keeps 10 and lets older ones go, unclosed). Should a
    kept pool be closed all the same, the manager's new one is taken: nothing was sent yet."""
    import urllib3

    origin, target = _parse_url(url)
    key = (tls, origin)
    pool = _caches.origin_pools.get(key)
    if pool is not None:
        try:
            return pool.urlopen(method, target, assert_same_host=False, **options)
        except urllib3.exceptions.ClosedPoolError:
            pass
    if len(_caches.origin_pools) >= 64:
        _caches.origin_pools.clear()
    pool = _caches.origin_pools[key] = _pool(tls, None).connection_from_host(
        origin[1], origin[2], origin[0])
    return pool.urlopen(method, target, assert_same_host=False, **options)


def _check_truststore_host(method: str, url: str) -> None:
    """urllib3 1.26 gives a truststore context no server_hostname for an IP address, which the
    context refuses (a ValueError from deep inside the request): say so before trying."""
    import ipaddress

    _, host, _ = _host_port(url)
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a host name: fine
    raise NetworkError(
        f"{method} {url}: with ssl_verify = \"truststore\", urllib3 1.26 cannot verify a server "
        "given by IP address: use its host name, or urllib3 2.")


def _parse_version(text: str) -> tuple[int, ...] | None:
    """``2023.10.0`` -> (2023, 10, 0), ``2024.02`` -> (2024, 2, 0); None when not numeric.

    (The reference's semver parsing silently ignored both forms.)"""
    try:
        parts = [int(part) for part in text.strip().split(".")]
    except ValueError:
        return None
    return tuple(parts + [0] * (3 - len(parts)))


def _check_api_version(response: Response, api_version: str | None) -> None:
    minimum = response.headers.get("Min-Api-Version")
    if not minimum or not api_version:
        return
    ours, theirs = _parse_version(api_version), _parse_version(minimum)
    if ours is not None and theirs is not None and ours < theirs:
        import warnings

        warnings.warn(
            f"Client API version is {api_version}, minimum supported API version is {minimum}. "
            "You may need to update your client.", DeprecationWarning, stacklevel=3,
        )


# =================================================================================================
# OpenID Connect login
# Owns the interactive login: discovery, the device authorization grant (RFC 8628), the browser
# authorization-code flow with PKCE (RFC 7636) behind a loopback listener (RFC 8252), and the
# exchange of the access token for an Anaconda API key. Talks to the user on stderr only; the
# clock, the sleeper, the browser opener and the terminal are parameters so tests drive them.
# =================================================================================================

_SCOPES = "openid email profile offline_access"  # the reference's authorization request scopes
_API_KEY_SCOPES = ["cloud:read", "cloud:write", "repo:read"]
_DISTRIBUTION = "anaconda-auth-module"
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_CONSOLE_BROWSERS = ("www-browser", "links", "elinks", "lynx", "w3m", "links2", "browsh")


def discover(config: Config) -> JSONDict:
    """The site's OpenID configuration, fetched once per process per URL and validated."""
    url = config.well_known_url
    if url not in _caches.discovery:
        try:
            response = request("GET", url, config=config, auth=False)
            response.raise_for_status()
            metadata = response.json()
        except AnacondaAuthError as e:
            raise AuthenticationError(f"OpenID discovery failed at {url}: {e}") from None
        if not isinstance(metadata, dict):
            raise AuthenticationError(f"OpenID discovery failed at {url}: not a JSON object")
        missing = [k for k in ("authorization_endpoint", "token_endpoint")
                   if not isinstance(metadata.get(k), str)]
        if missing:
            raise AuthenticationError(
                f"OpenID discovery failed at {url}: the document has no {' or '.join(missing)}. "
                "Check auth_domain_override and openid_config_path."
            )
        for name in ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint"):
            endpoint = metadata.get(name)
            if endpoint is not None and not _is_secure_endpoint(endpoint):
                raise AuthenticationError(  # codes and tokens would travel in clear (RFC 9700 §2.6)
                    f"OpenID discovery at {url} gave {name} = {endpoint!r}: an OAuth endpoint "
                    "must use https (plain http only on this machine's loopback).")
        _caches.discovery[url] = metadata
    return _caches.discovery[url]


def _is_secure_endpoint(endpoint: Any) -> bool:
    if not isinstance(endpoint, str):
        return False
    try:
        scheme, host, _ = _host_port(endpoint)
    except ValueError:
        return False
    return scheme == "https" or (scheme == "http" and host in _LOOPBACK_HOSTS)


# -- Talking to the user --------------------------------------------------------------------------


class _Terminal:
    """What a login flow needs from the outside world; tests pass their own."""

    def __init__(
        self,
        open_url: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stdin: Any = None,
        stderr: Any = None,
        quiet: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.quiet = quiet
        self.clock = clock
        self.sleep = sleep
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stderr = stderr if stderr is not None else sys.stderr
        # Whether a browser can open is decided from this terminal and environment, never from
        # the process's own when the caller gave others.
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.open_url = open_url or (lambda url: _open_browser(url, self.stdin, self.environ))

    def say(self, text: str = "") -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def hint(self, text: str) -> None:
        """What helps but is not needed to log in: not said when quiet."""
        if not self.quiet:
            self.say(text)

    def shows_countdown(self) -> bool:
        return self.is_tty() and not self.quiet

    def is_tty(self) -> bool:
        return bool(getattr(self.stderr, "isatty", lambda: False)())

    def stdin_is_tty(self) -> bool:
        return bool(getattr(self.stdin, "isatty", lambda: False)())


_WSL_LAUNCHERS = ("wslview", "explorer.exe")  # wslu's opener first; explorer.exe is always there


def _choose_browser(
    environ: Mapping[str, str], *, stdin_tty: bool, proc_version: str,
    which: Callable[[str], str | None], default_browser: Callable[[], str | None],
    allowed: bool = True, platform: str = sys.platform,
) -> tuple[str, str]:
    """How to show the user a URL, decided from what it is given alone (tests pass it all):
    ("webbrowser", "") for Python's webbrowser (which honours BROWSER), ("command", path) for
    a WSL launcher, or ("none", why) when launching could hang or go to the wrong machine.

    ``which`` finds an executable on PATH; ``default_browser`` names what webbrowser would
    start (None: nothing), asked only when it matters; ``proc_version`` is /proc/version.
    """
    if not allowed:  # --no-browser, open_browser = false: nothing launched, nothing to explain
        return "none", "opening a browser is turned off"
    if environ.get("BROWSER"):  # the user's explicit choice, TTY or not
        return "webbrowser", ""
    if environ.get("SSH_CONNECTION") or environ.get("SSH_TTY"):
        return "none", "this is an SSH session"
    # WSL runs without DISPLAY, yet the Windows desktop can show a page: wslview (wslu) or
    # explorer.exe hand the URL to Windows' default browser.
    wsl = "microsoft" in proc_version.lower() or bool(environ.get("WSL_DISTRO_NAME"))
    display = bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    if wsl:
        launcher = next(filter(None, map(which, _WSL_LAUNCHERS)), None)
        if launcher:
            return ("command", launcher) if stdin_tty else (
                "none", "this is not an interactive terminal")
        if not launcher and not display:
            return "none", ("this is WSL and neither wslview nor explorer.exe was found on PATH "
                            "(install wslu for wslview)")
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not display:
        return "none", "there is no graphical display"
    if not stdin_tty:
        return "none", "this is not an interactive terminal"
    name = default_browser()
    if name is None:
        return "none", "no web browser was found"
    if name in _CONSOLE_BROWSERS:  # Python waits on console browsers, which take the terminal
        return "none", f"the only browser is the console browser {name}"
    return "webbrowser", ""


def _webbrowser_default() -> str | None:
    """The program Python's webbrowser would start (its base name), None when it has none."""
    import webbrowser

    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return None
    return os.path.basename(str(getattr(browser, "name", "") or "")) or type(browser).__name__


def _browser_choice(environ: Mapping[str, str], stdin: Any,
                    allowed: bool = True) -> tuple[str, str]:
    """_choose_browser with the given terminal input and environment, and /proc/version."""
    import shutil

    try:
        with open("/proc/version", encoding="utf-8", errors="replace") as f:
            proc_version = f.read(4096)
    except OSError:
        proc_version = ""
    stdin_tty = bool(stdin is not None and not getattr(stdin, "closed", False)
                     and getattr(stdin, "isatty", lambda: False)())
    return _choose_browser(
        environ, stdin_tty=stdin_tty, proc_version=proc_version, allowed=allowed,
        which=lambda name: shutil.which(name, path=environ.get("PATH")),
        default_browser=_webbrowser_default)


def _browser_unusable_reason(environ: Mapping[str, str], stdin: Any) -> str | None:
    """Why no browser is launched here; None when one can be."""
    how, why = _browser_choice(environ, stdin)
    return why if how == "none" else None


def _open_browser(url: str, stdin: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """Open ``url`` in a graphical browser when one can be used; never a console browser.
    ``stdin`` and ``environ`` default to the process's own."""
    how, launcher = _browser_choice(os.environ if environ is None else environ,
                                    sys.stdin if stdin is None else stdin)
    if how == "command":
        import subprocess

        try:
            done = subprocess.run([launcher, url], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=None if environ is None else dict(environ),
                                  timeout=15, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        # explorer.exe exits 1 even when it has handed the URL on; only wslview's status says.
        return done.returncode == 0 or os.path.basename(launcher) == "explorer.exe"
    if how != "webbrowser":
        return False
    import webbrowser

    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False


def _open_or_explain(terminal: _Terminal, url: str, open_browser: bool) -> bool:
    """Open ``url`` in a browser, or say why none was opened (unless the caller said not to)."""
    if not open_browser:
        return False
    if terminal.open_url(url):
        return True
    reason = _browser_unusable_reason(terminal.environ, terminal.stdin) or "it could not be started"
    terminal.hint(f"Not opening a browser ({reason}).")
    return False


def _show_url(terminal: _Terminal, url: str, open_browser: bool) -> None:
    if _open_or_explain(terminal, url, open_browser):
        terminal.hint("A browser was opened. If it did not, open this URL yourself:")
    else:
        terminal.say("Open this URL in a browser (on any machine):")
    terminal.say()
    terminal.say(f"    {url}")
    terminal.say()


# -- Device authorization grant (RFC 8628) --------------------------------------------------------


def _device_flow(config: Config, metadata: JSONDict, terminal: _Terminal, open_browser: bool) -> str:
    """Run the device grant; returns the access token."""
    response = request(
        "POST", metadata["device_authorization_endpoint"], config=config, auth=False,
        fields={"client_id": config.client_id, "scope": "openid"},
    )
    grant = _oauth_json(response, "device authorization request", DeviceFlowError)
    missing = [k for k in ("device_code", "user_code", "verification_uri", "expires_in")
               if k not in grant]
    if missing:
        raise DeviceFlowError(
            f"The device authorization response from {response.url} lacks {', '.join(missing)}")
    try:
        expires_in = float(grant["expires_in"])
        interval = max(float(grant.get("interval") or 5), 1.0)  # never hammer the server
    except (TypeError, ValueError):
        raise DeviceFlowError(f"The device authorization response from {response.url} has a "
                              "non-numeric expires_in or interval") from None
    # RFC 8628 §3.3: show the plain URI and the code, each on its own line, so the user can
    # check the code on the server's page; the complete URI only saves typing.
    opened = _open_or_explain(
        terminal, grant.get("verification_uri_complete") or grant["verification_uri"],
        open_browser)
    terminal.hint("A browser was opened for you to approve this login." if opened else
                  "To log in, use a browser on this or any other device.")
    terminal.say("If it does not show the code below, open this URL:")
    terminal.say()
    terminal.say(f"    {_printable(grant['verification_uri'])}")
    terminal.say()
    terminal.say("and enter the code:")
    terminal.say()
    terminal.say(f"    {_printable(grant['user_code'])}")
    terminal.say()
    return _device_flow_poll(config, metadata["token_endpoint"], grant["device_code"], terminal,
                             interval=interval, expires_in=expires_in)


def _device_flow_poll(
    config: Config, token_endpoint: str, device_code: str, terminal: _Terminal, *,
    interval: float, expires_in: float,
) -> str:
    """Poll the token endpoint exactly as RFC 8628 §3.5 says; returns the access token."""
    try:
        return _poll_until_approved(config, token_endpoint, device_code, terminal,
                                    interval=interval, expires_in=expires_in)
    finally:
        if terminal.shows_countdown():  # end the countdown line, whatever happens next
            terminal.stderr.write("\r\033[K")
            terminal.stderr.flush()


def _poll_until_approved(
    config: Config, token_endpoint: str, device_code: str, terminal: _Terminal, *,
    interval: float, expires_in: float,
) -> str:
    deadline = terminal.clock() + expires_in
    backoff = 0.0  # extra wait after connection errors and 5xx, doubled each time
    trouble = ""  # the last poll's failure, if it failed: the timeout message says it
    fields = {"grant_type": _DEVICE_GRANT, "device_code": device_code, "client_id": config.client_id}
    while True:
        _wait_with_countdown(terminal, interval + backoff, deadline)
        if terminal.clock() >= deadline:
            raise DeviceFlowTimeout(
                f"The device code expired after {expires_in:g} s without approval"
                + (f"; the last poll failed: {trouble}" if trouble else "") + ". Run login again.")
        try:
            response = request("POST", token_endpoint, config=config, auth=False, fields=fields,
                               retries=0)
        except NetworkError as e:
            backoff = min(max(backoff * 2, interval), 300.0)  # §3.5: MUST reduce the frequency
            trouble = str(e)
            continue
        if response.status >= 500:
            backoff = min(max(backoff * 2, interval), 300.0)
            trouble = f"HTTP {response.status} from {token_endpoint}"
            continue
        backoff, trouble = 0.0, ""
        body = _oauth_json(response, "device token request", DeviceFlowError, allow_error=True)
        error = body.get("error")
        if not error and response.ok and isinstance(body.get("access_token"), str):
            return str(body["access_token"])
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5.0  # for this and every later request (§3.5)
            continue
        if error == "access_denied":
            raise DeviceFlowDenied("The login was denied in the browser.")
        if error == "expired_token":
            raise DeviceFlowTimeout("The device code expired before approval. Run login again.")
        raise DeviceFlowError(
            f"The token endpoint {token_endpoint} answered {_printable(error or response.status)}: "
            f"{_printable(body.get('error_description') or _excerpt(response.text))}")


def _wait_with_countdown(terminal: _Terminal, seconds: float, deadline: float) -> None:
    """Sleep ``seconds`` (not past the deadline), showing a countdown line on a terminal."""
    end = min(terminal.clock() + seconds, deadline)
    while True:
        now = terminal.clock()
        if now >= end:
            return
        if terminal.shows_countdown():
            left = int(max(deadline - now, 0))
            terminal.stderr.write(
                f"\r\033[KWaiting for approval; the code expires in {left // 60}:{left % 60:02d} "
                "(Ctrl-C to cancel)")
            terminal.stderr.flush()
            terminal.sleep(min(1.0, end - now))
        else:
            terminal.sleep(end - now)


def _oauth_json(response: Response, what: str, error: type[AnacondaAuthError],
                allow_error: bool = False) -> JSONDict:
    """The JSON object of an OAuth response, or ``error`` saying what the server said."""
    try:
        body = response.json()
    except HTTPError:
        body = None
    if not isinstance(body, dict):
        raise error(f"The {what} to {response.url} failed: HTTP {response.status}, "
                    f"{_excerpt(response.text)}")
    if not response.ok and not (allow_error and "error" in body):
        raise error(f"The {what} to {response.url} failed: "
                    f"{_printable(body.get('error', response.status))}"
                    f" - {_printable(body.get('error_description', ''))}".rstrip(" -"))
    return body


# -- Browser flow: authorization code + PKCE + loopback listener (RFC 8252, 7636, 9207) ------------


def _pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 64 random bytes, base64url, 86 characters (RFC 7636 §4.1)."""
    import base64
    import hashlib
    import secrets

    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _loopback_address(redirect_uri: str) -> tuple[str, int, str]:
    """(host, port, path) of the listener; only loopback http redirect URIs are allowed."""
    from urllib.parse import urlsplit

    parts = urlsplit(redirect_uri)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or host not in _LOOPBACK_HOSTS:
        raise ConfigError(
            f"redirect_uri {redirect_uri!r} must be http://127.0.0.1:<port>/<path> (or [::1]): "
            "the login listener only binds the loopback interface (RFC 8252 §7.3)."
        )
    return host, 80 if parts.port is None else parts.port, parts.path or "/"


class _LoginResult:
    """Where the listener and the paste-back prompt deliver the authorization response."""

    def __init__(self) -> None:
        import threading

        self.done = threading.Event()
        self.lock = threading.Lock()
        self.code: str | None = None
        self.error: AnacondaAuthError | None = None
        self.wake_fd: int | None = None  # a pipe that wakes a select() on the terminal

    def finish(self, code: str | None, error: AnacondaAuthError | None) -> None:
        with self.lock:
            if self.done.is_set():
                return
            self.code, self.error = code, error
            self.done.set()
            if self.wake_fd is not None:
                try:
                    os.write(self.wake_fd, b"\0")  # never a signal's number: see _WakeupPipe
                except BlockingIOError:
                    pass  # full of signals' bytes: the waiting select() is woken anyway


def _check_authorization_response(
    query: Mapping[str, list[str]], state: str, metadata: JSONDict, result: _LoginResult,
) -> str | None:
    """Judge one redirect's query. Returns None when it belongs to this login (and delivers it
    to ``result``), else why it was ignored."""
    import secrets

    repeated = [name for name in ("state", "code", "error", "iss") if len(query.get(name, ())) > 1]
    if repeated:  # RFC 6749 §3.1: a response parameter must not appear more than once
        return f"it repeats the parameter {repeated[0]}"
    received_state = (query.get("state") or [""])[0]
    if not secrets.compare_digest(received_state.encode(), state.encode()):
        return "its state does not match the login in progress"
    issuer = metadata.get("issuer")
    iss = query["iss"][0] if query.get("iss") else None
    if (iss is not None and issuer and iss != issuer) or (
            iss is None and metadata.get("authorization_response_iss_parameter_supported")):
        # RFC 9207: a response from another issuer (or none when one is promised) is a mix-up.
        result.finish(None, AuthenticationError(
            f"The authorization response came from issuer {iss!r}, expected {issuer!r}."))
        return None
    if query.get("error"):
        description = (query.get("error_description") or [""])[0]
        result.finish(None, AuthenticationError(
            f"The login was refused: {_printable(query['error'][0])}"
            + (f" - {_printable(description)}" if description else "")))
        return None
    code = (query.get("code") or [""])[0]
    if not code:
        result.finish(None, AuthenticationError("The authorization response has no code."))
        return None
    result.finish(code, None)
    return None


def _start_listener(config: Config, state: str, metadata: JSONDict, result: _LoginResult,
                    ) -> tuple[Any, str]:
    """Bind the loopback listener; returns (server, the redirect URI with its real port)."""
    import http.server
    import socket

    host, port, path = _loopback_address(config.redirect_uri)
    bind_host = "127.0.0.1" if host == "localhost" else host.strip("[]")

    own_hosts: set[str] = set()  # the Host headers of our own address, filled once bound

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 10  # seconds a connection may stay silent

        def do_GET(self) -> None:
            from urllib.parse import parse_qs, urlsplit

            hosts = self.headers.get_all("Host") or []
            if len(hosts) != 1 or hosts[0].lower() not in own_hosts:
                # DNS rebinding: a page on another name that resolves to 127.0.0.1 must not
                # reach the listener through the browser.
                self._page(400, "Wrong address",
                           "This is the login listener of anaconda_auth; use its own address.")
                return
            parts = urlsplit(self.path)
            if parts.path != path:
                self._page(404, "Not found", "This is the login listener of anaconda_auth.")
                return
            ignored = _check_authorization_response(parse_qs(parts.query), state, metadata,
                                                    result)
            if ignored:
                self._page(400, "Unexpected login response",
                           f"This response was ignored: {ignored}. Go back to the terminal.")
                return
            target = config.login_error_url if result.error else config.login_success_url
            self.send_response(303)  # 303: the browser GETs the page, the code leaves the bar
            self.send_header("Location", target)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _page(self, status: int, title: str, text: str) -> None:
            import html

            body = (f"<!doctype html><title>{html.escape(title)}</title>"
                    f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def send_error(self, code: int, message: str | None = None,
                       explain: str | None = None) -> None:
            # The stdlib's error pages quote the request line, which may hold the code.
            super().send_error(code)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the query holds the code: never log it

    class Server(http.server.ThreadingHTTPServer):
        # A thread per connection, never waited for: an idle connection (a browser's
        # preconnect) must not block the redirect, the timeout or Ctrl-C.
        daemon_threads = True
        block_on_close = False
        request_queue_size = socket.SOMAXCONN  # socketserver's 5 drops bursts (SYN retries)
        address_family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        allow_reuse_address = sys.platform != "win32"  # Windows would let others share it

    try:
        server = Server((bind_host, port), Handler)
    except OSError as e:
        raise AuthenticationError(
            f"Cannot listen on {bind_host}:{port} for the login redirect ({e.strerror}). "
            "Another program may be using the port: close it, set redirect_uri to another "
            f"port (port 0 picks a free one), or log in with: {CLI_NAME} login --device"
        ) from None
    actual_port = server.server_address[1]
    netloc = f"[{bind_host}]" if ":" in bind_host else host
    for name in {netloc, f"[{bind_host}]" if ":" in bind_host else bind_host}:
        own_hosts.add(f"{name}:{actual_port}")
        if actual_port == 80:
            own_hosts.add(name)  # browsers leave the default port out of Host
    _start_daemon_thread(server.serve_forever, "anaconda_auth-login")
    return server, f"http://{netloc}:{actual_port}{path}"


def _browser_flow(config: Config, metadata: JSONDict, terminal: _Terminal, open_browser: bool,
                  timeout: float) -> str:
    """Run the authorization-code flow with PKCE; returns the access token."""
    import secrets
    from urllib.parse import urlencode

    methods = metadata.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        # RFC 9700 §2.1.1: never fall back to "plain" PKCE. (Many servers omit the list; one
        # that lists methods without S256 is refused.)
        raise AuthenticationError(
            f"The server {config.auth_domain} does not support PKCE with S256 "
            f"(code_challenge_methods_supported = {methods}); refusing the browser login. "
            f"Try: {CLI_NAME} login --device")
    verifier, challenge = _pkce_pair()
    state = secrets.token_urlsafe(32)
    result = _LoginResult()
    server, redirect_uri = _start_listener(config, state, metadata, result)
    try:
        query = urlencode({
            "client_id": config.client_id, "response_type": "code", "scope": _SCOPES,
            "state": state, "redirect_uri": redirect_uri, "code_challenge": challenge,
            "code_challenge_method": "S256",
        })
        endpoint = metadata["authorization_endpoint"]
        _show_url(terminal, f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", open_browser)
        code = _await_authorization(terminal, result, state, metadata, timeout)
    finally:
        server.shutdown()
        server.server_close()
    response = request("POST", metadata["token_endpoint"], config=config, auth=False, retries=0,
                       fields={"grant_type": "authorization_code", "client_id": config.client_id,
                               "code": code, "redirect_uri": redirect_uri,
                               "code_verifier": verifier})
    body = _oauth_json(response, "authorization code exchange", AuthenticationError)
    if not isinstance(body.get("access_token"), str):
        raise AuthenticationError(f"The token endpoint {response.url} returned no access_token")
    return str(body["access_token"])


def _await_authorization(terminal: _Terminal, result: _LoginResult, state: str,
                         metadata: JSONDict, timeout: float) -> str:
    """Wait for the listener, or for the user to paste the final URL (SSH without port
    forwarding: the browser on another machine cannot reach this listener)."""
    paste = terminal.stdin_is_tty() and sys.platform != "win32"
    if paste:
        terminal.say("Waiting for the browser. If it runs on another machine, paste here the "
                     "address it ended on (it starts with http://127.0.0.1) and press Enter:")
    deadline = terminal.clock() + timeout
    pipe = _WakeupPipe()
    with result.lock:
        result.wake_fd = pipe.write_fd
    try:
        while not result.done.is_set():
            left = deadline - terminal.clock()
            if left <= 0:
                raise AuthenticationError(
                    f"No login response arrived within {timeout:g} s. Run login again, or use "
                    f"{CLI_NAME} login --device")
            _wait_for_input(terminal, result, state, metadata, pipe, paste, left)
    finally:
        with result.lock:
            result.wake_fd = None
        pipe.close()
    if result.error:
        raise result.error
    assert result.code is not None
    return result.code


class _WakeupPipe:
    """The pipe a login's wait select()s on. The listener writes a 0 byte to it; in the main
    thread it is also Python's signal wakeup fd, which writes each signal's number (never 0),
    as asyncio does.

    Python acts on a signal only between bytecodes of the main thread: a Ctrl-C that lands
    after the last check and before select() starts, or that a thread of the caller's takes,
    would otherwise go unanswered until the login times out. The signals' bytes are passed on
    to the wakeup fd this one replaced (an asyncio loop's), so that loop still hears of them.
    """

    def __init__(self) -> None:
        import signal
        import threading

        self.read_fd, self.write_fd = os.pipe()
        self.replaced: int | None = None  # None: not ours to set (Windows, or not the main thread)
        if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
            return
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)  # a full pipe must never block a signal
        self.replaced = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def drain(self) -> None:
        """Empty the pipe (or a signal's byte would keep select() returning)."""
        try:
            data = os.read(self.read_fd, 4096)
        except BlockingIOError:
            return
        signals = data.replace(b"\0", b"")
        if signals and self.replaced is not None and self.replaced >= 0:
            try:
                os.write(self.replaced, signals)
            except OSError:
                pass  # that reader is gone or full: a wakeup fd drops bytes then too

    def close(self) -> None:
        if self.replaced is not None:
            import signal

            signal.set_wakeup_fd(self.replaced)
            self.drain()  # what came after the last select(), passed on as well
        os.close(self.read_fd)
        os.close(self.write_fd)


def _wait_for_input(terminal: _Terminal, result: _LoginResult, state: str, metadata: JSONDict,
                    pipe: _WakeupPipe, paste: bool, left: float) -> None:
    """One wait: for the listener's byte, a signal's, or a pasted line."""
    if sys.platform == "win32":  # select() takes only sockets there; a lock wait is short
        result.done.wait(min(left, 0.5))
        return
    import select

    watched: list[Any] = [terminal.stdin, pipe.read_fd] if paste else [pipe.read_fd]
    ready, _, _ = select.select(watched, [], [], left)
    if pipe.read_fd in ready:
        pipe.drain()
    if paste and terminal.stdin in ready:
        _accept_pasted(terminal, terminal.stdin.readline(), state, metadata, result)


def _accept_pasted(terminal: _Terminal, line: str, state: str, metadata: JSONDict,
                   result: _LoginResult) -> None:
    from urllib.parse import parse_qs, urlsplit

    text = line.strip()
    if not text:
        return
    # A whole URL (with or without its scheme, as address bars show it) or just its query.
    query = urlsplit(text).query if "://" in text else text.partition("?")[2] or text
    fields = parse_qs(query)
    ignored = "it has no state" if "state" not in fields else (
        "it has no code" if "code" not in fields and "error" not in fields else None)
    ignored = ignored or _check_authorization_response(fields, state, metadata, result)
    if ignored:  # a bad paste never ends the login: ask again
        terminal.say(f"That address was not accepted: {ignored}. Paste the whole address.")


# -- Access token -> API key ----------------------------------------------------------------------


def _exchange_for_api_key(config: Config, access_token: str) -> str:
    """Trade the access token for a long-lived API key, exactly as the reference does: the
    auth service first, then the IAM service; the first 201 wins."""
    body = {"scopes": _API_KEY_SCOPES, "tags": [f"{_DISTRIBUTION}/v{__version__}"]}
    failures = []
    for url in (f"https://{config.auth_domain}/api/auth/api-keys",
                f"https://{config.domain}/api/iam/api-keys"):
        try:
            response = request("POST", url, config=config, auth=False, json=body, retries=0,
                               headers={"Authorization": f"Bearer {access_token}"})
        except NetworkError as e:
            failures.append(str(e))
            continue
        if response.status == 201:
            try:
                answer = response.json()
            except HTTPError:
                answer = None
            api_key = answer.get("api_key") if isinstance(answer, dict) else None
            if isinstance(api_key, str) and api_key:
                return api_key
        failures.append(f"{url}: HTTP {response.status} {_excerpt(response.text, 100)}")
    raise AuthenticationError("Error retrieving an API key: " + "; ".join(failures))


# =================================================================================================
# Public API
# The functions a program calls. Each takes as ``config`` (or, as in the reference, ``site=``) a
# resolved Config, a site name or domain, or None for the default site, and combines the
# sections above. Only the interactive login talks to the user (on stderr).
# =================================================================================================


def get_api_key(config: Config | str | None = None, *, site: Config | str | None = None) -> str:
    """The API key for the site: from the configuration, else the token store.

    Raises TokenNotFoundError when there is none and TokenExpiredError when its JWT ``exp`` has
    passed. A key that is not a JWT, or has no ``exp``, has unknown expiry and is returned.
    """
    config = _coerce_config(config, site, "get_api_key")
    api_key, where = _find_api_key(config)
    if not api_key:
        raise TokenNotFoundError(
            f"Login is required: no API key for {config.domain} was found in {where}. "
            f"Log in with: {_login_command(config)}"
        )
    expiry = _KeyExpiry(api_key)
    if expiry.expired:
        fix = ("Update or unset it there: a login would not replace it."
               if _key_is_configured(config) else
               f"Log in again with: {_relogin_command(config)}")
        raise TokenExpiredError(
            f"The API key for {config.domain} (from {where}) expired on {expiry.date}. " + fix)
    _warn_if_expiring(config, api_key, where, expiry)
    return api_key


def is_logged_in(config: Config | str | None = None, *, site: Config | str | None = None) -> bool:
    """Whether the site has a key (stored or configured) that has not expired; offline.

    Unlike the reference, which only checks that a stored entry exists, an expired key is not a
    login. A key of unknown expiry (not a JWT) counts. A damaged token store raises StorageError.
    """
    api_key, _ = _find_api_key(_coerce_config(config, site, "is_logged_in"))
    return api_key is not None and api_key != "" and not _KeyExpiry(api_key).expired


def login(
    config: Config | str | None = None,
    *,
    site: Config | str | None = None,
    api_key: str | None = None,
    force: bool = False,
    flow: str | None = None,
    open_browser: bool = True,
    timeout: float | None = None,
    ssl_verify: bool | str | None = None,
    use_device_flow: bool | None = None,
    basic: bool = False,
    verify: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    open_url: Callable[[str], bool] | None = None,
    stdin: Any = None,
    stderr: Any = None,
    quiet: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Log in to the site and return its API key.

    ``api_key=...`` stores a key obtained elsewhere (a bootstrap script provisioning a machine)
    after checking it: its form, its JWT ``exp``, and (unless ``verify=False``, for images built
    without network) that the server accepts it (``GET /api/account``); a refused key raises
    InvalidTokenError, a network failure NetworkError, and nothing is stored. Otherwise, unless
    ``force``, an unexpired key already available is returned as is; else the interactive
    OpenID Connect login runs (``flow`` is "device" or "browser"; default from
    ``use_device_flow``; ``open_browser=False``, or the ``open_browser = false`` setting, never
    launches a browser). ``clock`` (monotonic seconds), ``sleep``, ``open_url`` (returns
    whether a browser was opened), ``stdin``, ``stderr`` and ``environ`` (what decides whether
    a browser can be opened: DISPLAY, SSH_CONNECTION, BROWSER, PATH) are what the login uses of
    the outside world; they default to the process's own. ``quiet`` says only what the user must
    act on (the URL, the code, the paste prompt): no hints, no countdown.

    The reference's keywords: ``ssl_verify`` (not None) replaces the site's setting for this
    login; ``use_device_flow`` is ``flow="device"`` (True) or ``flow="browser"`` (False);
    ``basic=True`` (the password grant) is refused.
    """
    if basic:
        # RFC 9700 §2.4: the resource owner password credentials grant MUST NOT be used; it
        # hands the password to the client and defeats multi-factor and federated login.
        raise ConfigError(
            "login(basic=True): the username/password grant is not supported (RFC 9700 §2.4 "
            "forbids it). Use the device or browser login (the default), or login(api_key=...)."
        )
    if use_device_flow is not None:
        mapped = "device" if use_device_flow else "browser"
        if flow is not None and flow != mapped:
            raise ConfigError(f"login(flow={flow!r}, use_device_flow={use_device_flow!r}): "
                              "they disagree; give one of them")
        flow = mapped
    config = _coerce_config(config, site, "login")
    if ssl_verify is not None:
        config = config.replace(ssl_verify=ssl_verify)
    if api_key is not None:
        return _store_given_key(config, api_key, verify=verify)[0]
    if not force:
        existing, where = _find_api_key(config)
        if existing and not _KeyExpiry(existing).expired:
            _warn_if_expiring(config, existing, where)
            return existing
    terminal = _Terminal(open_url=open_url, clock=clock, sleep=sleep, stdin=stdin, stderr=stderr,
                         quiet=quiet, environ=environ)
    # The open_browser setting (false for CI images and installers) is --no-browser as a setting.
    return _interactive_login(config, flow=flow, open_browser=open_browser and config.open_browser,
                              timeout=timeout, terminal=terminal)


_MAX_KEY_LENGTH = 64 * 1024  # far above any real key; what --with-token reads from stdin at most


def _check_key_form(api_key: str) -> str:
    """The key without surrounding white space, or AuthenticationError saying what is wrong."""
    api_key = api_key.strip()
    if not api_key:
        raise AuthenticationError("The API key is empty; nothing was stored.")
    if any(c.isspace() for c in api_key):
        raise AuthenticationError(
            "The API key contains white space or a line break; nothing was stored. Give the key "
            "alone, on one line.")
    if len(api_key) > _MAX_KEY_LENGTH or not all(" " < c < "\x7f" for c in api_key):
        raise AuthenticationError(
            "The API key contains characters an API key never has (or is longer than "
            f"{_MAX_KEY_LENGTH // 1024} KiB); nothing was stored. Check that you copied the key.")
    return api_key


def _key_site_mismatch(config: Config, api_key: str) -> str | None:
    """The issuer host when the key's JWT ``iss`` names another site than ``config``'s."""
    issuer = (_jwt_claims(api_key) or {}).get("iss")
    if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
        return None
    try:
        host = _host_port(issuer)[1]
    except ValueError:
        return None
    ours = {_host_port(f"https://{domain}")[1] for domain in (
        config.domain, config.auth_domain, *LEGACY_DOMAINS.get(config.domain, ()))}
    if any(host == h or host.endswith("." + h) or h.endswith("." + host) for h in ours):
        return None
    return host


def _store_given_key(config: Config, api_key: str, *, verify: bool) -> tuple[str, JSONDict | None]:
    """Check and store a key given by the caller: (key, the account the server named, or None
    without ``verify``). Every check comes before the write, so a bad key changes nothing."""
    api_key = _check_key_form(api_key)
    expiry = _KeyExpiry(api_key)
    if expiry.expired:
        raise AuthenticationError(
            f"The API key expired on {expiry.date}; nothing was stored. "
            "Create a new key and try again."
        )
    other = _key_site_mismatch(config, api_key)
    if other:
        raise AuthenticationError(
            f"The API key was issued by {other}, not by {config.domain}; nothing was stored. "
            f"Use a key of {config.domain}, or select the key's site with --at.")
    account = _verify_key(config, api_key) if verify else None
    _save_api_key(config, api_key)
    return api_key, account


def _verify_key(config: Config, api_key: str) -> JSONDict:
    """Ask the site whether it accepts ``api_key`` (GET /api/account); its account when it does."""
    check = f"{CLI_NAME} login --with-token --no-verify"
    try:
        response = request("GET", "/api/account", config=config, api_key=api_key)
    except NetworkError as e:
        raise NetworkError(
            f"Could not check the API key with {config.domain}: {e}. Nothing was stored. Try "
            f"again when {config.domain} can be reached, or store the key unchecked with: "
            f"{check} (login(..., verify=False))") from None
    if response.status in (401, 403):
        error = InvalidTokenError(
            f"{config.domain} refused the API key (HTTP {response.status}); nothing was stored. "
            f"The key may have been revoked, or belong to another site: create a new key for "
            f"{config.domain} and try again.")
        error.response = response
        raise error
    account = None
    if response.ok:
        try:
            account = response.json()
        except HTTPError:
            account = None
    if not isinstance(account, dict):
        raise HTTPError(
            f"Could not check the API key: GET {response.url} answered HTTP {response.status} "
            f"{_excerpt(response.text, 100)}. Nothing was stored. Store the key unchecked with: "
            f"{check}", response)
    return account


def _interactive_login(
    config: Config, *, flow: str | None, open_browser: bool, timeout: float | None,
    terminal: _Terminal,
) -> str:
    """Discover the endpoints, run the chosen flow, exchange the token, store the API key."""
    if flow not in (None, "device", "browser"):
        raise ConfigError(f"login(flow={flow!r}): use 'device' or 'browser'")
    _load_stored_token(config)  # a damaged store is said now, not after the user has logged in
    use_device = flow == "device" or (flow is None and config.use_device_flow)
    metadata = discover(config)
    if use_device and not metadata.get("device_authorization_endpoint"):
        terminal.hint(f"{config.auth_domain} offers no device login; using the browser instead.")
        use_device = False
    if use_device:
        access_token = _device_flow(config, metadata, terminal, open_browser)
    else:
        wait = config.login_timeout if timeout is None else timeout
        access_token = _browser_flow(config, metadata, terminal, open_browser, wait)
    api_key = _exchange_for_api_key(config, access_token)
    _save_api_key(config, api_key)
    return api_key


def logout(config: Config | str | None = None, *, site: Config | str | None = None) -> bool:
    """Delete the site's stored API key (and legacy entries); True when something was deleted.

    A key given by the configuration (``ANACONDA_AUTH_API_KEY``, ``api_key`` in config.toml, a
    ``keyring`` setting) is not stored and so cannot be deleted: a warning says it still applies.
    """
    config = _coerce_config(config, site, "logout")
    deleted = _delete_stored_tokens(config)
    configured = _configured_key_source(config)
    if configured:
        _warn_once(
            f"An API key for {config.domain} still comes from {configured}; "
            "remove it there to log out completely."
        )
    return deleted


_ANONYMOUS_ACCOUNT: JSONDict = {
    "user": {"id": None, "email": None, "username": "", "first_name": "", "last_name": ""},
    "profile": {"is_confirmed": False, "is_disabled": False, "is_consented": False},
    "subscriptions": [],
}


def whoami(config: Config | str | None = None, *, site: Config | str | None = None) -> JSONDict:
    """The account the site's key belongs to (GET /api/account), with ``domain`` added.

    As in the reference: when no key was sent and the server refuses, the anonymous account
    shape is returned; a refused key raises InvalidTokenError.
    """
    import copy

    config = _coerce_config(config, site, "whoami")
    response = request("GET", "/api/account", config=config)
    if not response.ok and not response.sent_auth and _bearer_key(config, None)[0] is None:
        account: JSONDict = copy.deepcopy(_ANONYMOUS_ACCOUNT)
    else:
        response.raise_for_status()
        account = response.json()
        if not isinstance(account, dict):
            raise HTTPError(f"{response.url} returned JSON that is not an account object", response)
    account["domain"] = config.domain
    return account


class Client:
    """Settings held once for many requests, as the reference's ``BaseClient`` holds them.

    ``Client("my-site", user_agent="my-app/1.0", api_version="2024.01.01").get("/api/...")``.
    ``config`` (or ``site=``) names the site as everywhere else; ``domain``, ``api_key``,
    ``ssl_verify`` and ``extra_headers`` (a dict, or its JSON text) replace those settings for
    this client. Every method is one ``request()`` call (no second HTTP path), so the key,
    TLS, proxy, retry and redirect rules are the same; ``user_agent`` replaces our
    ``User-Agent``; ``api_version`` sends ``Api-Version`` (extra headers never replace either).
    Subclasses may set ``_user_agent`` and ``_api_version``, as the reference's do.

    A 401 or 403 when the site has no key to send raises LoginRequiredError; other responses
    are returned as they are (``raise_for_status()`` turns errors into exceptions).
    """

    _user_agent: str | None = None
    _api_version: str | None = None

    def __init__(
        self,
        config: Config | str | None = None,
        *,
        site: Config | str | None = None,
        domain: str | None = None,
        api_key: str | None = None,
        user_agent: str | None = None,
        api_version: str | None = None,
        ssl_verify: bool | str | None = None,
        extra_headers: Mapping[str, str] | str | None = None,
    ) -> None:
        changes = {name: value for name, value in (
            ("domain", domain), ("api_key", api_key), ("ssl_verify", ssl_verify),
            ("extra_headers", extra_headers)) if value is not None}
        resolved = _coerce_config(config, site, "Client")
        self.config = resolved.replace(**changes) if changes else resolved
        self.user_agent = user_agent or self._user_agent
        self.api_version = api_version or self._api_version
        self.headers = {"User-Agent": self.user_agent} if self.user_agent else {}
        _check_headers(self.headers, "Client(user_agent=...)")

    def __repr__(self) -> str:
        return f"<Client {self.config.site} ({self.config.domain})>"

    @property
    def base_url(self) -> str:
        return f"https://{self.config.domain}"

    def request(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None,
        data: None | bytes | str | Mapping[str, str] = None,
        headers: Mapping[str, str] | None = None, **options: Any,
    ) -> Response:
        """``request(method, url, ...)`` with this client's settings. The reference's
        ``params`` (the query string) and ``data`` (raw bytes, or a dict for a form) are
        accepted beside request()'s own ``json``, ``body``, ``fields``, ``timeout``, ``auth``..."""
        if params:
            from urllib.parse import urlencode

            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        if isinstance(data, (bytes, str)):
            options["body"] = data
        elif data is not None:
            options["fields"] = data
        if headers:
            given = {name.lower() for name in headers}
            headers = {**{k: v for k, v in self.headers.items() if k.lower() not in given},
                       **headers}
        response = request(method, url, config=self.config, headers=headers or self.headers,
                           api_version=self.api_version, **options)
        if (response.status in (401, 403) and not response.sent_auth
                and options.get("auth", True) and options.get("api_key") is None
                and _bearer_key(self.config, None)[0] is None):
            error = LoginRequiredError(
                f"{method.upper()} {response.url} answered {response.status}: log in first "
                f"({_login_command(self.config)}) or give the client an api_key."
            )
            error.response = response
            raise error
        return response

    def get(self, url: str, **options: Any) -> Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> Response:
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Any) -> Response:
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Any) -> Response:
        return self.request("PATCH", url, **options)

    def delete(self, url: str, **options: Any) -> Response:
        return self.request("DELETE", url, **options)

    def head(self, url: str, **options: Any) -> Response:
        return self.request("HEAD", url, **options)


def client_factory(user_agent: str | None, api_version: str | None = None) -> Client:
    """The reference's name: a Client for the default site with these two defaults."""
    return Client(user_agent=user_agent, api_version=api_version)


# =================================================================================================
# Editing config.toml
# ``sites add/modify/remove`` change only the text of one [sites.<name>] table (with its
# sub-tables) or the default_site line, and every other byte stays where it was; the new text
# must parse to exactly the intended data before it atomically replaces the file, with a backup,
# under the file's lock. In order: scan, render, edit, verify, write.
# =================================================================================================
# The reference regenerates the whole file and so deletes every key and table it does not know.
# The text functions here are pure and never guess: a layout they cannot edit in place is a
# ValueError naming the line.
#
# New text follows the reference's writer (cli-base + tomlkit), so a command run on a missing
# file writes the reference's bytes: a new table is appended after one blank line; dict values
# become sub-tables after the table's scalars; a table holding only dicts gets no header of its
# own; strings use double quotes. Where the reference is silent:
# * comment lines directly above a header (no blank line between) belong to that table and go
#   with it; a comment separated by a blank line stays;
# * a new key goes right after the table's last key line (not after trailing comments, which are
#   usually notes about what follows); a replaced value keeps the key's spelling and its comment;
# * a dict value replaces the whole sub-table, editing the keys it keeps in place; an inline
#   table (or string) for that key is rewritten inline where it stands; a new sub-table goes
#   after the site's last block, not at the end of the file;
# * a new default_site goes after the last top-level key, else before the first table and its
#   attached comments, with a blank line before what follows; CRLF files stay CRLF.

# -- Scan -----------------------------------------------------------------------------------------
# The scanner finds where tables and key lines start and end, with the lexer of the
# Configuration section. It builds no values; it only skips over them (strings, arrays, inline
# tables) so a "[" inside a value is never a header.


class _TomlEntry:
    """A ``key = value`` item; ``start``..``end`` covers whole lines, newline included."""

    __slots__ = ("end", "key", "start", "value_end", "value_start")

    def __init__(self, key: tuple[str, ...], start: int, value_start: int, value_end: int,
                 end: int) -> None:
        self.key, self.start, self.end = key, start, end
        self.value_start, self.value_end = value_start, value_end


class _TomlTable:
    """A ``[table]`` or ``[[array]]`` block, or (path ``()``) the top level before the first one.

    ``start`` includes the comment lines attached directly above the header; ``end`` is where
    the next block starts, so trailing blank lines and loose comments belong to this block.
    """

    __slots__ = ("body_start", "end", "entries", "header_start", "is_array", "path", "start")

    def __init__(self, path: tuple[str, ...], is_array: bool, start: int, header_start: int,
                 body_start: int) -> None:
        self.path, self.is_array, self.start = path, is_array, start
        self.header_start, self.body_start, self.end = header_start, body_start, body_start
        self.entries: list[_TomlEntry] = []


def _toml_skip_space(text: str, pos: int) -> int:
    """Whitespace, newlines and comments, as allowed between array items."""
    while pos < len(text) and (text[pos] in " \t\r\n" or text[pos] == "#"):
        pos = _toml_line_end(text, pos) if text[pos] == "#" else pos + 1
    return pos


def _toml_skip_multiline_string(text: str, pos: int, quote: str) -> int:
    """Skip ``\"\"\"...\"\"\"`` or ``'''...'''``; up to two extra quotes may precede the closer."""
    i = pos + 3
    while True:
        close = text.find(quote, i)
        if close < 0:
            raise _toml_error(text, pos, "unterminated multi-line string")
        backslash = text.find("\\", i, close) if quote == '"""' else -1
        if backslash >= 0:
            i = backslash + 2  # an escaped character never closes the string
            continue
        end = close + 3
        while text.startswith(quote[0], end) and end - close < 5:
            end += 1
        return end


def _toml_skip_value(text: str, pos: int) -> int:
    """Position just after the value starting at ``pos``."""
    if text.startswith(('"""', "'''"), pos):
        return _toml_skip_multiline_string(text, pos, text[pos : pos + 3])
    if text.startswith('"', pos):
        return _toml_basic_string(text, pos, _TOML_1_1_ESCAPES)[1]
    if text.startswith("'", pos):
        return _toml_literal_string(text, pos)[1]
    if text.startswith(("[", "{"), pos):
        return _toml_skip_container(text, pos)
    end = _toml_bare_end(text, pos)
    if end == pos:
        raise _toml_error(text, pos, "expected a value")
    return end


def _toml_skip_container(text: str, pos: int) -> int:
    """Skip an array or an inline table, which may span lines."""
    closer, keyed = ("}", True) if text[pos] == "{" else ("]", False)
    pos += 1
    while True:
        pos = _toml_skip_space(text, pos)
        if text.startswith(closer, pos):
            return pos + 1
        if keyed:
            pos = _toml_parse_key(text, pos, _TOML_1_1_ESCAPES)[1]
            if not text.startswith("=", pos):
                raise _toml_error(text, pos, "expected '=' in an inline table")
            pos = _toml_skip_blank(text, pos + 1)
        pos = _toml_skip_space(text, _toml_skip_value(text, pos))
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith(closer, pos):
            raise _toml_error(text, pos, f"expected ',' or '{closer}'")


def _toml_scan(text: str) -> list[_TomlTable]:
    """The blocks of a TOML text: the top level first, then each table in file order."""
    tables = [_TomlTable((), False, 0, 0, 0)]
    attached: int | None = None  # start of the comment lines directly above the current line
    pos = 0
    while pos < len(text):
        first = _toml_skip_blank(text, pos)
        if first == len(text) or text.startswith(("\n", "\r\n"), first):
            attached, pos = None, _toml_line_end(text, pos)
        elif text.startswith("#", first):
            attached, pos = (pos if attached is None else attached), _toml_line_end(text, pos)
        elif text.startswith("[", first):
            is_array = text.startswith("[[", first)
            path, after = _toml_parse_key(text, first + 1 + is_array, _TOML_1_1_ESCAPES)
            closer = "]]" if is_array else "]"
            if not text.startswith(closer, after):
                raise _toml_error(text, after, f"expected '{closer}' to close a table header")
            body = _toml_finish_line(text, after + len(closer))
            start = pos if attached is None else attached
            tables[-1].end = start
            tables.append(_TomlTable(path, is_array, start, pos, body))
            attached, pos = None, body
        else:
            key, after = _toml_parse_key(text, first, _TOML_1_1_ESCAPES)
            if not text.startswith("=", after):
                raise _toml_error(text, after, "expected '=' after a key")
            value_start = _toml_skip_blank(text, after + 1)
            value_end = _toml_skip_value(text, value_start)
            end = _toml_finish_line(text, value_end)
            tables[-1].entries.append(_TomlEntry(key, pos, value_start, value_end, end))
            attached, pos = None, end
    tables[-1].end = len(text)
    return tables


# -- Render ---------------------------------------------------------------------------------------
# TOML text for new values, in the reference writer's style.


def _toml_string(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\b\t\n\f\r":
            out.append(repr(char)[1:-1])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")  # tomlkit's spelling: lower-case hex
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(part: str) -> str:
    return part if part and _BARE_KEY_CHARACTERS.issuperset(part) else _toml_string(part)


def _toml_header(path: tuple[str, ...]) -> str:
    return "[" + ".".join(_toml_key(part) for part in path) + "]"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write a {type(value).__name__} to config.toml")


def _toml_render_table(path: tuple[str, ...], values: Mapping[str, Any], nl: str) -> str:
    """A new table: header and scalars, then one sub-table per dict value, blank-line separated.

    A table holding only dicts gets no header of its own (the reference writes
    ``[sites.x.keyring."Anaconda Cloud"]`` without a ``[sites.x.keyring]`` line).
    """
    scalars = [(k, v) for k, v in values.items() if not isinstance(v, dict)]
    parts = []
    if scalars or len(scalars) == len(values):
        lines = [_toml_header(path)] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
        parts.append(nl.join(lines) + nl)
    parts += [_toml_render_table((*path, k), v, nl) for k, v in values.items() if isinstance(v, dict)]
    return nl.join(parts)


# -- Edit -----------------------------------------------------------------------------------------
# Text surgery: small steps, each on a fresh scan (the file is tiny; clarity wins).


def _toml_newline(text: str) -> str:
    """Keep a CRLF file CRLF."""
    return "\r\n" if "\r\n" in text[: _toml_line_end(text, 0)] else "\n"


def _is_blank(text: str) -> bool:
    return not text.strip(" \t\r\n")


def _toml_insert_lines(text: str, pos: int, lines: str, blank_after: bool = False) -> str:
    """Insert whole lines at ``pos`` (a line start, or the end of a file without a final newline)."""
    before, after = text[:pos], text[pos:]
    if before and not before.endswith("\n"):
        before += _toml_newline(text)
    if blank_after and after and not _is_blank(after[: _toml_line_end(after, 0)]):
        lines += _toml_newline(text)
    return before + lines + after


def _toml_blank_tail(text: str) -> int:
    """Where the file's trailing run of line breaks (each followed by spaces or tabs only)
    starts; len(text) when it does not end that way. Spaces ending the last line of content
    stay with it."""
    start = end = len(text)
    while True:
        pos = len(text[:end].rstrip(" \t"))
        if not text.endswith("\n", 0, pos):
            return start
        end = start = pos - 2 if text.endswith("\r\n", 0, pos) else pos - 1


def _toml_cut(text: str, spans: list[tuple[int, int]]) -> str:
    """Cut the spans; blank lines left at the end of the file collapse to one newline."""
    at_end = any(end == len(text) for _, end in spans)
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + text[end:]
    tail = _toml_blank_tail(text)
    if at_end and tail < len(text):
        text = text[:tail] + _toml_newline(text)
    return "" if _is_blank(text) else text


def _toml_append_table(text: str, rendered: str) -> str:
    """Append a new table at the end, with exactly one blank line before its header."""
    if _is_blank(text):
        return rendered
    nl = _toml_newline(text)
    return text[: _toml_blank_tail(text)] + nl + nl + rendered


def _toml_find_table(tables: list[_TomlTable], path: tuple[str, ...]) -> _TomlTable | None:
    return next((t for t in tables if t.path == path and not t.is_array), None)


def _toml_subtree(tables: list[_TomlTable], path: tuple[str, ...]) -> list[_TomlTable]:
    """Every table block whose header is ``path`` or below it."""
    return [t for t in tables if t.path[: len(path)] == path]


def _toml_content_end(text: str, table: _TomlTable) -> int:
    """The end of a block without its trailing blank lines."""
    # Not str.splitlines: it also splits at characters such as U+2028 that strings may hold.
    lines = [line + "\n" for line in text[table.start : table.end].split("\n")]
    lines[-1] = lines[-1][:-1]  # what follows the last line break (maybe nothing)
    while lines and _is_blank(lines[-1]):
        lines.pop()
    return table.start + sum(map(len, lines))


def _toml_entry(text: str, tables: list[_TomlTable], path: tuple[str, ...],
                key: str) -> _TomlEntry | None:
    """The ``key = ...`` line of a table; a dotted ``key.x = ...`` cannot be edited in place."""
    table = _toml_find_table(tables, path)
    for entry in table.entries if table else ():
        if entry.key[0] == key and len(entry.key) > 1:
            raise _toml_error(
                text, entry.start, f"dotted key '{'.'.join(entry.key)}' cannot be edited in "
                f"place; write it as a {_toml_header((*path, key))} table")
        if entry.key == (key,):
            return entry
    return None


def _toml_replace_value(text: str, entry: _TomlEntry, value: object) -> str:
    """Keep the key as written and any comment after the value."""
    return text[: entry.value_start] + _toml_value(value) + text[entry.value_end :]


def _toml_remove_key(text: str, path: tuple[str, ...], key: str) -> str:
    tables = _toml_scan(text)
    entry = _toml_entry(text, tables, path, key)
    spans = [(t.start, t.end) for t in _toml_subtree(tables, (*path, key))]
    return _toml_cut(text, spans + ([(entry.start, entry.end)] if entry else []))


def _toml_set_scalar(text: str, path: tuple[str, ...], key: str, value: object) -> str:
    if _toml_subtree(_toml_scan(text), (*path, key)):
        text = _toml_remove_key(text, path, key)  # it was a sub-table: becomes a plain key
    tables = _toml_scan(text)
    entry = _toml_entry(text, tables, path, key)
    if entry is not None:
        return _toml_replace_value(text, entry, value)
    table = _toml_find_table(tables, path)
    assert table is not None, "callers make sure the table has a header"
    where = table.entries[-1].end if table.entries else table.body_start
    return _toml_insert_lines(text, where, f"{_toml_key(key)} = {_toml_value(value)}"
                              + _toml_newline(text))


def _toml_set_dict(text: str, path: tuple[str, ...], key: str, value: dict[str, Any]) -> str:
    """Make ``path.key`` hold exactly ``value``."""
    tables = _toml_scan(text)
    entry = _toml_entry(text, tables, path, key)
    if entry is not None:  # an inline table (or a string) stays where the user wrote it
        return _toml_replace_value(text, entry, value)
    sub = (*path, key)
    existing = _toml_subtree(tables, sub)
    if (not any(isinstance(v, dict) for v in value.values())
            and [(t.path, t.is_array) for t in existing] == [(sub, False)]):
        for k, v in value.items():  # one flat table: edit it in place, drop the keys not given
            text = _toml_set_scalar(text, sub, k, v)
        table = _toml_find_table(_toml_scan(text), sub)
        assert table is not None
        return _toml_cut(text, [(e.start, e.end) for e in table.entries if e.key[0] not in value])
    # New, nested or spread over several tables: write it afresh after the site's last block.
    text = _toml_remove_key(text, path, key)
    rendered = _toml_render_table(sub, value, _toml_newline(text))
    group = _toml_subtree(_toml_scan(text), path)
    if not group:
        return _toml_append_table(text, rendered)
    end = _toml_content_end(text, max(group, key=lambda t: t.start))
    return _toml_insert_lines(text, end, _toml_newline(text) + rendered, blank_after=True)


def _toml_ensure_header(text: str, path: tuple[str, ...]) -> str:
    """Give a table defined only through its sub-tables a header of its own, above them."""
    tables = _toml_scan(text)
    if _toml_find_table(tables, path) is not None:
        return text
    header = _toml_header(path) + _toml_newline(text)
    group = _toml_subtree(tables, path)
    if not group:
        return _toml_append_table(text, header)
    return _toml_insert_lines(text, group[0].start, header, blank_after=True)


def _toml_check_sites_layout(text: str, tables: list[_TomlTable], name: str) -> None:
    """Refuse site layouts that [sites.<name>] tables cannot edit without breaking them."""
    for entry in tables[0].entries:
        if entry.key[0] == "sites":
            raise _toml_error(
                text, entry.start, "sites defined with a dotted key or inline table at the top "
                "level cannot be edited in place; write each site as a [sites.<name>] table")
    for table in tables[1:]:
        if table.is_array and table.path[:2] in (("sites",), ("sites", name)):
            raise _toml_error(text, table.header_start,
                                   "[[sites]] arrays of tables are not sites")
        for entry in table.entries if table.path == ("sites",) else ():
            if entry.key[0] == name:
                raise _toml_error(
                    text, entry.start, f"site '{name}' is defined by a key inside [sites] and "
                    f"cannot be edited in place; write it as a {_toml_header(('sites', name))} "
                    "table")


# The three edits.


def _toml_set_site(text: str, name: str, values: Mapping[str, Any]) -> str:
    """Make [sites.<name>] hold ``values`` (None removes a key); its other keys stay as they are."""
    tables = _toml_scan(text)
    _toml_check_sites_layout(text, tables, name)
    path = ("sites", name)
    if not _toml_subtree(tables, path):
        kept = {k: v for k, v in values.items() if v is not None}
        return _toml_append_table(text, _toml_render_table(path, kept, _toml_newline(text)))
    if any(v is not None and not isinstance(v, dict) for v in values.values()):
        text = _toml_ensure_header(text, path)
    for key, value in values.items():
        if value is None:
            text = _toml_remove_key(text, path, key)
        elif isinstance(value, dict):
            text = _toml_set_dict(text, path, key, value)
        else:
            text = _toml_set_scalar(text, path, key, value)
    # Removing the last sub-table of a site without a header would drop the site itself.
    return _toml_ensure_header(text, path)


def _toml_remove_site(text: str, name: str) -> str:
    """Remove [sites.<name>], its sub-tables and the comments attached above their headers."""
    tables = _toml_scan(text)
    _toml_check_sites_layout(text, tables, name)
    return _toml_cut(text, [(t.start, t.end) for t in _toml_subtree(tables, ("sites", name))])


def _toml_set_default_site(text: str, name: str) -> str:
    """Set or replace the top-level ``default_site = "..."`` line."""
    tables = _toml_scan(text)
    for entry in tables[0].entries:
        if entry.key[0] == "default_site":
            if len(entry.key) > 1:
                raise _toml_error(text, entry.start, "'default_site' must be a plain key")
            return _toml_replace_value(text, entry, name)
    line = f"default_site = {_toml_string(name)}{_toml_newline(text)}"
    if tables[0].entries:  # after the existing top-level keys
        return _toml_insert_lines(text, tables[0].entries[-1].end, line, blank_after=True)
    # Before the first table and the comments attached to it.
    return _toml_insert_lines(text, tables[0].end, line, blank_after=len(tables) > 1)


def _toml_masked(text: str) -> str:
    """``text`` with secret values replaced, for showing a diff (see ``_masked``)."""
    spans = []
    for table in _toml_scan(text):
        for entry in table.entries:
            path = table.path + entry.key
            value = text[entry.value_start : entry.value_end]
            headers = {"extra_headers", "oidc_request_headers"} & set(path)
            # Inline tables and JSON strings are masked whole when anything in them looks
            # secret: the diff cannot tell which of their keys a reader would need.
            compound = value.lstrip("'\"").startswith("{")
            if (set(_SECRET_FIELDS) & set(path)
                    or (headers and (_is_secret_header(path[-1]) or compound))
                    or ("proxy_servers" in path and "@" in value)
                    or (compound and any(word in value.lower() for word in _SECRET_WORDS))):
                spans.append((entry.value_start, entry.value_end))
    for start, end in reversed(spans):
        text = f'{text[:start]}"********"{text[end:]}'
    return text


# From a command to new text: the site changes applied to the text and, in step, to the parsed
# data the text must parse to.


def _site_table_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validated values for a site table, in _FIELDS order: the order the reference writes."""
    return {
        field: _normalize_domain(raw[field], "domain") if field == "domain"
        else _parse_field(field, raw[field], field)
        for field in _FIELDS if field in raw
    }


def _sites_on_file(path: str, text: str) -> tuple[JSONDict, dict[str, dict[str, Any]], bool]:
    """(parsed document, its [sites.*] tables, whether the implicit anaconda.com site applies)."""
    document = _parse_config_toml(path, text)
    sites = _configured_sites(document, {}, path)
    return document, sites, not sites and "default_site" not in document


def _apply_site_edits(path: str, text: str, document: JSONDict,
                      edits: list[tuple[str, str, Any]]) -> tuple[str, JSONDict]:
    """Apply ("set", site, values) / ("remove", site, None) / ("default", site, None) edits.

    Returns the new text and the data it must parse to.
    """
    import copy

    expected = copy.deepcopy(document)
    try:
        for action, name, values in edits:
            if action == "set":
                text = _toml_set_site(text, name, values)
                site = expected.setdefault("sites", {}).setdefault(name, {})
                site.update(values)
                for key in [k for k, v in values.items() if v is None]:
                    del site[key]
            elif action == "remove":
                text = _toml_remove_site(text, name)
                del expected["sites"][name]
            else:
                text = _toml_set_default_site(text, name)
                expected["default_site"] = name
    except ValueError as e:  # the editor's: a layout it cannot change in place, named by line
        raise ConfigError(f"{path} {e}. Nothing was written.") from None
    return text, expected


def _sites_add(path: str, text: str, name: str | None, raw: Mapping[str, Any],
               make_default: bool, remove_anaconda_com: bool) -> tuple[str, JSONDict]:
    """``sites add``: a new [sites.<name>] table (name default: the normalised domain)."""
    values = _site_table_values(raw)
    name = name or values["domain"]
    document, sites, implicit = _sites_on_file(path, text)
    if name in sites or (implicit and name == DEFAULT_DOMAIN):
        raise AnacondaAuthError(
            f"A site with name {name} already exists, use the modify subcommand to alter it")
    edits: list[tuple[str, str, Any]] = []
    remaining = dict.fromkeys(sites)
    if remove_anaconda_com and DEFAULT_DOMAIN in sites:
        edits.append(("remove", DEFAULT_DOMAIN, None))
        del remaining[DEFAULT_DOMAIN]
    elif implicit and not remove_anaconda_com:
        # Keeping the implicit site means writing it down, as the reference does (it stops
        # applying once another site exists), and it stays the default.
        edits.append(("set", DEFAULT_DOMAIN, {}))
        if not make_default:
            edits.append(("default", DEFAULT_DOMAIN, None))
        remaining[DEFAULT_DOMAIN] = None
    defaults = {field: _FIELDS[field][1] for field in values}
    edits.append(("set", name, {k: v for k, v in values.items() if v != defaults[k]}))
    if make_default or not remaining:
        edits.append(("default", name, None))
    return _apply_site_edits(path, text, document, edits)


def _sites_modify(path: str, text: str, wanted: str, raw: Mapping[str, Any],
                  make_default: bool) -> tuple[str, JSONDict]:
    """``sites modify``: change the given values of the site named (or with domain) ``wanted``."""
    values = _site_table_values(raw)
    document, sites, implicit = _sites_on_file(path, text)
    name = _lookup_site(sites, wanted, path)
    if name is None and wanted != DEFAULT_DOMAIN:  # anaconda.com always exists, implicitly
        raise UnknownSiteName(f"The site or domain {wanted} has not been configured in {path}")
    name = name or DEFAULT_DOMAIN
    table = sites.get(name, {})
    if "domain" in table and _normalize_domain(table["domain"], "domain") == values.get("domain"):
        del values["domain"]  # given only to find the site, or the same domain spelt differently
    # Keys not on file are written only when they differ from the default; keys on file are
    # set even to the default, so [plugin.auth] cannot take over.
    changed = {k: v for k, v in values.items()
               if (table[k] != v if k in table else v != _FIELDS[k][1])}
    edits: list[tuple[str, str, Any]] = [("set", name, changed)] if changed else []
    if (make_default and document.get("default_site") != name) or (implicit and edits):
        edits.append(("default", name, None))
    return _apply_site_edits(path, text, document, edits)


def _sites_remove(path: str, text: str, wanted: str) -> tuple[str, JSONDict]:
    """``sites remove``: drop a site; a default that pointed at it moves to the first one left."""
    document, sites, implicit = _sites_on_file(path, text)
    name = _lookup_site({DEFAULT_DOMAIN: {"domain": DEFAULT_DOMAIN}} if implicit else sites,
                        wanted, path)
    if name is not None and (implicit or len(sites) == 1):
        raise AnacondaAuthError(f"{wanted} is the only configured site and cannot be removed")
    if name is None:
        raise UnknownSiteName(f"The site or domain {wanted} has not been configured in {path}")
    edits: list[tuple[str, str, Any]] = [("remove", name, None)]
    default = document.get("default_site")
    try:
        was_default = isinstance(default, str) and _lookup_site(sites, default, path) == name
    except ConfigError:  # an ambiguous default_site does not name this site
        was_default = False
    if was_default:
        edits.append(("default", next(n for n in sites if n != name), None))
    return _apply_site_edits(path, text, document, edits)


# -- Verify and write -----------------------------------------------------------------------------


def _toml_check_edit(path: str, new_text: str, expected: Mapping[str, Any]) -> None:
    """Raise unless ``new_text`` parses to exactly ``expected``: an editor bug never reaches disk."""
    toml = _import_toml(path)
    try:
        parsed = toml.loads(new_text)
    except toml.TOMLDecodeError as e:
        problem = f"does not parse ({e})"
    else:
        if parsed == expected:
            return
        problem = f"does not hold the intended data (differs at {_toml_differences(parsed, expected)})"
    raise AnacondaAuthError(f"The edited {path} {problem}. Nothing was written; please report "
                            "this with the file's layout.")


def _toml_differences(got: Any, want: Any, prefix: str = "") -> str:
    """Dotted paths where two parsed documents differ, for the error message."""
    if not (isinstance(got, dict) and isinstance(want, dict)):
        return "" if got == want else prefix or "<top level>"
    keys = list(want) + [k for k in got if k not in want]
    paths = (_toml_differences(got.get(k), want.get(k), f"{prefix}.{k}" if prefix else k)
             if k in got and k in want else f"{prefix}.{k}" if prefix else k for k in keys)
    return ", ".join(p for p in paths if p)


def _write_config_toml(
    path: str, edit: Callable[[str], tuple[str, JSONDict]], shown: str | None = None
) -> tuple[str, str, str | None]:
    """Read config.toml, edit it, check, back up and replace it, all under the file's lock.

    ``edit`` maps the old text to (new text, the data it must parse to); it runs under the
    lock so concurrent edits all land. ``shown``: the text a confirmed diff was made from; if
    the file changed since, nothing is written. Returns (old text, new text, backup path).
    The file is written through a symlink to its target; backups go next to ``path``.
    """
    from datetime import datetime

    try:
        with _FileLock(path):
            old = _read_text(path, "config file")
            if shown is not None and (old or "") != shown:
                raise AnacondaAuthError(f"{path} changed while waiting for confirmation. Nothing "
                                        "was written; run the command again.")
            new, expected = edit(old or "")
            if new == (old or ""):
                return new, new, None
            if old is not None and not (os.access(path, os.W_OK)
                                        and os.stat(path).st_mode & 0o222):
                raise AnacondaAuthError(f"{path} is read-only. Nothing was written; make it "
                                        f"writable (chmod u+w {path}) to edit it.")
            _toml_check_edit(path, new, expected)
            backup = None
            if old is not None:
                directory = os.path.dirname(path)
                stamp = datetime.now().strftime("%Y%m%d_%H%M%S_%f")
                backup = os.path.join(directory, f"config.backup.{stamp}.toml")
                _write_file_atomically(backup, old.encode("utf-8"))
                _prune_config_backups(directory)
            _write_file_atomically(path, new.encode("utf-8"))
            return old or "", new, backup
    except OSError as e:
        raise AnacondaAuthError(f"Cannot write {path}: {e.strerror or e}"
                                f"{f' ({e.filename})' if e.filename else ''}. "
                                "Nothing was changed.") from None


def _prune_config_backups(directory: str) -> None:
    """Keep the 5 newest config.backup.*.toml files, as the reference does."""
    _remove_leftover_temp_files(directory, "config.backup.")
    try:
        names = [os.path.join(directory, n) for n in os.listdir(directory)
                 if n.startswith("config.backup.") and n.endswith(".toml")]
        for old in sorted(names, key=os.path.getmtime, reverse=True)[5:]:
            os.unlink(old)
    except OSError:
        pass  # the new backup exists; an old one left over is harmless

# =================================================================================================
# Panel OAuth provider
# ``panel serve app.py --oauth-provider anaconda_auth`` (or the predecessor's name
# ``anaconda_cloud``) makes a Panel app's visitors log in with their Anaconda account. The handler
# class subclasses Panel's OAuthLoginHandler, so it is built on first access of
# ``AnacondaLoginHandler`` (PEP 562 ``__getattr__``): importing this module never imports Panel,
# Tornado or Bokeh. Endpoints come from the site's OIDC discovery; the token and userinfo calls go
# through request(), with the site's TLS and proxy settings. Nothing here stores an API key.
# =================================================================================================

_PANEL_SITE_PARAMETER = "site"  # in oauth_extra_params: which [sites.<name>] to log in to
_PANEL_USER_CLAIMS = ("email", "preferred_username", "sub")  # the first one present names a user

AnacondaLoginHandler: Any  # built by __getattr__ below; a subclass of panel.auth.OAuthLoginHandler


def _panel_error(problem: str) -> ConfigError:
    """One line for ``panel serve`` to print at start (Panel prefixes "ERROR: ")."""
    return ConfigError("anaconda_auth Panel OAuth provider: " + " ".join(problem.split()))


def _panel_site(oauth_key: Any, oauth_secret: Any, extra_params: Mapping[str, Any] | None,
                environ: Mapping[str, str] | None = None) -> tuple[Config, JSONDict]:
    """The site a Panel server logs its visitors in to, and its discovered endpoints.

    Raises a one-line ConfigError naming the setting that is missing or wrong. The site is
    ``oauth_extra_params["site"]`` if given, else ``ANACONDA_AUTH_SITE``, else the default site.
    """
    for value, setting, what in ((oauth_key, "PANEL_OAUTH_KEY (or --oauth-key)", "client id"),
                                 (oauth_secret, "PANEL_OAUTH_SECRET (or --oauth-secret)",
                                  "client secret")):
        if not isinstance(value, str) or not value.strip():
            raise _panel_error(f"{setting} is not set: set it to the OAuth {what} registered "
                               "for this app at the site's OpenID provider.")
    environ = os.environ if environ is None else environ
    site = (extra_params or {}).get(_PANEL_SITE_PARAMETER)
    if site is not None and (not isinstance(site, str) or not site):
        raise _panel_error(f"--oauth-extra-params {_PANEL_SITE_PARAMETER!r} must be a site name "
                           f"(a string), not {site!r}.")
    if site in _caches.panel_sites:
        return _caches.panel_sites[site]
    source = ("--oauth-extra-params (or PANEL_OAUTH_EXTRA_PARAMS) 'site'" if site is not None
              else "ANACONDA_AUTH_SITE" if environ.get("ANACONDA_AUTH_SITE") else "the default site")
    try:
        config = resolve_config(site, environ=environ)
    except ConfigError as e:
        raise _panel_error(f"{e} (the site comes from {source})") from None
    try:
        metadata = discover(config)
    except AnacondaAuthError as e:
        raise _panel_error(f"{e} (site {config.site or config.domain}, from {source}; check its "
                           "domain, auth_domain_override and ssl_verify)") from None
    userinfo = metadata.get("userinfo_endpoint")
    if userinfo is not None and not _is_secure_endpoint(userinfo):
        raise _panel_error(  # the visitor's access token would travel in clear
            f"OpenID discovery at {config.well_known_url} gave userinfo_endpoint = {userinfo!r}: "
            "it must use https (plain http only on this machine's loopback).")
    methods = metadata.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise _panel_error(f"the OpenID provider of {config.auth_domain} does not support PKCE "
                           f"with S256 (code_challenge_methods_supported = {methods}).")
    _caches.panel_sites[site] = (config, metadata)
    return config, metadata


def _panel_user_claim(claims: Mapping[str, Any]) -> str | None:
    """The claim that names a Panel user: email, else preferred_username, else sub."""
    return next((name for name in _PANEL_USER_CLAIMS
                 if isinstance(claims.get(name), str) and claims[name]), None)


def _panel_token_request(config: Config, endpoint: str, form: Mapping[str, str]) -> JSONDict:
    """POST to the token endpoint (client_secret_post); the JSON answer, OAuth errors included."""
    response = request("POST", endpoint, config=config, auth=False, retries=0, fields=form)
    return _oauth_json(response, "token request", AuthenticationError, allow_error=True)


def _panel_userinfo(config: Config, metadata: JSONDict, access_token: str,
                    id_token: Any) -> JSONDict:
    """The visitor's claims: the userinfo endpoint's answer, else the ID token's claims.

    The ID token came straight from the token endpoint over verified TLS, which OIDC Core
    §3.1.3.7 accepts in place of checking its signature; its ``sub`` must match userinfo's
    (OIDC Core §5.3.2).
    """
    id_claims = _jwt_claims(id_token) if isinstance(id_token, str) else None
    endpoint = metadata.get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        if id_claims is None:
            raise AuthenticationError("The OpenID provider has no userinfo_endpoint and sent no "
                                      "ID token: nothing names the user.")
        return id_claims
    response = request("GET", endpoint, config=config, auth=False,
                       headers={"Authorization": f"Bearer {access_token}"})
    claims = _oauth_json(response, "userinfo request", AuthenticationError)
    if id_claims is not None and claims.get("sub") != id_claims.get("sub"):
        raise AuthenticationError(f"The userinfo answer of {endpoint} is about another user "
                                  "than the ID token (sub differs).")
    return claims


def _panel_login_handler() -> Any:
    """Build AnacondaLoginHandler (once), importing Panel now."""
    try:
        import asyncio
        import importlib
        import logging

        # Through import_module: Panel is untyped, and mypy checks this module without it.
        OAuthLoginHandler: Any = importlib.import_module("panel.auth").OAuthLoginHandler
        panel_config: Any = importlib.import_module("panel.config").config
        TornadoHTTPError: Any = importlib.import_module("tornado.web").HTTPError
    except ImportError as e:
        raise ImportError(f"anaconda_auth.AnacondaLoginHandler is the Panel OAuth provider and "
                          f"needs Panel (Python 3.12 or newer): pip install panel ({e})") from None
    if "AnacondaLoginHandler" in globals():
        # Importing panel.auth loads the providers registered in the panel.auth entry-point
        # group, ours among them: that nested access has built the class already.
        return globals()["AnacondaLoginHandler"]
    log = logging.getLogger("anaconda_auth.panel")

    def settings() -> tuple[Config, JSONDict]:
        return _panel_site(panel_config.oauth_key, panel_config.oauth_secret,
                           panel_config.oauth_extra_params)

    class _InstalledHook(type(OAuthLoginHandler)):  # type: ignore[misc]
        def __setattr__(cls, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            # Undocumented: Panel's OAuthProvider sets the login endpoint on the selected
            # provider's class while `panel serve` (or pn.serve) builds the server, after every
            # setting was read:
            # the one moment a bad setting can stop the start with one line, instead of a
            # traceback at the first visitor. Other providers' servers never get here.
            if name == "_login_endpoint":
                settings()

    class AnacondaLoginHandler(OAuthLoginHandler, metaclass=_InstalledHook):  # type: ignore[misc]
        """Panel login for Anaconda sites: ``panel serve app.py --oauth-provider anaconda_auth``.

        Authorization code with PKCE (S256) and Panel's ``state`` cookie; the client secret is
        sent in the token request's body (client_secret_post). The user is named by the
        ``email`` claim, else ``preferred_username``, else ``sub``.
        """

        _access_token_header = "Bearer {}"
        _USER_KEY = "email"

        @property
        def _OAUTH_AUTHORIZE_URL(self) -> str:
            return str(settings()[1]["authorization_endpoint"])

        @property
        def _OAUTH_ACCESS_TOKEN_URL(self) -> str:
            return str(settings()[1]["token_endpoint"])

        @property
        def _OAUTH_USER_URL(self) -> str:
            return str(settings()[1].get("userinfo_endpoint") or "")

        @property
        def _OAUTH_LOGOUT_URL(self) -> str:
            # Shown on Panel's error page, which must render even when the settings are bad.
            try:
                return str(settings()[1].get("end_session_endpoint") or "")
            except AnacondaAuthError:
                return ""

        def authorize_redirect(self, *args: Any, extra_params: dict[str, Any] | None = None,
                               **kwargs: Any) -> None:
            verifier, challenge = _pkce_pair()
            self.set_code_cookie(verifier)
            params = {k: v for k, v in (extra_params or {}).items() if k != _PANEL_SITE_PARAMETER}
            params.update(code_challenge=challenge, code_challenge_method="S256")
            kwargs.pop("client_secret", None)  # never in the browser's address bar
            super().authorize_redirect(*args, extra_params=params, **kwargs)

        async def _fetch_access_token(
            self, client_id: str, redirect_uri: str | None = None,
            client_secret: str | None = None, code: str | None = None,
            refresh_token: str | None = None, username: str | None = None,
            password: str | None = None, user: str | None = None,
        ) -> tuple[Any, ...]:
            config, metadata = settings()
            form = {"client_id": client_id,
                    "client_secret": client_secret or panel_config.oauth_secret}
            if refresh_token:
                form.update(grant_type="refresh_token", refresh_token=refresh_token)
            elif code:
                issuer, iss = metadata.get("issuer"), self.get_argument("iss", None)
                if iss is None:  # Panel's "/" passed the provider's redirect on as ?next=...
                    from urllib.parse import parse_qs, urlsplit

                    nested = parse_qs(urlsplit(self.get_argument("next", "")).query)
                    iss = (nested.get("iss") or [None])[0]
                if (iss is not None and issuer and iss != issuer) or (
                        iss is None and metadata.get("authorization_response_iss_parameter_supported")):
                    # RFC 9207 §2.4, as for login: a response from another issuer is a mix-up.
                    raise TornadoHTTPError(401, f"The authorization response came from issuer "
                                           f"{_printable(iss)!r}, expected {issuer!r}.",
                                           reason="Issuer mismatch")
                form.update(grant_type="authorization_code", code=code,
                            redirect_uri=redirect_uri or self._redirect_uri,
                            code_verifier=self.get_code_cookie())
            else:  # Panel's password login; RFC 9700 §2.4 forbids that grant
                raise TornadoHTTPError(400, "Anaconda sites log users in through the browser.",
                                       reason="unsupported_grant_type")
            try:
                body = await asyncio.to_thread(_panel_token_request, config,
                                               metadata["token_endpoint"], form)
            except AnacondaAuthError as e:
                if refresh_token:
                    log.warning("refreshing the access token of %s failed: %s", user, e)
                    return None, None, None, None
                raise TornadoHTTPError(502, str(e), reason="Token request failed") from None
            if not isinstance(body.get("access_token"), str):
                if refresh_token:  # Panel then asks the visitor to log in again
                    log.warning("refreshing the access token of %s failed: %s", user,
                                _printable(body.get("error", "no access_token")))
                    return None, None, None, None
                raise TornadoHTTPError(401, _printable(body.get("error_description", "")),
                                       reason=_printable(body.get("error", "no access_token")))
            access_token = body["access_token"]
            expires_in = body.get("expires_in")
            expires_in = (int(expires_in) if isinstance(expires_in, (int, float))
                          or (isinstance(expires_in, str) and expires_in.isdigit()) else None)
            new_refresh_token = body.get("refresh_token")
            if refresh_token:
                return None, access_token, new_refresh_token or refresh_token, expires_in
            try:
                claims = await asyncio.to_thread(_panel_userinfo, config, metadata,
                                                 access_token, body.get("id_token"))
            except AnacondaAuthError as e:
                raise TornadoHTTPError(401, str(e), reason="No user information") from None
            claim = _panel_user_claim(claims)
            if claim is None:
                raise TornadoHTTPError(401, "The OpenID provider sent no email, "
                                       "preferred_username or sub for this user.",
                                       reason="No user information")
            self._USER_KEY = claim
            name = OAuthLoginHandler.set_auth_cookies(self, claims, access_token,
                                                      new_refresh_token, expires_in)
            return name, access_token, new_refresh_token, expires_in

    AnacondaLoginHandler.__module__ = __name__
    AnacondaLoginHandler.__qualname__ = "AnacondaLoginHandler"
    globals()["AnacondaLoginHandler"] = AnacondaLoginHandler
    return AnacondaLoginHandler


def __getattr__(name: str) -> Any:  # PEP 562: only the Panel handler is made on demand
    if name == "AnacondaLoginHandler":
        return _panel_login_handler()  # without Panel: ImportError saying to install it
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Listed only where Panel can be imported, so that help() and inspect.getmembers(), which
    # read every listed name, work on a machine without it; reading the name there still says
    # what to install.
    import importlib.util

    try:
        panel = importlib.util.find_spec("panel")
    except (ImportError, ValueError):
        panel = None
    return sorted({*globals(), *(["AnacondaLoginHandler"] if panel else [])})


# =================================================================================================
# Command line
# ``python -m anaconda_auth``: parses arguments, calls the public API, prints. Data goes to
# stdout, messages to stderr. Exit codes: 0 success, 1 failure, 2 bad usage or configuration,
# 3 login required or key expired, 130 interrupted. No traceback unless --verbose.
# =================================================================================================

_LOGIN_ERRORS = (TokenNotFoundError, TokenExpiredError, LoginRequiredError, InvalidTokenError)
_HIDDEN_SITE_FIELDS = (
    "api_key", "auth_domain_override", "client_id", "hash_hostname", "keyring", "keyring_path",
    "preferred_token_storage", "login_success_path", "login_error_path", "openid_config_path",
    "oidc_request_headers", "redirect_uri", "env_manager_channel", "env_manager_package",
    "env_manager_version", "login_timeout", "expiry_warning_days", "open_browser",
)


def _exit_code(error: BaseException) -> int:
    if isinstance(error, _LOGIN_ERRORS):
        return 3
    if isinstance(error, ConfigError):
        return 2
    return 1


def _say(message: str) -> None:
    """An error, or what the user must answer or act on: said even with --quiet."""
    print(message, file=sys.stderr, flush=True)


def _tell(message: str) -> None:
    """A notice (success, hint, note): not said with --quiet."""
    if not _Output.quiet:
        _say(message)


def _is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ask_yes_no(question: str) -> bool:
    """Ask on the terminal; anything but y/yes is no."""
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        _say("")
    return answer.strip().lower() in ("y", "yes")


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _config_for(args: Any, **overrides: Any) -> Config:
    return resolve_config(args.at, **overrides)


def _offer_login(config: Config, error: AnacondaAuthError, action: Callable[[], int]) -> int:
    """On a terminal, offer to log in when a command needs it, then run the command again."""
    if _key_is_configured(config):  # a login would store a key that is never used
        raise error
    if _Output.quiet or not _is_interactive():
        raise error
    _say(f"{type(error).__name__}: {error}")
    if not _ask_yes_no("Continue with interactive login? [y/n]: "):
        _say(
            "To configure your credentials you can run\n"
            f"  {_login_command(config)}\n"
            "or set your API key using the ANACONDA_AUTH_API_KEY env var\n"
            "or set\n\n[plugin.auth]\napi_key = \"<api-key>\"\n\n"
            f"in {config.config_path}"
        )
        return 3
    login(config, force=True)
    return action()


def _cmd_api_key(args: Any) -> int:
    config = _config_for(args)

    def show() -> int:
        print(get_api_key(config))
        return 0

    try:
        return show()
    except _LOGIN_ERRORS as e:
        return _offer_login(config, e, show)


def _cmd_whoami(args: Any) -> int:
    config = _config_for(args)

    def show() -> int:
        get_api_key(config)  # a missing or expired key is "login required", before any request
        account = whoami(config)
        if not args.short:  # the reference's output: the account, pretty JSON, sorted keys
            _print_json(account)
        else:
            user = account.get("user") or {}
            name = " ".join(filter(None, (user.get("first_name"), user.get("last_name"))))
            print(f"Logged in to {account['domain']} as {user.get('username') or '?'}"
                  + (f" ({name})" if name else "") + (f" <{user['email']}>" if user.get("email")
                                                       else ""))
        return 0

    try:
        return show()
    except _LOGIN_ERRORS as e:
        return _offer_login(config, e, show)


def _read_key_from_stdin() -> str | None:
    """The key from standard input (hidden prompt on a terminal); None after a usage error."""
    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass("Paste the API key (input is not shown), then press Enter: ")
    else:
        # Read at most a little more than any key: a wrong file piped in (an image, a log) is
        # refused at once instead of being read whole into memory.
        key = sys.stdin.read(_MAX_KEY_LENGTH + 1)
        if len(key) > _MAX_KEY_LENGTH:
            _say(f"error: standard input holds more than {_MAX_KEY_LENGTH // 1024} KiB; an API "
                 "key is one short line. Pipe in only the key: ... login --with-token < key.txt")
            return None
    if not key.strip():
        _say("error: no API key on standard input (pipe it in: ... login --with-token < key.txt)")
        return None
    return key


def _cmd_login_with_token(args: Any, config: Config) -> int:
    key = _read_key_from_stdin()
    if key is None:
        return 2
    try:
        key, account = _store_given_key(config, key, verify=not args.no_verify)
    except InvalidTokenError as e:  # a refusal of the key given here, not "log in first" (3)
        _say(f"{type(e).__name__}: {e}")
        return 1
    expiry = _KeyExpiry(key)
    until = ("expiry unknown" if expiry.at is None else f"the key expires on {expiry.date}")
    if account is None:
        _tell(f"✓ Stored the API key for {config.domain} without checking it with the server; "
              f"{until}.")
    else:
        user = account.get("user")
        user = user if isinstance(user, dict) else {}
        name = _printable(user.get("username") or user.get("email") or "?")
        _tell(f"✓ Logged in to {config.domain} as {name}; {until}.")
    _say_if_configured_key_wins(config)
    return 0


def _cmd_login(args: Any) -> int:
    overrides = {} if args.ssl_verify is None else {"ssl_verify": args.ssl_verify}
    config = _config_for(args, **overrides)
    if args.with_token:
        return _cmd_login_with_token(args, config)
    if args.no_verify:
        _say("error: --no-verify goes with --with-token (an interactive login gets its key from "
             "the server)")
        return 2
    existing, where = _find_api_key(config)
    expiry = _KeyExpiry(existing or "")
    if existing and not expiry.expired and not args.force:
        _warn_if_expiring(config, existing, where, expiry)
        until = f" until {expiry.date}" if expiry.at is not None else ""
        if _Output.quiet or not _is_interactive() or not _ask_yes_no(
            f"You are already logged into Anaconda ({config.domain}){until}. "
            "Would you like to force a new login? [y/n] (n): "
        ):
            _tell(f"Already logged in to {config.domain}{until} (key from {where}). "
                  "Use --force to log in again.")
            return 0
    flow = "device" if args.device else "browser" if args.browser else None
    key = login(config, force=True, flow=flow, open_browser=not args.no_browser,
                quiet=_Output.quiet)
    expiry = _KeyExpiry(key)
    _tell(f"✓ Logged in to {config.domain}.")
    _tell("The API key's expiry is unknown." if expiry.at is None else
          f"The API key expires on {expiry.date}.")
    _say_if_configured_key_wins(config)
    return 0


def _say_if_configured_key_wins(config: Config) -> None:
    configured = _configured_key_source(config)
    if configured:
        _tell(f"Note: {configured} still sets the key that is used; unset it to use the stored "
              "one.")


def _cmd_logout(args: Any) -> int:
    config = _config_for(args)
    stored = _load_stored_token(config)[0]
    if logout(config):
        _tell(f"Logged out of {config.domain}.")
        # Deleting our copy does not revoke the key: anyone holding a copy can still use it.
        expiry = _KeyExpiry(str((stored or {}).get("api_key") or ""))
        until = "" if expiry.at is None else f" (on {expiry.date})"
        _tell(f"The key itself stays valid on the server until it expires{until} or is revoked. "
              f"To revoke it, go to your account settings at https://{config.domain} (Account "
              "Settings, API Keys).")
    else:
        _tell(f"No stored API key for {config.domain}; nothing to do.")
    return 0


def _key_status(config: Config) -> JSONDict:
    """What ``status`` reports: never the key itself."""
    api_key, where = _find_api_key(config)
    expiry = _KeyExpiry(api_key or "")
    if api_key:
        _warn_if_expiring(config, api_key, where, expiry)
    left = expiry.seconds_left
    return {
        "site": config.site,
        "domain": config.domain,
        "logged_in": bool(api_key) and not expiry.expired,
        "key_source": where if api_key else None,
        "storage": config.preferred_token_storage,
        "keyring_path": config.keyring_path,
        "expires_at": None if expiry.at is None else expiry.date,
        "expired": expiry.expired,
        "days_left": expiry.days_left,
        "expires_in_days": None if left is None else int(left // 86400),
    }


def _cmd_status(args: Any) -> int:
    status = _key_status(_config_for(args))
    if args.json:
        _print_json(status)
    else:
        if not status["key_source"]:
            expiry_text = "-"
        elif status["expires_at"] is None:
            expiry_text = "unknown (the key is not a JWT with an exp claim)"
        elif status["expired"]:
            expiry_text = f"{status['expires_at']} (expired)"
        else:
            expiry_text = f"{status['expires_at']} ({status['days_left']} days left)"
        rows = [
            ("Site", status["site"]),
            ("Domain", status["domain"]),
            ("Logged in", "yes" if status["logged_in"] else "no"),
            ("Key source", status["key_source"] or "none"),
            ("Storage", f"{status['storage']} ({status['keyring_path']})"),
            ("Expires", expiry_text),
        ]
        for label, value in rows:
            print(f"{label + ':':12} {value}")
    return 0 if status["logged_in"] else 3


def _cmd_config(args: Any) -> int:
    config = _config_for(args)
    shown = {n: _masked(n, getattr(config, n)) for n in _FIELDS}
    if args.json:
        _print_json({
            "config_path": config.config_path,
            "values": {n: {"value": shown[n], "source": config.sources[n]} for n in _FIELDS},
        })
        return 0
    import json

    print(f"# config file: {config.config_path}")
    for name in _FIELDS:
        print(f"{name} = {json.dumps(shown[name], default=str)}  # {config.sources[name]}")
    return 0


def _request_body(data: str) -> bytes | None:
    """The bytes of ``-d JSON|@file|@-``, checked to be JSON; None after a usage error (said)."""
    import json

    where = "-d"
    if data.startswith("@"):
        where = f"-d {data}"
        try:
            if data == "@-":
                body = sys.stdin.buffer.read()
                if not body:  # also a closed stdin (main() gave it /dev/null)
                    _say("error: -d @-: standard input is empty or closed; pipe the JSON "
                         "document in: ... request -d @- URL < body.json")
                    return None
            else:
                with open(data[1:], "rb") as f:
                    body = f.read()
        except OSError as e:
            what = "standard input" if data == "@-" else f"the file {data[1:]}"
            _say(f"error: {where}: cannot read {what}: {e.strerror or e}. Give a readable file.")
            return None
    else:
        body = data.encode("utf-8", "surrogateescape")
    try:
        json.loads(body)
    except ValueError as e:  # the position, never the text (it may hold a secret)
        problem = f"{e.msg}: line {e.lineno} column {e.colno}" if isinstance(
            e, json.JSONDecodeError) else "it is not UTF-8 text"
        _say(f"error: {where}: not valid JSON ({problem}). -d sends a JSON document.")
        return None
    return body


def _request_headers_given(raw_headers: list[str]) -> dict[str, str] | None:
    """``-H 'Name: value'`` options as a dict; None after a usage error (said)."""
    headers: dict[str, str] = {}
    for raw in raw_headers:
        name, colon, value = raw.partition(":")
        if not colon or not name.strip():
            _say("error: a -H option has no 'Name:' part; write it as -H 'Name: value'.")
            return None
        headers[name.strip()] = value.strip()
    try:
        _check_headers(headers, "-H")
    except ConfigError as e:
        _say(f"error: {e}")
        return None
    return headers


def _cmd_request(args: Any) -> int:
    if args.method is not None and not _is_http_method(args.method.upper()):
        _say(f"error: -X {_printable(repr(args.method))} is not an HTTP method; give one word, "
             "like -X GET, -X POST or -X DELETE.")
        return 2
    config = _config_for(args)
    headers = _request_headers_given(args.header)
    body = None if args.data is None else _request_body(args.data)
    if headers is None or (args.data is not None and body is None):
        return 2
    if body is not None and "content-type" not in {name.lower() for name in headers}:
        headers["Content-Type"] = "application/json"
    method = args.method or ("POST" if body is not None else "GET")

    def send() -> int:
        response = request(method, args.url, config=config, auth=not args.no_auth,
                           headers=headers, body=body)
        if args.include:
            _say(f"HTTP {response.status} {response.reason}".rstrip())
            for name, value in response.headers.items():
                _say(f"{name}: {value}")
            _say("")
        if response.status in (401, 403) and response.error_code() == "auth_required":
            response.raise_for_status()  # login required (3), said with which key and why
        sys.stdout.flush()
        sys.stdout.buffer.write(response.body)
        sys.stdout.flush()
        if response.ok:
            return 0
        note = response.key_note if response.status in (401, 403) else None
        _say(f"error: {method} {response.url} answered HTTP {response.status} "
             f"{response.reason}".rstrip() + (f". {note.explain(response)}" if note else ""))
        return 1

    try:
        return send()
    except _LOGIN_ERRORS as e:
        return _offer_login(config, e, send)


def _cmd_sites_list(args: Any) -> int:
    sources = _Sources(os.environ, None, None)  # every file read once, not once a site
    names, default, _ = _site_names(sources)
    rows = [("Site name", "Domain name", "Default site", "Logged in")]
    mark = "✔︎"
    try:
        mark.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        mark = "yes"  # a console or file in a legacy encoding
    for name in names:
        config = _resolve(sources, name, {})
        try:
            logged_in = _find_api_key(config)[0] is not None
        except StorageError:
            logged_in = False
        rows.append((name, config.domain, mark if name == default else "",
                     mark if logged_in else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    _tell(f"To view full site details use {CLI_NAME} sites show [name or domain]")
    return 0


def _cmd_sites_show(args: Any) -> int:
    if args.all:
        environ = os.environ
        home = _home_dir(environ)
        path = _config_path(environ, home)
        sites = _configured_sites(_read_config_toml(path), environ, path)
        raw = {name: {k: _masked(k, v) for k, v in table.items() if k != "site"}
               for name, table in sites.items()}
        _print_json(raw or {DEFAULT_DOMAIN: {}})
        return 0
    config = resolve_config(args.site or args.at)
    fields = [n for n in _FIELDS if n != "site"
              and (args.show_hidden or n not in _HIDDEN_SITE_FIELDS)]
    shown = {"site": config.site, **{n: _masked(n, getattr(config, n)) for n in fields}}
    _print_json(shown)
    return 0


# sites add/modify options, after the reference's: (option, Config field, "text"/"json"/"flag",
# help; None hides the option as the reference does).
_SITE_OPTIONS = (
    ("api-key", "api_key", "text", "API key for the site (stored in config.toml in clear text)"),
    ("extra-headers", "extra_headers", "json", "headers for every request, as a JSON object"),
    ("proxy-servers", "proxy_servers", "json",
     'proxies as a JSON object, like {"https": "http://proxy:3128"}'),
    ("client-cert", "client_cert", "text", "client certificate file (PEM)"),
    ("client-cert-key", "client_cert_key", "text", "client certificate key file (PEM)"),
    ("use-device-flow", "use_device_flow", "flag", "log in with the device code flow"),
    ("use-unified-repo-api-key", "use_unified_repo_api_key", "flag",
     "use the API key for the conda repository too"),
    ("preferred-token-storage", "preferred_token_storage", "text", None),
    ("auth-domain-override", "auth_domain_override", "text", None),
    ("keyring", "keyring", "json", None),
    ("client-id", "client_id", "text", None),
    ("redirect-uri", "redirect_uri", "text", None),
    ("openid-config-path", "openid_config_path", "text", None),
    ("oidc-request-headers", "oidc_request_headers", "json", None),
    ("login-success-path", "login_success_path", "text", None),
    ("login-error-path", "login_error_path", "text", None),
    ("hash-host-name", "hash_hostname", "flag", None),
)
_JSON_OPTION_ERRORS = {  # the reference's messages
    "keyring": "The keyring argument could not be parsed as JSON",
    "oidc-request-headers": "The oidc-request-headers argument could not be parsed as JSON",
}


def _site_option_values(args: Any, path: str) -> dict[str, Any] | None:
    """The site values given on the command line (JSON decoded); None after a usage error."""
    import json

    values: dict[str, Any] = {}
    if args.use_truststore and args.ssl_verify is False:
        _say("Cannot set both --use-truststore and --no-ssl-verify")
        return None
    if args.use_truststore:
        values["ssl_verify"] = "truststore"
    elif args.ssl_verify is not None or args.use_truststore is not None:
        values["ssl_verify"] = args.ssl_verify is not False
    if args.domain is not None:
        values["domain"] = args.domain
    for option, field, kind, _ in _SITE_OPTIONS:
        value = getattr(args, field)
        if value is None:
            continue
        if field in _SECRET_FIELDS:
            what = "API Key" if field == "api_key" else "Keyring contents"
            _tell(f"WARNING: Your {what} will be stored in {path} and may not be secure")
        if kind == "json":
            try:
                value = json.loads(value)
            except ValueError:
                _say(_JSON_OPTION_ERRORS.get(option, f"{option}={value} could not be parsed as JSON"))
                return None
        values[field] = value
    return values


def _print_config_diff(path: str, old: str | None, new: str) -> None:
    """A unified diff of config.toml, as the reference shows it, with secrets masked."""
    import difflib
    from datetime import datetime

    stamp = "%m-%d-%y %H:%M"
    when = datetime.fromtimestamp(os.path.getmtime(path)).strftime(stamp) if old is not None else ""
    lines = difflib.unified_diff(
        _toml_masked(old or "").splitlines(), _toml_masked(new).splitlines(), path, path,
        when, datetime.now().strftime(stamp), lineterm="",
    )
    diff = "\n".join(lines)
    print(diff or f"--- {path}\n+++ {path}\n(only secret values change; they are not shown)")


def _run_site_edit(args: Any, path: str, edit: Callable[[str], tuple[str, JSONDict]]) -> int:
    """--yes writes; --dry-run shows the diff; neither shows it and asks on a terminal."""
    text = _read_text(path, "config file")
    _parse_config_toml(path, text or "")  # does not parse: exit 2 (ConfigError), before anything
    try:
        new = edit(text or "")[0]  # a request that cannot be done fails before anything is touched
        if not args.yes:
            if new == (text or ""):
                _tell(f"No change to {path}")
                return 0
            _print_config_diff(path, text, new)
            if args.yes is False:  # --dry-run
                return 0
            if not _is_interactive():
                _say(f"Nothing was written: not a terminal. Run again with --yes to write {path}.")
                return 1
            if not _ask_yes_no("Confirm: [y/n]: "):
                _tell("Nothing was written.")
                return 0
        old, new, backup = _write_config_toml(path, edit, shown=None if args.yes else text or "")
        _tell(f"No change to {path}" if new == old else f"Updated {path}"
              + (f" (previous version: {backup})" if backup else ""))
        return 0
    except AnacondaAuthError as e:  # the request cannot be done (the reference's exit code 1)
        if args.verbose:
            raise
        _say(str(e) if type(e) is AnacondaAuthError else f"{type(e).__name__}: {e}")
        return 1


def _process_config_path() -> str:
    return _config_path(os.environ, _home_dir(os.environ))


def _cmd_sites_add(args: Any) -> int:
    path = _process_config_path()
    values = _site_option_values(args, path)
    if values is None:
        return 2
    if args.domain is None:
        _say("You must supply at least --domain to add a new site")
        return 2
    return _run_site_edit(args, path, lambda text: _sites_add(
        path, text, args.name, values, args.default, args.remove_anaconda_com))


def _cmd_sites_modify(args: Any) -> int:
    path = _process_config_path()
    values = _site_option_values(args, path)
    if values is None:
        return 2
    if args.domain is None and args.name is None:
        _say("You must supply at least one of --domain or --name to modify a site")
        return 2
    return _run_site_edit(args, path, lambda text: _sites_modify(
        path, text, args.name or args.domain, values, args.default))


def _cmd_sites_remove(args: Any) -> int:
    path = _process_config_path()
    return _run_site_edit(args, path, lambda text: _sites_remove(path, text, args.site))


def _add_site_arguments(parser: Any, verb: str) -> None:
    import argparse

    flag = argparse.BooleanOptionalAction
    hidden = argparse.SUPPRESS
    parser.add_argument("--domain", help="the site's domain, like anaconda.com"
                        + (" (required)" if verb == "add" else ""))
    parser.add_argument("--name", help="the site's name (default: its domain)" if verb == "add"
                        else "the site's name (default: found by --domain)")
    parser.add_argument("--default", action=flag, default=False, help="make it the default site")
    parser.add_argument("--ssl-verify", action=flag, help="verify TLS certificates")
    parser.add_argument("--use-truststore", action=flag,
                        help="verify TLS with the operating system's trust store")
    for option, field, kind, text in _SITE_OPTIONS:
        if kind == "flag":
            parser.add_argument(f"--{option}", dest=field, action=flag, help=text or hidden)
        else:
            parser.add_argument(f"--{option}", dest=field, metavar=kind.upper(),
                                help=text or hidden)
    parser.add_argument("--disable-conda-auto-config", action=flag, help=hidden)  # ignored
    if verb == "add":
        parser.add_argument("--remove-anaconda-com", action=flag, default=True,
                            help="remove the site named anaconda.com if present")
    _add_write_arguments(parser)


def _add_write_arguments(parser: Any) -> None:
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("-y", "--yes", action="store_true", default=None,
                        help="write without asking")
    choice.add_argument("--dry-run", dest="yes", action="store_false",
                        help="only show the change as a diff")


def _build_parser() -> Any:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # one line, not the whole usage text
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    parser = Parser(
        prog=CLI_NAME, description="Log in to Anaconda and manage the API key.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--at SITE may also follow the command (login --at SITE), and so may --quiet.\n"
               "The reference's spellings work too: auth COMMAND (or cloud COMMAND) for login,\n"
               "logout, whoami, api-key and status; token for api-key.\n"
               "Exit codes: 0 ok, 1 failure, 2 bad usage or configuration,\n"
               "3 login required or key expired, 130 interrupted.",
    )
    parser.add_argument("--at", metavar="SITE", action="append",
                        help="site name or domain (default: default site)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="only data on stdout and errors on stderr: no notices or warnings")
    parser.add_argument("--version", "-V", action="version", version=f"anaconda_auth {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable[[Any], int], help: str, at: bool = True) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        _add_quiet_argument(sub)
        if at:
            _add_at_argument(sub)
        return sub

    login_parser = command("login", _cmd_login, "log in and store an API key")
    login_parser.add_argument("--force", action="store_true", help="log in even when logged in")
    flow = login_parser.add_mutually_exclusive_group()
    flow.add_argument("--device", action="store_true", help="use the device code flow")
    flow.add_argument("--browser", action="store_true", help="use the browser (PKCE) flow")
    login_parser.add_argument("--no-browser", action="store_true",
                              help="never open a browser; print the URL instead")
    login_parser.add_argument("--with-token", action="store_true",
                              help="read an API key from standard input, check it with the "
                                   "server and store it")
    login_parser.add_argument("--no-verify", action="store_true",
                              help="with --with-token: store the key without asking the server "
                                   "(only its expiry is checked)")
    verify = login_parser.add_mutually_exclusive_group()
    verify.add_argument("--ssl-verify", dest="ssl_verify", action="store_true", default=None,
                        help="verify TLS certificates (overrides the configuration)")
    verify.add_argument("--no-ssl-verify", dest="ssl_verify", action="store_false",
                        help="do not verify TLS certificates")
    command("logout", _cmd_logout, "delete the stored API key")
    command("api-key", _cmd_api_key,
            "print the API key (the only command that shows it; alias: token)")
    who = command("whoami", _cmd_whoami,
                  "print the account the API key belongs to (JSON, as the reference)")
    shape = who.add_mutually_exclusive_group()
    shape.add_argument("--short", action="store_true",
                       help="one line instead: the site, user name, full name and email")
    shape.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the default
    status = command("status", _cmd_status, "show login state, key source and expiry (offline)")
    status.add_argument("--json", action="store_true", help="print JSON")
    req = command("request", _cmd_request,
                  "send a request to the site with its API key; the body goes to stdout")
    req.add_argument("-X", "--request", dest="method", metavar="METHOD", type=str.upper,
                     help="the HTTP method (default: GET, or POST with -d)")
    req.add_argument("-d", "--data", metavar="JSON|@FILE|@-",
                     help="send this JSON (from FILE, or standard input with @-) as the body")
    req.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                     help="add a header (repeatable)")
    req.add_argument("--no-auth", action="store_true", help="send no API key")
    req.add_argument("-i", "--include", action="store_true",
                     help="print the status line and headers to stderr")
    req.add_argument("url", metavar="PATH_OR_URL",
                     help="a path on the site (/api/account) or a whole URL")
    config = command("config", _cmd_config, "show resolved settings and where each came from")
    config.add_argument("--json", action="store_true", help="print JSON")
    sites = command("sites", lambda args: _usage(sites), "list, show, add, modify, remove sites",
                    at=False)
    site_commands = sites.add_subparsers(dest="sites_command", metavar="SUBCOMMAND")
    listing = site_commands.add_parser("list", help="list the configured sites")
    listing.set_defaults(handler=_cmd_sites_list)
    _add_quiet_argument(listing)
    show = site_commands.add_parser("show", help="show one site's resolved settings")
    _add_quiet_argument(show)
    show.set_defaults(handler=_cmd_sites_show)
    show.add_argument("site", nargs="?", help="site name or domain (default: default site)")
    show.add_argument("--all", action="store_true", help="every site's raw table")
    show.add_argument("--show-hidden", action="store_true", help="include rarely used fields")
    _add_at_argument(show)
    for verb, handler, text in (("add", _cmd_sites_add, "add a site to config.toml"),
                                ("modify", _cmd_sites_modify, "change a site in config.toml")):
        edit = site_commands.add_parser(verb, help=text, description=text)
        edit.set_defaults(handler=handler)
        _add_quiet_argument(edit)
        _add_site_arguments(edit, verb)
    remove = site_commands.add_parser("remove", help="remove a site from config.toml",
                                      description="remove a site from config.toml")
    remove.set_defaults(handler=_cmd_sites_remove)
    _add_quiet_argument(remove)
    remove.add_argument("site", help="site name or domain")
    _add_write_arguments(remove)
    return parser


def _add_at_argument(parser: Any) -> None:
    """``COMMAND --at SITE``, as the reference's commands take it; merged by _settle_at."""
    import argparse

    parser.add_argument("--at", dest="at_after", metavar="SITE", action="append",
                        default=argparse.SUPPRESS, help="the site, as --at before the command")


def _add_quiet_argument(parser: Any) -> None:
    """``COMMAND --quiet``, as --quiet before the command; merged by _settle_at."""
    import argparse

    parser.add_argument("--quiet", "-q", dest="quiet_after", action="store_true",
                        default=argparse.SUPPRESS, help="as --quiet before the command")


def _settle_at(parser: Any, args: Any) -> None:
    """One site from every --at (before and after the command) and ``sites show SITE``; one
    --quiet from either place."""
    args.quiet = bool(args.quiet or getattr(args, "quiet_after", False))
    given = [*(args.at or ()), *getattr(args, "at_after", ())]
    if getattr(args, "site", None) is not None and getattr(args, "sites_command", None) == "show":
        given.append(args.site)
    if any(not value.strip() for value in given):
        parser.error("--at needs a site name or domain, not an empty string")
    different = list(dict.fromkeys(given))
    if len(different) > 1:
        parser.error(f"the site is given twice, as {different[0]!r} and {different[1]!r}; "
                     "give it once")
    args.at = different[0] if different else None
    how = _SITES_WITHOUT_AT.get(getattr(args, "sites_command", None) or "")
    if args.at is not None and args.command == "sites" and how:
        # Otherwise `--at two sites modify ...` would quietly edit the site --name/--domain say.
        parser.error(f"--at does not apply to 'sites {args.sites_command}'; {how}")


# What a ``sites`` subcommand takes instead of --at (``sites show`` takes --at).
_SITES_WITHOUT_AT = {
    "list": "it lists every site (sites show SITE shows one)",
    "add": "name the new site with --name and --domain",
    "modify": "choose the site with --name or --domain",
    "remove": "give the site after it: sites remove SITE",
}


# The reference's spellings, made canonical before parsing so that --help lists each command
# once: the ``auth`` group (``cloud`` is its old, hidden name) and ``token`` (gh's and uv's name).
_COMMAND_GROUPS = ("auth", "cloud")
_GROUP_COMMANDS = ("login", "logout", "whoami", "api-key", "status")
_COMMAND_ALIASES = {"token": "api-key"}
_ROOT_OPTIONS_WITH_VALUE = ("--at",)  # the word after them is not a command


def _canonical_argv(argv: list[str]) -> tuple[list[str], str | None]:
    """(argv with a group word dropped and aliases replaced, a usage error or None)."""
    argv = list(argv)
    group = None
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            break
        if word.startswith("-"):
            i += 2 if word in _ROOT_OPTIONS_WITH_VALUE else 1
            continue
        if group is None and word in _COMMAND_GROUPS:
            group = word
            del argv[i]
            continue
        argv[i] = _COMMAND_ALIASES.get(word, word)
        if group and argv[i] not in _GROUP_COMMANDS:
            return argv, (f"{group} has no command {word!r}; it has "
                          f"{', '.join(_GROUP_COMMANDS)} (and token, for api-key)")
        break
    return argv, None


def _usage(parser: Any) -> int:
    parser.print_help(sys.stderr)
    return 2


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    if not issubclass(category, DeprecationWarning):  # already said in one stderr line
        _tell(f"warning: {message}")


def _parse_api_key_command(argv: list[str]) -> Any:
    """``api-key`` with ``--at SITE`` and ``--quiet`` before or after it (canonical argv),
    without argparse, whose import and parser cost more than the rest of the command: api-key
    is what scripts call in a loop. Anything else (or a doubtful --at) is left to argparse: None."""
    sites = []
    command = False
    quiet = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--at" and i + 1 < len(argv):
            sites.append(argv[i + 1])
            i += 2
            continue
        if word in ("-q", "--quiet"):
            quiet = True
        elif word.startswith("--at="):
            sites.append(word[len("--at="):])
        elif word == "api-key" and not command:
            command = True
        else:
            return None
        i += 1
    if not command or len(set(sites)) > 1 or any(not s.strip() or s.startswith("-") for s in sites):
        return None
    import types

    return types.SimpleNamespace(at=sites[0] if sites else None, verbose=False, quiet=quiet,
                                 handler=_cmd_api_key)


def _closed_streams() -> int | None:
    """Python sets sys.stdin/stdout/stderr to None when the process starts with that file
    descriptor closed (``<&-``). A closed stdin reads as empty (so --with-token and -d @- say
    there is nothing there) and a closed stderr discards messages; a closed stdout is an error
    (exit 1, said on stderr): the command's output, a key or a response body, would be lost."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    if sys.stdin is None:
        sys.stdin = open(os.devnull)  # noqa: SIM115 - idem
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the exit flush
        _say("error: standard output is closed, so the output would be lost; run the command "
             "with it open (> /dev/null to discard the output).")
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv, problem = _canonical_argv(sys.argv[1:] if argv is None else argv)
    args = None if problem else _parse_api_key_command(argv)
    if args is None:
        parser = _build_parser()
        if problem:
            parser.error(problem)
        args = parser.parse_args(argv)
        _settle_at(parser, args)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 0
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        code = _closed_streams()
        if code is not None:
            return code
    import warnings

    # Process-wide state, put back on return so that main() called in-process (tests, a program
    # embedding the CLI) leaves the process as it found it.
    showwarning, quiet = warnings.showwarning, _Output.quiet
    warnings.showwarning = _show_warning
    _Output.quiet = args.quiet
    try:
        return _run(args)
    finally:
        warnings.showwarning, _Output.quiet = showwarning, quiet


def _run(args: Any) -> int:
    """The command's handler, its errors as messages and exit codes."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        # A value from the environment or a file name that is not UTF-8 is printed as the
        # bytes it was, not turned into an UnicodeEncodeError (as the UTF-8 mode does).
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        _say("Interrupted.")
        return 130
    except BrokenPipeError:  # the reader went away (``... | head``): nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit flush quiet
        return 1
    except AnacondaAuthError as e:
        if args.verbose:
            raise
        _say(f"{type(e).__name__}: {e}")
        return _exit_code(e)
    except Exception as e:
        if args.verbose:
            raise
        _say(f"Unexpected error: {type(e).__name__}: {e}\nRun again with --verbose for details.")
        return 1


if __name__ == "__main__":
    sys.exit(main())
