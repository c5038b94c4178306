"""What a pickle may reference: an allowlist first, a denylist of dangerous callables, and limits.

A global is safe only when the policy allows it. Globals on the denylist are critical whatever
the allowlist says; every other global is an "unknown global" (high). The decision is static:
no module named in a file is ever imported to decide anything.
"""

from __future__ import annotations

import builtins
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from pytest_aisp.config import SettingError, current_settings
from pytest_aisp.findings import AispError, Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_ALLOWLIST_FILE = Path(__file__).with_name("default_allowlist.txt")

# Whole modules whose every attribute runs code, touches files, processes or the network.
DANGEROUS_MODULES: frozenset[str] = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "pty", "socket", "_socket",
    "shutil", "ctypes", "_ctypes", "importlib", "imp", "runpy", "pydoc", "pkgutil", "code", "codeop",
    "timeit", "cProfile", "profile", "pdb", "bdb", "trace", "sys", "marshal", "pickle", "_pickle",
    "cPickle", "dill", "cloudpickle", "shelve", "dbm", "webbrowser", "multiprocessing", "concurrent",
    "asyncio", "threading", "_thread", "signal", "tempfile", "glob", "fileinput", "linecache", "zipimport",
    "site", "venv", "ensurepip", "pip", "setuptools", "distutils", "urllib", "urllib2", "http", "httplib",
    "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "nntplib", "socketserver", "xmlrpc", "ssl",
    "requests", "httpx", "aiohttp", "paramiko", "sqlite3", "commands", "popen2", "platform", "uuid",
    "mmap", "resource", "gc", "inspect", "types", "builtins", "__builtin__", "__main__", "io", "_io",
    "pathlib", "zipfile", "tarfile", "gzip", "bz2", "lzma", "logging", "idlelib", "lib2to3", "tkinter",
    "IPython", "jinja2", "mako", "yaml", "jsonpickle", "torch.hub", "torch.serialization",
    "torch._inductor", "torch.utils.cpp_extension", "torch.jit", "torch.package", "torch._dynamo",
    "torch.fx", "torch.testing", "numpy.testing", "numpy.distutils", "numpy.f2py", "joblib.parallel",
    "sklearn.utils._testing", "keras.utils", "tensorflow.io", "pandas.io", "operator", "_operator",
    "functools", "_functools", "copyreg", "copy_reg", "abc", "weakref", "dataclasses", "atexit",
    "faulthandler", "tracemalloc", "readline", "rlcompleter", "getpass", "pwd", "grp", "crypt", "spwd",
    "fcntl", "termios", "tty", "select", "selectors", "syslog", "msvcrt", "winreg", "_winapi", "winsound",
})

# Builtins that only build or compute on plain data: they call nothing but the special methods of
# their arguments, which a pickle can only make from allowed classes. Never ``getattr``, ``eval``,
# ``exec``, ``compile``, ``open``, ``__import__``, ``globals``, ``vars``, ``help``, ``input``,
# ``breakpoint``, ``type``, ``map``/``filter`` (they call what they are given) or ``print``.
SAFE_BUILTINS: frozenset[str] = frozenset({
    "set", "frozenset", "list", "dict", "tuple", "bytearray", "bytes", "complex", "float", "int", "bool", "str",
    "slice", "range", "object", "NotImplemented", "Ellipsis", "len", "min", "max", "sum", "abs", "round",
    "divmod", "pow", "sorted", "reversed", "enumerate", "zip", "all", "any", "chr", "ord", "bin", "hex", "oct",
    # exception classes: making one runs nothing (a pickle cannot raise it)
    *(name for name, value in vars(builtins).items()
      if isinstance(value, type) and issubclass(value, BaseException)),
})

# Names inside denylisted modules that only build plain data (``builtins`` and ``copyreg`` are on the
# denylist as modules; these of their names are constructors that every protocol 0-2 pickle uses).
SAFE_EXCEPTIONS: frozenset[str] = frozenset({
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__", "copy_reg._reconstructor",
    "pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib.WindowsPath", "pathlib.PureWindowsPath",
    "pathlib.Path", "uuid.UUID", "torch.serialization._get_layout",
    *(f"builtins.{name}" for name in SAFE_BUILTINS),
})

# Callables that import a module and look a name up in it at load time, given the names as arguments
# (numpy's pickles of ufuncs before 1.20). A call with constant names is judged as that global.
RESOLVERS: frozenset[str] = frozenset({"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"})

# Callables that are dangerous wherever they live, by full dotted name.
DANGEROUS_NAMES: frozenset[str] = frozenset({
    "numpy.load", "numpy.lib.npyio.load", "numpy.save", "numpy.fromfile", "numpy.memmap", "numpy.loadtxt",
    "numpy.genfromtxt", "numpy.lib.format.read_array", "numpy.core.memmap.memmap", "numpy._core.memmap.memmap",
    "numpy.ctypeslib.load_library", "numpy.testing._private.utils.runstring", "numpy.lib.utils.source",
    "torch.load", "torch.save", "torch.from_file", "torch.ops.load_library", "torch._C._jit_script_compile",
    "torch.jit.unsupported_tensor_ops.execWrapper",
    "torch.utils.data.datapipes.utils.decoder.basichandlers", "torch._inductor.codecache.compile_file",
    "joblib.load", "joblib.dump", "joblib.numpy_pickle.load", "joblib.numpy_pickle.dump",
    "pandas.read_pickle", "pandas.read_csv", "pandas.io.pickle.read_pickle", "pandas.eval",
    "pandas.core.computation.eval.eval", "scipy.io.loadmat", "keras.models.load_model",
    "keras.saving.load_model", "tensorflow.keras.models.load_model", "tensorflow.saved_model.load",
    "sklearn.externals.joblib.load", "sklearn.utils.fixes.parse_version",
    "pip.main", "pip._internal.main", "cffi.FFI", "asyncio.subprocess", "huggingface_hub.hf_hub_download",
    *RESOLVERS,  # a resolver is judged by the name it is called with, never allowed as such
})

# Attribute names that, anywhere in a dotted path, reach code execution or the file system.
DANGEROUS_ATTRIBUTES: frozenset[str] = frozenset({
    "system", "popen", "Popen", "spawn", "spawnl", "spawnv", "execl", "execv", "execve", "execvp",
    "eval", "exec", "compile", "__import__", "import_module", "getattr", "setattr", "delattr", "open",
    "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput", "load", "loads",
    "remove", "unlink", "rmtree", "rmdir", "rename", "replace", "write_text", "write_bytes", "touch",
    "mkdir", "chmod", "chown", "symlink_to", "kill", "fork", "startfile", "os", "_os", "sys", "_sys",
    "subprocess", "builtins", "__builtins__", "__globals__", "__subclasses__", "__code__", "__reduce__",
    "__reduce_ex__", "__setstate__", "__class__", "__bases__", "__mro__", "__dict__", "__getattribute__",
    "__init__", "__new__", "__call__", "globals", "locals", "vars", "input", "breakpoint",
    "_create_fn", "partial", "attrgetter", "itemgetter", "methodcaller",
})

# Deserializers whose bytes argument is itself a model file: scanned recursively when embedded.
NESTED_DESERIALIZERS: frozenset[str] = frozenset({
    "pickle.loads", "pickle.load", "_pickle.loads", "_pickle.load", "cPickle.loads", "dill.loads",
    "cloudpickle.loads", "torch.load", "torch.serialization.load", "torch.storage._load_from_bytes",
    "pandas.read_pickle", "pandas.io.pickle.read_pickle", "numpy.load", "numpy.lib.npyio.load",
    "joblib.load", "joblib.numpy_pickle.load", "marshal.loads",
})
# Deserializers that real files use on constant embedded bytes (``pickle.dumps(tensor)`` writes
# ``torch.storage._load_from_bytes``): allowed only when their bytes are constant and scan clean.
SCANNED_DESERIALIZERS: frozenset[str] = frozenset({"torch.storage._load_from_bytes"})

_PUBLIC_SEGMENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ScanLimits:
    """Bounds that keep a scan finite on hostile input; going past one is a finding, not a crash."""

    max_file_bytes: int = 64 * 2**30
    max_decompressed_bytes: int = 2 * 2**30
    max_compression_ratio: float = 1000.0
    max_container_depth: int = 4
    max_members: int = 100_000
    max_pickle_depth: int = 3
    max_stack: int = 10_000_000
    max_memo: int = 10_000_000
    max_pickles_per_stream: int = 256
    max_header_entries: int = 1_000_000
    max_json_bytes: int = 100_000_000
    max_data_depth: int = 8  # decoding layers plus pickle stages of a payload carried as data
    max_data_bytes: int = 256 * 2**20  # bytes that decoding data values may produce, per file


@dataclass(frozen=True)
class ScanPolicy:
    """The allowlist, extra denylist and limits a scan applies.

    ``allow`` and ``deny`` hold full dotted names (``torch._utils._rebuild_tensor_v2``) or patterns in
    which ``*`` stands for one public name segment and a trailing ``**`` for any number of them.
    """

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    fail_on: Severity = Severity.MEDIUM
    limits: ScanLimits = field(default_factory=ScanLimits)
    source: str = "default"

    def with_allowed(self, names: Iterable[str]) -> ScanPolicy:
        """A copy that also allows ``names``."""
        return replace(self, allow=self.allow | frozenset(names))


@dataclass(frozen=True)
class GlobalVerdict:
    """How the policy judges one global: ``allowed``, ``dangerous`` (critical) or ``unknown`` (high)."""

    kind: str
    reason: str

    @property
    def severity(self) -> Severity | None:
        return {"dangerous": Severity.CRITICAL, "unknown": Severity.HIGH}.get(self.kind)


@lru_cache(maxsize=1)
def default_allowlist() -> frozenset[str]:
    """The shipped allowlist: globals that real torch, numpy, scikit-learn and joblib pickles use."""
    lines = DEFAULT_ALLOWLIST_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def default_policy() -> ScanPolicy:
    """The shipped policy: default allowlist, fail on medium, default limits."""
    return ScanPolicy(allow=default_allowlist())


def _pattern_matches(pattern: str, parts: list[str]) -> bool:
    pattern_parts = pattern.split(".")
    if pattern_parts[-1] == "**":
        head = pattern_parts[:-1]
        if len(parts) <= len(head):
            return False
        tail_ok = all(_PUBLIC_SEGMENT.match(p) for p in parts[len(head):])
        return tail_ok and _segments_match(head, parts[: len(head)])
    return len(parts) == len(pattern_parts) and _segments_match(pattern_parts, parts)


def _segments_match(pattern_parts: list[str], parts: list[str]) -> bool:
    for want, got in zip(pattern_parts, parts):
        if want == "*":
            if not _PUBLIC_SEGMENT.match(got):
                return False
        elif want != got:
            return False
    return True


@lru_cache(maxsize=64)
def _patterns(names: frozenset[str]) -> tuple[str, ...]:
    """The wildcard entries of an allow or deny list (a frozenset caches its hash: this lookup is cheap)."""
    return tuple(entry for entry in names if "*" in entry)


def _listed(full: str, names: frozenset[str]) -> bool:
    if full in names:
        return True
    patterns = _patterns(names)
    if not patterns:
        return False
    parts = full.split(".")
    return any(_pattern_matches(entry, parts) for entry in patterns)


def judge_global(module: str, name: str, policy: ScanPolicy) -> GlobalVerdict:
    """Judge ``module`` + ``name`` (name may be dotted: attribute traversal at load time)."""
    full = f"{module}.{name}" if module else name
    parts = full.split(".")
    if _listed(full, policy.deny) or full in DANGEROUS_NAMES:
        return GlobalVerdict("dangerous", f"{full} is on the denylist of dangerous callables")
    if full in SAFE_EXCEPTIONS:
        return GlobalVerdict("allowed", "plain data constructor")
    top = [".".join(parts[:i]) for i in range(1, len(parts))]
    for prefix in top:
        if prefix in DANGEROUS_MODULES:
            return GlobalVerdict("dangerous", f"{full} lives in {prefix}, which runs code or touches files")
    traversed = name.split(".") if "." in name else []  # attributes looked up one after the other
    for segment in [*traversed, parts[-1]]:
        if segment in DANGEROUS_ATTRIBUTES:
            return GlobalVerdict("dangerous", f"{full} reaches {segment!r}, which runs code or touches files")
    if _listed(full, policy.allow):
        return GlobalVerdict("allowed", "on the allowlist")
    if any(segment.startswith("__") for segment in parts):
        return GlobalVerdict("dangerous", f"{full} reaches a dunder attribute")
    if traversed and any(segment.startswith("_") for segment in traversed):
        return GlobalVerdict("dangerous", f"{full} traverses a private attribute at load time")
    return GlobalVerdict("unknown", f"{full} is not on the allowlist")


def _names(value: Any, key: str, source: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise AispError(f"{source}: '{key}' must be a list of dotted names such as \"mypkg.models.Net\"")
    return frozenset(v.strip() for v in value)


def policy_from_mapping(table: Mapping[str, Any], *, source: str = "policy",
                        base: ScanPolicy | None = None) -> ScanPolicy:
    """A policy from a ``[tool.aisp.scan]``-shaped table: ``allow``, ``deny``, ``fail_on``, ``limits``."""
    base = base or default_policy()
    known = {"allow", "deny", "fail_on", "limits", "replace_default_allowlist"}
    unknown = set(table) - known
    if unknown:
        raise AispError(f"{source}: unknown scan policy keys {sorted(unknown)}; allowed: {sorted(known)}")
    allow = _names(table.get("allow"), "allow", source)
    deny = _names(table.get("deny"), "deny", source)
    fail_on = base.fail_on
    if "fail_on" in table:
        try:
            fail_on = Severity.parse(table["fail_on"])
        except ValueError as exc:
            raise AispError(f"{source}: fail_on: {exc}") from None
    limits = base.limits
    raw_limits = table.get("limits") or {}
    if not isinstance(raw_limits, Mapping):
        raise AispError(f"{source}: 'limits' must be a table")
    for key, value in raw_limits.items():
        if not hasattr(limits, key) or not isinstance(value, (int, float)) or value <= 0:
            raise AispError(f"{source}: limits.{key} must be a positive number and one of "
                            f"{sorted(ScanLimits.__dataclass_fields__)}")
        limits = replace(limits, **{key: type(getattr(limits, key))(value)})
    base_allow = frozenset() if table.get("replace_default_allowlist") else base.allow
    return ScanPolicy(allow=base_allow | allow, deny=base.deny | deny, fail_on=fail_on, limits=limits,
                      source=source)


def load_policy_file(path: str | Path) -> ScanPolicy:
    """A policy from a TOML file: ``[tool.aisp.scan]`` (a pyproject.toml), ``[scan]``, or top-level keys."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AispError(f"cannot read scan policy {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AispError(f"scan policy {path} is not a TOML file: byte {raw[exc.start]:#04x} at offset "
                        f"{exc.start} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = " ".join(str(exc).split())
        raise AispError(f"scan policy {path} is not valid TOML: {reason}") from None
    tool = data.get("tool")
    if isinstance(tool, Mapping) and "scan" not in data:
        table = tool.get("aisp", {}).get("scan") if isinstance(tool.get("aisp"), Mapping) else None
        if table is None:
            raise AispError(f"scan policy {path} has a [tool] table but no [tool.aisp.scan] in it")
    else:
        table = data.get("scan", data)
    if not isinstance(table, Mapping):
        raise AispError(f"scan policy {path}: expected a table of allow/deny/fail_on/limits")
    return policy_from_mapping(table, source=str(path))


def policy_from_settings(settings: Any = None) -> ScanPolicy:
    """The policy configured for the project: ``[tool.aisp.scan]`` over the shipped defaults.

    ``settings`` is a :class:`pytest_aisp.config.Settings` (default: ``current_settings()``, the pytest
    session's or, outside pytest, the project's above the working directory). The threshold is the
    section's ``fail_on``, unless ``--aisp-fail-on``/``AISP_FAIL_ON`` was given; without either it is the
    project's ``fail_on`` (medium by default). Every entry point that scans uses this by default.
    """
    if settings is None:
        try:
            settings = current_settings()
        except (SettingError, UnicodeDecodeError) as exc:
            raise AispError(f"cannot read the project's configuration: {exc}") from None
    section = settings.section("scan")
    policy = policy_from_mapping(section, source="[tool.aisp.scan]") if section else default_policy()
    explicit = settings.source_of("fail_on").startswith(("--", "environment"))
    if "fail_on" not in section or explicit:
        policy = replace(policy, fail_on=settings.fail_on)
    return policy


def coerce_policy(policy: ScanPolicy | Mapping[str, Any] | str | Path | None) -> ScanPolicy:
    """Accept a policy object, a table, a TOML path, or None (the project's configured policy)."""
    if policy is None:
        return policy_from_settings()
    if isinstance(policy, ScanPolicy):
        return policy
    if isinstance(policy, Mapping):
        return policy_from_mapping(policy)
    if isinstance(policy, (str, Path)):
        return load_policy_file(policy)
    raise AispError(f"policy must be a ScanPolicy, a dict, or a TOML path, not {type(policy).__name__}")
