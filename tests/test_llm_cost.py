"""LLM cost: usage priced by the built-in table of common models, or by `config.modelCatalog`
(inline data, an inline JSON string, or a JSON file, watched for changes), as `llm.cost` in
the access log and CEL (`llm.cost.*`, `llm.costRates.*`) and the `gen_ai_client_cost` metric."""
import json
import time

import openai
import pytest
import requests

from conftest import free_port, serve_listeners


def config(llmock, model, settings=""):
    stats = free_port()
    base = f"""config:
  statsAddr: 127.0.0.1:{stats}
  logging:
    format: json
{settings}frontendPolicies:
  accessLog:
    add:
      cost: llm.cost.total
      input_rate: llm.costRates.input
      output_cost: llm.cost.output
"""
    listeners = f"""  - routes:
    - backends:
      - ai: {{name: llm, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{model: {model}}}}}}}
"""
    return base, listeners, stats


def output(tollgate):
    return (tollgate.workdir / "config.yaml.log").read_text()


def access_records(tollgate, count, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        records = [json.loads(l) for l in output(tollgate).splitlines() if l.startswith("{") and '"target":"access"' in l]
        if len(records) >= count or time.time() > deadline:
            return records
        time.sleep(0.05)


def ask(base):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, timeout=20)
    return c.chat.completions.create(model="anything", messages=[{"role": "user", "content": "price this, please"}])


def expected(usage, input_rate, output_rate, cached_rate=None):
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    fresh = usage.prompt_tokens - (cached if cached_rate is not None else 0)
    return (fresh * input_rate + cached * (cached_rate or 0) + usage.completion_tokens * output_rate) / 1e6


def test_builtin_prices_common_models(tollgate, llmock):
    settings, listeners, stats = config(llmock, "gpt-4o")
    base = serve_listeners(tollgate, listeners, settings=settings)
    r = ask(base)
    rec = access_records(tollgate, 1)[-1]
    assert rec["llm.cost"] == pytest.approx(expected(r.usage, 2.5, 10, 1.25)), (rec, r.usage)
    assert rec["cost"] == rec["llm.cost"] and rec["input_rate"] == 2.5, rec
    assert rec["output_cost"] == pytest.approx(r.usage.completion_tokens * 10 / 1e6)
    deadline = time.time() + 5
    while True:
        metrics = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
        lines = [l for l in metrics.splitlines() if l.startswith("gen_ai_client_cost_total{")]
        if lines or time.time() > deadline:
            break
        time.sleep(0.05)
    assert lines and 'gen_ai_request_model="anything"' in lines[0], lines
    assert float(lines[0].split()[-1]) == pytest.approx(rec["llm.cost"])


def test_unpriced_models_have_no_cost(tollgate, llmock):
    settings, listeners, _ = config(llmock, "house-model-7b")
    base = serve_listeners(tollgate, listeners, settings=settings)
    ask(base)
    rec = access_records(tollgate, 1)[-1]
    assert "llm.cost" not in rec and rec.get("cost") is None, rec


def test_inline_catalog_overrides_and_adds(tollgate, llmock):
    catalog = """  modelCatalog:
  - inline:
      providers:
        openai:
          models:
            house-model-7b: {rates: {input: "1", output: "2"}}
  - inline: '{"providers": {"openai": {"models": {"house-model-7b": {"rates": {"input": "3", "output": "4"}}}}}}'
"""
    settings, listeners, _ = config(llmock, "house-model-7b", settings=catalog)
    base = serve_listeners(tollgate, listeners, settings=settings)
    r = ask(base)
    rec = access_records(tollgate, 1)[-1]
    # The later source wins.
    assert rec["llm.cost"] == pytest.approx(expected(r.usage, 3, 4)) and rec["input_rate"] == 3, rec


def test_a_catalog_file_is_watched(tollgate, llmock):
    path = tollgate.workdir / "prices.json"
    write = lambda rate: path.write_text(json.dumps({"providers": {"openai": {"models": {"house-model-7b": {"rates": {"input": rate, "output": "0"}}}}}}))
    write("1")
    settings, listeners, _ = config(llmock, "house-model-7b", settings=f"  modelCatalog:\n  - file: {path}\n")
    base = serve_listeners(tollgate, listeners, settings=settings)
    ask(base)
    assert access_records(tollgate, 1)[-1]["input_rate"] == 1
    write("9")
    deadline = time.time() + 10
    while True:
        ask(base)
        rate = access_records(tollgate, 1)[-1]["input_rate"]
        if rate == 9 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert rate == 9
    # A broken file is refused; the prices before it stay.
    path.write_text("{not json")
    time.sleep(1.5)
    ask(base)
    assert access_records(tollgate, 1)[-1]["input_rate"] == 9
    assert "modelCatalog[0]" in output(tollgate)
