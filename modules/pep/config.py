# tests: tests/modules/test_pep.py
"""PEP node configuration (XEP-0060 §8.2, XEP-0163 §5 smart defaults) and its data forms
(XEP-0004): the configuration form, submitted forms, publish-options preconditions (XEP-0060
§7.1.5) and the pubsub error conditions.

Only fields the service honours are offered and accepted; a submitted field it does not know
is refused rather than silently ignored (XEP-0060 §7.1.5: "MUST reject the publication upon
encountering unknown fields").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from lxml import etree

from stanzas import forms, iq, ns
from stanzas.errors import StanzaError
from xmppd.module import number, size

NS = ns.PUBSUB
NS_OWNER = NS + "#owner"
NS_EVENT = NS + "#event"
NS_ERRORS = NS + "#errors"
NODE_CONFIG = NS + "#node_config"
PUBLISH_OPTIONS = NS + "#publish-options"
META_DATA = NS + "#meta-data"

ACCESS_MODELS = ("open", "presence", "roster", "whitelist")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")


@dataclass(frozen=True, slots=True)
class PepOptions:
    max_items_per_node: int = number(default=256, minimum=1, maximum=100_000)
    max_nodes: int = number(default=1000, minimum=1, maximum=100_000)
    max_payload_size: int = size(default="256 KiB", minimum=1024)
    max_subscribers: int = number(default=1000, minimum=0, maximum=1_000_000)
    vcard_conversion: bool = True


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """XEP-0163 §5 defaults: presence access, persistent, last item sent on presence."""
    access_model: str = "presence"
    roster_groups_allowed: tuple[str, ...] = ()
    persist_items: bool = True
    max_items: int | None = 1               # None: "max", the server's limit
    send_last_published_item: str = "on_sub_and_presence"
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    notify_retract: bool = True
    notify_delete: bool = True
    title: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["roster_groups_allowed"] = list(self.roster_groups_allowed)
        return d

    @classmethod
    def from_json(cls, data: Any) -> NodeConfig:
        """Stored configurations; missing or unknown keys fall back to the defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(data).items() if k in known}
        if "roster_groups_allowed" in values:
            values["roster_groups_allowed"] = tuple(values["roster_groups_allowed"])
        return cls(**values)

    def limit(self, server_max: int) -> int:
        """Items kept: the node's max_items, never more than the server's limit."""
        return server_max if self.max_items is None else min(self.max_items, server_max)


# var -> (attribute, form type, label, options)
Kind = Literal["boolean", "text-single", "list-single", "list-multi"]
FIELDS: dict[str, tuple[str, Kind, str, tuple[str, ...]]] = {
    "pubsub#title": ("title", "text-single", "A friendly name for the node", ()),
    "pubsub#description": ("description", "text-single", "A description of the node", ()),
    "pubsub#access_model": ("access_model", "list-single", "Who may subscribe and retrieve items",
                            ACCESS_MODELS),
    "pubsub#roster_groups_allowed": ("roster_groups_allowed", "list-multi",
                                     "Roster groups allowed to subscribe", ()),
    "pubsub#publish_model": ("", "list-single", "Who may publish", ("publishers",)),
    "pubsub#persist_items": ("persist_items", "boolean", "Persist items to storage", ()),
    "pubsub#max_items": ("max_items", "text-single",
                         "Max # of items to persist. `max` for the server's limit", ()),
    "pubsub#send_last_published_item": ("send_last_published_item", "list-single",
                                        "When to send the last published item", SEND_LAST),
    "pubsub#deliver_notifications": ("deliver_notifications", "boolean",
                                     "Whether to deliver event notifications", ()),
    "pubsub#deliver_payloads": ("deliver_payloads", "boolean",
                                "Whether to deliver payloads with event notifications", ()),
    "pubsub#notify_retract": ("notify_retract", "boolean",
                              "Notify subscribers when items are removed from the node", ()),
    "pubsub#notify_delete": ("notify_delete", "boolean",
                             "Notify subscribers when the node is deleted", ()),
}


def pubsub_error(condition: str, app: str | None = None, text: str | None = None, *,
                 feature: str | None = None) -> StanzaError:
    """A stanza error with a pubsub#errors condition (XEP-0060 §7-§8), e.g.
    `pubsub_error("feature-not-implemented", "unsupported", feature="subscribe")`."""
    el = None
    if app is not None:
        el = iq.empty(NS_ERRORS, app)
        if feature is not None:
            el.set("feature", feature)
    return StanzaError(condition, text, app=el)


def unsupported(feature: str) -> StanzaError:
    return pubsub_error("feature-not-implemented", "unsupported", feature=feature)


def parse_form(x: etree._Element | None, form_type: str) -> dict[str, list[str]] | None:
    """The fields of a submitted form (XEP-0004 §3.3) as var -> values; None for a cancel.

    Raises:
        StanzaError: bad-request for no form, a wrong FORM_TYPE or a field given twice.
    """
    if x is not None and x.tag == forms.X and x.get("type") == "cancel":
        return None
    if x is None:
        raise StanzaError.bad_request("expected a jabber:x:data form")
    return dict(forms.parse_submit(x, form_type).values)


def apply(config: NodeConfig, values: dict[str, list[str]], server_max: int) -> NodeConfig:
    """`config` changed by submitted fields (XEP-0004: fields not submitted keep their value).

    Raises:
        StanzaError: not-acceptable for unknown fields or values (XEP-0060 §8.2.5.2), with
            <unsupported-access-model/> for an access model this service lacks (§8.1.2).
    """
    changes: dict[str, Any] = {}
    for var, vals in values.items():
        spec = FIELDS.get(var)
        if spec is None:
            raise StanzaError.not_acceptable(f"unsupported node option {var}")
        attr, kind, _, options = spec
        if kind == "list-multi":
            changes[attr] = tuple(dict.fromkeys(v for v in vals if v))
            continue
        value = vals[0] if len(vals) == 1 else None
        if value is None:
            raise StanzaError.not_acceptable(f"{var} takes one value")
        if var == "pubsub#access_model" and value not in ACCESS_MODELS:
            raise pubsub_error("not-acceptable", "unsupported-access-model",
                               f"access models: {', '.join(ACCESS_MODELS)}")
        if var == "pubsub#publish_model":
            if value != "publishers":
                raise StanzaError.not_acceptable("only the owner publishes to a PEP node")
            continue
        if kind == "list-single" and value not in options:
            raise StanzaError.not_acceptable(f"{var}: one of {', '.join(options)}")
        if kind == "boolean":
            changes[attr] = _boolean(var, value)
        elif var == "pubsub#max_items":
            changes[attr] = _max_items(value, server_max)
        else:
            changes[attr] = value
    return replace(config, **changes)


def unmet(config: NodeConfig, values: dict[str, list[str]], server_max: int) -> str | None:
    """The first publish-options precondition the node's configuration does not meet
    (XEP-0060 §7.1.5), or None. Values compare after normalisation ("1" is "true")."""
    wanted = apply(config, values, server_max)       # raises for unknown fields and values
    for var in values:
        attr, kind = FIELDS[var][0], FIELDS[var][1]
        if not attr:
            continue
        a, b = getattr(wanted, attr), getattr(config, attr)
        if (set(a) != set(b)) if kind == "list-multi" else a != b:
            return var
    return None


def _boolean(var: str, value: str) -> bool:
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise StanzaError.not_acceptable(f"{var} is a boolean")


def _max_items(value: str, server_max: int) -> int | None:
    if value == "max":                              # XEP-0060 §8.2 "`max` for no limit"
        return None
    try:
        n = int(value)
    except ValueError:
        raise StanzaError.not_acceptable("pubsub#max_items is a number or 'max'") from None
    if not 1 <= n <= server_max:
        raise StanzaError.not_acceptable(f"pubsub#max_items: 1 to {server_max}, or 'max'")
    return n


def config_form(config: NodeConfig, kind: str, groups: tuple[str, ...] = ()) -> etree._Element:
    """The node_config form (XEP-0060 §8.2.1) with `config` as values; `kind` is 'form' for
    the owner to fill in, 'result' for notifications and meta-data."""
    out = []
    for var, (attr, ftype, label, options) in FIELDS.items():
        if var == "pubsub#publish_model":
            values = ["publishers"]
        else:
            value = getattr(config, attr)
            if ftype == "boolean":
                values = [forms.boolean(value)]
            elif var == "pubsub#max_items":
                values = ["max" if value is None else str(value)]
            elif ftype == "list-multi":
                values = list(value)
                options = tuple(dict.fromkeys(groups + tuple(value)))
            else:
                values = [value] if value else []
        form = kind == "form"
        out.append(forms.Field(var, ftype, label if form else "", values,
                               [("", o) for o in options] if form else ()))
    return forms.build(kind, out, form_type=NODE_CONFIG)


def meta_data_form(config: NodeConfig, owner: str) -> etree._Element:
    """XEP-0060 §5.4 node meta-data: what a disco#info on the node tells whoever may see it."""
    return forms.build("result", [
        forms.Field("pubsub#title", values=[config.title] if config.title else []),
        forms.Field("pubsub#description",
                    values=[config.description] if config.description else []),
        forms.Field("pubsub#access_model", "list-single", values=[config.access_model]),
        forms.Field("pubsub#owner", "jid-multi", values=[owner]),
        forms.Field("pubsub#publisher", "jid-multi", values=[owner])], form_type=META_DATA)
