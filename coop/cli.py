"""The ``coop`` command: serve, migrate, create accounts, seal tables, verify the ledger, print the OpenAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from coop.kit.settings import get_settings


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from coop.kit.migrate import upgrade_to_head

    settings = get_settings()
    upgrade_to_head(settings.resolved_database_url)
    if args.demo_if_empty:
        from coop.demo.loader import load_demo_if_empty

        load_demo_if_empty(settings)
    uvicorn.run("api.app:create_serving_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, access_log=False, timeout_keep_alive=args.timeout_keep_alive,
                timeout_graceful_shutdown=args.timeout_graceful_shutdown)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from coop.demo.loader import database_is_empty, load_demo, summary
    from coop.kit.db import engine_for
    from coop.kit.migrate import upgrade_to_head

    settings = get_settings()
    upgrade_to_head(settings.resolved_database_url)
    if not args.force and not database_is_empty(engine_for(settings.resolved_database_url)):
        print("the database already has accounts; use --force to add the demo co-op anyway", file=sys.stderr)
        return 1
    result, out = load_demo(settings=settings, size=args.size, seed=args.seed, days=args.days)
    print(summary(result, out))
    return 0


def _cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from coop.kit.migrate import upgrade_to_head

    upgrade_to_head(get_settings().resolved_database_url)
    print("database is at the newest schema")
    return 0


def _cmd_accounts_create(args: argparse.Namespace) -> int:
    from coop.accounts.models import Role
    from coop.accounts.service import create_account
    from coop.kit.crypto import get_keyring
    from coop.kit.db import session_scope
    from coop.kit.migrate import upgrade_to_head

    upgrade_to_head(get_settings().resolved_database_url)
    roles = [Role(role) for role in args.role]
    with session_scope() as session:
        account, issued = create_account(session, roles=roles, display_name=args.name,
                                         organisation=args.organisation, keyring=get_keyring())
    if args.json:
        print(json.dumps({"account_id": account.id, "token": issued.token, "token_id": issued.token_id}))
    else:
        print(f"account {account.id} ({', '.join(account.roles)}) created")
        print(f"token (shown once, keep it secret): {issued.token}")
    return 0


def _cmd_accounts_erase(args: argparse.Namespace) -> int:
    from coop.accounts.models import Account, Role
    from coop.kit.crypto import get_keyring
    from coop.kit.db import session_scope
    from coop.kit.migrate import upgrade_to_head
    from coop.rights.erasure import erase_member

    upgrade_to_head(get_settings().resolved_database_url)
    with session_scope() as session:
        account = session.get(Account, args.account_id)
        if account is None or Role.MEMBER.value not in account.roles:
            print(f"no member {args.account_id!r}", file=sys.stderr)
            return 1
        result = erase_member(session, member_id=account.id, keyring=get_keyring(),
                              controller_name=get_settings().name)
    print(json.dumps(result.model_dump()))
    return 0


def _cmd_ledger_verify(args: argparse.Namespace) -> int:
    from coop.kit.db import get_engine
    from coop.ledger.verify import verify_chain

    with get_engine().connect() as connection:
        report = verify_chain(connection)
    if args.json:
        print(json.dumps({"ok": report.ok, "entries": report.entries, "head_hash": report.head_hash,
                          "first_bad_seq": report.first_bad_seq}))
    elif report.ok:
        print(f"ledger ok: {report.entries} entries, head hash {report.head_hash}")
    else:
        print(f"ledger NOT ok: first bad entry is seq {report.first_bad_seq} ({report.reason}); "
              f"{report.entries} entries checked")
    return 0 if report.ok else 1


def _cmd_seal(args: argparse.Namespace) -> int:
    from coop.kit.db import get_engine
    from coop.kit.migrate import upgrade_to_head
    from coop.tables.service import seal_due

    settings = get_settings()
    upgrade_to_head(settings.resolved_database_url)
    reports = seal_due(get_engine(), settings)
    if args.json:
        print(json.dumps([{"family_id": r.family_id, "kind": r.kind, "purpose": r.purpose_code,
                           "time_bucket": r.time_bucket, "resolution": r.resolution,
                           "buckets_sealed": r.buckets_sealed,
                           "sealed_through": r.sealed_through.isoformat() if r.sealed_through else None}
                          for r in reports]))
        return 0
    if not reports:
        print("no table family is open yet: nothing to seal")
    for r in reports:
        through = r.sealed_through.isoformat() if r.sealed_through else "nothing yet"
        print(f"family {r.family_id} ({r.kind}, {r.purpose_code}, {r.time_bucket}, res {r.resolution}): "
              f"sealed {r.buckets_sealed} bucket(s) now; sealed through {through}")
    return 0


def _cmd_openapi(_args: argparse.Namespace) -> int:
    from api.app import create_app

    print(json.dumps(create_app().openapi(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coop", description="The residents' data co-op backend.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="upgrade the database, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--timeout-keep-alive", type=int, default=5,
                       help="seconds an idle keep-alive connection stays open (default 5)")
    serve.add_argument("--timeout-graceful-shutdown", type=int, default=30,
                       help="on SIGTERM, seconds to let requests in flight finish (default 30)")
    serve.add_argument("--demo-if-empty", action="store_true",
                       help="load the demo co-op first when the database has no accounts")
    serve.set_defaults(handler=_cmd_serve)

    demo = commands.add_parser("demo", help="load the demo co-op (synthetic residents, a licence, a release)")
    demo.add_argument("--size", type=int, default=2500, help="number of residents (default 2500)")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--days", type=int, default=7, help="days of pings, ending yesterday (default 7)")
    demo.add_argument("--force", action="store_true", help="load even if the database already has accounts")
    demo.set_defaults(handler=_cmd_demo)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate the database to the newest schema").set_defaults(handler=_cmd_db_upgrade)

    accounts = commands.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="accounts_command", required=True)
    create = accounts.add_parser("create", help="create an account and print its first token")
    create.add_argument("--role", action="append", required=True,
                        choices=["member", "modeller", "board", "treasurer", "admin"])
    create.add_argument("--name", required=True)
    create.add_argument("--organisation")
    create.add_argument("--json", action="store_true", help='print {"account_id", "token", "token_id"}')
    create.set_defaults(handler=_cmd_accounts_create)
    erase = accounts.add_parser("erase", help="erase a member as DELETE /v1/me does (idempotent: re-run it "
                                              "after restoring a backup); prints the counts as JSON")
    erase.add_argument("account_id")
    erase.set_defaults(handler=_cmd_accounts_erase)

    ledger = commands.add_parser("ledger", help="the hash-chained ledger").add_subparsers(
        dest="ledger_command", required=True)
    verify = ledger.add_parser("verify", help="recompute every entry's hash; exit status 1 if any is bad")
    verify.add_argument("--json", action="store_true", help='print {"ok", "entries", "head_hash", "first_bad_seq"}')
    verify.set_defaults(handler=_cmd_ledger_verify)

    seal = commands.add_parser("seal", help="seal every due bucket of every open table family now, and say what "
                                            "was sealed (never how many people)")
    seal.add_argument("--json", action="store_true", help="print one JSON object per family")
    seal.set_defaults(handler=_cmd_seal)

    commands.add_parser("openapi", help="print the OpenAPI document").set_defaults(handler=_cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
