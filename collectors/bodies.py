"""Request bodies: content types and content encodings, with the size limit enforced while
decompressing (a gzip bomb is stopped after ``limit`` bytes of output, not after it filled memory)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


class BodyError(Exception):
    """A body that cannot be read; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class MediaType:
    essence: str  # "type/subtype", lower-case
    params: dict[str, str]


def parse_media_type(header: str) -> MediaType:
    essence, *rest = header.split(";")
    params: dict[str, str] = {}
    for item in rest:
        name, _, value = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = value.strip().strip('"')
    return MediaType(essence.strip().lower(), params)


def content_codings(header: str) -> list[str]:
    """Codings in the order they were applied (RFC 9110 §8.4), without ``identity``."""
    return [coding for coding in (item.strip().lower() for item in header.split(",")) if coding and coding != "identity"]


def too_large(limit: int) -> BodyError:
    return BodyError(413, f"The request body is larger than {limit} bytes after decompression (CHOREOSCOPE_MAX_BODY_BYTES).")


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    output = bytearray()
    remaining = data
    # A gzip body may hold several members one after the other (RFC 1952 §2.2).
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            output += inflater.decompress(remaining, limit + 1 - len(output))
        except zlib.error as error:
            raise BodyError(400, f"The body is not valid {name} data: {error}.") from None
        if len(output) > limit:
            raise too_large(limit)
        if not inflater.eof:
            raise BodyError(400, f"The {name} body is truncated.")
        remaining = inflater.unused_data
        if not remaining or wbits != 31:
            return bytes(output)


def decompress(body: bytes, encoding_header: str, limit: int) -> bytes:
    """The body with every ``Content-Encoding`` undone; at most ``limit`` bytes."""
    for coding in reversed(content_codings(encoding_header)):
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, 31, limit, "gzip")
        elif coding == "deflate":
            # HTTP's "deflate" is zlib-wrapped (RFC 9110 §8.4.1.2), but some clients send raw deflate.
            wbits = 15 if len(body) >= 2 and (body[0] * 256 + body[1]) % 31 == 0 and body[0] & 0x0F == 8 else -15
            body = _inflate(body, wbits, limit, "deflate")
        else:
            raise BodyError(415, f"Content-Encoding {coding!r} is not supported; use gzip, deflate or none.")
    if len(body) > limit:
        raise too_large(limit)
    return body
