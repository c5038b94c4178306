"""``aisp manifest``, ``aisp provenance``, ``aisp bom`` and ``aisp pins``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.reporters.cli_output import FAIL_ON_HELP

EXIT_OK, EXIT_FINDINGS = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the supply-chain subcommands to ``aisp``."""
    _register_manifest(subparsers)
    _register_provenance(subparsers)
    bom = subparsers.add_parser("bom", help="write a CycloneDX 1.6 ML-BOM of models, datasets and files")
    bom.add_argument(
        "manifest",
        nargs="?",
        default=None,
        help="manifest to describe (default: [tool.aisp] manifest, else aisp-manifest.json)",
    )
    bom.add_argument(
        "-o", "--output", default="bom.cdx.json", help="where to write the BOM (default bom.cdx.json)"
    )
    bom.add_argument("--provenance", help="provenance statement: products depend on materials in the BOM")
    bom.add_argument("--name", help="name of the top component (default: the root directory's name)")
    bom.add_argument("--version", dest="bom_version", default="", help="version of the top component")
    bom.add_argument(
        "--pubkey",
        help="public key the manifest and the statement must be signed with "
        "(default AISP_PUBKEY, [tool.aisp.supply] pubkey; required unless --allow-unsigned)",
    )
    bom.add_argument(
        "--allow-unsigned",
        action="store_true",
        default=None,
        help="describe an unsigned manifest and statement (marked aisp:*:authenticated=false)",
    )
    bom.set_defaults(func=_bom)
    pins = subparsers.add_parser("pins", help="check that dependencies are pinned (and hashed)")
    pins.add_argument(
        "root", nargs="?", default=".", help="directory with requirements*.txt, pyproject.toml, locks"
    )
    pins.add_argument("--no-hashes", action="store_true", help="do not require --hash in requirements files")
    _add_output(pins, default_fail_on="low")
    pins.set_defaults(func=_pins)


def _add_output(parser: argparse.ArgumentParser, default_fail_on: str = "medium") -> None:
    parser.add_argument("--fail-on", default=None, choices=[s.value for s in Severity],
                        help=FAIL_ON_HELP.format(default_fail_on))
    parser.set_defaults(default_fail_on=default_fail_on)
    parser.add_argument(
        "--format",
        dest="output_format",
        default="text",
        choices=["text", "json", "sarif"],
        help="output format on stdout (default text)",
    )


def _register_manifest(subparsers: argparse._SubParsersAction) -> None:
    manifest = subparsers.add_parser("manifest", help="create, sign and verify artifact manifests")
    sub = manifest.add_subparsers(dest="manifest_command", metavar="ACTION", parser_class=type(manifest))

    create = sub.add_parser("create", help="hash every file under DIR into a manifest")
    create.add_argument("root", metavar="DIR")
    create.add_argument("-o", "--output", help="manifest path (default DIR/aisp-manifest.json)")
    create.add_argument("--alg", default="sha256", choices=["sha256", "blake3"], help="digest algorithm")
    create.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND=GLOB",
        help="classify matching files (model, dataset, script, config, pipeline, other)",
    )
    create.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave matching paths out (dir/ for a directory); repeatable",
    )
    create.add_argument(
        "--no-default-ignores", action="store_true", help="also record .git/, __pycache__/ and .pytest_cache/"
    )
    create.add_argument(
        "--allow-symlinks",
        action="store_true",
        help="record symbolic links that stay inside DIR (never followed)",
    )
    create.add_argument(
        "--scan",
        action="store_true",
        help="record the static scan verdict of each model, under [tool.aisp.scan] by default",
    )
    create.add_argument(
        "--policy", metavar="FILE", help="scan policy TOML for --scan (implies it; default [tool.aisp.scan])"
    )
    create.add_argument("--workers", type=int, default=None, help="files hashed at once (default: cores)")
    create.add_argument("--key", help="sign the new manifest with this private key (PEM)")
    create.set_defaults(func=_manifest_create)

    verify = sub.add_parser("verify", help="check DIR against a manifest (or a model-signing bundle)")
    verify.add_argument(
        "manifest",
        nargs="?",
        default=None,
        metavar="MANIFEST",
        help="manifest or model-signing bundle (default: [tool.aisp] manifest, else aisp-manifest.json)",
    )
    verify.add_argument("--root", help="directory to check (default: the root recorded in the manifest)")
    verify.add_argument(
        "--pubkey",
        help="public key (PEM) the manifest must be signed with "
        "(default AISP_PUBKEY, [tool.aisp.supply] pubkey; required unless --allow-unsigned)",
    )
    verify.add_argument(
        "--allow-unsigned",
        action="store_true",
        default=None,
        help="without a key, compare digests only: the result is not authenticated",
    )
    verify.add_argument("--signature", help="signature file (default MANIFEST.sig)")
    verify.add_argument(
        "--allow-symlinks",
        action="store_true",
        default=None,
        help="accept new links that stay inside the root",
    )
    verify.add_argument(
        "--policy",
        metavar="FILE",
        help="scan policy TOML to judge recorded model verdicts by (default [tool.aisp.scan])",
    )
    verify.add_argument("--workers", type=int, default=None, help="files hashed at once (default: cores)")
    _add_output(verify)
    verify.set_defaults(func=_manifest_verify)

    sign = sub.add_parser("sign", help="sign a manifest with an Ed25519 or ECDSA P-256 key")
    sign.add_argument("manifest", metavar="MANIFEST")
    sign.add_argument("--key", required=True, help="private key (PEM)")
    sign.add_argument("--password-env", metavar="VAR", help="environment variable holding the key's password")
    sign.add_argument(
        "--format",
        dest="sign_format",
        default="aisp",
        choices=["aisp", "model-signing"],
        help="aisp: MANIFEST.sig; model-signing: an OpenSSF model-signing bundle (ECDSA keys)",
    )
    sign.add_argument("-o", "--output", help="signature path (default MANIFEST.sig, or ROOT/model.sig)")
    sign.add_argument(
        "--root", help="model directory for --format model-signing (default: the manifest's root)"
    )
    sign.set_defaults(func=_manifest_sign)

    keygen = sub.add_parser("keygen", help="write a new key pair (for tests and first setups)")
    keygen.add_argument("private", metavar="PRIVATE.pem")
    keygen.add_argument("public", metavar="PUBLIC.pem")
    keygen.add_argument(
        "--type", dest="key_type", default="ed25519", choices=["ed25519", "ecdsa-p256-sha256"]
    )
    keygen.add_argument("--force", action="store_true", help="overwrite existing key files")
    keygen.set_defaults(func=_manifest_keygen)
    manifest.set_defaults(func=lambda args: _missing_action(manifest))


def _register_provenance(subparsers: argparse._SubParsersAction) -> None:
    provenance = subparsers.add_parser("provenance", help="record and verify in-toto / SLSA build provenance")
    sub = provenance.add_subparsers(
        dest="provenance_command", metavar="ACTION", parser_class=type(provenance)
    )
    run = sub.add_parser(
        "run",
        help="run CMD, recording materials before and products after it",
        usage="aisp provenance run --materials PATH... --products PATH... [-o OUT] [--key KEY] -- CMD...",
    )
    run.add_argument(
        "--materials", nargs="+", default=[], metavar="PATH", help="inputs: data, scripts, configs"
    )
    run.add_argument("--products", nargs="+", required=True, metavar="PATH", help="outputs: models, reports")
    run.add_argument(
        "-o", "--output", default="provenance.intoto.json", help="statement (or DSSE envelope) path"
    )
    run.add_argument("--key", help="sign the statement as a DSSE envelope with this private key (PEM)")
    run.add_argument(
        "--root", default=".", help="the command runs here; paths are recorded relative to it (default .)"
    )
    run.add_argument("--alg", default="sha256", choices=["sha256", "blake3"])
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the build command, after --")
    run.set_defaults(func=_provenance_run)
    verify = sub.add_parser("verify", help="check products and materials against a provenance statement")
    verify.add_argument("statement", nargs="?", default="provenance.intoto.json")
    verify.add_argument(
        "--root", default=".", help="directory the recorded paths are relative to (default .)"
    )
    verify.add_argument(
        "--pubkey",
        help="public key the statement must be signed with "
        "(default AISP_PUBKEY, [tool.aisp.supply] pubkey; required unless --allow-unsigned)",
    )
    verify.add_argument(
        "--allow-unsigned",
        action="store_true",
        default=None,
        help="without a key, read the statement unauthenticated",
    )
    verify.add_argument(
        "--products",
        nargs="+",
        default=[],
        metavar="PATH",
        help="files that must be subjects of the statement (the artifacts you are about to use)",
    )
    _add_output(verify)
    verify.set_defaults(func=_provenance_verify)
    provenance.set_defaults(func=lambda args: _missing_action(provenance))


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# --- handlers -----------------------------------------------------------------------------------


def _manifest_create(args: argparse.Namespace) -> int:
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.supply.manifest import DEFAULT_NAME, create_manifest, save_manifest

    settings_for_cli()  # --scan judges under the project's [tool.aisp.scan], as aisp scan does
    root = Path(args.root)
    output = Path(args.output) if args.output else root / DEFAULT_NAME
    manifest = create_manifest(
        root,
        algorithm=args.alg,
        kinds=args.kind,
        ignore=args.ignore,
        default_ignores=not args.no_default_ignores,
        allow_symlinks=args.allow_symlinks,
        scan=args.scan,
        scan_policy=args.policy,
        manifest_path=output,
        argv=["aisp", *sys.argv[1:]],
        workers=args.workers,
    )
    save_manifest(manifest, output)
    total = sum(e.size or 0 for e in manifest.entries)
    print(
        f"wrote {output}: {len(manifest.entries)} entries, {total} bytes, {manifest.algorithm} "
        f"root_digest {manifest.root_digest}"
    )
    if args.key:
        from pytest_aisp.supply.signing import sign_manifest

        print(f"signed: {sign_manifest(output, args.key)}")
    return EXIT_OK


def _manifest_verify(args: argparse.Namespace) -> int:
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.supply.verify import verify_manifest

    settings_for_cli()  # AISP_PUBKEY and [tool.aisp.supply] apply where no flag is given
    result = verify_manifest(
        args.manifest,
        args.root,
        pubkey=args.pubkey,
        signature=args.signature,
        allow_unsigned=args.allow_unsigned,
        allow_symlinks=args.allow_symlinks,
        scan_policy=args.policy,
        workers=args.workers,
    )
    if args.output_format == "text":
        print(format_integrity_table(result))
    return _emit(
        args,
        result.findings,
        extra={
            "root": str(result.root),
            "metrics": dict(result.metrics),
            "signature": result.signature,
            "authenticated": result.authenticated,
        },
    )


def format_integrity_table(result: object) -> str:
    """The verify output: one line per change, digests in hex, then a summary line."""
    from pytest_aisp.supply.verify import IntegrityResult

    assert isinstance(result, IntegrityResult)
    lines = []
    for finding in result.findings:
        if finding.rule_id == "AISP-SUPPLY-SIGNATURE":
            lines.append(f"SIGNATURE  {finding.location}  {finding.message}")
        elif finding.rule_id == "AISP-SUPPLY-SCAN":
            lines.append(f"UNSAFE     {finding.location}  {finding.message}")
    if result.changes:
        width = max(len(c.change) for c in result.changes)
        path_width = min(60, max(len(c.path) for c in result.changes))
        lines.append(f"{'CHANGE'.ljust(width)}  {'PATH'.ljust(path_width)}  DETAIL")
        for change in result.changes:
            lines.append(f"{change.change.ljust(width)}  {change.path.ljust(path_width)}  {change.detail}")
    m = result.metrics
    state = "INTACT" if result.ok else ("CHANGED" if result.changes or result.signature == "invalid" else "UNSAFE")
    lines.append(
        f"{state}: {result.root} against {result.manifest_path}: {result.summary()}; "
        f"{int(m['files_checked'])} entries, {int(m['files_hashed'])} files hashed "
        f"({int(m['bytes_hashed'])} bytes), signature {result.signature}"
    )
    return "\n".join(lines)


def _emit(args: argparse.Namespace, findings: Sequence[Finding], extra: dict | None = None) -> int:
    """JSON or SARIF on stdout (the text table was printed by the caller); the exit code of the verdict."""
    from pytest_aisp.reporters.cli_output import emit, exit_code, render

    if args.output_format != "text":
        body = {"findings": [f.to_dict() for f in findings], **(extra or {})}
        emit(render(args.output_format, findings, json_body=lambda: body, text=str))
    return exit_code(findings, args.fail_on, default=args.default_fail_on)


def _manifest_sign(args: argparse.Namespace) -> int:
    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and password is None:
        raise AispError(f"--password-env {args.password_env}: that variable is not set")
    if args.sign_format == "model-signing":
        from pytest_aisp.supply.modelsig import sign_model_signing

        out = sign_model_signing(
            args.manifest, args.key, output=args.output, root=args.root, password=password
        )
    else:
        from pytest_aisp.supply.signing import sign_manifest

        out = sign_manifest(args.manifest, args.key, output=args.output, password=password)
    print(f"wrote {out}")
    return EXIT_OK


def _manifest_keygen(args: argparse.Namespace) -> int:
    from pytest_aisp.supply.signing import generate_keypair

    private, public = generate_keypair(args.private, args.public, args.key_type, force=args.force)
    print(f"wrote {private} (keep it secret) and {public}")
    return EXIT_OK


def _provenance_run(args: argparse.Namespace) -> int:
    from pytest_aisp.supply.provenance import record_provenance

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise AispError(
            "give the build command after --, e.g. aisp provenance run --materials data "
            "--products model.pt -- python train.py"
        )
    out = record_provenance(
        cmd,
        materials=args.materials,
        products=args.products,
        output=args.output,
        key=args.key,
        root=args.root,
        algorithm=args.alg,
    )
    print(f"wrote {out}")
    return EXIT_OK


def _provenance_verify(args: argparse.Namespace) -> int:
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.supply.provenance import verify_provenance

    settings_for_cli()
    result = verify_provenance(
        args.statement,
        root=args.root,
        pubkey=args.pubkey,
        allow_unsigned=args.allow_unsigned,
        products=args.products,
    )
    if args.output_format == "text":
        for finding in result.findings:
            print(finding.one_line())
        print(
            f"{'INTACT' if result.ok else 'CHANGED'}: {len(result.subjects)} products, "
            f"{len(result.materials)} materials checked against {args.statement};"
            f" signature {result.signature}"
            + (" (integrity not authenticated)" if result.signature == "not checked" else "")
        )
    return _emit(args, result.findings, extra={"signature": result.signature, "authenticated": result.authenticated})


def _bom(args: argparse.Namespace) -> int:
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.supply.bom import write_bom
    from pytest_aisp.supply.settings import supply_settings

    settings_for_cli()
    out = write_bom(
        args.manifest or supply_settings().manifest,
        args.output,
        provenance=args.provenance,
        name=args.name,
        version=args.bom_version,
        pubkey=args.pubkey,
        allow_unsigned=args.allow_unsigned,
    )
    print(f"wrote {out}")
    return EXIT_OK


def _pins(args: argparse.Namespace) -> int:
    from pytest_aisp.supply.pinning import check_pinning

    result = check_pinning(args.root, require_hashes=not args.no_hashes)
    if args.output_format == "text":
        for finding in result.findings:
            print(finding.one_line())
        print(f"{len(result.findings)} findings in {len(result.files)} dependency files")
    return _emit(args, result.findings)
