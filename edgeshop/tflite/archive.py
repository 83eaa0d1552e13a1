"""The zip archive appended to a model file, read as untrusted input.

A .tflite can come from anywhere, and `zipfile` trusts what an archive declares: it lists
every member the central directory holds before anything can be checked, inflates a member
until the compressed data ends (truncating to the declared size only afterwards), and fails
with a dozen exception types. Here every archive is checked against small limits before
`zipfile` builds its member list, members are read through a decompressor that stops after
the limit, and every failure becomes one `ModelCardError` naming the file.
"""

from __future__ import annotations

import io
import struct
import zipfile

from edgeshop.errors import ModelCardError

# edgeshop writes two members (labels.txt and the card) of a few KB each; other tools
# may add a few more. Anything near these limits is damage or abuse, not metadata.
MAX_MEMBERS = 64
MAX_DIRECTORY_BYTES = 64 << 10  # central directory: 46 bytes + name per member
MAX_MEMBER_BYTES = 1 << 20
MAX_ARCHIVE_BYTES = 4 << 20  # all members together, once inflated
# Models written since the stored archive use ZIP_STORED, earlier ones ZIP_DEFLATED.
# zipfile inflates bzip2/LZMA members without an output limit, so they are refused.
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_ENCRYPTED = 0x1

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record
_MAX_COMMENT = 1 << 16


def directory_extent(content: bytes) -> tuple[int, int] | None:
    """(members, central directory bytes) that ``zipfile`` would read from ``content``,
    or None when it finds no archive.

    This is zipfile's own search for the end record (the last 22 bytes, else the last
    signature in the final 64 KB), including the zip64 record it prefers, so the numbers
    checked are the ones zipfile then acts on; a test compares the two on random bytes.
    """
    if len(content) >= _END.size and content[-_END.size:-_END.size + 4] == _END_SIGNATURE \
            and content[-2:] == b"\0\0":
        end = len(content) - _END.size
    else:
        end = content.rfind(_END_SIGNATURE, max(len(content) - _MAX_COMMENT - _END.size, 0))
        if end < 0 or len(content) - end < _END.size:
            return None
    *_, members, size, _offset, _comment = _END.unpack_from(content, end)
    # zipfile reads through a BytesIO, which clamps positions before the start to 0.
    locator = content[max(end - _LOCATOR.size, 0):][:_LOCATOR.size]
    if len(locator) == _LOCATOR.size:
        signature, disk, _offset, disks = _LOCATOR.unpack(locator)
        if signature == b"PK\x06\x07":
            if disk != 0 or disks > 1:
                return members, size  # zipfile refuses multi-disk archives itself
            record = content[max(end - _LOCATOR.size - _END64.size, 0):][:_END64.size]
            if len(record) == _END64.size and record[:4] == b"PK\x06\x06":
                *_, members, size, _offset = _END64.unpack(record)
    return members, size


def open_archive(content: bytes, source: str) -> zipfile.ZipFile | None:
    """The archive at the end of ``content``, or None when there is none.

    Its member count and central directory size are checked before ``zipfile`` lists the
    members: a million-member archive would otherwise take seconds and hundreds of MB.
    """
    extent = directory_extent(content)
    if extent is None:
        return None
    members, size = extent
    if members > MAX_MEMBERS or size > MAX_DIRECTORY_BYTES:
        raise ModelCardError(
            f"{source}: the archive appended to the model declares {members} members in {size} bytes "
            f"(at most {MAX_MEMBERS} in {MAX_DIRECTORY_BYTES} are read); {_FIX}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except Exception as exc:  # zipfile's failures on hostile bytes: see _damaged
        raise _damaged(source, "the archive appended to the model", exc) from None
    # The end record's count is what it claims; zipfile lists whatever the directory holds
    # (up to MAX_DIRECTORY_BYTES of it), so the limit is checked on the listed members too.
    listed = len(archive.infolist())
    if listed > MAX_MEMBERS:
        archive.close()
        raise ModelCardError(
            f"{source}: the archive appended to the model holds {listed} members (at most {MAX_MEMBERS} are read); "
            f"{_FIX}")
    return archive


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of one member, never inflating more than ``limit`` + 1 bytes."""
    what = f"archive member {info.filename!r}"
    if info.flag_bits & _ENCRYPTED:
        raise ModelCardError(f"{source}: {what} is encrypted (model metadata never is); {_FIX}")
    if info.compress_type not in READABLE_METHODS:
        raise ModelCardError(f"{source}: {what} uses compression method {info.compress_type} "
                             f"(edgeshop reads stored or deflate members); {_FIX}")
    if info.file_size > limit:
        raise ModelCardError(f"{source}: {what} is {info.file_size} bytes, more than {limit}")
    try:
        with archive.open(info) as stream:
            # read(n) inflates at most n bytes; read() would inflate everything the
            # compressed data holds (300 MB from 300 KB) before cutting to the declared size.
            data = stream.read(limit + 1)
    except Exception as exc:  # zipfile's failures on hostile bytes: see _damaged
        raise _damaged(source, what, exc) from None
    if len(data) > limit:
        raise ModelCardError(f"{source}: {what} inflates to more than {limit} bytes")
    return data


_FIX = "re-export the model with edgeshop-export or copy it again"


def _damaged(source: str, what: str, exc: Exception) -> ModelCardError:
    """One error for whatever zipfile raised: BadZipFile, zlib.error, UnicodeDecodeError
    (member names), NotImplementedError, RuntimeError, EOFError, OSError, struct.error...
    The calls guarded hold only zipfile's work, so no bug of ours is hidden by it."""
    return ModelCardError(f"{source}: {what} is damaged ({type(exc).__name__}: {exc}); {_FIX}")
