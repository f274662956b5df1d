# tests: tests/core/test_tlslayer.py
"""Give an idle TLS connection's memory-BIO buffers back (memory per idle connection,
docs/PERFORMANCE.md "Memory per connection").

An OpenSSL memory BIO (`ssl.MemoryBIO`) keeps the largest buffer it ever held: reading it empty
does not shrink it. The outgoing one holds the server's handshake flight (its certificate
chain) and then the largest TLS write (a 50 KiB roster: about 66 KiB) for the connection's
whole life; the incoming one the largest read. `release(bio)` swaps an *empty* BIO's buffer for
a fresh one (OpenSSL's `BIO_set_mem_buf`, which frees the old), so an idle connection keeps
none.

The stdlib does not expose the BIO, so this reads the `BIO *` of CPython's `_ssl.MemoryBIO`
(the word after the object header) and calls OpenSSL through `_ssl`'s own shared object. It is
used only where a self-test at first use passes — CPython with the usual 16-byte object header
(no debug or free-threaded build), OpenSSL 1.1.1 or later, a BIO of type memory at that place,
pending counts that agree with the stdlib's, and a released BIO that still works; anywhere
else `release` does nothing.
"""
from __future__ import annotations

import ctypes
import ssl
import sys
from typing import Any

_BIO_CTRL_PENDING = 10
_BIO_C_SET_BUF_MEM = 114
_BIO_C_GET_BUF_MEM_PTR = 115
_BIO_CLOSE = 1
_BIO_TYPE_MEM = 1 | 0x0400
_HEADER = 16            # PyObject_HEAD on a 64-bit release build: refcount, type


class _Lib:
    def __init__(self, lib: Any) -> None:
        self.ctrl = lib.BIO_ctrl
        self.ctrl.restype = ctypes.c_long
        self.ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self.method_type = lib.BIO_method_type
        self.method_type.restype = ctypes.c_int
        self.method_type.argtypes = [ctypes.c_void_p]
        self.buf_new = lib.BUF_MEM_new
        self.buf_new.restype = ctypes.c_void_p
        self.buf_new.argtypes = []

    def bio(self, bio: ssl.MemoryBIO) -> int | None:
        return ctypes.c_void_p.from_address(id(bio) + _HEADER).value

    def capacity(self, bio: ssl.MemoryBIO) -> int:
        ptr = self.bio(bio)
        buf = ctypes.c_void_p()
        self.ctrl(ptr, _BIO_C_GET_BUF_MEM_PTR, 0, ctypes.byref(buf))
        if not buf.value:
            return 0
        # struct buf_mem_st { size_t length; char *data; size_t max; unsigned long flags; }
        return ctypes.c_size_t.from_address(buf.value + 16).value

    def release(self, bio: ssl.MemoryBIO) -> bool:
        if bio.pending:
            return False
        ptr = self.bio(bio)
        fresh = self.buf_new()
        if not ptr or not fresh:
            return False
        self.ctrl(ptr, _BIO_C_SET_BUF_MEM, _BIO_CLOSE, ctypes.c_void_p(fresh))
        return True


def _ssl_module() -> Any:
    """`_ssl`'s own shared object: its symbols resolve through the libssl and libcrypto it
    was linked with (not another copy in the process, such as a wheel's bundled one)."""
    import _ssl
    path = getattr(_ssl, "__file__", None)
    return ctypes.CDLL(path) if path else None


def _self_test(lib: _Lib) -> bool:
    bio = ssl.MemoryBIO()
    ptr = lib.bio(bio)
    if not ptr:
        return False
    bio.write(b"x" * 4096)
    if lib.method_type(ptr) != _BIO_TYPE_MEM or lib.ctrl(ptr, _BIO_CTRL_PENDING, 0, None) != 4096:
        return False
    if lib.release(bio) or bio.read() != b"x" * 4096 or not lib.release(bio):
        return False            # refused while not empty; done once read
    bio.write(b"after")
    return lib.ctrl(ptr, _BIO_CTRL_PENDING, 0, None) == 5 and bio.read() == b"after"


def _load() -> _Lib | None:
    if (sys.implementation.name != "cpython" or hasattr(sys, "gettotalrefcount")
            or object.__basicsize__ != _HEADER        # a free-threaded or tracing build
            or ctypes.sizeof(ctypes.c_void_p) != 8 or ssl.OPENSSL_VERSION_INFO < (1, 1, 1)):
        return None
    try:
        module = _ssl_module()
        if module is None:
            return None
        lib = _Lib(module)
        return lib if _self_test(lib) else None
    except (OSError, AttributeError):
        return None


_LIB: _Lib | None | bool = False        # False: not loaded yet


def release(bio: ssl.MemoryBIO) -> bool:
    """Free an empty BIO's buffer (False: not empty, or not supported here)."""
    global _LIB
    if _LIB is False:
        _LIB = _load()
    return _LIB.release(bio) if isinstance(_LIB, _Lib) else False


def capacity(bio: ssl.MemoryBIO) -> int | None:
    """Bytes allocated for the BIO's buffer (None: not supported here)."""
    return _LIB.capacity(bio) if supported() and isinstance(_LIB, _Lib) else None


def supported() -> bool:
    global _LIB
    if _LIB is False:
        _LIB = _load()
    return isinstance(_LIB, _Lib)
