"""The scan rules: stable ids, default severities, and what each means. docs/scan.md mirrors this table."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_aisp.findings import Severity


@dataclass(frozen=True)
class Rule:
    """One rule: its id, default severity, meaning and fix."""

    rule_id: str
    severity: Severity
    meaning: str
    fix: str


def _rule(rule_id: str, severity: str, meaning: str, fix: str) -> Rule:
    return Rule(rule_id, Severity(severity), meaning, fix)


PICKLE_DANGEROUS = "AISP-SCAN-PICKLE-DANGEROUS"
PICKLE_GLOBAL = "AISP-SCAN-PICKLE-GLOBAL"
PICKLE_DYNAMIC_GLOBAL = "AISP-SCAN-PICKLE-DYNAMIC-GLOBAL"
PICKLE_EXT = "AISP-SCAN-PICKLE-EXT"
PICKLE_FRAME = "AISP-SCAN-PICKLE-FRAME"
PICKLE_BROKEN = "AISP-SCAN-PICKLE-BROKEN"
PICKLE_TRAILING = "AISP-SCAN-PICKLE-TRAILING"
PICKLE_CONCATENATED = "AISP-SCAN-PICKLE-CONCATENATED"
PICKLE_EMBEDDED = "AISP-SCAN-PICKLE-EMBEDDED"
DATA_PICKLE = "AISP-SCAN-DATA-PICKLE"
DATA_CODE = "AISP-SCAN-DATA-CODE"
UNSCANNABLE = "AISP-SCAN-UNSCANNABLE"
LIMIT = "AISP-SCAN-LIMIT"
FORMAT_MISMATCH = "AISP-SCAN-FORMAT-MISMATCH"
POLYGLOT = "AISP-SCAN-POLYGLOT"
SYMLINK = "AISP-SCAN-SYMLINK"
ZIP_DUPLICATE = "AISP-SCAN-ZIP-DUPLICATE"
ZIP_CRC = "AISP-SCAN-ZIP-CRC"
ZIP_FLAGS = "AISP-SCAN-ZIP-FLAGS"
ZIP_NAME_MISMATCH = "AISP-SCAN-ZIP-NAME-MISMATCH"
ZIP_PATH = "AISP-SCAN-ZIP-PATH"
ZIP_PICKLE_MEMBER = "AISP-SCAN-ZIP-PICKLE-MEMBER"
TORCHSCRIPT_OP = "AISP-SCAN-TORCHSCRIPT-OP"
NUMPY_OBJECT = "AISP-SCAN-NUMPY-OBJECT"
KERAS_LAMBDA = "AISP-SCAN-KERAS-LAMBDA"
KERAS_MODULE = "AISP-SCAN-KERAS-MODULE"
KERAS_CUSTOM = "AISP-SCAN-KERAS-CUSTOM"
TF_OP = "AISP-SCAN-TF-OP"
ONNX_EXTERNAL_PATH = "AISP-SCAN-ONNX-EXTERNAL-PATH"
ONNX_EXTERNAL_DATA = "AISP-SCAN-ONNX-EXTERNAL-DATA"
ONNX_DOMAIN = "AISP-SCAN-ONNX-DOMAIN"
SAFETENSORS_HEADER = "AISP-SCAN-SAFETENSORS-HEADER"
GGUF_HEADER = "AISP-SCAN-GGUF-HEADER"
GGUF_TEMPLATE = "AISP-SCAN-GGUF-TEMPLATE"

RULES: tuple[Rule, ...] = (
    _rule(PICKLE_DANGEROUS, "critical", "A pickle imports a callable on the denylist (exec, os.system, "
          "subprocess, builtins.getattr, operator getters, a nested deserializer ...): loading it runs code.",
          "Do not load the file. Re-export the model as safetensors or a weights-only state_dict."),
    _rule(PICKLE_GLOBAL, "high", "A pickle imports a global the allowlist does not cover (an unknown global).",
          "If the class is your own and trusted, add it to [tool.aisp.scan] allow; otherwise do not load it."),
    _rule(PICKLE_DYNAMIC_GLOBAL, "critical", "STACK_GLOBAL gets a module or name computed at load time, so "
          "what it imports cannot be known without running the pickle.", "Do not load the file."),
    _rule(PICKLE_EXT, "high", "EXT1/EXT2/EXT4 names a global through the copyreg extension registry, which "
          "depends on the loading process.", "Re-save the file without extension codes (plain pickle.dump)."),
    _rule(PICKLE_FRAME, "high", "An opcode's argument runs across the end of a FRAME. Loaders read such a "
          "stream differently: pickle.loads reads on, file-based loaders (pickle.load, torch.load, joblib.load) "
          "drop the rest of the frame and read other names. No pickler writes this; it hides payloads.",
          "Do not load the file; re-save it from a trusted source."),
    _rule(PICKLE_BROKEN, "medium", "A pickle stream breaks before STOP. The unpickler has already run every "
          "opcode before the break, so findings before it still apply.", "Re-save the file; check its source."),
    _rule(PICKLE_TRAILING, "low", "Bytes after the last STOP that are not a pickle; pickle.load ignores them.",
          "Strip the trailing bytes or find out what wrote them."),
    _rule(PICKLE_CONCATENATED, "info", "Several pickle streams in one file; each was scanned.",
          "None needed when expected (legacy torch.save writes five)."),
    _rule(PICKLE_EMBEDDED, "info", "A pickle hands embedded bytes to a deserializer (pickle.loads, "
          "torch.load ...); the embedded stream was scanned too and its findings follow.",
          "Judge the embedded stream's own findings."),
    _rule(DATA_PICKLE, "high", "A string or bytes value in the file (a pickle constant, safetensors, GGUF or "
          "JSON metadata) is, raw or through layers of hex, base64, base32, base85, escapes or compression, a "
          "pickle that imports something unsafe. Loading the file does not run it; the later step that "
          "unpickles the value does. Reported one severity below what the inner pickle's own finding would be "
          "(high for a dangerous global, medium for an unknown one).",
          "Do not load the file, or at least never unpickle the value; find out what put a pickle there."),
    _rule(DATA_CODE, "medium", "A string value in the file (a pickle constant, safetensors, GGUF or JSON "
          "metadata), raw or decoded, is Python source that calls something that runs code or commands "
          "(exec, eval, __import__, os.system, subprocess ...). Nothing runs it on load; a later exec does.",
          "Remove the code from the file; never exec text read from a model file."),
    _rule(UNSCANNABLE, "medium", "Part of the artifact could not be parsed or was skipped (unknown format, "
          "truncated data, encrypted or unsupported zip member): it was not checked.",
          "Provide the file in a supported format, or accept it explicitly in a baseline."),
    _rule(LIMIT, "medium", "A scan limit was reached (decompressed size, compression ratio, nesting depth, "
          "member count, memo or stack size, header entries): the rest was not checked.",
          "Raise the limit in [tool.aisp.scan.limits] if the file is trusted and really that large."),
    _rule(FORMAT_MISMATCH, "medium", "The content is not what the file name says (a .safetensors that is a "
          "pickle, a .npy that is a zip): a common way to slip a pickle past extension-based checks.",
          "Rename the file for what it is, or re-export it in the format its name claims."),
    _rule(POLYGLOT, "high", "The file is two formats at once (a pickle with a zip at its end): loaders "
          "disagree on what it is.", "Do not load the file."),
    _rule(SYMLINK, "medium", "A symbolic link in a scanned directory points outside it; it is not followed.",
          "Ship the file itself, not a link to a place outside the model directory."),
    _rule(ZIP_DUPLICATE, "high", "Two zip members have the same name; readers pick different ones.",
          "Re-create the archive."),
    _rule(ZIP_CRC, "high", "A zip member's data does not match its CRC-32: it was changed after writing.",
          "Re-create the archive from a trusted source."),
    _rule(ZIP_FLAGS, "medium", "A zip member has encryption or unusual flag bits; some readers skip it.",
          "Re-create the archive without encryption."),
    _rule(ZIP_NAME_MISMATCH, "high", "A member's local header names a different file than the central "
          "directory: readers disagree on which member is which.", "Re-create the archive."),
    _rule(ZIP_PATH, "medium", "A member name is absolute or climbs out with '..' (zip slip).",
          "Re-create the archive with relative member names."),
    _rule(ZIP_PICKLE_MEMBER, "medium", "A PyTorch archive holds a pickle outside data.pkl/constants.pkl "
          "(and, in a traced TorchScript archive, traced_inputs.pkl).",
          "Re-save with torch.save; find out what added the member."),
    _rule(TORCHSCRIPT_OP, "medium", "TorchScript code calls operators outside aten/prim/quantized: it needs a "
          "custom operator library loaded into the process.", "Check where the custom operators come from."),
    _rule(NUMPY_OBJECT, "low", "A numpy array of Python objects: loading it needs allow_pickle=True. The "
          "pickle inside was scanned.", "Store numeric arrays only."),
    _rule(KERAS_LAMBDA, "critical", "A Keras Lambda layer carries Python bytecode that runs on load or call.",
          "Replace the Lambda layer by a registered custom layer and re-save."),
    _rule(KERAS_MODULE, "high", "A Keras config names a module outside keras (CVE-2025-1550 style): "
          "loading imports it and calls what it names (critical when the module is on the denylist).",
          "Re-save with built-in layers only, or review the module named."),
    _rule(KERAS_CUSTOM, "medium", "A Keras config uses a custom registered object that the loading "
          "process must provide.", "Review the custom object's code before loading."),
    _rule(TF_OP, "high", "A TensorFlow graph uses an op that reads or writes files (high) or runs Python "
          "(PyFunc, EagerPyFunc: critical).", "Remove the op from the exported graph."),
    _rule(ONNX_EXTERNAL_PATH, "high", "An ONNX tensor's external data path is absolute or leaves the model "
          "directory: loading reads an arbitrary file.", "Keep external data next to the model."),
    _rule(ONNX_EXTERNAL_DATA, "medium", "An ONNX external data file is missing or too short for the "
          "offset/length given.", "Ship the external data files with the model."),
    _rule(ONNX_DOMAIN, "medium", "An ONNX node uses a custom operator domain that needs a custom op library.",
          "Check where the custom operator library comes from."),
    _rule(SAFETENSORS_HEADER, "medium", "A safetensors header is malformed: length past the file, bad JSON, "
          "duplicate names, unknown dtypes, offsets out of bounds, overlapping or with gaps.",
          "Re-export the file with the safetensors library."),
    _rule(GGUF_HEADER, "medium", "A GGUF header is malformed or out of bounds.", "Re-convert the model."),
    _rule(GGUF_TEMPLATE, "critical", "A GGUF chat template (Jinja) reaches Python internals (__class__, "
          "__globals__, __subclasses__, import ...): server-side template injection on load.",
          "Replace the chat template by a plain one."),
)
RULES_BY_ID: dict[str, Rule] = {rule.rule_id: rule for rule in RULES}
