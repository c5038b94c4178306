"""``aisp multimodal``: list the perturbations and apply one to a file (image, audio or text)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pytest_aisp.findings import AispError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aisp multimodal list`` and ``aisp multimodal apply``."""
    parser = subparsers.add_parser("multimodal", help="image / audio / video / text perturbations")
    commands = parser.add_subparsers(dest="multimodal_command", metavar="SUBCOMMAND")

    listing = commands.add_parser("list", help="list the perturbations, their backends and severity mappings")
    listing.add_argument("--modality", choices=("image", "audio", "video", "text"), help="only this modality")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(func=run_list)

    apply = commands.add_parser("apply", help="perturb an image, audio or text file and write the result")
    apply.add_argument(
        "input", type=Path, help="image (.png, .jpg ...), audio (.wav, .flac) or text (.txt) file"
    )
    apply.add_argument("-p", "--perturbation", required=True, help="name such as image:blur or audio:reverb")
    apply.add_argument("-s", "--severity", type=float, default=0.5, help="severity in [0, 1] (default 0.5)")
    apply.add_argument("--seed", type=int, default=0)
    apply.add_argument(
        "--backend",
        choices=("native", "augly", "auto"),
        default="native",
        help="native (default: the same output on every machine), augly (AugLy where it has the function;"
        " needs pytest-aisp[augly]) or auto (AugLy when it imports, native otherwise)",
    )
    apply.add_argument("-o", "--output", type=Path, required=True, help="where to write the perturbed file")
    apply.set_defaults(func=run_apply)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    raise AispError(f"choose a subcommand: {parser.prog} list | apply (see `{parser.prog} --help`)")


def run_list(args: argparse.Namespace) -> int:
    from pytest_aisp.multimodal.registry import registry, severity_table

    specs = [p for p in registry().values() if args.modality in (None, p.modality)]
    rows = severity_table(specs)
    if args.format == "json":
        print(json.dumps([{"name": n, "backend": b, "severity": m} for n, b, m in rows], indent=2))
        return 0
    width = max(len(n) for n, _, _ in rows)
    for name, backend, mapping in rows:
        print(f"{name:<{width}}  {backend:<32}  {mapping}")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from pytest_aisp.multimodal.registry import apply_perturbation, get_perturbation

    spec = get_perturbation(args.perturbation)
    if not args.input.is_file():
        raise AispError(f"{args.input} does not exist or is not a file")
    suffix = args.input.suffix.lower()
    if spec.modality == "image" and suffix in IMAGE_SUFFIXES:
        from PIL import Image

        with Image.open(args.input) as image:
            pixels = np.asarray(image.convert("RGB"))[None]
        out = apply_perturbation(spec, pixels, args.severity, seed=args.seed, backend=args.backend)
        Image.fromarray(out[0]).save(args.output)
    elif spec.modality == "audio" and suffix in AUDIO_SUFFIXES:
        import soundfile

        wave, rate = soundfile.read(str(args.input), dtype="float32", always_2d=True)
        mono = wave.mean(axis=1)[None]
        out = apply_perturbation(spec, mono, args.severity, seed=args.seed, sample_rate=rate)
        soundfile.write(str(args.output), out[0], rate)
    elif spec.modality == "text":
        lines = args.input.read_text(encoding="utf-8").splitlines()
        out = apply_perturbation(spec, lines or [""], args.severity, seed=args.seed, backend=args.backend)
        args.output.write_text("\n".join(out) + "\n", encoding="utf-8")
    else:
        raise AispError(
            f"{spec.name} is a {spec.modality} perturbation but {args.input.name} is not a "
            f"{spec.modality} file "
            "this command reads (images: .png/.jpg ..., audio: .wav/.flac/.ogg, text: any; video: use the "
            "Python API on decoded frames)"
        )
    print(f"wrote {args.output} ({spec.name} at severity {args.severity:g}, seed {args.seed})")
    return 0
