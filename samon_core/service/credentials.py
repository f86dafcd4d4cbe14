"""Credentials given on a command line: ``--owner-key KEY``, ``--teacher-token-file PATH`` and
``--owner teacher``, for ``samon run``, ``samon claim run``, ``samon cancel`` and ``samon
landscape`` (the options themselves: ``samon_core.owner_cli.add_credential_options``).

The teacher token is never an option value: a command line shows in ``ps`` to every user of the
machine and stays in the shell history. It comes from a file (``--teacher-token-file``) or, for
``--owner teacher``, from the settings where it is configured (whoever can read those is the
server's administrator anyway). An owner key may be given as an option: it only speaks for one
student's runs. What the credentials allow is identity.py's rule, the same as for the app.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from pydantic import SecretStr

from samon_core.runs.config import RunConfig
from samon_core.runs.io import read_text_safely
from samon_core.runs.messages import clip
from samon_core.runs.owners import TEACHER_OWNER, is_teacher_name
from samon_core.runs.store import RunStore
from samon_core.service.identity import Identity, authorize_owner
from samon_core.service.room import check_room, read_room
from samon_core.service.settings import Settings, env_name

TOKEN_FILE_MAX_BYTES = 4096  # a token is a line; a large file is the wrong file

def read_token_file(path: Path) -> str:
    """The token in the file ``path`` (surrounding blanks and the newline removed). The message
    of a bad file never quotes what it holds."""
    token = read_text_safely(path, TOKEN_FILE_MAX_BYTES, "teacher token file").strip()
    if not token:
        raise ValueError(f"teacher token file {clip(str(path))} is empty")
    return token


def teacher_token(args: argparse.Namespace, settings: Settings) -> str | SecretStr | None:
    """The teacher token the command acts with: the file's, else the configured one when
    ``--owner teacher``, else None."""
    if args.teacher_token_file is not None:
        return read_token_file(args.teacher_token_file)
    owner = getattr(args, "owner", None)
    if isinstance(owner, str) and is_teacher_name(owner):
        if settings.teacher_token is None:
            raise ValueError(f"--owner {TEACHER_OWNER} needs the teacher token: configure "
                             f"teacher_token (samon.toml or ${env_name('teacher_token')}) or "
                             "give --teacher-token-file")
        return settings.teacher_token
    return None


def acting_credentials(args: argparse.Namespace, settings: Settings,
                       action: str) -> tuple[str | None, str | SecretStr | None]:
    """(owner key, teacher token) of a command that acts on an existing run (``cancel``,
    ``landscape``); ``ValueError`` naming the options when neither was given."""
    token = teacher_token(args, settings)
    if args.owner_key is None and token is None:
        raise ValueError(f"{action} needs --owner-key KEY (a requester of the run), "
                         f"--teacher-token-file PATH or --owner {TEACHER_OWNER}")
    return args.owner_key, token


def check_cli_request(args: argparse.Namespace, configs: Iterable[RunConfig],
                      preset: str | None, store: RunStore, settings: Settings) -> Identity:
    """Whether the command may train ``configs`` under ``--owner`` (in normal form; its key,
    or the teacher token) within the room's locks (the teacher is exempt); ``ValueError`` with
    one line if not, before any run folder exists. ``--owner`` defaults to ``cli``, a reserved
    name: nobody can register it, so only the teacher manages those runs."""
    ident = authorize_owner(args.owner, args.owner_key, teacher_token(args, settings),
                            store=store, settings=settings)
    if not ident.is_teacher:
        check_room(read_room(store), configs, preset, outcome="nothing was started")
    return ident
