"""Bounded, regular-file-only zip reading and atomic writing, shared by every file format.

Reading trusts nothing and bounds everything before it parses or allocates: the path must name a
regular file (a named pipe, a device, or a symlink to one is refused before it is read); the zip
central directory, each member's uncompressed size (read in bounded chunks, never trusting the
header alone) and the total are capped; JSON documents are capped in bytes, containers and
nesting depth. Every refusal is a ``ValueError`` naming the file and what was wrong.

Writing goes to a temporary file beside the target (``.<name>.<pid>.<random>.tmp``), fsynced, then
``os.replace``-d over it; temporaries left by earlier saves whose process died (killed mid-save)
are removed by the next save to the same target.
"""
import contextlib
import json
import os
import re
import stat
import tempfile
import zipfile

MAX_JSON_BYTES = 8 * 1024 * 1024        # one JSON member, uncompressed
MAX_JSON_CONTAINERS = 1 << 18           # objects + arrays in one JSON document
MAX_JSON_DEPTH = 100                    # nesting of objects and arrays
MAX_CENTRAL_DIRECTORY = 8 * 1024 * 1024  # bytes of zip directory, about 100k members
_CHUNK = 1 << 20


class FileNotFound(FileNotFoundError, ValueError):
    """A missing file: a FileNotFoundError that is also the ValueError Keras raises."""


def check_json_value(value, where):
    """Refuse a parsed JSON ``value`` nested deeper than ``MAX_JSON_DEPTH`` or holding more than
    ``MAX_JSON_CONTAINERS`` objects and arrays (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    containers = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        containers += 1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{where}: nested more than {MAX_JSON_DEPTH} levels deep; refused")
        if containers > MAX_JSON_CONTAINERS:
            raise ValueError(f"{where}: more than {MAX_JSON_CONTAINERS} JSON objects and arrays; refused")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


def parse_json(data, where):
    """The JSON document in ``data`` (bytes or str), its size, container count and depth bounded."""
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{where}: {len(data)} bytes of JSON, more than the {MAX_JSON_BYTES} allowed; refused")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from None
    # an upper bound on the containers (brackets inside strings count too) before any is built
    if data.count("[") + data.count("{") > 2 * MAX_JSON_CONTAINERS:
        raise ValueError(f"{where}: more than {MAX_JSON_CONTAINERS} JSON objects and arrays; refused")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    return check_json_value(value, where)


def open_regular_file(filepath):
    """``filepath`` opened for binary reading, after checking (before and after opening, without
    blocking) that it is a regular file; returns (file object, size in bytes)."""
    try:
        before = os.stat(filepath)
    except FileNotFoundError:
        raise FileNotFound(2, f"File not found: filepath={filepath}. Please ensure the file is an accessible "
                              "`.dlc` file", filepath) from None
    except OSError as exc:
        raise ValueError(f"{filepath!r}: cannot be read ({exc})") from None
    _check_regular(filepath, before)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(filepath, flags)
    try:
        after = os.fstat(fd)
        _check_regular(filepath, after)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise ValueError(f"{filepath!r}: the file was replaced while being opened; try again")
        return os.fdopen(fd, "rb"), after.st_size
    except BaseException:
        os.close(fd)
        raise


def _check_regular(filepath, st):
    if stat.S_ISREG(st.st_mode):
        return
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a named pipe" if stat.S_ISFIFO(st.st_mode)
            else "a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise ValueError(f"{filepath!r} is {kind}, not a regular file: dlcore only loads regular files")


def _central_directory_size(f):
    """Bytes of the zip central directory as the end record declares them, None if unknown."""
    try:
        end = zipfile._EndRecData(f)  # (the stdlib's own end-record parser)
    except (OSError, ValueError, IndexError):
        return None
    return None if not end else end[zipfile._ECD_SIZE]


class ZipReader:
    """A zip archive opened from a regular file, its members indexed and their sizes bounded.

    ``caps(name)`` is the most bytes member ``name`` may hold uncompressed (None: not a member of
    the format); ``stored_only(name)`` whether it must be stored uncompressed, so that its size is
    bounded by the file's own. Raises ValueError (through ``fail``) on anything else."""

    def __init__(self, filepath, caps, stored_only):
        self.filepath = filepath
        self.infos = {}
        self.zf = None
        self.file, self.size = open_regular_file(filepath)
        try:
            directory = _central_directory_size(self.file)
            if directory is not None and directory > MAX_CENTRAL_DIRECTORY:
                self.fail(f"a zip directory of {directory} bytes, more than the {MAX_CENTRAL_DIRECTORY} "
                          "allowed; refused")
            self.file.seek(0)
            try:
                self.zf = zipfile.ZipFile(self.file, "r")
            except Exception as exc:  # noqa: BLE001  (zipfile raises many kinds on damaged input)
                self.fail(f"not a valid dlcore file: it is not a readable zip archive ({type(exc).__name__}: "
                          f"{exc}); the file may be truncated or corrupted")
            self._index(caps, stored_only)
        except BaseException:
            self.close()
            raise

    def _index(self, caps, stored_only):
        for info in self.zf.infolist():
            name = info.filename
            if name in self.infos:
                self.fail(f"duplicate member {name!r} (the archive was tampered with)")
            cap = caps(name)
            if cap is None:
                self.fail(f"unexpected member {name!r}: not part of the dlcore format")
            if info.flag_bits & 0x1:
                self.fail(f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.fail(f"member {name!r} uses an unsupported compression method ({info.compress_type})")
            if stored_only(name) and (info.compress_type != zipfile.ZIP_STORED
                                      or info.compress_size != info.file_size):
                self.fail(f"member {name!r} must be stored uncompressed, as dlcore writes it")
            if info.file_size > cap:
                self.fail(f"member {name!r} declares {info.file_size} bytes uncompressed, more than the {cap} "
                          "allowed; refused")
            if info.compress_size > self.size:
                self.fail(f"member {name!r} declares {info.compress_size} compressed bytes, more than the "
                          f"file's {self.size}")
            self.infos[name] = info
        total = sum(info.compress_size for info in self.infos.values())
        if total > self.size:
            self.fail(f"its members declare {total} compressed bytes, more than the file's {self.size}; refused")

    def fail(self, message):
        raise ValueError(f"{self.filepath!r}: {message}")

    def close(self):
        if self.zf is not None:
            self.zf.close()
        self.file.close()

    def read(self, name, limit=None):
        """The bytes of member ``name`` (at most ``limit`` of them, the member's first bytes, when
        given), read in bounded chunks; a member whose data disagree with its header is refused."""
        info = self.infos.get(name)
        if info is None:
            self.fail(f"missing member {name!r}")
        want = info.file_size if limit is None else min(limit, info.file_size)
        chunks, got = [], 0
        try:
            with self.zf.open(info) as f:
                while got < want:
                    chunk = f.read(min(_CHUNK, want - got))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
        except Exception as exc:  # noqa: BLE001  (BadZipFile, CRC, zlib.error, EOFError, OSError...)
            self.fail(f"member {name!r} is corrupted ({type(exc).__name__}: {exc})")
        if got != want:
            self.fail(f"member {name!r} is truncated: {got} of {want} bytes")
        return b"".join(chunks)

    def json(self, name):
        return parse_json(self.read(name), f"{self.filepath!r}: member {name!r}")


# ================================================================================================
# writing
# ================================================================================================
_UMASK = None


def _umask():
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("Umask:"):
                        _UMASK = int(line.split()[1], 8)
                        break
        except OSError:
            pass
        if _UMASK is None:
            _UMASK = 0o022
    return _UMASK


def _pid_alive(pid):
    if pid == os.getpid() or os.name != "posix":
        return True  # (on Windows os.kill(pid, 0) would terminate the process, not probe it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: keep its file
    return True


def remove_stale_temporaries(directory, base):
    """Remove ``.<base>.<pid>.*.tmp`` files beside ``base`` whose writing process no longer runs
    (a save killed midway); returns their names."""
    pattern = re.compile(rf"^\.{re.escape(base)}\.(\d+)\.[A-Za-z0-9_]+\.tmp$")
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            match = pattern.match(name)
            if match and not _pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))
                    removed.append(name)
    return removed


def atomic_zip_write(filepath, write):
    """Write a zip archive with ``write(zipfile)`` to a temporary file next to ``filepath``, fsync
    it, then replace ``filepath`` with it: readers see the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(filepath))
    base = os.path.basename(filepath)
    remove_stale_temporaries(directory, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
                write(zf)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
