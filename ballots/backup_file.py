"""An election backup as a file: a header in the clear, the snapshot sealed to the organisers'
backup key.

**Why a key pair.**  A backup holds the roll (names, phones, Telegram ids), who has voted,
the sealed ballots next to their voters' records, the codes' hashes and the audit trail:
as secret as Redis itself.  The server that takes backups (often on a timer, unattended)
should not be able to read them.  So the backup key is an X25519 key pair (PyNaCl, libsodium):
``openprimary backup --new-key KEYFILE`` writes the private half to KEYFILE (mode 0600,
for the organisers to keep offline) and the public half to KEYFILE.pub (for the server).
Taking a backup needs only the public half; restoring needs the private half.  A single
secret key would have to sit on the server that takes backups, where anyone who takes the
server could read every backup it ever made.

**What the file is.**  ``openprimary-backup`` and a newline; one line of JSON, the header
(format version, election id, when it was taken, the backup key's fingerprint: nothing
about any supporter); then the body: a fresh 32-byte data key sealed to the backup key
(libsodium's sealed box, 80 bytes), a 24-byte nonce, and the snapshot (JSON, zlib-compressed)
encrypted under the data key with XChaCha20-Poly1305, whose associated data is the magic and
the header: changing any byte of the header or the body makes the file refuse to open.

**What the key pair does not give.**  Anyone holding the public half can make a file that
opens: the seal proves a file is unchanged since it was made, not who made it.  The public
half goes only to the servers that take backups, whose operators can write to Redis anyway;
a restore still writes nothing but the named election's own keys, and checks the sealed
ballots against the voters as the unseal does (``bot.backup``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.utils import random

from ballots.errors import OpenPrimaryError

#: The first bytes of every backup file.
MAGIC = b"openprimary-backup\n"
#: The file format this code writes and reads.
FORMAT = 1
#: A header is a few hundred bytes; more is not a backup's.
_HEADER_MAX = 4096
_DATA_KEY = 32
_NONCE = 24
_SEALED_KEY = _DATA_KEY + 48  # a sealed box adds an ephemeral public key and a MAC
#: What the header says the body is.
CIPHER = "x25519-sealedbox+xchacha20poly1305"
_KIND = "openprimary_backup_key"


class BackupFileError(OpenPrimaryError):
    """A backup file or backup key that cannot be used; the message names the file."""


def fingerprint(public: bytes) -> str:
    """A backup key's short fingerprint: in both halves' files and in every backup's header."""
    return hashlib.blake2b(public, digest_size=8, person=b"op-backup-key").hexdigest()


@dataclass(frozen=True)
class BackupKey:
    """A backup key read from its file: the public half, and the private one if the file
    holds it."""

    public: bytes
    private: bytes | None
    path: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


def _render(kind: str, key: bytes, fp: str, pub_name: str) -> str:
    if kind == "private":
        intro = (
            f"# OpenPrimary backup key {fp}, PRIVATE half: it opens every backup made for this\n"
            "# key. Keep it offline with the organisers; never copy it to the servers, which\n"
            f"# need only {pub_name}. Restoring a backup needs this file.\n"
        )
    else:
        intro = (
            f"# OpenPrimary backup key {fp}, public half: it makes backups that only the\n"
            "# private half opens. Give it to the servers that take backups\n"
            "# (openprimary backup --key THIS-FILE).\n"
        )
    return f'{intro}{_KIND} = "{kind}"\nkey = "{key.hex()}"\nfingerprint = "{fp}"\n'


def new_key_pair(path: Path) -> BackupKey:
    """Make a backup key pair: the private half to ``path`` (mode 0600), the public half to
    ``path``.pub.  Neither file may exist already: a key that was overwritten would leave
    every backup made for it unreadable."""
    pub_path = path.with_name(path.name + ".pub")
    existing = [str(p) for p in (path, pub_path) if p.exists() or p.is_symlink()]
    if existing:
        raise BackupFileError(
            f"{existing[0]}: already exists; a backup key is never overwritten (the backups "
            "made for it would no longer open): choose another name"
        )
    private = PrivateKey.generate()
    public = bytes(private.public_key)
    fp = fingerprint(public)
    written: list[Path] = []
    try:
        for where, kind, key, mode in (
            (path, "private", bytes(private), 0o600),
            (pub_path, "public", public, 0o644),
        ):
            fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            written.append(where)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(_render(kind, key, fp, pub_path.name))
    except OSError as err:
        for made in written:
            made.unlink(missing_ok=True)
        raise BackupFileError(f"{err.filename or path}: cannot write: {err.strerror}") from err
    return BackupKey(public, bytes(private), str(path))


def read_key(path: Path) -> BackupKey:
    """Read either half of a backup key; BackupFileError naming the file and what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise BackupFileError(f"{path}: cannot read the backup key: {err.strerror}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BackupFileError(f"{path}: not a backup key file ({err})") from err
    kind = data.get(_KIND)
    try:
        raw = bytes.fromhex(str(data["key"]))
        fp = str(data["fingerprint"])
        if kind == "private":
            secret = PrivateKey(raw)
            key = BackupKey(bytes(secret.public_key), bytes(secret), str(path))
        elif kind == "public":
            key = BackupKey(bytes(PublicKey(raw)), None, str(path))
        else:
            raise ValueError(kind)
    except (KeyError, ValueError, TypeError) as err:
        raise BackupFileError(
            f"{path}: not a backup key file (made by 'openprimary backup --new-key'), or a "
            "field of it is missing or malformed"
        ) from err
    if fp != key.fingerprint:
        raise BackupFileError(
            f"{path}: corrupted backup key: its fingerprint does not match its key (was it "
            "copied or typed wrongly?)"
        )
    return key


@dataclass(frozen=True)
class Header:
    """What a backup file says about itself in the clear."""

    election: str
    taken: datetime
    key: str
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        return (
            json.dumps(
                {
                    "format": self.format,
                    "election": self.election,
                    "taken": self.taken.isoformat(timespec="seconds"),
                    "key": self.key,
                    "cipher": CIPHER,
                    "compression": "zlib",
                },
                sort_keys=True,
            ).encode()
            + b"\n"
        )


def seal_backup(header: Header, payload: Any, public: bytes) -> bytes:
    """The whole file: ``payload`` (JSON-able) compressed and sealed to the backup key."""
    if header.key != fingerprint(public):
        raise ValueError("the header names another backup key")
    plain = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)
    data_key = random(_DATA_KEY)
    nonce = random(_NONCE)
    head = MAGIC + header.to_bytes()
    sealed_key = SealedBox(PublicKey(public)).encrypt(data_key)
    body = crypto_aead_xchacha20poly1305_ietf_encrypt(plain, head, nonce, data_key)
    return head + bytes(sealed_key) + nonce + body


def read_header(data: bytes, path: str) -> tuple[Header, int]:
    """The header of a backup file, and where its body starts."""
    if not data.startswith(MAGIC):
        raise BackupFileError(f"{path}: not an OpenPrimary backup (it does not start as one)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_MAX)
    if end < 0:
        raise BackupFileError(f"{path}: damaged backup: its header has no end")
    try:
        fields = json.loads(data[len(MAGIC) : end])
        version = int(fields["format"])
        if version != FORMAT:
            raise BackupFileError(
                f"{path}: a backup of format {version}; this OpenPrimary reads format {FORMAT}"
            )
        header = Header(
            election=str(fields["election"]),
            taken=datetime.fromisoformat(str(fields["taken"])),
            key=str(fields["key"]),
            format=version,
        )
        if fields.get("cipher") != CIPHER:
            raise ValueError(fields.get("cipher"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise BackupFileError(f"{path}: damaged backup: its header is not readable") from err
    return header, end + 1


def open_backup(data: bytes, path: str, key: BackupKey) -> tuple[Header, Any]:
    """The header and the snapshot of a backup file, opened with the private backup key.

    Refused, naming the file: a key that is not the one the backup was made for, a public
    half, and a file changed or cut short since it was made (any byte of it).
    """
    header, start = read_header(data, path)
    if key.private is None:
        raise BackupFileError(
            f"{key.path}: the public half of backup key {key.fingerprint}; restoring needs "
            f"the private half (the file without .pub)"
        )
    if header.key != key.fingerprint:
        raise BackupFileError(
            f"{path}: made for backup key {header.key}, and {key.path} is key "
            f"{key.fingerprint}: give the key the backup was made for"
        )
    body = data[start:]
    if len(body) < _SEALED_KEY + _NONCE + 16:
        raise BackupFileError(f"{path}: damaged backup: it is cut short")
    sealed_key, nonce = body[:_SEALED_KEY], body[_SEALED_KEY : _SEALED_KEY + _NONCE]
    try:
        data_key = SealedBox(PrivateKey(key.private)).decrypt(sealed_key)
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
            body[_SEALED_KEY + _NONCE :], data[:start], nonce, data_key
        )
    except CryptoError as err:
        raise BackupFileError(
            f"{path}: does not open: the file has been changed or damaged since it was made "
            "(its authentication fails)"
        ) from err
    try:
        payload = json.loads(zlib.decompress(plain))
    except (zlib.error, ValueError) as err:  # authentic, so written by another program
        raise BackupFileError(f"{path}: opens, but holds no snapshot this code reads") from err
    if not isinstance(payload, dict) or payload.get("election") != header.election:
        raise BackupFileError(f"{path}: opens, but its snapshot is not of {header.election}")
    return header, payload
