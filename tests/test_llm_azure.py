"""The `azure` provider (Azure OpenAI and AI Foundry) against a local stand-in that checks what
Azure checks (tests/azure_openai_fake.py: the key, the v1 / deployment / Foundry paths, the
required api-version, known deployments) and answers with llmock's completions. Clients are the
official OpenAI and Anthropic SDKs."""
import time

import anthropic
import openai
import requests
import pytest

from conftest import BIN, serve_listeners, start_logged_service

KEY = "azure-test-key-5f1c"


@pytest.fixture
def azure(workdir, llmock):
    service, p = start_logged_service(workdir, "azure", "azure_openai_fake.py", llmock.port, KEY, "gpt-4o,mini-dep")
    yield service
    p.stop()


def gateway(tollgate, azure, azure_block, key=KEY, routes="{/v1/chat/completions: completions, /v1/messages: messages, /v1/embeddings: embeddings, /v1/models: models}"):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: az
          hostOverride: "127.0.0.1:{azure.port}"
          provider:
            azure: {azure_block}
          policies:
            backendAuth: {{key: {key}}}
            ai:
              routes: {routes}
""")


def chat(base, model="gpt-4o", stream=False, **kw):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=stream, **kw)


def test_v1_api_is_the_default(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI}")
    r = chat(base)
    assert r.choices[0].message.content, r
    text = "".join(c.choices[0].delta.content or "" for c in chat(base, stream=True) if c.choices)
    assert text, "the stream carried no text"
    sent = azure.requests()
    assert [s["path"] for s in sent] == ["/openai/v1/chat/completions"] * 2, sent
    assert sent[0]["query"] == {} and sent[0]["body"]["model"] == "gpt-4o", sent[0]
    # The backend's key, not the client's.
    assert sent[0]["headers"]["authorization"] == f"Bearer {KEY}", sent[0]["headers"]
    # The provider is named in telemetry as OpenTelemetry names Azure OpenAI.
    deadline = time.time() + 5
    while "gen_ai.provider.name=azure.ai.openai" not in (tollgate.workdir / "config.yaml.log").read_text():
        assert time.time() < deadline, "no access log line names the azure provider"
        time.sleep(0.05)


def test_preview_api_version_goes_in_the_query(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI, apiVersion: preview}")
    assert chat(base).choices[0].message.content
    sent = azure.requests()[-1]
    assert sent["path"] == "/openai/v1/chat/completions" and sent["query"] == {"api-version": "preview"}, sent


def test_dated_api_version_names_the_deployment_from_the_request(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI, apiVersion: 2024-10-21}")
    assert chat(base, model="mini-dep").choices[0].message.content
    sent = azure.requests()[-1]
    assert sent["path"] == "/openai/deployments/mini-dep/chat/completions", sent
    assert sent["query"] == {"api-version": "2024-10-21"}, sent
    # A client query does not survive: the path and query are Azure's.
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, default_query={"api-version": "1999-01-01"})
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert azure.requests()[-1]["query"] == {"api-version": "2024-10-21"}
    # A model that is not a deployment name cannot change the path; nothing goes upstream.
    before = len(azure.requests())
    for bad in ["../../admin", "a/b", "x?api-version=1", "a#b"]:
        with pytest.raises(openai.BadRequestError) as e:
            chat(base, model=bad)
        assert "deployment name" in e.value.body["message"], e.value.body
    assert len(azure.requests()) == before


def test_dated_api_version_with_the_backend_model(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI, apiVersion: 2024-10-21, model: gpt-4o}")
    # Over the pre-read size the body streams: the backend's model names the path.
    big = "word " * 30_000
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    r = c.chat.completions.create(model="ignored", messages=[{"role": "user", "content": big}])
    assert r.choices[0].message.content
    sent = azure.requests()[-1]
    assert sent["path"] == "/openai/deployments/gpt-4o/chat/completions" and sent["body"]["model"] == "gpt-4o", sent["path"]


def test_dated_api_version_takes_the_deployment_from_a_big_request(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI, apiVersion: 2024-10-21}")
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    # A 600 KiB body is read whole before the call: its model names the deployment.
    r = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "word " * 120_000}])
    assert r.choices[0].message.content
    sent = azure.requests()[-1]
    assert sent["path"] == "/openai/deployments/gpt-4o/chat/completions", sent["path"]
    # No model anywhere: no deployment to call.
    r = requests.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    assert r.status_code == 400 and "`model` is required" in r.json()["error"]["message"], r.text
    assert len(azure.requests()) == 1


def test_foundry_project_path(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: foundry, projectName: proj-1}")
    assert chat(base).choices[0].message.content
    assert azure.requests()[-1]["path"] == "/api/projects/proj-1/openai/v1/chat/completions"
    # Without a project the resource name stands in for it (aiServices is Foundry's other name).
    tollgate.stop()
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: aiServices}")
    assert chat(base).choices[0].message.content
    assert azure.requests()[-1]["path"] == "/api/projects/myres/openai/v1/chat/completions"


def test_messages_client_embeddings_and_models(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI, apiVersion: 2024-10-21}")
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    m = a.messages.create(model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text and m.usage.output_tokens >= 0, m
    sent = azure.requests()[-1]
    assert sent["path"] == "/openai/deployments/gpt-4o/chat/completions" and "messages" in sent["body"], sent
    assert "x-api-key" not in sent["headers"] and sent["headers"]["authorization"] == f"Bearer {KEY}", sent["headers"]
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    e = c.embeddings.create(model="gpt-4o", input="hello")
    assert e.data and len(e.data[0].embedding) > 8
    assert azure.requests()[-1]["path"] == "/openai/deployments/gpt-4o/embeddings"
    models = c.models.list()
    assert azure.requests()[-1]["path"] == "/openai/models" and azure.requests()[-1]["query"] == {"api-version": "2024-10-21"}
    assert list(models), "no models listed"


def test_a_wrong_key_is_azures_401_in_the_callers_shape(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI}", key="wrong")
    with pytest.raises(openai.AuthenticationError):
        chat(base)
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        a.messages.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error", e.value.body


@pytest.mark.parametrize("block, words", [
    ("{resourceName: 'bad.name', resourceType: openAI}", "resourceName"),
    ("{resourceName: r, resourceType: openAI, projectName: p}", "projectName"),
    ("{resourceName: r, resourceType: openAI, apiVersion: 'v1/../x'}", "apiVersion"),
    ("{resourceName: r, resourceType: nope}", "resourceType"),
    ("{resourceType: openAI}", "resourceName"),
])
def test_bad_azure_blocks_are_load_errors(workdir, block, words):
    cfg = workdir / "bad.yaml"
    cfg.write_text(f"""binds:
- port: 9
  listeners:
  - routes:
    - backends:
      - ai: {{name: az, provider: {{azure: {block}}}}}
""")
    import subprocess
    out = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and words in out.stderr + out.stdout, out


def test_responses_go_natively_to_azure(tollgate, azure):
    base = gateway(tollgate, azure, "{resourceName: myres, resourceType: openAI, model: gpt-4o}",
                   routes="{/v1/responses: responses}")
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    r = c.responses.create(model="ignored", input="hi")
    assert r.output_text, r
    with c.responses.stream(model="ignored", input="hi") as s:
        text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
    assert text
    sent = azure.requests()[-1]
    assert sent["path"] == "/openai/v1/responses" and sent["body"]["model"] == "gpt-4o", sent
