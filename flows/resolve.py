"""`reelflow resolve`: the user's word on a create whose answer was lost.

The Agents API (ray-3.2) has no list route: when a create's answer is lost (a dropped
connection, a timeout, a 5xx, a run killed mid-send) reelflow cannot find out whether
the generation was made, so it does not send it again. The shot fails with one line
naming the ledger record, and the user decides here:

* ``--generation-id ID``: adopt the generation found in Luma's dashboard (checked to
  exist on the account first, and to belong to no other request: it is claimed in the
  ledger, see ``Ledger.claim``); the next render waits on it and pays nothing;
* ``--resend``: accept paying again; the next render sends the create anew.

Nothing here sends a create.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from reelflow.errors import ReelflowError, ShotListError
from reelflow.tasks._generate import with_generation
from reelflow.tasks._ledger import Ledger, LedgerEntry

if TYPE_CHECKING:
    from reelflow.tasks.luma import LumaCredentials

__all__ = ["Resolved", "pending_sends", "resolve_send"]


class Resolved(BaseModel):
    """What ``resolve_send`` recorded."""

    shot_id: str
    key: str
    record: str
    generation_id: str | None = None
    resend: bool = False


def pending_sends(ledger: Ledger, shot_id: str) -> list[LedgerEntry]:
    """Records of ``shot_id`` whose create was sent but whose answer never came."""
    return [entry for entry in ledger.entries()
            if entry.shot_id == shot_id and entry.sending_since and not entry.generation_id]


def _pick(ledger: Ledger, shot_id: str, key: str | None) -> LedgerEntry:
    pending = pending_sends(ledger, shot_id)
    if key:
        pending = [entry for entry in pending if entry.key.startswith(key)]
    if not pending:
        raise ShotListError([f"resolve: shot {shot_id} has no create in doubt"
                             + (f" with key {key}" if key else "") + "; nothing to do"])
    if len(pending) > 1:
        keys = ", ".join(entry.key[:16] for entry in pending)
        raise ShotListError([f"resolve: shot {shot_id} has {len(pending)} creates in doubt "
                             f"(keys {keys}); choose one with --key"])
    return ledger.read(pending[0].key) or pending[0]  # read again: a shared write needs its version


def _exists(credentials: LumaCredentials, generation_id: str) -> bool:
    """True when either API's account has ``generation_id``."""
    import luma_agents
    import lumaai

    clients = []
    if credentials.agents_api_key is not None:
        clients.append((credentials.get_agents_client(), luma_agents.NotFoundError))
    if credentials.api_key is not None:
        clients.append((credentials.get_client(), lumaai.NotFoundError))
    for client, not_found in clients:
        try:
            client.generations.get(generation_id)
            return True
        except not_found:
            continue
        except Exception as exc:  # noqa: BLE001 - an API that cannot be asked now
            raise ReelflowError(f"resolve: could not look {generation_id} up: "
                                f"{type(exc).__name__}") from None
    return False


def resolve_send(shot_id: str, *, generation_id: str | None = None, resend: bool = False,
                 key: str | None = None, ledger: Ledger | None = None,
                 credentials: LumaCredentials | None = None) -> Resolved:
    """Adopt ``generation_id`` for, or clear for a new send, ``shot_id``'s create in doubt.

    Raises:
        ShotListError: no (or more than one) create in doubt for the shot, an id the
            accounts do not know, or neither/both of generation_id and resend.
    """
    if (generation_id is None) == (not resend):
        raise ShotListError(["resolve: give --generation-id ID or --resend"])
    ledger = ledger or Ledger.default()
    entry = _pick(ledger, shot_id, key)
    if generation_id is not None:
        if credentials is not None and not _exists(credentials, generation_id):
            raise ShotListError([f"resolve: no generation {generation_id} on the Luma "
                                 "account(s); nothing was recorded"])
        if generation_id in ledger.generation_ids() or not ledger.claim(generation_id, entry.key):
            raise ShotListError([f"resolve: generation {generation_id} already belongs to "
                                 "another request in the ledger; nothing was recorded"])
        entry = with_generation(entry, generation_id, entry.sending_cost_usd or 0.0, adopted=True)
    else:
        entry = entry.model_copy(update={"sending_since": None, "sender": None,
                                         "sending_cost_usd": None})
    ledger.write(entry)
    return Resolved(shot_id=shot_id, key=entry.key, record=ledger.where(entry.key),
                    generation_id=generation_id, resend=resend)
