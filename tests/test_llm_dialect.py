"""agentgateway's `llm:` shortcut: models served on one endpoint, the request's model choosing
the provider (wildcards, most specific first), provider references, virtual models (weighted,
failover, conditional by CEL), the model list, and the route's policies before any of it.
llmock serves the OpenAI and Anthropic APIs behind every model."""
import anthropic
import openai
import pytest
import requests
from google import genai
from google.genai import types

from conftest import free_port


def start(tollgate, llmock, models, extra=""):
    port = free_port()
    tollgate.start(f"""llm:
  port: {port}
{extra}  models:
{models}""", ports=[port])
    return f"http://127.0.0.1:{port}"


def oai(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)


def models(llmock):
    u = f"http://127.0.0.1:{llmock.port}"
    return f"""  - name: gpt-4o-mini
    provider: openai
    params: {{baseUrl: "{u}/v1", apiKey: sk-openai}}
  - name: "claude-*"
    provider: anthropic
    params: {{baseUrl: "{u}/anthropic/v1", apiKey: sk-ant, model: claude-haiku-4-5}}
  - name: "*"
    provider: openai
    visibility: internal
    params: {{baseUrl: "{u}/v1"}}
"""


def test_the_request_model_picks_the_provider(tollgate, llmock):
    base = start(tollgate, llmock, models(llmock))
    r = oai(base).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    sent = llmock.journal()[-1]
    assert (sent["path"], sent["model"]) == ("/v1/chat/completions", "gpt-4o-mini"), sent
    # A Claude name: the Anthropic provider, its model, whichever client API.
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    m = a.messages.create(model="claude-sonnet-x", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text and llmock.journal()[-1]["path"] == "/anthropic/v1/messages"
    assert llmock.journal()[-1]["model"] == "claude-haiku-4-5"
    r = oai(base).chat.completions.create(model="claude-3", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content and llmock.journal()[-1]["path"] == "/anthropic/v1/messages"
    # Gemini's path names the model.
    g = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=base, timeout=10_000))
    assert g.models.generate_content(model="gpt-4o-mini", contents="hi").text
    assert llmock.journal()[-1]["path"] == "/v1/chat/completions"


def test_unknown_internal_and_missing_models(tollgate, llmock):
    base = start(tollgate, llmock, models(llmock).replace('"*"', '"internal-*"'))
    before = len(llmock.journal())
    with pytest.raises(openai.NotFoundError) as e:
        oai(base).chat.completions.create(model="mistral-large", messages=[{"role": "user", "content": "hi"}])
    assert "model_not_found" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        oai(base).chat.completions.create(model="internal-1", messages=[{"role": "user", "content": "hi"}])
    r = requests.post(f"{base}/v1/chat/completions", json={"messages": []}, timeout=10)
    assert r.status_code == 400 and "missing_model" in r.json()["error"]["message"], r.text
    r = requests.post(f"{base}/v1/chat/completions", data=b"{", headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 400
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic.Anthropic(base_url=base, api_key="k", max_retries=0).messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error", e.value.body  # in the caller's API's shape
    assert len(llmock.journal()) == before


def test_model_list(tollgate, llmock):
    extra = """  virtualModels:
  - name: smart
    routing: {weighted: {targets: [{model: gpt-4o-mini}]}}
"""
    base = start(tollgate, llmock, models(llmock), extra=extra)
    ids = [m.id for m in oai(base).models.list()]
    assert ids == ["gpt-4o-mini", "claude-*", "smart"], ids


def test_provider_references(tollgate, llmock):
    u = f"http://127.0.0.1:{llmock.port}"
    extra = f"""  providers:
  - name: local
    provider: openai
    params: {{baseUrl: "{u}/v1", apiKey: sk-shared, model: provider-default}}
    defaults: {{defaults: {{temperature: 0.25}}}}
"""
    base = start(tollgate, llmock, """  - name: fast
    provider: {reference: local}
    params: {model: fast-upstream}
  - name: plain
    provider: {reference: local}
""", extra=extra)
    oai(base).chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    sent = llmock.journal()[-1]
    assert sent["model"] == "fast-upstream" and sent["body"]["temperature"] == 0.25, sent
    oai(base).chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])
    assert llmock.journal()[-1]["model"] == "provider-default"


def test_virtual_models(tollgate, llmock):
    u = f"http://127.0.0.1:{llmock.port}"
    dead = free_port()
    extra = f"""  virtualModels:
  - name: weighted
    routing: {{weighted: {{targets: [{{model: economy-model, weight: 1}}, {{model: premium-model, weight: 0}}]}}}}
  - name: tiered
    routing: {{failover: {{targets: [{{model: down-model, priority: 0}}, {{model: premium-model, priority: 1}}]}}}}
  - name: smart
    routing:
      conditional:
        targets:
        - {{when: 'default(llmRequest.metadata.cost_tier, "") == "economy"', model: economy-model}}
        - {{when: 'request.headers["x-tier"] == "gold"', model: premium-model}}
        - {{model: economy-model}}
"""
    base = start(tollgate, llmock, f"""  - name: "*-model"
    provider: openai
    visibility: internal
    params: {{baseUrl: "{u}/v1"}}
  - name: down-model
    provider: openai
    visibility: internal
    params: {{baseUrl: "http://127.0.0.1:{dead}/v1"}}
""", extra=extra)
    ask = lambda model, **kw: oai(base).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kw)
    for _ in range(3):
        ask("weighted")
        assert llmock.journal()[-1]["model"] == "economy-model"
    # The first tier is down: the request fails over to the next, unseen by the client.
    assert ask("tiered").choices[0].message.content
    assert llmock.journal()[-1]["model"] == "premium-model"
    ask("smart", metadata={"cost_tier": "economy"}, store=True)
    assert llmock.journal()[-1]["model"] == "economy-model"
    ask("smart", extra_headers={"x-tier": "gold"})
    assert llmock.journal()[-1]["model"] == "premium-model"
    ask("smart")
    assert llmock.journal()[-1]["model"] == "economy-model"
    # Internal models are reached only through virtual ones.
    with pytest.raises(openai.NotFoundError):
        ask("premium-model")


def test_policies_run_before_the_model_is_chosen(tollgate, llmock):
    extra = """  policies:
    cors: {allowOrigins: ["https://app.example"], allowMethods: [POST], allowHeaders: [content-type, authorization]}
"""
    base = start(tollgate, llmock, models(llmock), extra=extra)
    # A preflight has no body and no model: the route's cors policy answers it.
    r = requests.options(f"{base}/v1/chat/completions", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example", (r.status_code, r.headers)
    r = requests.post(f"{base}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                      headers={"Origin": "https://app.example"}, timeout=10)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"


def test_bad_llm_configs_are_refused(tollgate, llmock, workdir):
    import subprocess
    from conftest import BIN
    for bad, word in [
        ("  models:\n  - {name: a, provider: copilot}\n", "copilot"),
        ("  models:\n  - {name: 'a*b', provider: openai}\n", "at most one"),
        ("  models:\n  - {name: a, provider: {reference: nope}}\n", "nope"),
        ("  models:\n  - {name: a, provider: openai, guardrails: {}}\n", "guardrails"),
        ("  policies: {requestRedirect: {status: 301}}\n  models:\n  - {name: a, provider: openai}\n", "requestRedirect"),
        ("  models:\n  - {name: a, provider: openai}\n  virtualModels:\n  - {name: v, routing: {weighted: {targets: [{model: b}]}}}\n", "matches no entry"),
    ]:
        cfg = workdir / "bad.yaml"
        cfg.write_text(f"llm:\n  port: {free_port()}\n{bad}")
        r = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and word in (r.stdout + r.stderr), (bad, r.stdout, r.stderr)


def test_a_virtual_model_is_rewritten_on_passthrough_paths(tollgate, llmock, workdir):
    from conftest import start_logged_service
    aux, proc = start_logged_service(workdir, "aux", "rerank_count_fake.py", "key")
    try:
        extra = """  virtualModels:
  - name: house
    routing: {weighted: {targets: [{model: house-v2}]}}
"""
        base = start(tollgate, llmock, f"""  - name: "house-*"
    provider: openai
    visibility: internal
    params: {{baseUrl: "http://127.0.0.1:{aux.port}"}}
""", extra=extra)
        # A path the gateway does not parse goes as it came, with the target's model.
        r = requests.post(f"{base}/v1/custom/thing", json={"model": "house", "input": "x"}, timeout=10)
        assert r.status_code == 404  # the stand-in serves no such path; it logged what it got
        sent = aux.requests()[-1]
        assert sent["path"] == "/v1/custom/thing" and sent["body"] == {"model": "house-v2", "input": "x"}, sent
    finally:
        proc.stop()


def test_matches_pick_among_entries_of_one_name(tollgate, llmock):
    u = f"http://127.0.0.1:{llmock.port}/v1"
    base = start(tollgate, llmock, f"""  - name: smart-model
    provider: openAI
    params: {{model: gpt-4o-mini, baseUrl: "{u}"}}
    matches:
    - headers:
      - name: x-gateway-cost-class
        value: {{exact: economy}}
  - name: smart-model
    provider: openAI
    params: {{model: gpt-4o, baseUrl: "{u}"}}
    matches:
    - headers: [{{name: x-gateway-cost-class, value: {{regex: "premium|balanced"}}}}]
    - headers: [{{name: x-vip, value: {{exact: "yes"}}}}]
""")
    ask = lambda headers: oai(base).chat.completions.create(model="smart-model", messages=[{"role": "user", "content": "hi"}], extra_headers=headers)
    ask({"x-gateway-cost-class": "economy"})
    assert llmock.journal()[-1]["model"] == "gpt-4o-mini"
    ask({"x-gateway-cost-class": "balanced"})
    assert llmock.journal()[-1]["model"] == "gpt-4o"
    ask({"x-vip": "yes"})
    assert llmock.journal()[-1]["model"] == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        ask({"x-gateway-cost-class": "other"})


def test_llm_on_its_own_https_port(tollgate, llmock, workdir):
    import httpx
    import ssl
    from tls_helpers import Ca
    pki = Ca(workdir / "pki")
    crt, key = pki.issue("server", "localhost", dns=["localhost"], ips=["127.0.0.1"])
    port = free_port()
    tollgate.start(f"""llm:
  port: {port}
  tls: {{cert: {crt}, key: {key}}}
  models:
{models(llmock)}""", ports=[port])
    ctx = ssl.create_default_context(cafile=str(pki.pem))
    c = openai.OpenAI(base_url=f"https://localhost:{port}/v1", api_key="k", max_retries=0, http_client=httpx.Client(verify=ctx))
    assert c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    with pytest.raises(Exception):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=3)


def test_model_header_modifiers(tollgate, llmock, workdir):
    # agentgateway's llm-cost-routing shape: a header picks the entry, then is removed before
    # the provider sees it; the answer gets a header of the model's.
    from conftest import start_logged_service
    aux, proc = start_logged_service(workdir, "aux", "rerank_count_fake.py", "key")
    try:
        base = start(tollgate, llmock, f"""  - name: smart-model
    id: cheap-entry
    provider: openAI
    params: {{model: cheap, baseUrl: "http://127.0.0.1:{aux.port}", apiKey: key}}
    matches: [{{headers: [{{name: x-gateway-cost-class, value: {{exact: economy}}}}]}}]
    requestHeaders: {{remove: [x-gateway-cost-class], set: {{x-tier: economy}}}}
    responseHeaders: {{set: {{x-served-by: cheap}}}}
""")
        r = requests.post(f"{base}/v1/rerank", json={"model": "smart-model", "query": "q", "documents": ["d"]},
                          headers={"x-gateway-cost-class": "economy", "authorization": "Bearer client-key"}, timeout=10)
        assert r.status_code == 200 and r.headers["x-served-by"] == "cheap", (r.status_code, r.text, r.headers)
        sent = aux.requests()[-1]
        assert "x-gateway-cost-class" not in sent["headers"] and sent["headers"]["x-tier"] == "economy", sent["headers"]
        assert sent["body"]["model"] == "cheap"
        # params.apiKey replaced the client's key (the stand-in refuses any other); `id` names
        # the backend in the access log.
        assert sent["headers"]["authorization"] == "Bearer key"
        import time
        deadline = time.time() + 5  # the access log line is written after the response
        while True:
            log = (tollgate.workdir / "config.yaml.log").read_text()
            if any("http.path=/v1/rerank" in l for l in log.splitlines()) or time.time() > deadline:
                break
            time.sleep(0.05)
        assert any("http.path=/v1/rerank" in l and "backend=cheap-entry" in l for l in log.splitlines()), log[-2000:]
    finally:
        proc.stop()


def test_llm_attaches_to_the_default_gateway(tollgate, llmock):
    port = free_port()
    tollgate.start(f"""gateways:
  default: {{port: {port}}}
llm:
  models:
{models(llmock)}""", ports=[port])
    r = oai(f"http://127.0.0.1:{port}").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content and llmock.journal()[-1]["model"] == "gpt-4o-mini"


def test_responses_compact_is_detect_forwarded_as_it_is(tollgate, llmock, workdir):
    # agentgateway maps /v1/responses/compact to `detect`: the body goes as the client wrote it
    # (a `passthrough` path would get the entry's `params.model`), and its model is recorded.
    from conftest import start_logged_service
    aux, proc = start_logged_service(workdir, "aux", "rerank_count_fake.py", "key")
    try:
        base = start(tollgate, llmock, f"""  - name: compactor
    provider: openai
    params: {{model: upstream-name, baseUrl: "http://127.0.0.1:{aux.port}"}}
""")
        requests.post(f"{base}/v1/responses/compact", json={"model": "compactor", "input": "x"}, timeout=10)
        sent = aux.requests()[-1]
        assert sent["path"] == "/v1/responses/compact" and sent["body"] == {"model": "compactor", "input": "x"}, sent
        requests.post(f"{base}/v1/other/thing", json={"model": "compactor", "input": "x"}, timeout=10)
        assert aux.requests()[-1]["body"]["model"] == "upstream-name"  # passthrough, for contrast
        import time
        deadline = time.time() + 5
        while "http.path=/v1/responses/compact" not in (tollgate.workdir / "config.yaml.log").read_text():
            assert time.time() < deadline
            time.sleep(0.05)
        line = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if "http.path=/v1/responses/compact" in l][-1]
        assert "gen_ai.request.model=compactor" in line, line
    finally:
        proc.stop()
