# tests: tests/modules/test_muc_config.py
"""A room's configuration (XEP-0045 §10.2, §15.5.3 muc#roomconfig) and what it shows in
service discovery (§6.4: room features, the muc#roominfo form).

Every field offered is honoured and nothing else is offered. A submitted field we do not know
is ignored (clients fill forms from other servers), a known one with a bad value is refused:
booleans and numbers with <bad-request/>, values outside the options and policy violations (a
password-protected room without a password, §10.1.3) with <not-acceptable/>.

- The room archive (MAM, XEP-0313), on by default, is offered as `muc#roomconfig_enablelogging`
  and also set by the names other servers offer: `muc#roomconfig_enablearchiving` (Prosody) and
  `mam` (ejabberd); of several submitted, one that changes the setting wins (a client may echo
  the field we offered and set another). Every room with it on keeps its messages in the
  database, a temporary one until it goes away; joiners get 170 (§7.2.12).
- A password protects: a form that sets a non-empty `muc#roomconfig_roomsecret` turns
  password protection on unless the same form turns it off (from on to off: a form echoing the
  "off" we offered does not count). Turning it off forgets the password, so the form sent back
  unchanged later does not turn it on again; a form that sets an empty secret without saying
  anything about protection turns it off.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from lxml import etree

from stanzas import ns
from stanzas import forms
from stanzas.forms import Field, Submitted
from stanzas.errors import StanzaError

NS_ROOMCONFIG = ns.MUC_ROOMCONFIG
NS_ROOMINFO = ns.MUC_ROOMINFO
Whois = Literal["moderators", "anyone"]
AllowPm = Literal["anyone", "participants", "moderators", "none"]
BROADCAST_ROLES = ("moderator", "participant", "visitor")
_PM_OPTIONS = (("Anyone", "anyone"), ("Anyone with Voice", "participants"),
               ("Moderators Only", "moderators"), ("Nobody", "none"))
_MAXUSERS = (10, 20, 30, 50, 100, 200, 500, 1000, 5000, 10000)
# The archive switch: ours (XEP-0045's registered field), Prosody's and ejabberd's.
ARCHIVE_FIELDS = ("muc#roomconfig_enablelogging", "muc#roomconfig_enablearchiving", "mam")


@dataclass(frozen=True, slots=True)
class Limits:
    """What the service lets owners choose (from [modules.muc])."""
    max_users: int              # default room size
    max_users_limit: int        # the largest an owner may set
    history: int                # default muc#maxhistoryfetch
    history_limit: int          # the largest an owner may set


@dataclass(frozen=True, slots=True)
class RoomConfig:
    name: str = ""
    description: str = ""
    lang: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password_protected: bool = False
    password: str = ""
    max_users: int = 200
    whois: Whois = "moderators"                    # semi-anonymous unless the owner opens it
    change_subject: bool = False                   # occupants (not only moderators) may
    allow_invites: bool = False                    # members may invite in members-only rooms
    allow_pm: AllowPm = "anyone"
    presence_broadcast: tuple[str, ...] = BROADCAST_ROLES
    get_member_list: tuple[str, ...] = BROADCAST_ROLES
    history_length: int = 20                       # muc#maxhistoryfetch
    logging: bool = True                           # the room archive (MAM)

    @classmethod
    def defaults(cls, limits: Limits) -> RoomConfig:
        return cls(max_users=limits.max_users, history_length=limits.history)

    @property
    def non_anonymous(self) -> bool:
        return self.whois == "anyone"

    @property
    def archived(self) -> bool:
        """Messages go to the room's archive (MAM)."""
        return self.logging

    @property
    def in_store(self) -> bool:
        """The room is in the database: persistent, or its archive is on (a temporary room's
        archive hangs off its row, and goes with it)."""
        return self.persistent or self.logging

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["presence_broadcast"] = list(self.presence_broadcast)
        d["get_member_list"] = list(self.get_member_list)
        return d

    @classmethod
    def from_json(cls, data: Any) -> RoomConfig:
        """A stored configuration; missing or unknown keys fall back to the defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(data).items() if k in known}
        for k in ("presence_broadcast", "get_member_list"):
            if k in values:
                values[k] = tuple(values[k])
        return cls(**values)

    # -- the owner's form (§10.1.3, §10.2) --------------------------------------------------
    def form(self, limits: Limits, owners: list[str], admins: list[str],
             room: str) -> etree._Element:
        sizes = sorted({n for n in _MAXUSERS if n <= limits.max_users_limit}
                       | {limits.max_users_limit, self.max_users})
        b = forms.boolean
        return forms.build("form", [
            Field("muc#roomconfig_roomname", "text-single", "Natural-Language Room Name",
                  [self.name]),
            Field("muc#roomconfig_roomdesc", "text-single", "Short Description of Room",
                  [self.description]),
            Field("muc#roomconfig_lang", "text-single", "Natural Language for Room Discussions",
                  [self.lang]),
            Field("muc#roomconfig_persistentroom", "boolean", "Make Room Persistent?",
                  [b(self.persistent)]),
            Field("muc#roomconfig_publicroom", "boolean", "Make Room Publicly Searchable?",
                  [b(self.public)]),
            Field("muc#roomconfig_membersonly", "boolean", "Make Room Members-Only?",
                  [b(self.members_only)]),
            Field("muc#roomconfig_moderatedroom", "boolean", "Make Room Moderated?",
                  [b(self.moderated)]),
            Field("muc#roomconfig_passwordprotectedroom", "boolean",
                  "Password Required to Enter?", [b(self.password_protected)]),
            Field("muc#roomconfig_roomsecret", "text-private", "Password", [self.password]),
            Field("muc#roomconfig_maxusers", "list-single", "Maximum Number of Occupants",
                  [str(self.max_users)], [(str(n), str(n)) for n in sizes]),
            Field("muc#roomconfig_whois", "list-single", "Who May Discover Real JIDs?",
                  [self.whois], [("Moderators Only", "moderators"), ("Anyone", "anyone")]),
            Field("muc#roomconfig_changesubject", "boolean", "Allow Occupants to Change Subject?",
                  [b(self.change_subject)]),
            Field("muc#roomconfig_allowinvites", "boolean", "Allow Members to Invite Others?",
                  [b(self.allow_invites)]),
            Field("muc#roomconfig_allowpm", "list-single", "Who Can Send Private Messages?",
                  [self.allow_pm], _PM_OPTIONS),
            Field("muc#roomconfig_presencebroadcast", "list-multi",
                  "Roles for which Presence is Broadcasted", list(self.presence_broadcast),
                  [(r.capitalize(), r) for r in BROADCAST_ROLES]),
            Field("muc#roomconfig_getmemberlist", "list-multi",
                  "Roles that May Retrieve Member List", list(self.get_member_list),
                  [(r.capitalize(), r) for r in BROADCAST_ROLES]),
            Field("muc#maxhistoryfetch", "text-single",
                  "Maximum Number of History Messages Returned by Room",
                  [str(self.history_length)]),
            Field("muc#roomconfig_enablelogging", "boolean",
                  "Keep a Message Archive (MAM) for Members?", [b(self.logging)]),
            Field("muc#roomconfig_roomadmins", "jid-multi", "Full List of Room Admins", admins),
            Field("muc#roomconfig_roomowners", "jid-multi", "Full List of Room Owners", owners),
        ], form_type=NS_ROOMCONFIG, title=f"Configuration for {room}",
            instructions="Complete this form to modify the configuration of your room.")

    def submit(self, form: Submitted, limits: Limits) -> RoomConfig:
        """The configuration after `form` (only the fields it holds change); raises
        StanzaError for bad values."""
        if form.form_type not in (None, NS_ROOMCONFIG):
            raise StanzaError.bad_request(f"not a {NS_ROOMCONFIG} form")
        max_users = form.integer("muc#roomconfig_maxusers", self.max_users) \
            if form.text("muc#roomconfig_maxusers") != "none" else limits.max_users_limit
        assert max_users is not None
        if not 1 <= max_users <= limits.max_users_limit:
            raise StanzaError.not_acceptable(
                f"muc#roomconfig_maxusers: from 1 to {limits.max_users_limit}")
        history = form.integer("muc#maxhistoryfetch", self.history_length)
        assert history is not None
        if not 0 <= history <= limits.history_limit:
            raise StanzaError.not_acceptable(
                f"muc#maxhistoryfetch: from 0 to {limits.history_limit}")
        protected, password = self._password(form)
        new = replace(
            self,
            name=form.text("muc#roomconfig_roomname", self.name),
            description=form.text("muc#roomconfig_roomdesc", self.description),
            lang=form.text("muc#roomconfig_lang", self.lang),
            persistent=form.boolean("muc#roomconfig_persistentroom", self.persistent),
            public=form.boolean("muc#roomconfig_publicroom", self.public),
            members_only=form.boolean("muc#roomconfig_membersonly", self.members_only),
            moderated=form.boolean("muc#roomconfig_moderatedroom", self.moderated),
            password_protected=protected,
            password=password,
            max_users=max_users,
            whois="anyone" if form.choice("muc#roomconfig_whois", self.whois,
                                          ("moderators", "anyone")) == "anyone" else "moderators",
            change_subject=form.boolean("muc#roomconfig_changesubject", self.change_subject),
            allow_invites=form.boolean("muc#roomconfig_allowinvites", self.allow_invites),
            allow_pm=_allow_pm(form.choice("muc#roomconfig_allowpm", self.allow_pm,
                                           [v for _, v in _PM_OPTIONS])),
            presence_broadcast=form.choices("muc#roomconfig_presencebroadcast",
                                            self.presence_broadcast, BROADCAST_ROLES),
            get_member_list=form.choices("muc#roomconfig_getmemberlist", self.get_member_list,
                                         BROADCAST_ROLES),
            history_length=history,
            logging=self._archiving(form))
        if new.password_protected and not new.password:
            # §10.1.3: "because the password for a password-protected room is blank"
            raise StanzaError.not_acceptable("a password-protected room needs a password")
        return new

    def _archiving(self, form: Submitted) -> bool:
        """The archive switch after `form`: if any of its names asks for a change, the change
        (every value is read, so a bad one is still <bad-request/>)."""
        wanted = {form.boolean(var, self.logging) for var in ARCHIVE_FIELDS if form.has(var)}
        return (not self.logging) if (not self.logging) in wanted else self.logging

    def _password(self, form: Submitted) -> tuple[bool, str]:
        """(password_protected, password) after `form`."""
        secret = form.text("muc#roomconfig_roomsecret", self.password)
        protect = form.boolean("muc#roomconfig_passwordprotectedroom", self.password_protected)
        if self.password_protected and not protect:
            return False, ""                                    # turned off: forgotten
        if not form.has("muc#roomconfig_passwordprotectedroom") or not protect:
            protect = bool(secret)      # the secret decides, unless the form turns it on
        return protect, secret

    # -- what everyone sees (§6.4) ---------------------------------------------------------
    def features(self) -> list[str]:
        return ["muc_persistent" if self.persistent else "muc_temporary",
                "muc_public" if self.public else "muc_hidden",
                "muc_membersonly" if self.members_only else "muc_open",
                "muc_moderated" if self.moderated else "muc_unmoderated",
                "muc_passwordprotected" if self.password_protected else "muc_unsecured",
                "muc_nonanonymous" if self.non_anonymous else "muc_semianonymous"]

    def roominfo(self, occupants: int, subject: str, contacts: list[str]) -> etree._Element:
        fields_ = [
            Field("muc#roominfo_description", "text-single", "Description", [self.description]),
            Field("muc#roominfo_subject", "text-single", "Current Discussion Topic", [subject]),
            Field("muc#roominfo_occupants", "text-single", "Number of occupants",
                  [str(occupants)]),
            Field("muc#roomconfig_changesubject", "boolean", "Occupants may change the subject",
                  [forms.boolean(self.change_subject)]),
            Field("muc#maxhistoryfetch", "text-single", "Maximum Number of History Messages",
                  [str(self.history_length)]),
            Field("muc#roomconfig_allowinvites", "boolean", "Members may invite",
                  [forms.boolean(self.allow_invites)]),
        ]
        if self.lang:
            fields_.append(Field("muc#roominfo_lang", "text-single", "Language", [self.lang]))
        if contacts and self.non_anonymous:
            fields_.append(Field("muc#roominfo_contactjid", "jid-multi", "Contact Addresses",
                                 contacts))
        return forms.build("result", fields_, form_type=NS_ROOMINFO)


def _allow_pm(value: str) -> AllowPm:
    for v in ("anyone", "participants", "moderators", "none"):
        if v == value:
            return v
    raise StanzaError.not_acceptable(f"muc#roomconfig_allowpm: {value!r} is not an option")
