"""Pickle findings: run the symbolic machine over every stream in a buffer and judge what it imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_aisp.scan import rules
from pytest_aisp.scan.context import ScanContext, short
from pytest_aisp.scan.data import DataValues, check_pickle_values
from pytest_aisp.scan.pickle_vm import (
    PICKLE_OPCODES,
    GlobalRef,
    LimitExceeded,
    PickleMachine,
    StreamReport,
    callable_name,
    embedded_payloads,
    probe_pickle,
)
from pytest_aisp.scan.policy import NESTED_DESERIALIZERS, RESOLVERS, SCANNED_DESERIALIZERS, judge_global

# Legacy ``torch.save`` starts with this pickle (the magic number 0x1950a86a20f9469cfc6c).
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
TORCH_LEGACY_STREAMS = 5


@dataclass(frozen=True)
class PickleScan:
    """Summary of the pickle streams read from one buffer."""

    streams: int
    opcodes: int
    end: int
    complete: bool
    globals: tuple[str, ...]
    value: Any = None  # the last stream's result, when constant


def looks_like_pickle(head: bytes) -> bool:
    """True for a protocol 2-5 header (``\\x80`` + protocol + a valid opcode)."""
    return len(head) >= 3 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[2] in PICKLE_OPCODES


def scan_pickle(ctx: ScanContext, data: Any, location: str, *, start: int = 0, end: int | None = None,
                depth: int = 0, torchscript: bool = False, streams_expected: int | None = None,
                single: bool = False) -> PickleScan:
    """Scan every pickle stream in ``data[start:end]``; add findings to ``ctx``.

    ``single`` reads one stream and ignores what follows (a member whose loader reads one pickle);
    otherwise streams are read until the bytes stop parsing, as repeated ``pickle.load`` calls would.
    """
    end = len(data) if end is None else end
    limits = ctx.limits
    values = DataValues()  # long string and bytes constants: payloads carried as data are checked last
    embedded: set[bytes] = set()  # bytes already scanned as a deserializer's argument
    machine = PickleMachine(data, max_stack=limits.max_stack, max_memo=limits.max_memo, on_data=values.see)
    pos, streams, opcodes = start, 0, 0
    names: list[str] = []
    complete = True
    value = None
    while pos < end:
        if streams >= limits.max_pickles_per_stream:
            ctx.limit(location, f"more than {limits.max_pickles_per_stream} concatenated pickles", offset=pos)
            break
        report = machine.run(pos, end)
        if streams > 0 and not report.complete and not report.globals and report.opcodes < 2:
            # What follows the last stream is not a pickle: ignored by pickle.load.
            if streams_expected is None or streams < streams_expected:
                ctx.add(rules.PICKLE_TRAILING, f"{end - pos} bytes after the last pickle STOP are not a pickle",
                        location, {"offset": pos, "bytes": end - pos})
            break
        streams += 1
        opcodes += report.opcodes
        embedded |= _judge_stream(ctx, data, report, location, depth, torchscript)
        if report.frame_overruns:
            # file-based loaders read this stream differently: judge what they would import too
            as_file = PickleMachine(data, max_stack=limits.max_stack, max_memo=limits.max_memo,
                                    file_mode=True, on_data=values.see).run(pos, end)
            for ref in as_file.globals:
                ref.opcode += " (as a file-based loader reads it)"
            embedded |= _judge_stream(ctx, data, as_file, location, depth, torchscript)
        ctx.bytes_read += max(0, (report.end or report.error_offset or pos) - pos - report.skipped_array_bytes)
        if not report.complete:
            complete = False
            _report_broken(ctx, report, location, streams)
            break
        names.extend(g.full for g in report.globals)
        pos = report.end
        value = report.value
        if single or (streams_expected is not None and streams >= streams_expected):
            break
    if streams > 1 and streams_expected is None:
        ctx.add(rules.PICKLE_CONCATENATED, f"{streams} pickle streams concatenated; each was scanned",
                location, {"streams": streams})
    if values.candidates:
        check_pickle_values(ctx, data, values, location, depth, frozenset(embedded))
    return PickleScan(streams, opcodes, pos, complete, tuple(dict.fromkeys(names)), value)


def _report_broken(ctx: ScanContext, report: StreamReport, location: str, stream: int) -> None:
    evidence = {"offset": report.error_offset, "error": report.error or "", "stream": stream}
    if isinstance(report.error, str) and report.error and "limit" in report.error:
        ctx.limit(location, report.error, offset=report.error_offset)
        return
    ctx.add(rules.PICKLE_BROKEN, f"pickle stream breaks at offset {report.error_offset}: {report.error}; "
            "everything before the break runs when it is loaded", location, evidence)


def _judge_stream(ctx: ScanContext, data: Any, report: StreamReport, location: str, depth: int,
                  torchscript: bool) -> set[bytes]:
    """Judge one stream's globals and calls; return the embedded payloads it scanned."""
    policy = ctx.policy
    scanned: set[bytes] = set()
    for ref in report.globals:
        if ref.full in RESOLVERS:
            _judge_resolver(ctx, ref, report, location, torchscript, policy)
        else:
            _judge_global(ctx, ref, location, torchscript, policy)
    for offset, what in report.dynamic_globals:
        ctx.add(rules.PICKLE_DYNAMIC_GLOBAL, f"STACK_GLOBAL at offset {offset} imports a name computed at "
                f"load time ({what})", location, {"offset": offset, "opcode": "STACK_GLOBAL", "operands": what})
    for offset, code in report.ext_codes:
        ctx.add(rules.PICKLE_EXT, f"EXT opcode at offset {offset} imports extension-registry code {code}, "
                "which only the loading process can resolve", location,
                {"offset": offset, "code": code})
    if report.frame_overruns:
        ctx.add(rules.PICKLE_FRAME, f"opcodes run across the end of a FRAME at offset {report.frame_overruns[0]}",
                location, {"offset": report.frame_overruns[0], "count": len(report.frame_overruns)})
    for site in report.calls:
        name = callable_name(site.func)
        if name in NESTED_DESERIALIZERS or name in SCANNED_DESERIALIZERS:
            scanned.update(_scan_embedded(ctx, data, site, name, location, depth))
    for inner in report.inner_streams:
        scanned |= _judge_stream(ctx, data, inner, f"{location}#array@{inner.start}", depth, torchscript)
        if not inner.complete:
            _report_broken(ctx, inner, location, 1)
    return scanned


def _judge_resolver(ctx: ScanContext, ref: GlobalRef, report: StreamReport, location: str, torchscript: bool,
                    policy: Any) -> None:
    """A resolver (numpy's old ``_ufunc_reconstruct(module, name)``) imports what its arguments name: each
    call with constant names is judged as that global; any other use resolves names nobody can know."""
    sites = [site for site in report.calls if site.func is ref]
    constant = [site for site in sites if isinstance(site.args, tuple) and len(site.args) == 2
                and all(isinstance(a, str) for a in site.args)]
    if not sites or len(constant) < len(sites):
        _judge_global(ctx, ref, location, torchscript, policy)
        return
    for site in constant:
        module, name = site.args
        _judge_global(ctx, GlobalRef(module, name, site.offset, f"{site.opcode} of {ref.full}"), location,
                      torchscript, policy)


def _judge_global(ctx: ScanContext, ref: GlobalRef, location: str, torchscript: bool, policy: Any) -> None:
    if torchscript and (ref.module.startswith("__torch__") or ref.full.startswith("torch.jit._pickle.")):
        return  # TorchScript class references, resolved by the TorchScript runtime against its own code
    verdict = judge_global(ref.module, ref.name, policy)
    if verdict.kind == "allowed":
        return
    rule_id = rules.PICKLE_DANGEROUS if verdict.kind == "dangerous" else rules.PICKLE_GLOBAL
    what = "dangerous global" if verdict.kind == "dangerous" else "unknown global"
    ctx.add(rule_id, f"{what} {short(ref.full, 120)} imported by {ref.opcode} at offset {ref.offset}: "
            f"{verdict.reason}", location,
            {"global": ref.full, "opcode": ref.opcode, "offset": ref.offset, "why": verdict.reason})


def _scan_embedded(ctx: ScanContext, data: Any, site: Any, name: str, location: str, depth: int) -> list[bytes]:
    if depth + 1 > ctx.limits.max_pickle_depth:
        ctx.limit(location, f"embedded pickles nested deeper than {ctx.limits.max_pickle_depth}",
                  offset=site.offset)
        return []
    payloads = [p for p in embedded_payloads(data, site.args) if len(p) >= 4]
    if not payloads:
        if name in SCANNED_DESERIALIZERS:
            ctx.add(rules.PICKLE_DANGEROUS, f"{name} at offset {site.offset} deserializes bytes computed at load "
                    "time, which cannot be scanned", location, {"global": name, "offset": site.offset})
        return []
    for payload in payloads:
        inner_location = f"{location}#embedded@{site.offset}"
        ctx.add(rules.PICKLE_EMBEDDED, f"{name} at offset {site.offset} deserializes {len(payload)} embedded "
                "bytes; scanned them too", location, {"global": name, "offset": site.offset,
                                                      "bytes": len(payload)})
        ctx.scan_nested(payload, inner_location, depth + 1, "")
    return payloads


def pickle_names(data: Any) -> list[str]:
    """Every global a buffer's pickle streams import (for building allowlists from real files)."""
    names: list[str] = []
    machine = PickleMachine(data)
    pos = 0
    while pos < len(data):
        report = machine.run(pos, len(data))
        names.extend(g.full for g in report.globals)
        for inner in report.inner_streams:
            names.extend(g.full for g in inner.globals)
        if not report.complete:
            break
        pos = report.end
    return names


__all__ = ["LimitExceeded", "PickleScan", "looks_like_pickle", "pickle_names", "probe_pickle", "scan_pickle"]
