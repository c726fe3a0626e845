"""Sessions of the member pages: an encrypted cookie (aiohttp-session's Fernet storage, key kept in the store so
every replica reads every cookie), scoped to `/member/`, HttpOnly, SameSite=Lax (the identity provider's redirect
back is a top-level GET), Secure when the public URL is https. POSTs carry the session's CSRF token."""
from __future__ import annotations

import secrets
import time

from aiohttp import web
from aiohttp_session import Session, get_session, new_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from sidecar.config import Settings
from sidecar.store.db import Store
from sidecar.store.secrets import shared_secret

COOKIE = "pdex_member"
CSRF_FIELD = "csrf"
MEMBER = "member"          # the signed-in member's Patient id at this payer (new payer's page)
FORMER = "former"          # the signed-in former member's Patient id (old payer's page)
SIGNED_IN_AT = "at"


def storage(settings: Settings, store: Store) -> EncryptedCookieStorage:
    key = shared_secret(store, "member-session", lambda: Fernet.generate_key().decode())
    return EncryptedCookieStorage(Fernet(key.encode()), cookie_name=COOKIE, path="/member/", httponly=True,
                                  samesite="Lax", secure=settings.public_base.startswith("https://"),
                                  max_age=int(settings.member_session_minutes * 60))


def csrf_token(session: Session) -> str:
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


async def checked_form(request: web.Request) -> dict[str, str]:
    """The POSTed form, or 403 when its CSRF token is not the session's."""
    form = await request.post()
    session = await get_session(request)
    sent = form.get(CSRF_FIELD)
    expected = session.get(CSRF_FIELD)
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise web.HTTPForbidden(text="This form has expired. Go back, reload the page and try again.")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def sign_in(request: web.Request, key: str, patient_id: str) -> None:
    """A fresh session (a new cookie, so nothing from before sign-in carries over) holding who signed in."""
    session = await new_session(request)
    session[key] = patient_id
    session[SIGNED_IN_AT] = time.time()


async def signed_in(request: web.Request, key: str, lifetime_seconds: float) -> str | None:
    session = await get_session(request)
    patient_id = session.get(key)
    if not isinstance(patient_id, str):
        return None
    if time.time() - float(session.get(SIGNED_IN_AT, 0)) > lifetime_seconds:
        session.invalidate()
        return None
    return patient_id
