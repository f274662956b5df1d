# tests: tests/modules/test_muc_admin.py
"""XEP-0045 §5: roles and affiliations as data — ranks, the initial role of each affiliation
(§5.1.2), and who may change whose role or affiliation (§5.1.1, §5.1.3, §5.2.1, §5.2.2 and the
MUSTs of §8 and §9 that narrow them). Each check returns the error to answer, or None.

Errors: `forbidden` when the actor lacks the privilege altogether (not a moderator, not an
admin, not an owner: §8 and §9 preambles, §10 "MUST return a forbidden error"); `not-allowed`
when the privilege exists but the target's standing protects them (§8.2, §8.4, §9.1, §9.7);
`conflict` for what an owner or admin may not do to themselves (§9.1, §10.6).
"""
from __future__ import annotations

from typing import Literal

from stanzas.errors import StanzaError

Role = Literal["moderator", "participant", "visitor", "none"]
Affiliation = Literal["owner", "admin", "member", "none", "outcast"]

ROLES: tuple[Role, ...] = ("moderator", "participant", "visitor", "none")
AFFILIATIONS: tuple[Affiliation, ...] = ("owner", "admin", "member", "none", "outcast")
AFF_RANK: dict[str, int] = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
ROLE_RANK: dict[str, int] = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}
MEMBER, ADMIN, OWNER = 1, 2, 3


def default_role(affiliation: str, moderated: bool) -> Role:
    """§5.1.2 "Initial Role Based on Affiliation" (outcasts never enter)."""
    if AFF_RANK[affiliation] >= ADMIN:
        return "moderator"
    if affiliation == "member":
        return "participant"
    return "visitor" if moderated else "participant"


def role_after_affiliation(old_aff: str, new_aff: str, role: Role, moderated: bool) -> Role:
    """An occupant's role once its affiliation changed. §5.1.3 note: the role an affiliation
    brings is stable (admins and owners moderate, members have voice); what is lost with an
    affiliation is up to us: a former admin or owner falls back to its new initial role."""
    if AFF_RANK[new_aff] >= ADMIN:
        return "moderator"
    if AFF_RANK[old_aff] >= ADMIN:
        return default_role(new_aff, moderated)
    if new_aff == "member" and role == "visitor":
        return "participant"
    return role


def check_role_change(actor_aff: str, actor_role: str, target_aff: str, target_role: str,
                      new: Role) -> StanzaError | None:
    """May an occupant (actor) set another's role (target) to `new`? (muc#admin, by nick)"""
    if actor_role != "moderator":
        # §8 preamble: role requests "MUST be denied if [the sender is not] one of the moderators"
        return StanzaError.forbidden("only moderators change roles")
    a, t = AFF_RANK[actor_aff], AFF_RANK[target_aff]
    if new == "moderator":
        # §5.2.1 "Assign and Remove Moderator Role": admins and owners.
        return None if a >= ADMIN else StanzaError.forbidden("only admins grant moderator")
    if new == "none":
        # §8.2: "A user cannot be kicked by a moderator with a lower affiliation";
        # §5.1.3 chart: a moderator is kicked only "by an admin or owner".
        if t > a or (target_role == "moderator" and a < ADMIN):
            return StanzaError.not_allowed("that occupant outranks you")
        return None
    if target_role == "moderator":
        # §9.7: revoking moderator status is an admin privilege, and "an admin MUST NOT be
        # allowed to revoke moderator status from a user whose affiliation is owner or admin".
        if a < ADMIN:
            return StanzaError.not_allowed("only admins revoke moderator status")
        if t >= ADMIN:
            return StanzaError.not_allowed("admins and owners keep their moderator role")
        return None
    if new == "visitor" and target_role != "visitor":
        # §8.4: "MUST NOT allow the voice privileges of an admin or owner to be removed by
        # anyone", and a moderator "MUST NOT be able to revoke voice from a user whose
        # affiliation is at or above the moderator's level".
        if t >= ADMIN or t >= a:
            return StanzaError.not_allowed("you cannot revoke that occupant's voice")
    return None


def check_affiliation_change(actor_aff: str, target_aff: str, new: Affiliation, *,
                             self_change: bool, other_owners: int) -> StanzaError | None:
    """May a user with `actor_aff` change a JID's affiliation from `target_aff` to `new`?
    `other_owners` counts owners besides the target (the last owner may not step down)."""
    a = AFF_RANK[actor_aff]
    if a < ADMIN:
        # §9 preamble: affiliation requests from non-admins "MUST be denied ... forbidden".
        return StanzaError.forbidden("only admins and owners change affiliations")
    if a < OWNER:
        if AFF_RANK[new] >= ADMIN:
            # §10.5/§10.8: "Only owners shall be allowed to modify the owner/admin list".
            return StanzaError.forbidden("only owners grant admin or owner")
        if AFF_RANK[target_aff] >= ADMIN:
            # §9.1: a user "cannot be banned by an admin with a lower affiliation"; §5.2.2
            # chart: only an owner changes an admin's or owner's affiliation.
            return StanzaError.not_allowed("only owners change admins and owners")
    if self_change and new == "outcast":
        return StanzaError.conflict("you cannot ban yourself")                # §9.1 MUST
    if target_aff == "owner" and new != "owner" and other_owners == 0:
        return StanzaError.conflict("a room needs an owner")                   # §10.6 MUST
    return None
