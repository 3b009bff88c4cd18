"""asker: ``greet`` asks the client for a name (elicitation/create), then greets; in the handshake era the router
turns the InputRequired into a server-to-client request."""

from mcp_edge.plugin import PluginBase, RequestContext, tool
from mcp_edge.plugin.types import InputRequired

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}
ASK = {"method": "elicitation/create", "params": {"message": "Name?", "requestedSchema": SCHEMA}}


class Asker(PluginBase):
    id = "asker"
    capabilities = frozenset({"tools"})

    @tool(description="Greets after asking the name")
    async def greet(self, ctx: RequestContext, punctuation: str = "!") -> str:
        answers = ctx.input_responses or {}
        if "who" not in answers:
            return InputRequired(inputRequests={"who": ASK}, requestState="asked")  # type: ignore[return-value]
        return f"Hello, {answers['who']['content']['name']}{punctuation} ({ctx.request_state})"

    @tool(description="Asks again whatever the client answers")
    async def nag(self, ctx: RequestContext) -> str:
        rounds = int(ctx.request_state or 0) + 1
        return InputRequired(inputRequests={"who": ASK}, requestState=str(rounds))  # type: ignore[return-value]
