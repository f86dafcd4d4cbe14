"""``python -m samon_core owner register NAME`` and ``python -m samon_core cancel RUN_ID``.

    owner register NAME         register a name; prints its owner key once, and the link that
                                carries it (``?owner=NAME&key=KEY``)
    cancel RUN_ID --owner-key KEY | --teacher-token-file PATH | --owner teacher

``--owner`` of the commands that create runs defaults to ``cli`` (``owners.CLI_OWNER``), a
reserved name: no browser user can register it and so take over the runs of the server's command
line; only the teacher cancels or deletes them. Names are taken in normal form (``Alice`` is
``alice``; ``owners.normalize_owner_name``).

Errors follow the CLI's convention (samon_core.cli): bad input, an unknown key or a wrong token
raise ``ValueError`` (one line, exit code 2); a queue that cannot be reached exits with 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from samon_core.runs.messages import clip_message
from samon_core.runs.owners import CLI_OWNER, TEACHER_OWNER, normalize_owner_name
from samon_core.runs.store import RunStore


def add_credential_options(parser: argparse.ArgumentParser) -> None:
    """``--owner-key`` and ``--teacher-token-file`` on ``parser`` (read by
    ``samon_core.service.submit``)."""
    parser.add_argument("--owner-key", default=None, metavar="KEY",
                        help="the owner key of a registered name (`samon owner register NAME` "
                        "prints it)")
    parser.add_argument("--teacher-token-file", type=Path, default=None, metavar="PATH",
                        help="a file holding the teacher token (never the token itself on the "
                        "command line: it would show in `ps` and in the shell history)")


def add_owner_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--owner`` (default 'cli') and the credentials, for a command that creates runs."""
    parser.add_argument("--owner", default=CLI_OWNER,
                        help=f"owner recorded with {what} (default '{CLI_OWNER}', a reserved "
                        "name: only the teacher can cancel or delete those runs; a registered "
                        f"name needs --owner-key; '{TEACHER_OWNER}' needs the teacher token: the "
                        "settings' or --teacher-token-file)")
    add_credential_options(parser)


def add_acting_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--owner teacher`` and the credentials, for a command that acts on an existing run."""
    parser.add_argument("--owner", choices=(TEACHER_OWNER,), default=None,
                        help=f"{what} as the teacher with the teacher token of the settings")
    add_credential_options(parser)


def add_owner_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``owner`` and ``cancel`` commands under the CLI's subparsers ``sub``."""
    own = sub.add_parser("owner", help="owner names and their keys")
    osub = own.add_subparsers(dest="owner_command", required=True)
    reg = osub.add_parser("register", parents=[common],
                          help="register a name: prints its owner key (once) and its link")
    reg.add_argument("name", help="1-40 letters a-z, digits and _ . @ - (case does not count)")

    can = sub.add_parser("cancel", parents=[common],
                         help="cancel a run (its requester's key, or the teacher)")
    can.add_argument("run_id")
    add_acting_options(can, "cancel")


def cmd_owner(args: argparse.Namespace, store: RunStore) -> int:
    from samon_core.service.room import register_owner

    name = normalize_owner_name(args.name)  # the name as registered: 'Ann' is 'ann'
    key = register_owner(name, store=store)
    print(f"owner: {name}\nkey: {key}\nlink: ?{urlencode({'owner': name, 'key': key})}")
    print("samon: the key is shown only this once and cannot be recovered; keep it (or the link) "
          "secret: whoever has it acts as this owner", file=sys.stderr)
    return 0


def cmd_cancel(args: argparse.Namespace, store: RunStore) -> int:
    from samon_core.runs.database import DatabaseUnavailable
    from samon_core.service.control import cancel
    from samon_core.service.settings import load_settings
    from samon_core.service.submit import acting_credentials

    settings = load_settings()
    key, token = acting_credentials(args, settings, "cancel")
    try:
        answer = cancel(args.run_id, owner_key=key, teacher_token=token, store=store,
                        settings=settings)
    except DatabaseUnavailable as exc:
        print(f"samon: error: {clip_message(str(exc))}", file=sys.stderr)
        return 1
    print(f"{args.run_id}: {answer}")
    return 0
