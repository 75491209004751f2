"""The official AI SDKs (anthropic, openai, google-genai) as clients of Castellan's AI gateway or of
integration-tests' fake-provider, one scenario at a time, reporting what the SDK saw.

Usage:
  ai_sdks.py --base-url URL --key KEY --scenario NAME[=MODEL] [--scenario ...] [options]

URL is the server root (http://127.0.0.1:PORT), as Claude Code's ANTHROPIC_BASE_URL: the script
adds /v1 for the OpenAI SDK, and google-genai gets it as http_options.base_url.

With one --scenario it prints one JSON object; with several, one object keyed by each NAME[=MODEL]
as given (all run in this one process: starting Python and importing the three SDKs takes longer
than a scenario). Every result has "scenario", "model" and "ok"; a result with ok=false has "error":
{"class", "classes" (the exception's class and its bases, nearest first), "status" (HTTP status,
None without a response), "code"/"api_status" (google-genai), "message", "body"}.

Scenarios (default model in brackets; the fake reacts to substrings of the model, see
integration-tests/src/bin/fake_provider/main.rs):
  anthropic.create, anthropic.stream (messages.stream + text_stream), anthropic.tool,
  anthropic.tool_stream, anthropic.count_tokens, anthropic.models      [claude-sonnet-4-5 / -tool]
  openai.chat, openai.chat_stream (stream_options.include_usage), openai.chat_tool,
  openai.chat_tool_stream, openai.responses, openai.responses_stream, openai.responses_tool,
  openai.models                                                          [gpt-4.1-mini / -tool]
  gemini.generate, gemini.stream, gemini.tool, gemini.count_tokens, gemini.models
                                                                         [gemini-2.5-flash / -tool]
A tool scenario offers one tool, `search(query: string)`.

Options:
  --prompt TEXT             the user message (default "What is the capital of France?")
  --max-retries N           for anthropic and openai (default 0: a test sees the first answer)
  --timeout SECONDS         per request (default 30)
  --header "Name: value"    sent on every request (repeatable), e.g. X-Claude-Code-Session-Id
  --anthropic-auth MODE     api-key (default: SDK >= 2 sends Authorization: Bearer),
                            auth-token (ANTHROPIC_AUTH_TOKEN style, also Bearer), or
                            x-api-key (the header Claude Code sends)
  --gemini-api-version V    google-genai's api_version (default: the SDK's own, v1 for 3.x)
"""

import argparse
import json
import sys
import time

DEFAULT_PROMPT = "What is the capital of France?"
TOOL_DESCRIPTION = "Searches the knowledge base."
TOOL_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "what to look for"}},
    "required": ["query"],
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--scenario", action="append", required=True)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-retries", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--anthropic-auth", choices=["api-key", "auth-token", "x-api-key"], default="api-key")
    parser.add_argument("--gemini-api-version", default=None)
    return parser.parse_args(argv)


def headers_of(args):
    headers = {}
    for line in args.header:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return headers


def plain(value):
    """A pydantic model (or anything) as plain JSON-able data."""
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def describe_error(error):
    classes = [klass.__name__ for klass in type(error).__mro__ if klass not in (object, BaseException, Exception)]
    described = {"class": type(error).__name__, "classes": classes, "message": str(error)[:500], "status": None}
    status = getattr(error, "status_code", None)
    if status is None and isinstance(getattr(error, "code", None), int):
        status = error.code  # google-genai: errors.APIError.code is the HTTP status
    described["status"] = status
    if hasattr(error, "code"):
        described["code"] = error.code
    if hasattr(error, "status") and not hasattr(error, "status_code"):
        described["api_status"] = error.status
    body = getattr(error, "body", None)
    if body is None:
        body = getattr(error, "details", None)
    try:
        json.dumps(body)
        described["body"] = body
    except (TypeError, ValueError):
        described["body"] = repr(body)
    return described


# -------------------------------------------------------------------------------------------------
# anthropic

def anthropic_client(args):
    import anthropic

    options = dict(base_url=args.base_url, max_retries=args.max_retries, timeout=args.timeout,
                   default_headers=headers_of(args))
    if args.anthropic_auth == "api-key":
        return anthropic.Anthropic(api_key=args.key, **options)
    if args.anthropic_auth == "auth-token":
        return anthropic.Anthropic(api_key=None, auth_token=args.key, **options)
    options["default_headers"] = {**options["default_headers"], "X-Api-Key": args.key}
    return anthropic.Anthropic(api_key=None, auth_token=None, **options)


ANTHROPIC_TOOLS = [{"name": "search", "description": TOOL_DESCRIPTION, "input_schema": TOOL_SCHEMA}]


def anthropic_message_result(message):
    text = "".join(block.text for block in message.content if block.type == "text")
    tools = [{"name": block.name, "input": block.input, "id": block.id}
             for block in message.content if block.type == "tool_use"]
    return {"text": text, "stop_reason": message.stop_reason, "usage": plain(message.usage), "id": message.id,
            "response_model": message.model, "tool": tools[0] if tools else None}


def anthropic_create(args, model, tools=None):
    client = anthropic_client(args)
    extra = {"tools": tools} if tools else {}
    message = client.messages.create(model=model, max_tokens=256,
                                     messages=[{"role": "user", "content": args.prompt}], **extra)
    return anthropic_message_result(message)


def anthropic_stream(args, model, tools=None):
    client = anthropic_client(args)
    extra = {"tools": tools} if tools else {}
    pieces, events = [], 0
    with client.messages.stream(model=model, max_tokens=256,
                                messages=[{"role": "user", "content": args.prompt}], **extra) as stream:
        if tools:
            for _ in stream:
                events += 1
        else:
            for piece in stream.text_stream:
                pieces.append(piece)
        final = stream.get_final_message()
    result = anthropic_message_result(final)
    result.update({"streamed_text": "".join(pieces), "deltas": len(pieces), "events": events})
    return result


def anthropic_count_tokens(args, model):
    client = anthropic_client(args)
    count = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": args.prompt}])
    return {"input_tokens": count.input_tokens}


def anthropic_models(args, model):
    client = anthropic_client(args)
    return {"ids": [info.id for info in client.models.list()]}


# -------------------------------------------------------------------------------------------------
# openai

def openai_client(args):
    import openai

    return openai.OpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.key, max_retries=args.max_retries,
                         timeout=args.timeout, default_headers=headers_of(args))


OPENAI_CHAT_TOOLS = [{"type": "function",
                      "function": {"name": "search", "description": TOOL_DESCRIPTION, "parameters": TOOL_SCHEMA}}]
OPENAI_RESPONSES_TOOLS = [{"type": "function", "name": "search", "description": TOOL_DESCRIPTION,
                           "parameters": TOOL_SCHEMA, "strict": False}]


def openai_chat(args, model, tools=None):
    client = openai_client(args)
    extra = {"tools": tools} if tools else {}
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": args.prompt}],
                                                **extra)
    choice = completion.choices[0]
    calls = choice.message.tool_calls or []
    tool = ({"name": calls[0].function.name, "input": json.loads(calls[0].function.arguments), "id": calls[0].id}
            if calls else None)
    return {"text": choice.message.content or "", "stop_reason": choice.finish_reason, "usage": plain(completion.usage),
            "id": completion.id, "response_model": completion.model, "tool": tool}


def openai_chat_stream(args, model, tools=None):
    client = openai_client(args)
    extra = {"tools": tools} if tools else {}
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": args.prompt}],
                                            stream=True, stream_options={"include_usage": True}, **extra)
    pieces, chunks, usage, finish_reason, calls = [], 0, None, None, {}
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = plain(chunk.usage)
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": "", "id": None})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish_reason = choice.finish_reason
    tool = None
    if calls:
        first = calls[min(calls)]
        tool = {"name": first["name"], "input": json.loads(first["arguments"]), "id": first["id"]}
    return {"text": "".join(pieces), "deltas": len(pieces), "events": chunks, "usage": usage,
            "stop_reason": finish_reason, "tool": tool}


def responses_result(response):
    calls = [item for item in response.output if item.type == "function_call"]
    tool = {"name": calls[0].name, "input": json.loads(calls[0].arguments), "id": calls[0].call_id} if calls else None
    return {"text": response.output_text, "stop_reason": response.status, "usage": plain(response.usage),
            "id": response.id, "response_model": response.model, "tool": tool}


def openai_responses(args, model, tools=None):
    client = openai_client(args)
    extra = {"tools": tools} if tools else {}
    return responses_result(client.responses.create(model=model, input=args.prompt, **extra))


def openai_responses_stream(args, model, tools=None):
    client = openai_client(args)
    extra = {"tools": tools} if tools else {}
    pieces, events, types = [], 0, []
    with client.responses.stream(model=model, input=args.prompt, **extra) as stream:
        for event in stream:
            events += 1
            if not types or types[-1] != event.type:
                types.append(event.type)
            if event.type == "response.output_text.delta":
                pieces.append(event.delta)
        final = stream.get_final_response()
    result = responses_result(final)
    result.update({"streamed_text": "".join(pieces), "deltas": len(pieces), "events": events, "event_types": types})
    return result


def openai_models(args, model):
    client = openai_client(args)
    return {"ids": [entry.id for entry in client.models.list()]}


# -------------------------------------------------------------------------------------------------
# google-genai

def gemini_client(args):
    from google import genai
    from google.genai import types

    options = {"base_url": args.base_url, "headers": headers_of(args), "timeout": int(args.timeout * 1000)}
    if args.gemini_api_version:
        options["api_version"] = args.gemini_api_version
    return genai.Client(api_key=args.key, http_options=types.HttpOptions(**options))


def gemini_config(tools):
    from google.genai import types

    if not tools:
        return None
    declaration = types.FunctionDeclaration(name="search", description=TOOL_DESCRIPTION,
                                            parameters_json_schema=TOOL_SCHEMA)
    return types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def gemini_result(response):
    calls = response.function_calls or []
    tool = {"name": calls[0].name, "input": calls[0].args} if calls else None
    candidate = (response.candidates or [None])[0]
    finish = candidate.finish_reason if candidate is not None else None
    text = "".join(part.text or "" for part in (candidate.content.parts or [])) if candidate and candidate.content else ""
    return {"text": text, "stop_reason": getattr(finish, "value", finish), "usage": plain(response.usage_metadata),
            "id": response.response_id, "response_model": response.model_version, "tool": tool}


def gemini_generate(args, model, tools=None):
    client = gemini_client(args)
    return gemini_result(client.models.generate_content(model=model, contents=args.prompt, config=gemini_config(tools)))


def gemini_stream(args, model, tools=None):
    client = gemini_client(args)
    pieces, chunks, last = [], 0, None
    for chunk in client.models.generate_content_stream(model=model, contents=args.prompt,
                                                       config=gemini_config(tools)):
        chunks += 1
        last = chunk
        for candidate in chunk.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.text:
                    pieces.append(part.text)
    result = gemini_result(last) if last is not None else {"usage": None, "tool": None, "stop_reason": None}
    result.update({"text": "".join(pieces), "deltas": len(pieces), "events": chunks})
    return result


def gemini_count_tokens(args, model):
    client = gemini_client(args)
    return {"total_tokens": client.models.count_tokens(model=model, contents=args.prompt).total_tokens}


def gemini_models(args, model):
    client = gemini_client(args)
    return {"ids": [entry.name for entry in client.models.list()]}


# -------------------------------------------------------------------------------------------------

SCENARIOS = {
    # name: (function, default model, keyword arguments)
    "anthropic.create": (anthropic_create, "claude-sonnet-4-5", {}),
    "anthropic.stream": (anthropic_stream, "claude-sonnet-4-5", {}),
    "anthropic.tool": (anthropic_create, "claude-sonnet-4-5-tool", {"tools": ANTHROPIC_TOOLS}),
    "anthropic.tool_stream": (anthropic_stream, "claude-sonnet-4-5-tool", {"tools": ANTHROPIC_TOOLS}),
    "anthropic.count_tokens": (anthropic_count_tokens, "claude-sonnet-4-5", {}),
    "anthropic.models": (anthropic_models, "", {}),
    "openai.chat": (openai_chat, "gpt-4.1-mini", {}),
    "openai.chat_stream": (openai_chat_stream, "gpt-4.1-mini", {}),
    "openai.chat_tool": (openai_chat, "gpt-4.1-mini-tool", {"tools": OPENAI_CHAT_TOOLS}),
    "openai.chat_tool_stream": (openai_chat_stream, "gpt-4.1-mini-tool", {"tools": OPENAI_CHAT_TOOLS}),
    "openai.responses": (openai_responses, "gpt-4.1-mini", {}),
    "openai.responses_stream": (openai_responses_stream, "gpt-4.1-mini", {}),
    "openai.responses_tool": (openai_responses, "gpt-4.1-mini-tool", {"tools": OPENAI_RESPONSES_TOOLS}),
    "openai.responses_tool_stream": (openai_responses_stream, "gpt-4.1-mini-tool", {"tools": OPENAI_RESPONSES_TOOLS}),
    "openai.models": (openai_models, "", {}),
    "gemini.generate": (gemini_generate, "gemini-2.5-flash", {}),
    "gemini.stream": (gemini_stream, "gemini-2.5-flash", {}),
    "gemini.tool": (gemini_generate, "gemini-2.5-flash-tool", {"tools": True}),
    "gemini.tool_stream": (gemini_stream, "gemini-2.5-flash-tool", {"tools": True}),
    "gemini.count_tokens": (gemini_count_tokens, "gemini-2.5-flash", {}),
    "gemini.models": (gemini_models, "", {}),
}


def run(args, spec):
    name, _, model = spec.partition("=")
    if name not in SCENARIOS:
        return {"scenario": name, "ok": False, "error": {"class": "UnknownScenario", "classes": [], "status": None,
                                                         "message": f"known: {', '.join(SCENARIOS)}"}}
    function, default_model, options = SCENARIOS[name]
    model = model or default_model
    started = time.monotonic()
    try:
        result = {"ok": True, **function(args, model, **options)}
    except Exception as error:  # the report is the point: every failure becomes data
        result = {"ok": False, "error": describe_error(error)}
    result.update({"scenario": name, "model": model, "seconds": round(time.monotonic() - started, 3)})
    return result


def main(argv):
    args = parse_args(argv)
    results = {spec: run(args, spec) for spec in args.scenario}
    if len(args.scenario) == 1:
        print(json.dumps(results[args.scenario[0]]))
    else:
        print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
