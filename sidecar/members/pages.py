"""The member pages under `{public}/member/`, a sub-application with its own session auth (see `session.py`).

New payer (`/member/`): OIDC sign-in, education, opt-in (Consent and prior Coverage written to HAPI, the request
queued for `pull`), each opt-in's state, withdrawal. Old payer (`/member/former`): zero-knowledge sign-in, who
received the member's data and when, withdrawal (as `pdex-sidecar consent revoke`).

Nothing here takes a resource id from the browser: every HAPI read and write is about the Patient id held in the
encrypted session, and opt-ins are looked up by the member they belong to.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session, session_middleware

from sidecar.audit.chain import AuditLog, AuditRecord
from sidecar.auth.directory import Directory
from sidecar.config import Settings
from sidecar.hapi.errors import HapiError
from sidecar.hapi.client import HapiClient
from sidecar.matching.scoring import Scorer
from sidecar.members import optin, session as sessions
from sidecar.members.former import Answers, FormerMembers
from sidecar.members.oidc import Attempt, OidcClient, SignInFailed
from sidecar.provenance.transmitter import payer_reference
from sidecar.store import exchanges as ex
from sidecar.store.db import Store
from sidecar.store.grants import revoke_grants
from sidecar.store.optins import OptIn, optins_of, record_optin, withdraw
from sidecar.store.partners import Partner, all_partners

log = logging.getLogger("sidecar.members")

TEMPLATES = Path(__file__).parent / "templates"
OIDC_ATTEMPT = "oidc"
STATES = {None: "requested", ex.MATCHED: "matched", ex.INGESTED: "data received", ex.NO_MATCH: "nothing found"}
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' "
                                      "{issuer}; frame-ancestors 'none'; base-uri 'none'"}
HEADERS_PLAIN = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


class MemberPages:
    def __init__(self, settings: Settings, store: Store, upstream: HapiClient, audit: AuditLog,
                 directory: Directory, scorer: Scorer) -> None:
        self.settings = settings
        self.store = store
        self.upstream = upstream
        self.audit = audit
        self.directory = directory
        self.former = FormerMembers(settings, upstream, store, scorer)
        self.lifetime = settings.member_session_minutes * 60
        self.oidc = OidcClient(settings.member_oidc_issuer, settings.member_oidc_client_id,
                               settings.member_oidc_client_secret,
                               f"{settings.public_base}/member/callback") if settings.member_oidc_issuer else None
        self._http: aiohttp.ClientSession | None = None

    # --- the sub-application ---------------------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        app.router.add_get("/member", self._to_start)  # before the sub-application, which would claim it
        app.add_subapp("/member", self.application())

    def application(self) -> web.Application:
        app = web.Application(middlewares=[session_middleware(sessions.storage(self.settings, self.store)),
                                           self._guard])
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES))]
        if self.settings.member_templates_dir:
            loaders.insert(0, jinja2.FileSystemLoader(self.settings.member_templates_dir))
        aiohttp_jinja2.setup(app, loader=jinja2.ChoiceLoader(loaders), autoescape=True)
        app.cleanup_ctx.append(self._client_session)
        app.router.add_get("/", self.home)
        app.router.add_get("/sign-in", self.sign_in)
        app.router.add_get("/callback", self.callback)
        app.router.add_post("/opt-in", self.opt_in)
        app.router.add_post("/withdraw", self.withdraw)
        app.router.add_post("/sign-out", self.sign_out)
        app.router.add_get("/former", self.former_home)
        app.router.add_post("/former/sign-in", self.former_sign_in)
        app.router.add_post("/former/withdraw", self.former_withdraw)
        app.router.add_post("/former/sign-out", self.sign_out)
        app.router.add_get("/style.css", self.style)
        return app

    @staticmethod
    async def _to_start(request: web.Request) -> web.Response:
        return web.Response(status=308, headers={**HEADERS_PLAIN, "Location": "/member/"})

    async def _client_session(self, app: web.Application):
        async with aiohttp.ClientSession() as self._http:
            yield

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        """Security headers on every page; the FHIR server's trouble as a plain page, never its text."""
        try:
            response = await handler(request)
        except HapiError:
            log.warning("member page: the FHIR server could not be used", extra={"path": request.path})
            response = await self._page(request, "message.html", {
                "title": "Please try again later",
                "message": "We cannot reach our records right now. Please try again later."},
                status=503)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect, answered here: the app's error boundary speaks FHIR
                return web.Response(status=exc.status, headers={**HEADERS_PLAIN, "Location": exc.headers["Location"]})
            response = await self._page(request, "message.html", {"title": "Something went wrong",
                                                                  "message": exc.text or exc.reason},
                                        status=exc.status)
        issuer = self.settings.member_oidc_issuer.rstrip("/")
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value.format(issuer=issuer))
        return response

    async def _page(self, request: web.Request, template: str, context: dict, status: int = 200) -> web.Response:
        session = await get_session(request)
        context = {**context, "csrf": sessions.csrf_token(session)}
        return aiohttp_jinja2.render_template(template, request, context, status=status)

    async def style(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(TEMPLATES / "style.css", headers={"Cache-Control": "max-age=3600"})

    def _audit(self, event: str, decision: str, member: str | None, **detail: object) -> None:
        self.audit.record(AuditRecord("member-page", decision, client_id=None, request=event,
                                      detail={"member": member, **detail}))

    # --- new payer: sign-in ----------------------------------------------------------------------------------

    async def sign_in(self, request: web.Request) -> web.Response:
        if self.oidc is None:
            raise web.HTTPServiceUnavailable(text="Member sign-in is not set up yet. Please call member services.")
        attempt = Attempt.new()
        session = await get_session(request)
        session[OIDC_ATTEMPT] = {"state": attempt.state, "nonce": attempt.nonce, "verifier": attempt.verifier}
        try:
            url = await self.oidc.authorization_url(self._http, attempt)
        except SignInFailed as exc:
            log.warning("member sign-in unavailable", extra={"reason": str(exc)})
            raise web.HTTPServiceUnavailable(text="Sign-in is not available right now. Please try again later.")
        raise web.HTTPFound(url)

    async def callback(self, request: web.Request) -> web.Response:
        session = await get_session(request)
        kept = session.pop(OIDC_ATTEMPT, None)
        state = request.query.get("state", "")
        if self.oidc is None or not isinstance(kept, dict) or not state or state != kept.get("state"):
            raise web.HTTPBadRequest(text="This sign-in link has expired. Please sign in again.")
        if "code" not in request.query:
            raise web.HTTPUnauthorized(text="Sign-in was cancelled or refused. Please sign in again.")
        try:
            subject = await self.oidc.subject(self._http, request.query["code"], Attempt(**kept))
        except SignInFailed as exc:
            self._audit("sign-in", "refused", None, reason=str(exc))
            raise web.HTTPUnauthorized(text="We could not sign you in. Please sign in again.")
        found = await self.upstream.search("Patient", {
            "identifier": f"{self.settings.member_oidc_subject_system}|{subject}", "_count": "2"})
        if len(found) != 1:
            self._audit("sign-in", "refused", None, reason=f"{len(found)} Patients carry the account's subject")
            raise web.HTTPForbidden(text="Your account is not linked to a membership. Please call member services.")
        await sessions.sign_in(request, sessions.MEMBER, found[0]["id"])
        self._audit("sign-in", "allowed", found[0]["id"])
        raise web.HTTPSeeOther("/member/")

    async def sign_out(self, request: web.Request) -> web.Response:
        await sessions.checked_form(request)
        (await get_session(request)).invalidate()
        raise web.HTTPSeeOther("/member/former" if request.path.startswith("/member/former") else "/member/")

    # --- new payer: the page ---------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        member = await sessions.signed_in(request, sessions.MEMBER, self.lifetime)
        if member is None:
            return await self._page(request, "welcome.html", {"configured": self.oidc is not None})
        return await self._member_page(request, member, {}, {})

    async def _member_page(self, request: web.Request, member: str, errors: dict[str, str], values: dict,
                           status: int = 200) -> web.Response:
        partners = await self.store.run(all_partners, self.store)
        optins = await self.store.run(optins_of, self.store, member)
        shown = []
        for item in reversed(optins):
            state = "withdrawn" if item.withdrawn_at else await self._state(item)
            shown.append({"id": item.id, "plan": item.partner or item.other_plan, "policy": item.policy,
                          "since": datetime.fromtimestamp(item.opted_in_at, timezone.utc).date().isoformat(),
                          "state": state, "live": item.withdrawn_at is None})
        return await self._page(request, "member.html", {"partners": [p.name for p in partners], "optins": shown,
                                                         "errors": errors, "values": values}, status=status)

    async def _state(self, item: OptIn) -> str:
        if item.partner is None:
            return "with member services"
        state = await self.store.run(ex.exchange_state, self.store, item.partner, item.member)
        return STATES.get(state, "being reviewed by member services")

    async def opt_in(self, request: web.Request) -> web.Response:
        member = await sessions.signed_in(request, sessions.MEMBER, self.lifetime)
        form = await sessions.checked_form(request)
        if member is None:
            raise web.HTTPSeeOther("/member/")
        partners = {p.name: p for p in await self.store.run(all_partners, self.store)}
        errors, prior, partner = self._read_opt_in(form, partners)
        live = {o.partner for o in await self.store.run(optins_of, self.store, member) if o.withdrawn_at is None}
        if partner is not None and partner.name in live:
            errors["plan"] = "You already asked this plan. Its status is shown under “Your requests”."
        if errors:
            return await self._member_page(request, member, errors, form, status=422)
        today = _today()
        plan = form["plan"]
        other = form.get("other_plan", "").strip()[:200] or None
        source = optin.partner_reference(partner) if partner else optin.organization_reference("", other or "other")
        consent = optin.consent(member, source, payer_reference(self.settings), form["policy"], today)
        coverage = optin.prior_coverage(member, source, prior, today)
        # Read before writing: once the transaction is in, nothing else at HAPI can fail this request.
        own = await self.upstream.search("Coverage", {"beneficiary": f"Patient/{member}", "_count": "100"})
        previous = {o.coverage for o in await self.store.run(optins_of, self.store, member) if o.coverage}
        start = optin.coverage_start(own, previous)
        written = await self.upstream.transaction([
            {"resource": consent, "request": {"method": "POST", "url": "Consent"}},
            {"resource": coverage, "request": {"method": "POST", "url": "Coverage"}}])
        recorded = await self.store.run(record_optin, self.store, member, partner.name if partner else None,
                                        other if plan == optin.OTHER else None, form["policy"], written[0],
                                        written[1], start, prior.end.isoformat() if prior.end else None)
        self._audit("opt-in", "allowed", member, optin=recorded.id, plan=plan, policy=form["policy"],
                    consent=written[0], coverage=written[1])
        raise web.HTTPSeeOther("/member/#your-requests")

    @staticmethod
    def _read_opt_in(form: dict[str, str], partners: dict[str, Partner]
                     ) -> tuple[dict[str, str], optin.PriorCoverage | None, Partner | None]:
        errors: dict[str, str] = {}
        plan = form.get("plan", "")
        if plan != optin.OTHER and plan not in partners:
            errors["plan"] = "Choose your previous plan, or “My plan is not listed”."
        if plan == optin.OTHER and not form.get("other_plan", "").strip():
            errors["other_plan"] = "Type the name of your previous plan."
        member_id = form.get("member_id", "").strip()
        if not member_id or len(member_id) > 64:
            errors["member_id"] = "Type the member ID from your previous plan's card."
        start = _parse_day(form.get("start", ""))
        if start is None:
            errors["start"] = "Type the date your previous coverage started, like 2024-01-31."
        end = _parse_day(form["end"]) if form.get("end", "").strip() else None
        if form.get("end", "").strip() and (end is None or (start and end < start)):
            errors["end"] = "Type the date your previous coverage ended (after it started), or leave it empty."
        if form.get("confirm") != "yes":
            errors["confirm"] = "Check the box to confirm these details are right."
        if form.get("policy") not in optin.POLICIES:
            errors["policy"] = "Choose what we may ask for."
        prior = optin.PriorCoverage(member_id, start, end) if not errors and start else None
        return errors, prior, partners.get(plan)

    async def withdraw(self, request: web.Request) -> web.Response:
        member = await sessions.signed_in(request, sessions.MEMBER, self.lifetime)
        form = await sessions.checked_form(request)
        if member is None:
            raise web.HTTPSeeOther("/member/")
        try:
            optin_id = int(form.get("optin", ""))
        except ValueError:
            raise web.HTTPBadRequest(text="Choose the request to withdraw.")
        live = [o for o in await self.store.run(optins_of, self.store, member)
                if o.id == optin_id and o.withdrawn_at is None]
        if not live:
            raise web.HTTPNotFound(text="There is no such request of yours to withdraw.")
        # The Consent first: while it is active a pull would send the member, so it is what must not fail silently.
        if live[0].consent:
            await self._inactivate(member, [live[0].consent])
        ended = await self.store.run(withdraw, self.store, member, optin_id) or live[0]
        self._audit("withdraw", "allowed", member, optin=ended.id, consent=ended.consent)
        raise web.HTTPSeeOther("/member/#your-requests")

    async def _inactivate(self, member: str, consents: list[str]) -> None:
        """Mark the member's own Consents inactive at HAPI (others' are never touched), so no pull sends them."""
        ids = [c.removeprefix("Consent/") for c in consents if c.startswith("Consent/")]
        found = [c for c in await self.upstream.by_ids("Consent", ids)
                 if (c.get("patient") or {}).get("reference") == f"Patient/{member}" and c.get("status") != "inactive"]
        if found:
            await self.upstream.transaction([
                {"resource": {**c, "status": "inactive"}, "request": {"method": "PUT", "url": f"Consent/{c['id']}"}}
                for c in found])

    # --- old payer: former members ---------------------------------------------------------------------------

    async def former_home(self, request: web.Request) -> web.Response:
        patient = await sessions.signed_in(request, sessions.FORMER, self.lifetime)
        if patient is None:
            return await self._page(request, "former_sign_in.html", {"values": {}})
        recipients = await self.former.recipients(patient)
        return await self._page(request, "former.html", {"recipients": recipients,
                                                         "live": any(not r["withdrawn"] for r in recipients)})

    async def former_sign_in(self, request: web.Request) -> web.Response:
        form = await sessions.checked_form(request)
        answers = Answers(*(form.get(k, "")[:100] for k in ("given", "family", "birth_date", "member_id",
                                                             "postal_code")))
        result = await self.former.sign_in(answers, request.remote or "unknown")
        self._audit("former-sign-in", "allowed" if result.outcome == "signed-in" else "refused",
                    result.patient_id, outcome=result.outcome, **(result.audit or {}))
        if result.outcome == "signed-in" and result.patient_id:
            await sessions.sign_in(request, sessions.FORMER, result.patient_id)
            raise web.HTTPSeeOther("/member/former")
        kept = {k: form.get(k, "") for k in ("given", "family", "birth_date", "postal_code")}
        if result.outcome == "throttled":
            message, status = "Too many attempts. For your safety, please wait an hour and try again.", 429
        else:
            message, status = "We could not confirm these details. Check them against your old card and try again.", 401
        return await self._page(request, "former_sign_in.html", {"values": kept, "failure": message}, status=status)

    async def former_withdraw(self, request: web.Request) -> web.Response:
        """As `pdex-sidecar consent revoke --member`: every live grant ends at once and the Consents turn inactive."""
        patient = await sessions.signed_in(request, sessions.FORMER, self.lifetime)
        await sessions.checked_form(request)
        if patient is None:
            raise web.HTTPSeeOther("/member/former")
        ended = await self.store.run(revoke_grants, self.store, patient)
        for organization in {row["organization"] for row in ended}:
            self.directory.forget_grants(organization)
        consents = sorted({row["consent"] for row in ended if row["consent"]})
        try:
            await self._inactivate(patient, consents)
            still_active: list[str] = []
        except HapiError:  # as `consent revoke`: the grants, which are what lets data leave, are ended regardless
            log.warning("former member's Consents still active at HAPI", extra={"consents": consents})
            still_active = consents
        self.audit.record(AuditRecord("admin", "consent-revoked", detail={
            "member": patient, "organization": None, "grants": len(ended), "by": "former member page",
            "consents_still_active": still_active}))
        raise web.HTTPSeeOther("/member/former#received")
