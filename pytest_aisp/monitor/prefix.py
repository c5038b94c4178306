"""Reading the start of a JSON body that was cut short (a body over the middleware's ``max_body``).

:func:`complete_json_prefix` closes what the cut left open (the string being read, then every
open array and object) so that the body readers can take the prompt out of the part that was
read. The structure is found with array operations on the bytes (quotes, backslash runs and
brackets are ASCII, never part of a multi-byte UTF-8 character), so a megabyte of hostile input
costs milliseconds, not a Python loop per character.
"""

from __future__ import annotations

import codecs
import json

import numpy as np

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENERS = {ord("["): b"]", ord("{"): b"}"}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SCALAR = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._+-")
_SPACE = b" \t\r\n"
_HIGH_SURROGATES = frozenset(f"d{c}".encode() for c in "89ab")


def complete_json_prefix(prefix: bytes, *, max_depth: int = 256) -> bytes | None:
    """The shortest completion of ``prefix`` (the start of a UTF-8 JSON text) that parses, or None.

    A string cut mid-way keeps what was read; a key without its value gets ``null``; a number
    or literal cut mid-way is dropped. None when the prefix is not the start of JSON (or nests
    deeper than ``max_depth``).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(prefix, final=False)
    except UnicodeDecodeError:
        return None
    data = prefix[: len(prefix) - len(decoder.getstate()[0])]  # without a character cut in two
    codes = np.frombuffer(data, dtype=np.uint8)
    quotes = _unescaped_quotes(codes)
    openers = _open_brackets(codes, quotes, max_depth)
    if openers is None:
        return None
    open_string = len(quotes) % 2 == 1
    if not open_string and not openers:  # nothing left open: the prefix is whole, or not JSON
        return data if _parses(data) else None
    last_string_start = int(quotes[-1] if open_string else quotes[-2]) if len(quotes) else -1
    if open_string:
        body = _drop_partial_escape(data) + b'"'
    else:
        body = _drop_partial_scalar(data.rstrip(_SPACE)).rstrip(_SPACE)
    if body.endswith(b","):
        body = body[:-1].rstrip(_SPACE)
    if body.endswith(b":"):
        body += b"null"
    elif openers.endswith(b"}") and last_string_start >= 0 and body.endswith(b'"') \
            and (open_string or int(quotes[-1]) == len(data.rstrip(_SPACE)) - 1) \
            and data[:last_string_start].rstrip(_SPACE).endswith((b"{", b",")):
        body += b":null"  # the text ends with an object's key
    candidate = body + openers[::-1]
    return candidate if _parses(candidate) else None


def _parses(text: bytes) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _unescaped_quotes(codes: np.ndarray) -> np.ndarray:
    """Positions of the quotes not preceded by an odd run of backslashes (string starts and ends)."""
    quotes = np.flatnonzero(codes == _QUOTE)
    slashes = np.flatnonzero(codes == _BACKSLASH)
    if quotes.size == 0 or slashes.size == 0:
        return quotes
    starts_run = np.ones(slashes.size, dtype=bool)
    starts_run[1:] = np.diff(slashes) != 1
    run_start = slashes[np.maximum.accumulate(np.where(starts_run, np.arange(slashes.size), 0))]
    index = np.minimum(np.searchsorted(slashes, quotes - 1), slashes.size - 1)
    after_slash = slashes[index] == quotes - 1
    run = np.where(after_slash, quotes - run_start[index], 0)
    return quotes[run % 2 == 0]


def _open_brackets(codes: np.ndarray, quotes: np.ndarray, max_depth: int) -> bytes | None:
    """The closers of the brackets still open at the end (innermost last), or None when more close
    than open. Brackets inside strings (after an odd number of unescaped quotes) do not count;
    whether each closer matches its opener's type is left to the final parse."""
    brackets = np.flatnonzero((codes == 0x5B) | (codes == 0x5D) | (codes == 0x7B) | (codes == 0x7D))  # [ ] { }
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]
    if brackets.size == 0:
        return b""
    kinds = codes[brackets]
    opener = (kinds == ord("[")) | (kinds == ord("{"))
    depth = np.cumsum(np.where(opener, 1, -1))
    if depth.min() < 0 or depth.max() > max_depth:
        return None
    lowest_after = np.minimum.accumulate(depth[::-1])[::-1]
    still_open = kinds[opener & (lowest_after >= depth)]
    return b"".join(_OPENERS[int(k)] for k in still_open)


def _drop_partial_escape(body: bytes) -> bytes:
    """``body`` (ending inside a string) without an escape sequence cut short (``\\`` or ``\\u12``), nor
    the first half of a surrogate pair whose second half was cut off."""
    body = _drop_cut_escape(body)
    end = len(body)
    if end >= 6 and body[end - 6: end - 4] == b"\\u" and body[end - 4: end - 2].lower() in _HIGH_SURROGATES \
            and _odd_backslashes_before(body, end - 5):
        return body[: end - 6]
    return body


def _drop_cut_escape(body: bytes) -> bytes:
    end = len(body)
    hex_digits = 0
    while hex_digits < 3 and end > hex_digits and body[end - 1 - hex_digits] in _HEX:
        hex_digits += 1
    # A cut \\uXXXX escape: "u" and up to three hex digits after a backslash that starts an escape.
    for digits in range(hex_digits, -1, -1):
        if end - digits - 1 >= 0 and body[end - digits - 1] == ord("u") \
                and _odd_backslashes_before(body, end - digits - 1):
            return body[: end - digits - 2]
    return body[:-1] if _odd_backslashes_before(body, end) else body


def _odd_backslashes_before(body: bytes, end: int) -> bool:
    start = end
    while start and body[start - 1] == _BACKSLASH:
        start -= 1
    return (end - start) % 2 == 1


def _drop_partial_scalar(body: bytes) -> bytes:
    """``body`` without a number or literal at its end (it may have been cut mid-way)."""
    end = len(body)
    while end and body[end - 1] in _SCALAR:
        end -= 1
    return body[:end]
