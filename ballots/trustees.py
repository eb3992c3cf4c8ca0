"""The election's count key, held by trustees as shares: made once, rebuilt only for the count.

``openprimary trustees init`` makes a 16-byte secret with ``secrets``, derives
the X25519 count key from it (``ballots.seal.private_key_from_seed``), stores
the public half with the election and splits the secret with Shamir's scheme
(pycryptodome), so that any K of the N share files rebuild it and fewer tell
nothing.  The secret and the private key are never written anywhere else.

A share file is a small TOML text, readable by its trustee, with a check
value over its fields so that a share copied wrongly is caught before it is
used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from Crypto.Protocol.SecretSharing import Shamir
from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election
from ballots.errors import OpenPrimaryError
from ballots.seal import check_public_key, key_id, public_key_from_seed

SEED_BYTES = 16
MAX_SHARES = 255


class ShareError(OpenPrimaryError):
    """A share file that cannot be used, or shares that do not rebuild the key."""


@dataclass(frozen=True)
class CountKey:
    """An election's public count key and its fingerprint."""

    public: bytes
    id: str


@dataclass(frozen=True)
class Share:
    """One trustee's share of an election's count key."""

    election: str
    index: int
    shares: int
    threshold: int
    key_id: str
    secret: bytes
    path: str = ""

    def check_value(self) -> str:
        text = "|".join(
            (self.election, str(self.index), str(self.shares), str(self.threshold), self.key_id)
        )
        return hashlib.blake2b(
            text.encode() + self.secret, digest_size=8, person=b"op-share"
        ).hexdigest()

    def render(self) -> str:
        return (
            f"# OpenPrimary trustee share {self.index} of {self.shares} for election "
            f"{self.election}.\n"
            f"# Any {self.threshold} shares rebuild the key that opens the sealed ballots.\n"
            "# Keep this file secret and offline until the count; never copy it to the server.\n"
            f'election = "{self.election}"\n'
            f"share = {self.index}\n"
            f"shares = {self.shares}\n"
            f"threshold = {self.threshold}\n"
            f'key_id = "{self.key_id}"\n'
            f'secret = "{self.secret.hex()}"\n'
            f'check = "{self.check_value()}"\n'
        )


def split_seed(
    seed: bytes, election_id: str, shares: int, threshold: int, public_key: bytes
) -> list[Share]:
    """Split a count key's seed into ``shares`` shares, any ``threshold`` of which rebuild it."""
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise OpenPrimaryError(
            f"--threshold {threshold} --shares {shares}: need 2 <= threshold <= shares <= "
            f"{MAX_SHARES} (with a threshold of 1 every share would be the whole key)"
        )
    kid = key_id(public_key)
    parts = Shamir.split(threshold, shares, seed)
    return [Share(election_id, i, shares, threshold, kid, bytes(part)) for i, part in parts]


def write_shares(out_dir: Path, shares: Sequence[Share]) -> list[Path]:
    """Write ``share-N.key`` files readable by their owner only; never overwrite one."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = [out_dir / f"share-{s.index}.key" for s in shares]
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise OpenPrimaryError(
            f"{', '.join(existing)} already exist; choose an empty --out directory "
            "(old shares are of no use with a new key)"
        )
    for share, path in zip(shares, paths, strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(share.render())
    return paths


def read_share(path: Path) -> Share:
    """Read one share file; ShareError naming the file and what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ShareError(f"{path}: cannot read the share: {err.strerror}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ShareError(f"{path}: corrupted share: not a share file ({err})") from err
    try:
        share = Share(
            election=str(data["election"]),
            index=_whole(data["share"]),
            shares=_whole(data["shares"]),
            threshold=_whole(data["threshold"]),
            key_id=str(data["key_id"]),
            secret=bytes.fromhex(str(data["secret"])),
            path=str(path),
        )
        check = str(data["check"])
    except (KeyError, ValueError, TypeError) as err:
        raise ShareError(f"{path}: corrupted share: a field is missing or malformed") from err
    if len(share.secret) != SEED_BYTES or not hmac.compare_digest(check, share.check_value()):
        raise ShareError(
            f"{path}: corrupted share: its check value does not match its contents "
            "(was it copied or typed wrongly?)"
        )
    return share


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not a whole number")
    return value


def combine(shares: Sequence[Share], election_id: str, stored: CountKey) -> bytes:
    """Rebuild the count key's seed from the shares, checked against the stored public key."""
    if not shares:
        raise ShareError("no share given")
    for share in shares:
        if share.election != election_id:
            raise ShareError(
                f"{share.path}: this share is for election {share.election}, not {election_id}"
            )
        if share.key_id != stored.id:
            raise ShareError(
                f"{share.path}: this share is of another count key of {election_id} (key "
                f"{share.key_id}; the election's key is {stored.id}): 'trustees init' was run "
                "again after it was made"
            )
    by_index: dict[int, Share] = {}
    for share in shares:
        if share.index in by_index:
            raise ShareError(f"{share.path}: share {share.index} is given twice")
        by_index[share.index] = share
    threshold = shares[0].threshold
    if len(by_index) < threshold:
        raise ShareError(
            f"{threshold} different shares are needed to rebuild the count key of "
            f"{election_id}; {len(by_index)} given"
        )
    chosen = sorted(by_index.values(), key=lambda s: s.index)[:threshold]
    seed = bytes(Shamir.combine([(s.index, s.secret) for s in chosen]))
    if not hmac.compare_digest(public_key_from_seed(seed), stored.public):
        raise ShareError(
            f"the shares do not rebuild the count key of {election_id}: one of them has been "
            "altered (its check value was forged too)"
        )
    return seed


def new_seed() -> bytes:
    """A fresh count key seed."""
    return secrets.token_bytes(SEED_BYTES)


#: Sets the count key if the election has none (or still has the one being replaced).
_CLAIM = """
local current = redis.call('HGET', KEYS[1], 'count_key_id')
if (current or '') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'count_key', ARGV[1], 'count_key_id', ARGV[2])
return 1
"""


async def load_count_key(redis: Redis, election_id: str) -> CountKey | None:
    """The election's public count key, or None before ``trustees init``."""
    raw = await redis.hget(keys.election(election_id), "count_key")
    if raw is None:
        return None
    public = check_public_key(bytes.fromhex(str(raw)))
    return CountKey(public, key_id(public))


async def store_count_key(
    redis: Redis, election: Election, public: bytes, *, replace: str | None = None
) -> CountKey:
    """Store the public count key with the election and in every shard the cast script reads.

    Without ``replace`` (the id of the key being replaced) the election must have
    no key yet: of two ``trustees init`` run at once, one is refused here.
    """
    key = CountKey(check_public_key(public), key_id(public))
    claimed = await redis.eval(
        _CLAIM, 1, keys.election(election.id), public.hex(), key.id, replace or ""
    )
    if not claimed:
        raise OpenPrimaryError(
            f"election {election.id}'s count key changed while this one was being made "
            "(another 'trustees init' ran at the same time); discard these shares"
        )
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.hset(keys.shard_meta(election.id, shard), "key", key.id)
        await pipe.execute()
    return key


async def make_count_key(
    redis: Redis,
    election: Election,
    out_dir: Path,
    shares: int,
    threshold: int,
    *,
    replace: str | None = None,
) -> tuple[CountKey, list[Path]]:
    """Make a count key: claim it for the election, then write the shares; forget the rest.

    The key is claimed first, so of two runs at once only one hands out shares;
    if the shares cannot be written, the claim is taken back, since ballots
    sealed to a key nobody holds could never be opened.
    """
    seed = new_seed()
    public = public_key_from_seed(seed)
    parts = split_seed(seed, election.id, shares, threshold, public)
    if any((out_dir / f"share-{p.index}.key").exists() for p in parts):
        raise OpenPrimaryError(
            f"{out_dir} already holds share files; choose an empty directory "
            "(old shares are of no use with a new key)"
        )
    key = await store_count_key(redis, election, public, replace=replace)
    try:
        paths = write_shares(out_dir, parts)
    except (OSError, OpenPrimaryError) as err:
        await redis.hdel(keys.election(election.id), "count_key", "count_key_id")
        reason = err.strerror if isinstance(err, OSError) else str(err)
        raise OpenPrimaryError(
            f"cannot write the shares to {out_dir}: {reason}; the election has no count key"
        ) from err
    return key, paths
