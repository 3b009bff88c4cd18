"""The fixtures the MCP conformance suite calls, for both protocol eras.

Names, arguments and results follow the suite's server scenarios
(``@modelcontextprotocol/conformance@0.2.0-alpha.12``; the reference is its
``everything-server``). Tools that need input from the client are written once,
as steps of an input-required exchange (``_converse``): under 2026-07-28 a step
that needs input returns ``InputRequired`` and the client retries; in the
handshake era the same step's requests go to the client as server-to-client
requests (``ctx.send_request``) and the step runs again with the answers.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from typing import Any

from mcp_edge.errors import ProtocolError
from mcp_edge.plugin import (
    AudioContent,
    Completion,
    EmbeddedResource,
    ImageContent,
    PluginBase,
    PromptMessage,
    RequestContext,
    TextContent,
    TextResourceContents,
    ToolResult,
    completion,
    prompt,
    resource,
    resource_template,
    tool,
)
from mcp_edge.plugin.types import InputRequired

TEST_IMAGE_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
INVALID_PARAMS = -32602
MAX_ROUNDS = 8

Step = Callable[[Mapping[str, Any], "str | None"], Any]


def _elicit(message: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    return {"method": "sampling/createMessage",
            "params": {"messages": [{"role": "user", "content": {"type": "text", "text": text}}],
                       "maxTokens": max_tokens}}


ROOTS = {"method": "roots/list", "params": {}}


def _answer(responses: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The client's answer under ``key``; a JSON-RPC invalid-params error if it is not an object."""
    if key not in responses:
        return None
    value = responses[key]
    if not isinstance(value, dict):
        raise ProtocolError(INVALID_PARAMS, f"inputResponses.{key} must be an object, got {type(value).__name__}")
    return value


def _sampled_text(result: Mapping[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, list):  # sampling with tools: a list of blocks
        content = content[0] if content else {}
    return str(content.get("text", "")) if isinstance(content, dict) else ""


def _elicited(result: Mapping[str, Any]) -> str:
    return f"action={result.get('action')}, content={result.get('content')}"


async def _converse(ctx: RequestContext, step: Step) -> Any:
    """Run ``step(responses, state)`` until it stops asking for input, in whichever era the request is."""
    if ctx.stateless:
        return step(ctx.input_responses or {}, ctx.request_state)
    responses: dict[str, Any] = {}
    state: str | None = None
    for _ in range(MAX_ROUNDS):
        out = step(responses, state)
        if not isinstance(out, InputRequired):
            return out
        responses = {key: await ctx.send_request(str(req["method"]), dict(req.get("params") or {}))
                     for key, req in (out.inputRequests or {}).items()}
        state = out.requestState
    raise RuntimeError(f"no result after {MAX_ROUNDS} rounds of input")


class Conformance(PluginBase):
    id = "conformance"
    capabilities = frozenset({"tools", "resources", "prompts", "completions"})

    # -- content ----------------------------------------------------------------------------

    @tool
    async def test_simple_text(self) -> str:
        """Returns one text block."""
        return "This is a simple text response for testing."

    @tool
    async def test_image_content(self) -> ImageContent:
        """Returns one image block (a 1x1 PNG)."""
        return ImageContent(data=TEST_IMAGE_BASE64, mimeType="image/png")

    @tool
    async def test_audio_content(self) -> AudioContent:
        """Returns one audio block (a tiny WAV)."""
        return AudioContent(data=TEST_AUDIO_BASE64, mimeType="audio/wav")

    @tool
    async def test_embedded_resource(self) -> EmbeddedResource:
        """Returns one embedded text resource."""
        return EmbeddedResource(resource=TextResourceContents(
            uri="test://embedded-resource", mimeType="text/plain", text="This is an embedded resource content."))

    @tool
    async def test_multiple_content_types(self) -> list[TextContent | ImageContent | EmbeddedResource]:
        """Returns text, an image and an embedded resource."""
        return [
            TextContent(text="Multiple content types test:"),
            ImageContent(data=TEST_IMAGE_BASE64, mimeType="image/png"),
            EmbeddedResource(resource=TextResourceContents(
                uri="test://mixed-content-resource", mimeType="application/json", text='{"test":"data","value":123}')),
        ]

    @tool
    async def test_error_handling(self) -> ToolResult:
        """Always fails, as a tool-level error (isError)."""
        return ToolResult(content=[TextContent(text="This tool intentionally returns an error for testing")],
                          isError=True)

    # -- progress and logging ------------------------------------------------------------------

    @tool
    async def test_tool_with_progress(self, ctx: RequestContext) -> str:
        """Reports progress 0, 50 and 100 of 100, 50 ms apart."""
        for i, progress in enumerate((0, 50, 100)):
            if i:
                await asyncio.sleep(0.05)
            await ctx.report_progress(progress, 100, f"step {i + 1} of 3")
        return f"Progress test completed (token {ctx.request_id})"

    @tool
    async def test_tool_with_logging(self, ctx: RequestContext) -> str:
        """Logs three info messages, 50 ms apart."""
        await ctx.log("info", "Tool execution started", "conformance")
        await asyncio.sleep(0.05)
        await ctx.log("info", "Tool processing data", "conformance")
        await asyncio.sleep(0.05)
        await ctx.log("info", "Tool execution completed", "conformance")
        return "Logging test completed"

    @tool
    async def test_logging_tool(self, ctx: RequestContext) -> str:
        """Logs at info; under 2026-07-28 nothing is sent unless the request set a logLevel."""
        await ctx.log("info", "test_logging_tool ran", "conformance")
        return "Logged (if the request asked for log messages)"

    # -- asking the client ---------------------------------------------------------------------

    @tool
    async def test_sampling(self, prompt: str, ctx: RequestContext) -> str:
        """Asks the client's LLM (sampling/createMessage) and returns its answer.

        Args:
            prompt: The prompt to send to the LLM.
        """
        ctx.require_capability("sampling")

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "sampling")
            if answer is None:
                return InputRequired(inputRequests={"sampling": _sample(prompt, 100)})
            return f"LLM response: {_sampled_text(answer)}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_elicitation(self, message: str, ctx: RequestContext) -> str:
        """Asks the user (elicitation/create) for a username and an email.

        Args:
            message: The message to show the user.
        """
        ctx.require_capability("elicitation")
        request = _elicit(message, {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        }, ["username", "email"])

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "elicitation")
            if answer is None:
                return InputRequired(inputRequests={"elicitation": request})
            return f"User response: {_elicited(answer)}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_elicitation_sep1034_defaults(self, ctx: RequestContext) -> str:
        """Elicitation whose schema gives a default for every field (SEP-1034)."""
        ctx.require_capability("elicitation")
        request = _elicit("Please review and update the form fields with defaults", {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"],
                       "default": "active"},
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        })

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "defaults")
            if answer is None:
                return InputRequired(inputRequests={"defaults": request})
            return f"Elicitation completed: {_elicited(answer)}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_elicitation_sep1330_enums(self, ctx: RequestContext) -> str:
        """Elicitation with the five enum schema forms of SEP-1330."""
        ctx.require_capability("elicitation")
        options = ["option1", "option2", "option3"]
        titled = [{"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"},
                  {"const": "value3", "title": "Third Option"}]
        request = _elicit("Please select options from the enum fields", {
            "untitledSingle": {"type": "string", "description": "Select one option", "enum": options},
            "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": titled},
            "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": options,
                           "enumNames": ["Option One", "Option Two", "Option Three"]},
            "untitledMulti": {"type": "array", "description": "Select multiple options",
                              "items": {"type": "string", "enum": options}},
            "titledMulti": {"type": "array", "description": "Select multiple options with titles",
                            "items": {"anyOf": titled}},
        })

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "enums")
            if answer is None:
                return InputRequired(inputRequests={"enums": request})
            return f"Elicitation completed: {_elicited(answer)}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_missing_capability(self, ctx: RequestContext) -> str:
        """Needs the client's sampling capability: -32021 when the request does not declare it."""
        ctx.require_capability("sampling")
        return "The client declared sampling"

    @tool
    async def test_streaming_elicitation(self, ctx: RequestContext) -> str:
        """Asks for a confirmation: an InputRequiredResult under 2026-07-28, never a request on the stream."""
        ctx.require_capability("elicitation")
        request = _elicit("Continue?", {"confirm": {"type": "boolean"}}, ["confirm"])

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "confirm")
            if answer is None:
                return InputRequired(inputRequests={"confirm": request})
            return f"Confirmed: {_elicited(answer)}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    # -- list changes ---------------------------------------------------------------------------

    @tool
    async def test_trigger_tool_change(self) -> str:
        """Tells clients the tool list changed (notifications/tools/list_changed)."""
        await self.ctx.notify_list_changed("tools")
        return "Tool list change notified"

    @tool
    async def test_trigger_prompt_change(self) -> str:
        """Tells clients the prompt list changed (notifications/prompts/list_changed)."""
        await self.ctx.notify_list_changed("prompts")
        return "Prompt list change notified"

    # -- input-required round trips (SEP-2322) -------------------------------------------------

    @tool
    async def test_input_required_result_elicitation(self, ctx: RequestContext) -> str:
        """Asks the user's name (key user_name), then greets them."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "user_name")
            if answer is None:
                return InputRequired(inputRequests={"user_name": _elicit(
                    "What is your name?", {"name": {"type": "string"}}, ["name"])})
            content = answer.get("content") or {}
            return f"Hello, {content.get('name', 'stranger') if isinstance(content, dict) else 'stranger'}!"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_sampling(self, ctx: RequestContext) -> str:
        """Asks the client's LLM (key capital_question) and returns the answer."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "capital_question")
            if answer is None:
                return InputRequired(inputRequests={"capital_question": _sample("What is the capital of France?",
                                                                                100)})
            return f"LLM says: {_sampled_text(answer)}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_list_roots(self, ctx: RequestContext) -> str:
        """Asks for the client's roots (key client_roots) and lists them."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "client_roots")
            if answer is None:
                return InputRequired(inputRequests={"client_roots": ROOTS})
            roots = answer.get("roots") or []
            uris = [str(r.get("uri")) for r in roots if isinstance(r, dict)]
            return f"Roots: {', '.join(uris) or 'none'}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_request_state(self, ctx: RequestContext) -> str:
        """Asks for a confirmation with a requestState, and checks the state that comes back."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "confirm")
            if answer is None or state != "confirm-pending":
                return InputRequired(inputRequests={"confirm": _elicit(
                    "Please confirm", {"ok": {"type": "boolean"}}, ["ok"])}, requestState="confirm-pending")
            return f"state-ok: confirmed ({_elicited(answer)})"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_multiple_inputs(self, ctx: RequestContext) -> str:
        """Asks for a name, an LLM greeting and the roots at once, with a requestState."""
        requests = {
            "user_name": _elicit("What is your name?", {"name": {"type": "string"}}, ["name"]),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": ROOTS,
        }

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answers = {key: _answer(responses, key) for key in requests}
            missing = {key: req for key, req in requests.items() if answers[key] is None}
            if missing or state != "multiple-pending":
                return InputRequired(inputRequests=missing or requests, requestState="multiple-pending")
            return f"Got all {len(answers)} inputs: {', '.join(sorted(answers))}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_multi_round(self, ctx: RequestContext) -> str:
        """Two rounds: a name (step1), then a color (step2), each with its own requestState."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            step1 = InputRequired(inputRequests={"step1": _elicit(
                "Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])}, requestState="round-1")
            if state is None:
                return step1
            if state == "round-1":
                answer = _answer(responses, "step1")
                if answer is None:
                    return step1
                name = (answer.get("content") or {}).get("name", "?")
                return InputRequired(inputRequests={"step2": _elicit(
                    "Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])},
                    requestState=f"round-2:{name}")
            answer = _answer(responses, "step2")
            if answer is None or not state.startswith("round-2:"):
                return step1
            color = (answer.get("content") or {}).get("color", "?")
            return f"{state.removeprefix('round-2:')} likes {color}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_tampered_state(self, ctx: RequestContext) -> str:
        """Returns a requestState the runtime signs; a retry with a changed one is refused (-32602)."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "confirm")
            if answer is None or state != "integrity-protected":
                return InputRequired(inputRequests={"confirm": _elicit(
                    "Please confirm", {"ok": {"type": "boolean"}}, ["ok"])}, requestState="integrity-protected")
            return "state verified"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    @tool
    async def test_input_required_result_capabilities(self, ctx: RequestContext) -> str:
        """Asks only for what the client declared: sampling, elicitation and roots, each if present."""
        caps = ctx.client_capabilities
        requests: dict[str, dict[str, Any]] = {}
        if "sampling" in caps:
            requests["sampling"] = _sample("Say something", 20)
        if "elicitation" in caps:
            requests["elicitation"] = _elicit("Anything to add?", {"note": {"type": "string"}})
        if "roots" in caps:
            requests["roots"] = ROOTS
        if not requests:
            return "The client declared none of sampling, elicitation, roots"

        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            missing = {key: req for key, req in requests.items() if _answer(responses, key) is None}
            if missing:
                return InputRequired(inputRequests=missing)
            return f"Answered: {', '.join(sorted(requests))}"

        return await _converse(ctx, step)  # type: ignore[no-any-return]

    # -- resources ------------------------------------------------------------------------------

    @resource("test://static-text", name="static-text", mime_type="text/plain",
              description="A static text resource for testing")
    async def static_text(self) -> str:
        return "This is the content of the static text resource."

    @resource("test://static-binary", name="static-binary", mime_type="image/png",
              description="A static binary resource (a 1x1 PNG) for testing")
    async def static_binary(self) -> bytes:
        return base64.b64decode(TEST_IMAGE_BASE64)

    @resource("test://watched-resource", name="watched-resource", mime_type="text/plain",
              description="A resource to subscribe to")
    async def watched(self) -> str:
        return "Watched resource content"

    @resource_template("test://template/{id}/data", name="template-data", mime_type="application/json",
                       description="Data for an id, from a URI template")
    async def template_data(self, id: str) -> str:
        return f'{{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}}'

    # -- prompts ----------------------------------------------------------------------------------

    @prompt
    async def test_simple_prompt(self) -> str:
        """A simple prompt without arguments."""
        return "This is a simple prompt for testing."

    @prompt
    async def test_prompt_with_arguments(self, arg1: str, arg2: str) -> str:
        """A prompt with two required arguments.

        Args:
            arg1: First test argument.
            arg2: Second test argument.
        """
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @prompt
    async def test_prompt_with_embedded_resource(self, resourceUri: str) -> list[PromptMessage]:
        """A prompt that embeds a resource.

        Args:
            resourceUri: URI of the resource to embed.
        """
        return [
            PromptMessage(role="user", content=EmbeddedResource(resource=TextResourceContents(
                uri=resourceUri, mimeType="text/plain", text="Embedded resource content for testing."))),
            PromptMessage(role="user", content=TextContent(text="Please process the embedded resource above.")),
        ]

    @prompt
    async def test_prompt_with_image(self) -> list[PromptMessage]:
        """A prompt with an image."""
        return [
            PromptMessage(role="user", content=ImageContent(data=TEST_IMAGE_BASE64, mimeType="image/png")),
            PromptMessage(role="user", content=TextContent(text="Please analyze the image above.")),
        ]

    @prompt
    async def test_input_required_result_prompt(self, ctx: RequestContext) -> Any:
        """A prompt that first asks the user for context (key user_context)."""
        def step(responses: Mapping[str, Any], state: str | None) -> Any:
            answer = _answer(responses, "user_context")
            if answer is None:
                return InputRequired(inputRequests={"user_context": _elicit(
                    "What context should the prompt use?", {"context": {"type": "string"}}, ["context"])})
            content = answer.get("content") or {}
            context = content.get("context", "") if isinstance(content, dict) else ""
            return f"Use this context: {context}"

        return await _converse(ctx, step)

    @completion(prompt="test_prompt_with_arguments", argument="arg1")
    async def complete_arg1(self, value: str) -> Completion:
        values = [v for v in ("paris", "park", "party", "test", "testing", "tested") if v.startswith(value)]
        return Completion(values=values, total=len(values), hasMore=False)
