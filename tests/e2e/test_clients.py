"""The clients users run, pointed at the coordinator as they would point them at OpenAI:
the `openai` npm package on Node, LangChain and LiteLLM, each with tools (and LangChain's
structured output), through real Chromium children and the replica.

What each client gets must be what the replica's model sent: the calls it made (names,
arguments) and its final text after the tool results came back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import FunctionToolParam
from pydantic import BaseModel, SecretStr

from child.engines.browser import find_chromium
from tests.support.coordinator import Coordinator, Runs
from tests.support.sites import Site, site_and_profiles, start

pytestmark = pytest.mark.skipif(
    find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
)
NODE_CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "node"
MODEL = "replica-flash"
ASK_WEATHER = "What is the weather in Paris? Please call get_weather"


class Weather(BaseModel):
    city: str
    celsius: int


def get_weather(city: str) -> str:
    """The weather now in a city."""
    return json.dumps({"city": city, "celsius": 18})


@pytest.fixture(scope="module")
def served(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Site]]:
    folder = tmp_path_factory.mktemp("clients") / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "20", "--token-ms", "2", "--quota-after", "0") as site:
        yield start(module_runs, site, folder), site


def calls_of(run: dict[str, Any]) -> list[dict[str, Any]]:
    calls = run.get("function_calls") or ([run["function_call"]] if run.get("function_call") else [])
    return list(calls)


def test_the_openai_npm_package_runs_a_tools_loop_streaming(served: tuple[Coordinator, Site]) -> None:
    if shutil.which("node") is None or not (NODE_CLIENTS / "node_modules" / "openai").is_dir():
        pytest.skip("Node.js and the openai npm package: `bash scripts/setup.sh dev` installs the package")
    run, site = served
    result = subprocess.run(
        ["node", str(NODE_CLIENTS / "tools.mjs")],
        env={
            **os.environ,
            "BASE_URL": f"{run.url}/v1",
            "API_KEY": "unused",
            "MODEL": MODEL,
            "PROMPT": ASK_WEATHER,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    first, last = site.runs()[-2:]
    made = calls_of(first)
    assert answer["finish_reason"] == "tool_calls" and answer["chunks"] > 1
    assert [(call["name"], json.loads(call["arguments"])) for call in answer["calls"]] == [
        (call["name"], call["arguments"]) for call in made
    ]
    assert answer["final_finish_reason"] == "stop"
    assert answer["final_content"] == last["answer"]


def test_langchain_binds_tools_and_asks_for_structured_output(served: tuple[Coordinator, Site]) -> None:
    from langchain_openai import ChatOpenAI

    run, site = served
    chat = ChatOpenAI(
        base_url=f"{run.url}/v1", api_key=SecretStr("unused"), model=MODEL, max_retries=0, timeout=60
    )
    message = chat.bind_tools([get_weather]).invoke(ASK_WEATHER)
    made = calls_of(site.last_run())
    assert [(call["name"], call["args"]) for call in message.tool_calls] == [
        (call["name"], call["arguments"]) for call in made
    ]
    weather = chat.with_structured_output(Weather).invoke("The weather in Paris, as JSON.")
    assert isinstance(weather, Weather)
    assert weather.model_dump() == json.loads(site.last_run()["answer"])


def test_litellm_sends_tools_and_reads_the_calls(served: tuple[Coordinator, Site]) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price list
    import litellm

    run, site = served
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather now in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    response = litellm.completion(
        model=f"openai/{MODEL}",
        api_base=f"{run.url}/v1",
        api_key="unused",
        messages=[{"role": "user", "content": ASK_WEATHER}],
        tools=tools,
        timeout=60,
        num_retries=0,
    )
    choice = response.choices[0]
    made = calls_of(site.last_run())
    assert choice.finish_reason == "tool_calls"
    assert [
        (call.function.name, json.loads(call.function.arguments)) for call in choice.message.tool_calls
    ] == [(call["name"], call["arguments"]) for call in made]


def test_anthropics_sdk_runs_tools_and_streams_thinking_through_the_page(
    served: tuple[Coordinator, Site],
) -> None:
    import anthropic

    run, site = served
    claude = anthropic.Anthropic(base_url=run.url, api_key="unused", max_retries=0, timeout=60)
    tool: anthropic.types.ToolParam = {
        "name": "get_weather",
        "description": "The weather now in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    ask: list[anthropic.types.MessageParam] = [{"role": "user", "content": ASK_WEATHER}]
    message = claude.messages.create(model=MODEL, max_tokens=1024, tools=[tool], messages=ask)
    made = calls_of(site.last_run())
    uses = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use"
    assert [(use.name, use.input) for use in uses] == [(call["name"], call["arguments"]) for call in made]
    loop: list[anthropic.types.MessageParam] = [
        *ask,
        {"role": "assistant", "content": message.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C"}]},
    ]
    final = claude.messages.create(model=MODEL, max_tokens=1024, tools=[tool], messages=loop)
    assert final.stop_reason == "end_turn"
    assert [block.text for block in final.content if block.type == "text"] == [site.last_run()["answer"]]
    # Thinking on a model with a thinking level: a budget of 2,048 tokens is a low effort.
    with claude.messages.stream(
        model="replica-pro",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "think about tides"}],
    ) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    recorded = site.last_run()
    assert text == recorded["answer"]
    thinking = [block.thinking for block in streamed.content if block.type == "thinking"]
    assert thinking == [recorded["thoughts"]] and recorded["settings"]["thinking_level"] == "Low"


def test_the_responses_api_runs_tools_and_reasoning_through_the_page(
    served: tuple[Coordinator, Site],
) -> None:
    run, site = served
    client = run.openai(timeout=60, max_retries=0)
    tool: FunctionToolParam = {
        "type": "function",
        "name": "get_weather",
        "description": "The weather now in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": False,
    }
    response = client.responses.create(model=MODEL, input=ASK_WEATHER, tools=[tool])
    made = calls_of(site.last_run())
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [
        (call["name"], call["arguments"]) for call in made
    ]
    final = client.responses.create(
        model=MODEL,
        tools=[tool],
        input=[
            {"role": "user", "content": ASK_WEATHER},
            *(call.model_dump(exclude_none=True) for call in calls),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"},
        ],
    )
    assert final.output_text == site.last_run()["answer"]
    with client.responses.stream(
        model="replica-pro", input="think about tides", reasoning={"effort": "high"}
    ) as stream:
        done = stream.get_final_response()
    recorded = site.last_run()
    summaries = [part.text for item in done.output if item.type == "reasoning" for part in item.summary]
    assert done.output_text == recorded["answer"] and summaries == [recorded["thoughts"]]
