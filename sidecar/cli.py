"""`pdex-sidecar`: the command line of the product."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson

import uvloop
from aiohttp import web

from sidecar import logs
from sidecar.app import METRICS_APP_KEY, create_app
from sidecar.audit.chain import AuditRecord, append, verify
from sidecar.auth.scopes import ScopeError, parse_scopes
from sidecar.auth.tokens import create_signing_key
from sidecar.client.partner_discovery import DiscoveryFailed, discover
from sidecar.client.progress import Progress
from sidecar.client.pull import Pull, PullOptions
from sidecar.client.schedule import run_schedule
from sidecar.client.smart import ClientKey, TokenRequestFailed, load_private_key, request_token
from sidecar.config import ConfigError, load_settings
from sidecar.conformance.command import add_parser as add_conformance_parser
from sidecar.store.clients import (Client, ClientError, add_client, all_clients, get_client, remove_client,
                                    set_enabled)
from sidecar.matching import explain as match_explain
from sidecar.metrics.listener import metrics_listener
from sidecar.matching.revocation import inactivate_consent
from sidecar.reports import clocks
from sidecar.store.db import Store, StoreUnavailable, open_store
from sidecar.store.exchanges import exchanges
from sidecar.store.partners import DEFAULT_SCOPES, Partner, add_partner, all_partners, get_partner
from sidecar.store.grants import revoke_grants
from sidecar.validation.command import EXIT_STATUS as VALIDATE_EXIT_STATUS, run as run_validation

log = logging.getLogger("sidecar")


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logs.configure(settings.log_level, batched=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log.info("starting", extra={"public_url": settings.public_url, "upstream_url": settings.upstream_url,
                                "listen": f"{settings.host}:{settings.port}"})
    app = create_app(settings)
    if settings.metrics_port:
        app.cleanup_ctx.append(metrics_listener(settings, app[METRICS_APP_KEY]))
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None,
                loop=uvloop.new_event_loop())
    return 0


def _demo_load(args: argparse.Namespace) -> int:
    from sidecar.demo.load import load_demo_data

    settings = load_settings(args.config)
    logs.configure(settings.log_level)
    summary = asyncio.run(load_demo_data(args.upstream or settings.upstream_url))
    print(summary)
    return 0


def _store(args: argparse.Namespace) -> Store:
    settings = load_settings(args.config)
    return open_store(settings.store_url, settings.data_dir)


def _describe(client: Client) -> str:
    keys = client.jwks_url or f"{len(client.jwks['keys'])} inline key(s)"
    flags = ("enabled" if client.enabled else "DISABLED") + (", unrestricted" if client.unrestricted else "")
    return f"{client.client_id}\t{client.organization}\t{flags}\t{keys}\t{client.scopes}"


def _admin(store: Store, action: str, client_id: str, detail: dict | None = None) -> None:
    append(store, [AuditRecord("admin", action, client_id, request=f"pdex-sidecar {action}", detail=detail)])


def _clients_add(args: argparse.Namespace) -> int:
    store = _store(args)
    source = args.jwks
    if source.startswith(("https://", "http://")):
        kwargs = {"jwks_url": source}
    else:
        try:
            kwargs = {"jwks": orjson.loads(Path(source).read_bytes())}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ClientError(f"cannot read a JWKS from {source}: {exc}") from exc
    try:
        parse_scopes(args.scopes)  # the store keeps scopes as text: only ones the token endpoint can grant
    except ScopeError as exc:
        raise ClientError(str(exc)) from exc
    client = add_client(store, args.client_id, args.organization, args.scopes, unrestricted=args.unrestricted,
                        **kwargs)
    _admin(store, "client-added", client.client_id, {"organization": client.organization, "scopes": client.scopes,
                                                     "unrestricted": client.unrestricted})
    print(_describe(client))
    return 0


def _clients_list(args: argparse.Namespace) -> int:
    for client in all_clients(_store(args)):
        print(_describe(client))
    return 0


def _clients_enable(enabled: bool):
    def run(args: argparse.Namespace) -> int:
        store = _store(args)
        client = set_enabled(store, args.client_id, enabled)
        _admin(store, "client-enabled" if enabled else "client-disabled", client.client_id)
        print(_describe(client))
        return 0
    return run


def _consent_revoke(args: argparse.Namespace) -> int:
    """A member's opt-out: their grants end at once (the running server notices within state_refresh_seconds),
    and the Consents stored at HAPI are marked inactive."""
    settings = load_settings(args.config)
    store = open_store(settings.store_url, settings.data_dir)
    ended = revoke_grants(store, args.member, args.organization)
    _admin(store, "consent-revoked", None, {"member": args.member, "organization": args.organization,
                                            "grants": len(ended)})
    print(f"revoked {len(ended)} grant(s) of Patient/{args.member}")
    failed = 0
    for consent in sorted({row["consent"] for row in ended if row["consent"]}):
        try:
            inactivate_consent(settings.upstream_base, consent)
        except OSError as exc:
            failed += 1
            print(f"pdex-sidecar: {consent} at HAPI is still active ({exc}); the grant is revoked regardless",
                  file=sys.stderr)
    return 1 if failed else 0


DEMO_CLIENT = "demo-operator"


def _demo_client(args: argparse.Namespace) -> int:
    """Register the demo's internal client once and keep its private key beside the database."""
    settings = load_settings(args.config)
    store = open_store(settings.store_url, settings.data_dir)
    key_file = settings.data_dir / f"{DEMO_CLIENT}.jwks"
    if get_client(store, DEMO_CLIENT) is None or not key_file.exists():
        key = ClientKey.generate("ES384")
        key_file.touch(mode=0o600)
        key_file.write_bytes(orjson.dumps({"keys": [key.private_jwk()]}))
        remove_client(store, DEMO_CLIENT)
        add_client(store, DEMO_CLIENT, "Organization/demo-payer", "system/*.read", jwks=key.public_jwks(),
                   unrestricted=True)
        _admin(store, "client-added", DEMO_CLIENT, {"demo": True})
    print(key_file)
    return 0


def _token(args: argparse.Namespace) -> int:
    """Ask a SMART Backend Services token endpoint for an access token and print it."""
    settings = load_settings(args.config)
    token_url = args.token_url or f"{settings.public_base}/auth/token"
    try:
        jwks = orjson.loads(Path(args.key).read_bytes())
        key = ClientKey.from_jwk(next(k for k in jwks["keys"] if "d" in k))
    except (OSError, orjson.JSONDecodeError, KeyError, StopIteration) as exc:
        raise ClientError(f"{args.key} holds no private JWK: {exc}") from exc

    async def fetch() -> dict:
        async with aiohttp.ClientSession() as session:
            return await request_token(session, token_url, args.client_id, key, args.scope)

    try:
        print(asyncio.run(fetch())["access_token"])
    except TokenRequestFailed as exc:
        print(f"pdex-sidecar: {exc}", file=sys.stderr)
        return 1
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = open_store(settings.store_url, settings.data_dir)
    # Keys retired longer ago than a token lives (plus skew) verify nothing any more.
    kid = create_signing_key(store, retire_after=settings.access_token_lifetime + settings.clock_skew_seconds)
    _admin(store, "signing-key-rotated", None, {"kid": kid})
    print(kid)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    result = verify(_store(args))
    if result.ok:
        print(f"audit chain intact: {result.records} records")
        return 0
    print(f"audit chain BROKEN after {result.records} good records: {result.problem}", file=sys.stderr)
    return 1


def _describe_partner(partner: Partner) -> str:
    return f"{partner.name}\t{partner.fhir_base}\t{partner.client_id}\t{', '.join(partner.identifiers)}"


def _partners_add(args: argparse.Namespace) -> int:
    store = _store(args)
    key_file = Path(args.private_jwks)
    load_private_key(key_file)  # the store keeps only where the key is: refuse a file that holds none
    fhir_base, discovered = args.fhir_base, {}
    if args.discover:
        try:
            endpoint = asyncio.run(discover(args.discover))
        except DiscoveryFailed as exc:
            print(f"pdex-sidecar: {exc}; no partner added", file=sys.stderr)
            return 1
        fhir_base = endpoint.fhir_base
        discovered = {"discovered_from": endpoint.document_url, "endpoint": endpoint.code}
    partner = add_partner(store, args.name, fhir_base, args.client_id, key_file, args.identifier or [], args.scopes)
    _admin(store, "partner-added", None, {"partner": partner.name, "fhir_base": partner.fhir_base,
                                          "client_id": partner.client_id, **discovered})
    print(_describe_partner(partner))
    return 0


def _partners_list(args: argparse.Namespace) -> int:
    for partner in all_partners(_store(args)):
        print(_describe_partner(partner))
    return 0


def _pull(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logs.configure(settings.log_level)
    store = open_store(settings.store_url, settings.data_dir)
    if args.action == "status":
        return _pull_status(store, args.partner)
    if not args.partner:
        raise ClientError("name the partner to pull from: --partner NAME")
    partner = get_partner(store, args.partner)
    options = PullOptions(members=args.member or None, since_last=args.since_last, single=args.single)

    async def once(options: PullOptions) -> bool:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            report = await Pull(settings, store, partner, session, Progress()).run(options)
        _admin(store, "pull", None, {"partner": partner.name, "problems": report.problems,
                                     "transaction_times": report.transaction_times})
        for problem in report.problems:
            print(f"pdex-sidecar: {problem}", file=sys.stderr)
        return report.ok

    if args.schedule:
        asyncio.run(run_schedule(settings, store, partner, once))
    return 0 if asyncio.run(once(options)) else 1


def _pull_status(store: Store, partner: str | None) -> int:
    rows = exchanges(store, partner)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
        updated = datetime.fromtimestamp(row.updated_at, timezone.utc).isoformat(timespec="seconds")
        print(f"{row.partner}\tPatient/{row.member}\t{row.state}\t{row.partner_patient or '-'}\t"
              f"{row.ingested} ingested\t{row.attempts} attempt(s)\t{updated}\t{row.detail or ''}")
    print(", ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "no exchanges yet")
    return 0


def _validate(args: argparse.Namespace) -> int:
    return run_validation(args.paths, args.packages or load_settings(args.config).fhir_packages_dir, args.profile or [])


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (environment variables override it)")
    parser = argparse.ArgumentParser(prog="pdex-sidecar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the sidecar", parents=[common]).set_defaults(run=_serve)
    demo = commands.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    load = demo.add_parser("load", help="load demo members straight into HAPI (idempotent)", parents=[common])
    load.add_argument("--upstream", help="HAPI FHIR base URL (default: SIDECAR_UPSTREAM_URL)")
    load.set_defaults(run=_demo_load)
    demo.add_parser("client", help="register the demo's internal client; prints its private key file",
                    parents=[common]).set_defaults(run=_demo_client)

    token = commands.add_parser("token", help="get an access token (SMART Backend Services) and print it",
                                parents=[common])
    token.add_argument("--client-id", required=True)
    token.add_argument("--key", required=True, help="JWKS file holding the client's private key")
    token.add_argument("--scope", default="system/*.read")
    token.add_argument("--token-url", help="default: this sidecar's own token endpoint")
    token.set_defaults(run=_token)

    clients = commands.add_parser("clients", help="the client registry").add_subparsers(dest="clients_command",
                                                                                        required=True)
    add = clients.add_parser("add", help="register a SMART Backend Services client", parents=[common])
    add.add_argument("--client-id", required=True)
    add.add_argument("--jwks", required=True, help="JWKS file, or the URL of the client's JWKS")
    add.add_argument("--organization", required=True, help="the client's organization, e.g. Organization/payer-b")
    add.add_argument("--scopes", required=True, help='what it may be granted, e.g. "system/*.read"')
    add.add_argument("--unrestricted", action="store_true",
                     help="an operator's internal client: not limited to matched members")
    add.set_defaults(run=_clients_add)
    clients.add_parser("list", help="list clients", parents=[common]).set_defaults(run=_clients_list)
    for name, enabled in (("disable", False), ("enable", True)):
        sub = clients.add_parser(name, help=f"{name} a client" + (" (its tokens stop at once)" if not enabled else ""),
                                 parents=[common])
        sub.add_argument("client_id")
        sub.set_defaults(run=_clients_enable(enabled))

    consent = commands.add_parser("consent", help="members' consents").add_subparsers(dest="consent_command",
                                                                                      required=True)
    revoke = consent.add_parser("revoke", help="record a member's opt-out, effective at once", parents=[common])
    revoke.add_argument("--member", required=True, help="the member's Patient id at this payer")
    revoke.add_argument("--organization", help="only grants to this organization (default: all)")
    revoke.set_defaults(run=_consent_revoke)

    keys = commands.add_parser("keys", help="the sidecar's token signing keys").add_subparsers(
        dest="keys_command", required=True)
    keys.add_parser("rotate", help="sign new tokens with a new key; tokens already issued stay valid",
                    parents=[common]).set_defaults(run=_keys_rotate)

    partners = commands.add_parser("partners", help="payers this payer pulls from").add_subparsers(
        dest="partners_command", required=True)
    padd = partners.add_parser("add", help="register a partner payer", parents=[common])
    padd.add_argument("--name", required=True)
    base = padd.add_mutually_exclusive_group(required=True)
    base.add_argument("--fhir-base", help="the partner's FHIR base URL")
    base.add_argument("--discover", metavar="URL",
                      help="take the FHIR base from the partner's HRex .well-known/davinci-configuration (the "
                           "document's URL, or a base it is published under)")
    padd.add_argument("--client-id", required=True, help="our client id at the partner")
    padd.add_argument("--private-jwks", required=True, help="JWKS file with our private key (RS384 or ES384)")
    padd.add_argument("--identifier", action="append",
                      help="how our Coverage.payor and Consents name the partner: Organization/x or system|value "
                           "(repeatable; its name always counts)")
    padd.add_argument("--scopes", default=DEFAULT_SCOPES, help=f"scopes to ask for (default: {DEFAULT_SCOPES})")
    padd.set_defaults(run=_partners_add)
    partners.add_parser("list", help="list partners", parents=[common]).set_defaults(run=_partners_list)

    pull = commands.add_parser("pull", help="pull members' histories from a partner payer (or: pull status)",
                               parents=[common])
    pull.add_argument("action", nargs="?", choices=["status"], help="status: each member's exchange state")
    pull.add_argument("--partner", help="the partner's name")
    pull.add_argument("--member", action="append", help="only this member (our Patient id; repeatable)")
    pull.add_argument("--since-last", action="store_true",
                      help="only what changed since the last successful export (run-off)")
    pull.add_argument("--single", action="store_true", help="$member-match one by one instead of in bulk")
    pull.add_argument("--schedule", action="store_true",
                      help="keep pulling: new opt-ins every pull_optin_check_hours, and --since-last every "
                           "pull_interval_days for members with concurrent coverage")
    pull.set_defaults(run=_pull)

    validate = commands.add_parser("validate", help="validate FHIR resources against the IG packages (offline)",
                                   parents=[common], epilog=VALIDATE_EXIT_STATUS)
    validate.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR",
                          help="a JSON file, an NDJSON file, or a folder of them")
    validate.add_argument("--packages", help="folder of FHIR IG packages (default: fhir_packages_dir)")
    validate.add_argument("--profile", action="append",
                          help="profile URL to validate against (repeatable; default: each resource's meta.profile)")
    validate.set_defaults(run=_validate)
    match_explain.add_parser(commands, common)

    add_conformance_parser(commands, common)
    clocks.add_parser(commands, common)
    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check the hash chain of the audit trail",
                     parents=[common]).set_defaults(run=_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"pdex-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, StoreUnavailable) as exc:
        print(f"pdex-sidecar: {exc}", file=sys.stderr)
        return 2
