# tests: tests/core/test_tlslayer.py
"""TLS channel bindings of a stdlib `ssl.SSLObject` (RFC 5929, RFC 9266), for SCRAM-*-PLUS and
the FAST HT-* mechanisms (XEP-0440, XEP-0484).

- `tls-server-end-point` (RFC 5929 §4): a hash of our own certificate, computed once from the
  certificate file (`end_point_hash`): SHA-256 unless the certificate's signature uses a
  stronger hash; MD5 and SHA-1 become SHA-256 (§4.1).
- `tls-unique` (RFC 5929 §3): the first Finished message of the connection; the stdlib has it
  (`get_channel_binding`). TLS 1.2 only: RFC 9266 §3 forbids it on TLS 1.3.
- `tls-exporter` (RFC 9266): 32 bytes of keying material with the label
  "EXPORTER-Channel-Binding" and no context. Python 3.11's `ssl` module has no
  `export_keying_material`, so `exporter()` calls OpenSSL's `SSL_export_keying_material` on the
  `SSL*` the stdlib object wraps, through ctypes and the very libssl `_ssl` is linked against.
  That needs the `SSL*` out of CPython's `PySSLSocket` struct; before trusting the offset the
  layout is checked (`_layout_ok`): the struct's context field must be the object's
  `SSLContext`, and OpenSSL must report the same `SSL_CTX` for the `SSL*` read as that context
  holds. Any mismatch (another CPython build or layout) disables `tls-exporter` for the process
  with a warning: `tls-server-end-point` is still offered (XEP-0440 §4 makes it the one every
  server has). On TLS 1.2 `tls-exporter` is only given when the extended master secret was
  negotiated (RFC 9266 §3, RFC 7627).
Why not pyOpenSSL for client connections (it has `export_keying_material`): its bundled OpenSSL
keeps about twice the memory per idle connection (xmppd/listeners/tlslayer.py,
docs/PERFORMANCE.md), and idle connections are most of a server's connections.
"""
from __future__ import annotations

import ctypes
import logging
import ssl
from pathlib import Path

import _ssl
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

log = logging.getLogger(__name__)

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
EXPORTER_LENGTH = 32                      # RFC 9266 §2
_SSL_CTRL_GET_EXTMS_SUPPORT = 122         # openssl/ssl.h
_PTR = ctypes.sizeof(ctypes.c_void_p)
# CPython (Modules/_ssl.c, 3.7 to 3.13): PySSLSocket = {PyObject_HEAD, Socket, ssl, ctx, ...},
# PySSLContext = {PyObject_HEAD, ctx, ...}; PyObject_HEAD is two pointers (non-debug build).
_SOCKET_SSL = 3 * _PTR
_SOCKET_CTX = 4 * _PTR
_CONTEXT_CTX = 2 * _PTR


def end_point_hash(cert_file: Path) -> bytes:
    """RFC 5929 §4.1: the hash of our (leaf) certificate for `tls-server-end-point`."""
    cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return digest.finalize()


class _OpenSSL:
    """The libssl functions `_ssl` uses, or None where they cannot be trusted."""

    def __init__(self) -> None:
        self.ok: bool | None = None       # None: the layout is not checked yet
        try:
            lib = ctypes.CDLL(_ssl.__file__)     # dlsym on it searches its own libssl
            self.export = lib.SSL_export_keying_material
            self.get_ctx = lib.SSL_get_SSL_CTX
            self.ctrl = lib.SSL_ctrl
        except (OSError, AttributeError) as e:
            log.warning("tls-exporter channel binding unavailable: %s", e)
            self.ok = False
            return
        p = ctypes.c_void_p
        self.export.argtypes = [p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        self.export.restype = ctypes.c_int
        self.get_ctx.argtypes = [p]
        self.get_ctx.restype = p
        self.ctrl.argtypes = [p, ctypes.c_int, ctypes.c_long, p]
        self.ctrl.restype = ctypes.c_long

    def ssl_pointer(self, obj: ssl.SSLObject) -> int | None:
        inner = getattr(obj, "_sslobj", None)
        if inner is None or self.ok is False:
            return None
        pointer = _read(id(inner) + _SOCKET_SSL)
        if self.ok is None:
            self.ok = _layout_ok(self, inner, pointer)
            if not self.ok:
                log.warning("tls-exporter channel binding disabled: this Python's ssl objects "
                            "do not have the expected layout (tls-server-end-point remains)")
                return None
        return pointer


def _read(address: int) -> int:
    return ctypes.c_void_p.from_address(address).value or 0


def _layout_ok(lib: _OpenSSL, inner: object, pointer: int) -> bool:
    context = getattr(inner, "context", None)
    if context is None or _read(id(inner) + _SOCKET_CTX) != id(context) or not pointer:
        return False        # checked without following any pointer read from the struct
    ssl_ctx = _read(id(context) + _CONTEXT_CTX)
    return bool(ssl_ctx) and lib.get_ctx(pointer) == ssl_ctx


_LIB: _OpenSSL | None = None


def _lib() -> _OpenSSL:
    global _LIB
    if _LIB is None:
        _LIB = _OpenSSL()
    return _LIB


def exporter(obj: ssl.SSLObject) -> bytes | None:
    """RFC 9266 `tls-exporter` data of a completed handshake, or None where it must not or
    cannot be given (TLS 1.2 without the extended master secret; no trusted libssl access)."""
    lib = _lib()
    pointer = lib.ssl_pointer(obj)
    if pointer is None:
        return None
    version = obj.version()
    if version not in ("TLSv1.3", "TLSv1.2"):
        return None
    if version == "TLSv1.2" and lib.ctrl(pointer, _SSL_CTRL_GET_EXTMS_SUPPORT, 0, None) != 1:
        return None
    out = ctypes.create_string_buffer(EXPORTER_LENGTH)
    if lib.export(pointer, out, EXPORTER_LENGTH, EXPORTER_LABEL, len(EXPORTER_LABEL),
                  None, 0, 0) != 1:
        return None
    return out.raw


def tls_unique(obj: ssl.SSLObject) -> bytes | None:
    """RFC 5929 §3 `tls-unique`, TLS 1.2 only (RFC 9266 §3)."""
    if obj.version() != "TLSv1.2":
        return None
    return obj.get_channel_binding("tls-unique")
