"""Who the user is in the app: the owner key of their link, the first launch that registers their
name, the teacher's sign-in, and what this session may do (the sentences and decisions come from
``samon_app.identity_view``; the pages call these as ``identity.*``).

A typed name proves nothing, so acting on a run needs a key (``samon_core.service.room``):

* ``session_state["owner_key"]``: the key of the name in the sidebar, from the user's link
  ``?owner=NAME&key=KEY`` or from the launch that registered the name. The key is taken out of
  the address bar the moment it is read (a copied address, a screenshot of the page, a link
  shared to show a comparison must never carry it) and lives only in this browser session; the
  link with the key is shown once, in the box after the first launch, for its owner to keep.
  No widget ever holds it.
* ``session_state["teacher_token"]``: set by the sidebar's sign-in after ``service.is_teacher``;
  never in the URL, never shown, checked again on every use (a changed server token signs out).

Only ``samon_core`` modules without torch are imported; of the app's modules only ``stores``
(``reads``, ``problems`` and ``launching`` import this).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

from app_pages import stores
from samon_app.identity_view import (
    KEEP_LINK,
    NO_TOKEN,
    NOT_THE_TOKEN,
    Standing,
    bad_key_text,
    full_link,
    launch_refusal,
    may_act,
    read_only_text,
    share_link,
    sidebar_note,
    standing,
    visitor_name,
)
from samon_app.identity_view import action_help as _action_help
from samon_app.markup import md_escape
from samon_app.owner import clean_owner
from samon_core import service
from samon_core.runs.store import RunStore

KEY_STATE = "owner_key"
TOKEN_STATE = "teacher_token"
KEY_PARAM = "key"  # the link's parameter (declared in samon_app/urlparams.py)
_KEY_NAME = "_owner_key_name"  # (key, the name it proves): the key file is read once per key
_BAD_LINK = "_bad_link"  # (page, warning) for a link whose key is not its name's
_NEW_LINK = "_new_link"  # (name, key) this session registered: the box that shows the link
# (name, key) registered by the launch now in progress: given back if that launch fails
_REGISTERING = "_registering"
_NAME_BEFORE_TEACHER = "_name_before_teacher"  # the name box's text when the teacher signed in
_TOKEN_FIELD = "teacher_token_field"  # the sign-in's password field (emptied on submit)
_SIGN_IN_FAILED = "_teacher_sign_in_failed"
# A visitor's name chosen at their first launch as guest: the name box takes it at the next run
# (a widget's value cannot change once it is drawn in a run).
_PENDING_NAME = "_pending_owner"
VISITOR_TRIES = 5  # fresh names tried when another visitor was quicker


def _store() -> RunStore:
    return stores.store()  # the app's run store on the settings' database: read every call


def _typed() -> object:
    """The sidebar's name box; before the box exists in a run (a session's first), the link's
    ``?owner=``, which the box will show."""
    pending = st.session_state.get(_PENDING_NAME)
    if pending:
        return pending
    return st.session_state.get("owner", st.query_params.get("owner"))


def apply_pending_name() -> None:
    """Before the name box is drawn: give it the name a guest got at their first launch."""
    pending = st.session_state.pop(_PENDING_NAME, None)
    if pending:
        st.session_state["owner"] = pending


def typed_name() -> str:
    """The name typed in the sidebar, cleaned ('guest' for none or an invalid one)."""
    return clean_owner(_typed())[0]


def owner_error() -> str | None:
    """Why the typed name is refused (None when it is valid): nothing is launched, cancelled or
    deleted under 'guest' in its place."""
    return clean_owner(_typed())[1]


def teacher_token() -> str | None:
    """The teacher token this session signed in with, while it is the server's (never shown)."""
    token = st.session_state.get(TOKEN_STATE)
    return token if isinstance(token, str) and _is_teacher(token) else None


def _is_teacher(token: str) -> bool:
    try:
        return service.is_teacher(token)
    except ValueError:  # unreadable settings: nobody is the teacher (the pages say why)
        return False


def _name_of_key(key: str) -> str | None:
    """The name ``key`` proves, or None (not a key, unknown, a damaged key file)."""
    known = st.session_state.get(_KEY_NAME)
    if isinstance(known, tuple) and known[0] == key:
        return known[1]
    try:
        name = _store().owner_of_key(key)
    except (ValueError, OSError):  # BadKey, DamagedFile: no name is proven
        return None
    if name is not None:
        st.session_state[_KEY_NAME] = (key, name)
    return name


def owner_key() -> str | None:
    """This session's owner key while it is the key of the typed name, else None."""
    key = st.session_state.get(KEY_STATE)
    if not isinstance(key, str) or not key:
        return None
    return key if _name_of_key(key) == typed_name() else None


def owner() -> str:
    """The name runs are launched under and "your runs" means: 'teacher' for the signed-in
    teacher, else the typed name."""
    return service.TEACHER_OWNER if teacher_token() else typed_name()


def _registered(name: str) -> bool:
    try:
        return _store().is_registered(name)
    except (ValueError, OSError):  # a damaged key file: read-only, as the job service is
        return True


def current_standing() -> Standing:
    teacher = teacher_token() is not None
    has_key = owner_key() is not None
    name = typed_name()
    return standing(name, teacher=teacher, has_key=has_key,
                    registered=not (teacher or has_key) and _registered(name))


def can_act(run: Mapping[str, Any] | Iterable[str] | None) -> bool:
    """Whether this session may cancel, delete or resume ``run`` (its meta, its requesters'
    names, or None for a damaged meta): the teacher, or a key that proves a requester."""
    name = typed_name() if owner_key() else None
    return may_act(run, name, teacher_token() is not None)


def action_help(action: str) -> str:
    """The help of a disabled ``action`` button: why this session may not."""
    return _action_help(current_standing(), typed_name(), action)


def read_only() -> str | None:
    """Why this session may act on no run at all (guest, a reserved or taken name), or None."""
    return read_only_text(current_standing(), typed_name())


# ---------------------------------------------------------------------------------------------
# launching: refused for guest, reserved and taken names; a new name is registered first
# ---------------------------------------------------------------------------------------------


def launch_owner() -> str | None:
    """The name to launch under, after registering a new one; None when nothing may be launched
    (the reason is shown). Ends the box of an earlier registration. The caller reports the
    launch's outcome with ``launch_succeeded`` or ``launch_failed``: a name registered here is
    kept (and its link shown) only when the launch went through."""
    st.session_state.pop(_NEW_LINK, None)
    st.session_state.pop(_REGISTERING, None)
    problem = owner_error()
    if problem:
        st.error(f"Not launched: {md_escape(problem.split(';')[0], 300)}. Correct your name in "
                 "the sidebar.",
                 icon=":material/error:")
        return None
    name = typed_name()
    now = current_standing()
    refusal = launch_refusal(now, name)
    if refusal:
        st.error(refusal, icon=":material/lock:")
        return None
    if now is Standing.GUEST:
        return _register_visitor()
    if now is Standing.NEW and not _register(name):
        return None
    return owner()


def _register_visitor() -> str | None:
    """A guest's first launch: a fresh name of their own (``visitor_name``), registered, in
    the name box (and so the URL's ``?owner=``) from the next run; None when none could be
    registered."""
    for _ in range(VISITOR_TRIES):
        name = visitor_name()
        try:
            taken = _store().is_registered(name)
        except (ValueError, OSError):
            taken = True
        if taken:
            continue
        # the name box (bound to ?owner=) takes it at the next run
        st.session_state[_PENDING_NAME] = name
        if _register(name):
            return name
        st.session_state.pop(_PENDING_NAME, None)
        return None
    st.error("Not launched: no free visitor name was found; type a name in the sidebar.",
             icon=":material/error:")
    return None


def _register(name: str) -> bool:
    """Register ``name`` for the launch in progress: its key goes into the session (never into
    the URL); the link is shown once the launch went through (``launch_succeeded``)."""
    try:
        key = service.register_owner(name, store=_store())
    except (ValueError, OSError, service.StoreUnavailable) as exc:  # NameTaken, a full disk
        st.error(f"Not launched: {md_escape(exc, 300)}", icon=":material/error:")
        return False
    st.session_state[KEY_STATE] = key
    st.session_state[_KEY_NAME] = (key, name)
    st.session_state[_REGISTERING] = (name, key)
    return True


def launch_succeeded() -> None:
    """The launch went through: a name it registered is kept, and its link is shown once (in
    the box ``identity_ui`` draws at the top of the next page run)."""
    registered = st.session_state.pop(_REGISTERING, None)
    if registered:
        st.session_state[_NEW_LINK] = registered


def launch_failed() -> None:
    """The launch was refused after ``launch_owner``: a name it registered is given back (so a
    failed first launch leaves no name that its user has no link for), unless some run was
    queued under it meanwhile (the store refuses then: the name stays, and its link is
    shown, since its runs need their owner's key)."""
    registered = st.session_state.pop(_REGISTERING, None)
    if not registered:
        return
    try:
        given_back = _store().unregister_owner(registered[1]) is not None
    except (ValueError, OSError):  # the store went away: keep the name, and show its link
        given_back = False
    if not given_back:
        st.session_state[_NEW_LINK] = registered
        new_link_ui()  # now: the page stays, with the launch's error
        return
    for state in (KEY_STATE, _KEY_NAME, _PENDING_NAME):
        st.session_state.pop(state, None)


def _forget_new_link() -> None:
    st.session_state.pop(_NEW_LINK, None)


def new_link_ui() -> None:
    """The box with the link of the name this session registered, until dismissed or the next
    launch (``st.code``: one click copies it)."""
    pending = st.session_state.get(_NEW_LINK)
    if not pending:
        return
    name, key = pending
    with st.container(border=True):
        st.markdown(f":material/key: **{md_escape(name, 60)}** is yours now. {KEEP_LINK}")
        st.code(full_link(st.context.url, name, key), language=None, wrap_lines=True)
        st.button("I have kept it", key="new_link_done", on_click=_forget_new_link)


# ---------------------------------------------------------------------------------------------
# the link, the sidebar's lines and the teacher's sign-in
# ---------------------------------------------------------------------------------------------


def read_link(page: str) -> None:
    """A key in the address (a link opened, a Back step to it) is taken out of the address at
    once, whatever it is worth; it becomes the session's when it is the key of the link's name,
    else one warning (on ``page``) and the session keeps the key it had."""
    if KEY_PARAM not in st.query_params:
        return
    key = st.query_params.get(KEY_PARAM)
    del st.query_params[KEY_PARAM]  # before anything is drawn: no run of a page shows it
    if not key:
        return
    name = typed_name()
    if _name_of_key(key) == name:
        st.session_state[KEY_STATE] = key
        st.session_state.pop(_BAD_LINK, None)
    else:
        st.session_state[_BAD_LINK] = (page, bad_key_text(name))


def _token_configured() -> bool:
    try:
        return service.load_settings().teacher_token is not None
    except ValueError:
        return False


def _sign_out() -> None:
    """The name box gets back the name it held when the teacher signed in."""
    st.session_state.pop(TOKEN_STATE, None)
    before = st.session_state.pop(_NAME_BEFORE_TEACHER, None)
    if isinstance(before, str) and before:
        st.session_state[_PENDING_NAME] = before


def _sign_in() -> None:
    """The sign-in form's submit (a callback: it runs before the script, so the field can be
    emptied): the token is kept if it is the server's, and the field is cleared either way."""
    token = st.session_state.get(_TOKEN_FIELD) or ""
    st.session_state[_TOKEN_FIELD] = ""
    if _is_teacher(token):
        st.session_state[TOKEN_STATE] = token
        typed = st.session_state.get("owner")
        st.session_state[_NAME_BEFORE_TEACHER] = typed if isinstance(typed, str) else ""
    else:
        st.session_state[_SIGN_IN_FAILED] = True


def teacher_ui() -> None:
    """The sidebar's 'Teacher' sign-in (a password field, emptied on submit), or the signed-in
    line with 'Sign out'."""
    if teacher_token():
        st.sidebar.caption(":material/school: Signed in as teacher: you may cancel and delete "
                           "any run, and you launch as 'teacher'.")
        st.sidebar.button("Sign out", key="teacher_sign_out", on_click=_sign_out)
        return
    with st.sidebar.expander("Teacher", icon=":material/school:"):
        if not _token_configured():
            st.caption(NO_TOKEN)
            return
        with st.form("teacher_sign_in", border=False):
            st.text_input("Teacher token", type="password", key=_TOKEN_FIELD)
            st.form_submit_button("Sign in", on_click=_sign_in)
    if st.session_state.pop(_SIGN_IN_FAILED, False):
        st.sidebar.error(NOT_THE_TOKEN, icon=":material/lock:")


def share_ui(text: str) -> None:
    """``text`` and the link that shares this page as it is now: its parameters without the
    user's name or key (``share_link``), in ``st.code`` so that one click copies it."""
    params = {name: st.query_params.get_all(name) for name in st.query_params}
    st.caption(f":material/link: {text}")
    st.code(share_link(st.context.url, params), language=None, wrap_lines=True)


def teacher_name_ui() -> str:
    """The sidebar's name box while the teacher is signed in: 'teacher', which is the name
    runs are launched under (not the box of the typed name, which would say otherwise)."""
    st.sidebar.text_input("Your name", value=service.TEACHER_OWNER, disabled=True,
                          key="owner_teacher", help="Signed in as the teacher: you launch as "
                          "'teacher'. Sign out to use your own name again.")
    return service.TEACHER_OWNER


def identity_ui(page: str) -> None:
    """Who the user is, on every page before the sidebar's name box: the link's key (taken
    out of the address), a bad link's warning, the new link's box, the sidebar's line about
    the name and the teacher's sign-in."""
    read_link(page)
    bad = st.session_state.get(_BAD_LINK)
    if bad and bad[0] == page:
        st.warning(bad[1], icon=":material/key_off:")
    elif bad:
        st.session_state.pop(_BAD_LINK)  # said once, on the page the link opened
    new_link_ui()
    note = sidebar_note(current_standing(), typed_name())
    if note:
        st.sidebar.caption(note)
    teacher_ui()
