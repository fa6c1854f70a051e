"""The agent protocol: every message either end sends, as validated values, and one parser.

The protocol's wire version is the path agents connect to (``/agent/v1``); within it, an agent
says which product protocol it speaks in its hello and the server accepts it or refuses it with
the accepted range. Messages are JSON objects told apart by ``type``. A message that is not
JSON, does not fit its type, names a type this version does not have, or comes out of order is
answered by closing the websocket with one of the ``Close`` codes. Imports nothing of ours but
``stairway.errors``: the server and the agent both build on it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stairway.errors import MessageRefused

PATH = "/agent/v1"
MESSAGE_LIMIT = 64 * 1024  # bytes of one message; the server closes with 1009 past it
TEXT_LIMIT = 2000  # characters of free text (a reason) kept, a mark saying it was cut included
HELLO_SHAPE = "{type: hello, agent_id, version, protocol}"


class Close(IntEnum):
    """Websocket close codes (4000-4999 are the application's own), named by their cause."""

    BAD_HELLO = 4400  # a hello naming another agent than the credential's
    UNAUTHORIZED = 4401  # no credential, or an unknown, revoked or expired one
    FORBIDDEN = 4403  # a valid token that is not an agent's credential
    UNKNOWN_TYPE = 4404  # a ``type`` this protocol version does not have
    HELLO_TIMEOUT = 4408  # no hello within 30 seconds of connecting
    OUT_OF_ORDER = 4409  # a known message where it cannot come: not hello first, a second
    # hello, a message only the other end sends, a failure report for no upgrade
    MALFORMED = 4422  # not a JSON object, or its fields do not fit its type
    PROTOCOL_REFUSED = 4426  # the agent's protocol lies outside the release's range
    RELEASE_REFUSED = 4427  # the agent's release lies outside the releases the server accepts
    TOO_MANY = 4429  # its address had too many refused connections this minute
    TOO_BIG = 1009  # a message over ``MESSAGE_LIMIT``
    INTERNAL = 1011  # the server failed while handling the message; the agent reconnects


class WireMessage(BaseModel):
    """What every message shares: frozen, and sent as JSON without its unset fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # newer fields are not an error

    def wire(self) -> str:
        """The JSON text sent on the socket; fields left unset are left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def fields(self) -> dict[str, Any]:
        """The same as a JSON-ready dict, to be carried inside another message."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def cut(text: str) -> str:
    """Free text an agent sends, kept to ``TEXT_LIMIT`` characters and marked when cut: it is
    shown and audited, never parsed, and the sender chooses its length."""
    if len(text) <= TEXT_LIMIT:
        return text
    marker = f"… [cut: {len(text)} characters in all]"  # the whole stays within the limit
    return text[: TEXT_LIMIT - len(marker)] + marker


AgentId = Annotated[str, Field(min_length=1, max_length=200)]
Version = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
Reason = Annotated[str, AfterValidator(cut)]


class RolledBack(BaseModel):
    """Why the previous build is running again, carried by its next hello."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    from_: Version | None = Field(default=None, alias="from")
    to: Version | None = None
    reason: Reason | None = None


class Hello(WireMessage):
    """Agent to server, first: who it is, the build it runs and the protocol it speaks, with the
    failed upgrade it came back from, if any.
    """

    type: Literal["hello"] = "hello"
    agent_id: AgentId
    version: Version
    protocol: Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
    rolled_back: RolledBack | None = None


class Welcome(WireMessage):
    """Server to agent, answering a hello it accepts: the server's release and heartbeat period."""

    type: Literal["welcome"] = "welcome"
    server_version: str
    heartbeat: float = 10.0


class Refused(WireMessage):
    """Server to agent, before closing: why it was refused; the agent does not try again."""

    type: Literal["refused"] = "refused"
    reason: str


class Heartbeat(WireMessage):
    """Agent to server, every heartbeat period: still here."""

    type: Literal["heartbeat"] = "heartbeat"


Name = Annotated[str, Field(min_length=1, max_length=200)]


class PluginDirectory(BaseModel):
    """A plug-in the offered build's release moves: its directory (relative to the data
    directory the agent holds plug-ins in) and the versions it moves between."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    name: Name
    directory: Annotated[str, Field(min_length=1, max_length=1000)]
    from_: Version = Field(alias="from")
    to: Version


class Upgrade(WireMessage):
    """An offer of a build: its URL and its signed release manifest, checked by the agent, and
    the plug-ins the move to it changes, which the agent snapshots before it goes."""

    type: Literal["upgrade"] = "upgrade"
    url: str
    manifest: dict[str, Any]
    signature: str
    plugins: list[PluginDirectory] | None = None


class UpgradeFailed(WireMessage):
    """The agent could not take the build: ``download`` (it cannot reach the URL),
    ``verify`` (it refused what it got) or ``snapshot`` (it cannot snapshot a plug-in
    directory the upgrade moves, so it would have no way back)."""

    type: Literal["upgrade_failed"] = "upgrade_failed"
    version: Version
    stage: Literal["download", "verify", "snapshot"]
    reason: Reason


class PluginSnapshotted(WireMessage):
    """Agent to server, before it goes to a build that moves a plug-in: the snapshot it took
    of the plug-in's directory on its host, kept there."""

    type: Literal["plugin_snapshot"] = "plugin_snapshot"
    plugin: Name
    version: Version
    snapshot: Name
    files: Annotated[int, Field(strict=True, ge=0)]


class PluginRollback(WireMessage):
    """Server to agent: put the plug-in's directory back from the newest snapshot of
    ``version`` this host keeps (``request`` names the operator's request)."""

    type: Literal["plugin_rollback"] = "plugin_rollback"
    request: Annotated[int, Field(strict=True, ge=1)]
    plugin: Name
    directory: Annotated[str, Field(min_length=1, max_length=1000)]
    version: Version


class PluginRestored(WireMessage):
    """Agent to server, answering a ``plugin_rollback``: the snapshot it put back, or why it
    could not (``reason``)."""

    type: Literal["plugin_restored"] = "plugin_restored"
    request: Annotated[int, Field(strict=True, ge=1)]
    snapshot: Name | None = None
    reason: Reason | None = None


Message = Annotated[
    Hello
    | Welcome
    | Refused
    | Heartbeat
    | Upgrade
    | UpgradeFailed
    | PluginSnapshotted
    | PluginRollback
    | PluginRestored,
    Field(discriminator="type"),
]
TYPES = frozenset(
    {"hello", "welcome", "refused", "heartbeat", "upgrade", "upgrade_failed"}
    | {"plugin_snapshot", "plugin_rollback", "plugin_restored"}
)
_adapter: TypeAdapter[Message] = TypeAdapter(Message)


def parse(raw: str | bytes) -> Message:
    """The message in ``raw``; ``MessageRefused`` with its close code when it is not one."""
    try:
        return _adapter.validate_json(raw)
    except ValidationError as err:
        raise _refusal(err) from None


def _refusal(err: ValidationError) -> MessageRefused:
    problem = err.errors()[0]
    if problem["type"] == "union_tag_invalid":
        kind = problem["ctx"]["tag"]
        known = ", ".join(sorted(TYPES))
        said = f"unknown message type {kind}: this protocol has {known}"
        return MessageRefused(said, close=Close.UNKNOWN_TYPE)
    where = ".".join(str(part) for part in problem["loc"]) or "the message"
    return MessageRefused(f"malformed message: {where}: {problem['msg']}", close=Close.MALFORMED)
