"""The node's data folder and its identity file (PROTOCOL.md §1.1).

The secret is created on first use with mode 0600 and O_EXCL, and never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ssbsync.core.keys import KeyFileError, Keypair, format_secret_file, parse_secret_file

SECRET = "secret"
DATABASE = "db.sqlite"


class IdentityError(Exception):
    """The identity cannot be loaded, created or imported; says why."""


def data_folder(explicit: str | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """`--path DIR`, else $SSBSYNC_PATH, else ~/.ssbsync."""
    chosen = explicit or env.get("SSBSYNC_PATH") or str(Path.home() / ".ssbsync")
    return Path(chosen).expanduser()


def read_secret(file: Path) -> Keypair:
    try:
        text = file.read_text(encoding="ascii", errors="replace")
    except OSError as err:
        raise IdentityError(f"cannot read {file}: {err.strerror}") from None
    try:
        return parse_secret_file(text)
    except KeyFileError as err:
        raise IdentityError(f"{file}: {err}") from None


def load_or_create(folder: Path, random_bytes: Callable[[int], bytes] = os.urandom) -> Keypair:
    """The identity in `folder`, created (0600, never overwriting) if there is none yet."""
    file = folder / SECRET
    if file.exists():
        return read_secret(file)
    return _write_new(file, Keypair.from_seed(random_bytes(32)))


def import_secret(folder: Path, source: Path, has_published: Callable[[Keypair], bool]) -> Keypair:
    """Make the identity in `source` (e.g. ~/.ssb/secret) this node's identity.

    An existing identity is kept unless it has published nothing: then it is moved aside to
    `secret.unused-<id>` (never deleted) so that an accidental first run does not block.
    """
    keys = read_secret(source)
    file = folder / SECRET
    if file.exists():
        current = read_secret(file)
        if current == keys:
            return keys
        if has_published(current):
            raise IdentityError(
                f"{folder} already has the identity {current.id}, which has published "
                "messages; it is never replaced. Use another --path for the imported key."
            )
        aside = folder / f"{SECRET}.unused-{current.id[1:9].replace('/', '_')}"
        os.replace(file, aside)
    return _write_new(file, keys)


def _write_new(file: Path, keys: Keypair) -> Keypair:
    """Write the secret atomically: a crash leaves either no secret or a whole one."""
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(format_secret_file(keys))
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, file)  # fails if it exists: never overwrites
    except FileExistsError:
        return read_secret(file)  # another process created it first: use that one
    finally:
        temporary.unlink(missing_ok=True)
    return keys
