"""``openprimary backup`` and ``openprimary restore``: one election to an encrypted file, and back.

What a backup holds and leaves out, and how a restore goes, are in ``bot.backup``; the
file and its key pair in ``ballots.backup_file``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import tempfile
from pathlib import Path

from ballots import audit, keys
from ballots.backup_file import (
    BackupFileError,
    Header,
    new_key_pair,
    open_backup,
    read_key,
    seal_backup,
)
from ballots.errors import OpenPrimaryError
from ballots.program import program
from bot.backup import Snapshot, restore, take
from openprimary.context import Context


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (mode 0600), never over an existing file: written
    beside it under a temporary name, then linked to its name (which fails if it exists)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise BackupFileError(f"{path}: cannot write: {err.strerror}") from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except OSError as err:
            if isinstance(err, FileExistsError) or path.exists() or path.is_symlink():
                raise FileExistsError(path) from err
            os.rename(tmp, path)  # a file system without hard links
            return
    except FileExistsError as err:
        raise BackupFileError(
            f"{path}: already exists; a backup never replaces a file: choose another name"
        ) from err
    except OSError as err:
        raise BackupFileError(f"{path}: cannot write: {err.strerror}") from err
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


async def backup_command(args: argparse.Namespace, ctx: Context) -> int:
    """Make a backup key pair, or write one election's backup sealed to a backup key."""
    if args.new_key:
        if args.election or args.out or args.key:
            raise OpenPrimaryError(
                "--new-key makes a backup key and nothing else; take a backup with "
                f"'{program()} backup --election ID --out FILE --key KEYFILE.pub'"
            )
        key = new_key_pair(Path(args.new_key))
        ctx.out.write(
            f"backup key {key.fingerprint}:\n"
            f"  {args.new_key}      the private half (mode 0600): it alone opens the backups; "
            "keep it offline with the organisers\n"
            f"  {args.new_key}.pub  the public half: give it to the servers that take backups\n"
        )
        return 0
    missing = [
        flag for flag, given in (("--election", args.election), ("--out", args.out)) if not given
    ]
    if not args.key:
        missing.append("--key")
    if missing:
        raise OpenPrimaryError(
            f"backup needs {', '.join(missing)}: '{program()} backup --election ID --out FILE "
            f"--key KEYFILE.pub' (make a key with '{program()} backup --new-key KEYFILE')"
        )
    key = read_key(Path(args.key))
    out = Path(args.out)
    if out.exists() or out.is_symlink():
        raise BackupFileError(
            f"{out}: already exists; a backup never replaces a file: choose another name"
        )
    taken = await take(ctx.redis, args.election, ctx.clock)
    snapshot = taken.snapshot
    election = snapshot.election
    data = seal_backup(
        Header(election.id, snapshot.taken, key.fingerprint), snapshot.to_payload(), key.public
    )
    _write_new(out, data)
    await audit.record(
        ctx.redis,
        ctx.clock,
        election.id,
        ctx.actor,
        "backup taken",
        file=str(out),
        backup_key=key.fingerprint,
        supporters=snapshot.supporters,
        sealed=snapshot.sealed,
        size=len(data),
        mismatched=taken.problems,
    )
    ctx.out.write(
        f"backed up {election.id} to {out} ({len(data):,} bytes): {snapshot.supporters:,} "
        f"supporters, {snapshot.sealed:,} sealed ballots, {len(snapshot.jobs())} reminder "
        f"job(s); sealed to backup key {key.fingerprint}, whose private half alone opens it.\n"
        "Not in it: chat states (transient: after a restore every chat starts afresh)"
        + (
            ", nor the unsealed ballot box and the results (after a restore the trustees "
            "unseal again)"
            if snapshot.unsealed
            else ""
        )
        + ".\n"
    )
    if key.private is not None:
        ctx.err.write(
            f"note: {args.key} is the private half of the backup key; the servers that take "
            f"backups need only {args.key}.pub\n"
        )
    if taken.import_under_way:
        ctx.err.write(
            "warning: a roll import was under way: the backup may hold part of it (after a "
            "restore, run the same import again)\n"
        )
    if taken.problems:
        ctx.err.write(
            f"warning: in Redis the sealed ballots of {election.id} do not match its voters, "
            "as the unseal would find them: the backup keeps them as they are, for "
            "investigation, and cannot be restored. " + "; ".join(taken.problems) + "\n"
        )
    return 0


def _secret_fingerprint(secret: str) -> str:
    """The fingerprint ``ballots.election.bind_secret_key`` keeps with an election."""
    return hmac.new(
        secret.encode(), b"openprimary secret key fingerprint", hashlib.sha256
    ).hexdigest()[:16]


async def restore_command(args: argparse.Namespace, ctx: Context) -> int:
    """Open a backup with the private backup key and put its election in place."""
    key = read_key(Path(args.key))
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BackupFileError(f"{path}: cannot read: {err.strerror}") from err
    _, payload = open_backup(data, str(path), key)
    snapshot = Snapshot.from_payload(payload, str(path))
    election = snapshot.election
    done = await restore(
        ctx.redis,
        snapshot,
        ctx.clock,
        ctx.actor,
        source=str(path),
        digest=hashlib.sha256(data).hexdigest()[:32],
        force=args.force,
    )
    ctx.out.write(
        f"restored {election.id} from {path} (taken {snapshot.taken:%Y-%m-%d %H:%M} UTC): "
        f"{done.supporters:,} supporters, {done.sealed:,} sealed ballots"
        + (", finishing the restore that did not" if done.resumed else "")
        + ("; the election that was here is replaced" if done.replaced else "")
        + ".\n"
    )
    if done.chats:
        ctx.out.write(
            f"{done.chats} chat{'s' if done.chats != 1 else ''} of the election "
            f"start{'' if done.chats != 1 else 's'} afresh.\n"
        )
    for job in done.paused:
        ctx.out.write(
            f"reminder job {job} was running: it is paused, as it may have sent more since "
            f"the backup; resume it with '{program()} remind --resume {job}'\n"
        )
    if snapshot.unsealed:
        ctx.out.write(
            f"{election.id} had been unsealed ({snapshot.unsealed}); a backup holds no "
            "unsealed ballots: the trustees unseal it again before it is counted "
            f"('{program()} unseal --election {election.id} --share FILE ...')"
            + (", then an organiser publishes the results again" if snapshot.published else "")
            + ".\n"
        )
    head = str(await ctx.redis.hget(keys.election(election.id), "key_fingerprint") or "")
    if head and ctx.settings.secret_key and head != _secret_fingerprint(ctx.settings.secret_key):
        ctx.err.write(
            f"warning: {election.id} ran with another OPENPRIMARY_SECRET_KEY (fingerprint "
            f"{head}): set that one, or its servers refuse to start and no voting code works\n"
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup`` and ``restore``."""
    p = sub.add_parser(
        "backup",
        help="write one election to a file encrypted to the organisers' backup key",
        description=(
            "Write a consistent snapshot of one election (its definition, roll, codes' "
            "hashes, sealed ballots, receipts, turnout, reminder jobs and audit trail) to "
            "FILE, sealed to a backup key: only the key's private half, which the organisers "
            "keep offline, opens it. No chat state and no unsealed ballot is ever in it. "
            "--new-key KEYFILE makes a key pair: KEYFILE (private) and KEYFILE.pub."
        ),
    )
    p.add_argument("--election", metavar="ID")
    p.add_argument("--out", metavar="FILE", help="the backup file to write (never replaced)")
    p.add_argument(
        "--key", metavar="KEYFILE", help="the backup key's public half (KEYFILE.pub) or either"
    )
    p.add_argument(
        "--new-key",
        metavar="KEYFILE",
        help="make a backup key pair: KEYFILE (private, 0600) and KEYFILE.pub; nothing else",
    )
    p.set_defaults(handler=backup_command)

    p = sub.add_parser(
        "restore",
        help="put an election back from a backup file (the private backup key opens it)",
        description=(
            "Open FILE with the backup key's private half and write its election into Redis: "
            "refused if the file was changed or the key is not its own, and, without --force, "
            "if Redis holds any key of the election. Running it again finishes a restore that "
            "stopped part-way."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the private backup key")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the election if Redis holds it: every key of it is deleted first",
    )
    p.set_defaults(handler=restore_command)
