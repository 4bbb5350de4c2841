"""The dashboard: server-rendered pages over the same read model as the JSON API.

Pages render the current state; ``static/live.js`` then keeps them live from
``/api/events``. Jinja2 autoescapes every value, so a campaign named ``<script>`` is shown
as text. With a token configured every page needs the session cookie that ``/login``
sets (HttpOnly, SameSite=Strict); without one, phone numbers are masked.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader

from processors import catalog
from processors.phones import normalize

from . import charts, format, glossary
from .auth import COOKIE, authorized, safe_next, session_value
from .privacy import mask_record

HTML_PREFIXES = ("/campaigns", "/messages", "/removals", "/suppressions", "/login", "/logout")


@lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(loader=PackageLoader("readmodel.web", "templates"), autoescape=True)
    format.register(e)
    return e


def wants_html(request: Request) -> bool:
    p = request.url.path
    return p == "/" or p.startswith(HTML_PREFIXES) and not p.endswith(".svg")


def render(request: Request, template: str, status_code: int = 200, **ctx) -> HTMLResponse:
    sv = request.app.state.services
    ctx.setdefault("logged_in", sv.settings.token is not None and authorized(request, sv.settings.token))
    html = env().get_template(template).render(request=request, **ctx)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def error_page(request: Request, status_code: int, detail: str) -> HTMLResponse:
    if status_code == 401:
        nxt = request.url.path + (("?" + request.url.query) if request.url.query else "")
        return render(request, "login.html", status_code=401, error=None, next=safe_next(nxt))
    return render(request, "error.html", status_code=status_code, status_code_=status_code, detail=detail)


def add_pages(app: FastAPI, sv) -> None:
    s = sv.settings
    from pathlib import Path

    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")

    def guard(request: Request) -> HTMLResponse | None:
        if not authorized(request, s.token):
            return error_page(request, 401, "log in")
        return None

    def show(rec: dict) -> dict:
        return mask_record(rec) if s.masked else rec

    def campaign_or_404(request: Request, campaign_id: str):
        c = sv.model.campaign(campaign_id)
        if c is None:
            return None, error_page(request, 404, f"No campaign {campaign_id!r} in the read model (yet).")
        return c, None

    def log_in(request: Request, token: str, nxt: str):
        if s.token is None:
            return RedirectResponse(nxt, status_code=303)
        if not hmac.compare_digest(token.encode(), s.token.encode()):
            return render(request, "login.html", status_code=401, error="That token is not the right one.", next=nxt)
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(
            COOKIE,
            session_value(s.token),
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
        return resp

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/", token: str | None = None):
        """The form; with ``?token=`` (the demo's printed link) it logs in and drops the token from the URL."""
        if token is not None:
            return log_in(request, token, safe_next(next))
        if s.token is None or authorized(request, s.token):
            return RedirectResponse(safe_next(next), status_code=303)
        return render(request, "login.html", error=None, next=safe_next(next))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        return log_in(request, (form.get("token") or [""])[0], safe_next((form.get("next") or ["/"])[0]))

    @app.post("/logout", include_in_schema=False)
    def logout():
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    @app.get("/", include_in_schema=False)
    def campaign_list(
        request: Request, q: str = "", kind: str | None = None, sort: str = "-launched_at", cursor: str | None = None
    ):
        if (r := guard(request)) is not None:
            return r
        kind = kind if kind in ("BATCH", "AUTOMATED") else None
        sort = sort if sort in ("launched_at", "-launched_at", "name", "-sent") else "-launched_at"
        page = sv.model.campaigns(q=q[:256] or None, kind=kind, sort=sort, limit=100, cursor=cursor)
        return render(
            request, "campaigns.html", campaigns=page.items, q=q, kind=kind, next_cursor=page.next_cursor, sort=sort
        )

    @app.get("/campaigns/{campaign_id:path}/chart.svg", include_in_schema=False)
    def chart(request: Request, campaign_id: str):
        if not authorized(request, s.token):
            return Response("log in", status_code=401)
        svg = charts.rates_chart(sv.model.campaign_history(campaign_id))
        return Response(str(svg), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @app.get("/campaigns/{campaign_id:path}/contacts", include_in_schema=False)
    def contacts(
        request: Request,
        campaign_id: str,
        status: str | None = None,
        category: str | None = None,
        not_sent_reason: str | None = None,
        error_code: str | None = None,
        cursor: str | None = None,
    ):
        if (r := guard(request)) is not None:
            return r
        c, missing = campaign_or_404(request, campaign_id)
        if missing:
            return missing
        filters = {
            k: v
            for k, v in (
                ("status", status),
                ("category", category),
                ("not_sent_reason", not_sent_reason),
                ("error_code", error_code),
            )
            if v
        }
        bad = _bad_filter(filters)
        if bad:
            return error_page(request, 400, bad)
        page = sv.model.messages(campaign_id, limit=100, cursor=cursor, **filters)
        return render(
            request,
            "contacts.html",
            c=c,
            title=_title(filters),
            filters=filters,
            items=[show(m) for m in page.items],
            next_cursor=page.next_cursor,
            csv_url=f"/api/campaigns/{_q(campaign_id)}/messages.csv" + ("?" + urlencode(filters) if filters else ""),
            total=sv.model.count_messages(campaign_id, **filters),
        )

    @app.get("/campaigns/{campaign_id:path}", include_in_schema=False)
    def campaign_page(request: Request, campaign_id: str, wording: str = "smsmode"):
        if (r := guard(request)) is not None:
            return r
        c, missing = campaign_or_404(request, campaign_id)
        if missing:
            return missing
        history = sv.model.campaign_history(campaign_id)
        return render(
            request,
            "campaign.html",
            c=c,
            wording="emarsys" if wording == "emarsys" else "smsmode",
            chart_svg=charts.rates_chart(history),
            pending_timeout_h=s.stream.pending_timeout_h,
            glossary=glossary.GLOSSARY,
            csv_base=f"/api/campaigns/{_q(campaign_id)}/messages.csv",
            contacts_base=f"/campaigns/{_q(campaign_id)}/contacts",
            error_rate_warning=s.error_rate_warning,
        )

    @app.get("/messages/{message_id:path}", include_in_schema=False)
    def message_page(request: Request, message_id: str):
        if (r := guard(request)) is not None:
            return r
        m = sv.model.message(message_id)
        if m is None:
            return error_page(request, 404, f"No message {message_id!r} in the read model (yet).")
        m = show(m)
        m["history"] = [show(h) for h in m["history"]]
        return render(request, "message.html", m=m)

    @app.get("/removals", include_in_schema=False)
    def removals_page(request: Request, phone: str = "", reason: str | None = None, cursor: str | None = None):
        if (r := guard(request)) is not None:
            return r
        reason = reason if reason in ("PERMANENT_ERROR", "BLACKLISTED", "OTHER") else None
        wanted = normalize(phone[:64], s.stream.default_region)[0] if phone.strip() else None
        page = sv.model.removals(reason=reason, phone=wanted, limit=100, cursor=cursor)
        return render(
            request,
            "removals.html",
            items=[show(x) for x in page.items],
            phone=phone,
            reason=reason,
            next_cursor=page.next_cursor,
        )

    @app.get("/suppressions", include_in_schema=False)
    def suppressions_page(request: Request, phone: str = ""):
        """The lookup of ``GET /api/suppressions/{phone}``, for a person asking "may I text this
        number?": ``found`` is None for a number never seen, which is an answer too."""
        if (r := guard(request)) is not None:
            return r
        looked_up, found = None, None
        if phone.strip():
            looked_up = normalize(phone[:64], s.stream.default_region)[0]
            found = sv.model.suppression(looked_up)
        return render(
            request,
            "suppressions.html",
            phone=phone,
            looked_up=show({"phone": looked_up})["phone"] if looked_up else None,
            found=show(found) if found else None,
        )


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _bad_filter(filters: dict) -> str | None:
    allowed = {
        "status": set(catalog.STATUSES),
        "category": {i.category for i in catalog.STATUSES.values()},
        "not_sent_reason": set(catalog.NOT_SENT_REASONS),
    }
    for k, v in filters.items():
        if k in allowed and v not in allowed[k]:
            return f"{k} must be one of {', '.join(sorted(allowed[k]))}"
    return None


def _title(filters: dict) -> str:
    if "status" in filters:
        info = catalog.STATUSES[filters["status"]]
        return f"{info.emarsys} ({filters['status']})"
    if "not_sent_reason" in filters:
        return f"Not sent: {filters['not_sent_reason'].replace('_', ' ').lower()}"
    if "category" in filters:
        return filters["category"].replace("_", " ").capitalize()
    return "All contacts"
