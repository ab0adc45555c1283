"""`backendAuth.key.location`: the key goes where the config says (a header with an optional
prefix, a query parameter, a cookie) instead of `Authorization: Bearer`, replacing what the client
sent there, and after every rewrite of the request (so a provider path the gateway builds keeps
it). Upstreams: a recorder of what arrives, the Azure OpenAI stand-in (which takes `api-key`),
and llmock's Gemini API (which Google's SDK reaches through the gateway)."""
import openai
import pytest
import requests
from google import genai
from google.genai import types

from conftest import load_error, serve_listeners, start_logged_service
from hostile import Recorder

SECRET = "sekret-7f3a"


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def host_gateway(tollgate, recorder, location):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - host: 127.0.0.1:{recorder.port}
      policies:
        backendAuth: {{key: {{value: {SECRET}, location: {location}}}}}
""")


def test_a_query_parameter_replaces_the_client_s(tollgate, recorder):
    base = host_gateway(tollgate, recorder, "{queryParameter: {name: key}}")
    r = requests.get(f"{base}/data?key=client-key&page=2", headers={"Authorization": "Bearer client"}, timeout=5)
    assert r.status_code == 200
    assert recorder.paths == [f"/data?page=2&key={SECRET}"], recorder.paths
    # Only the configured place changes: the client's own Authorization goes on, as in agentgateway.
    assert recorder.headers[0]["authorization"] == "Bearer client"


def test_a_header_with_a_prefix(tollgate, recorder):
    base = host_gateway(tollgate, recorder, "{header: {name: x-api-token, prefix: 'Token '}}")
    requests.get(f"{base}/x", headers={"X-Api-Token": "client"}, timeout=5)
    assert recorder.headers[0]["x-api-token"] == f"Token {SECRET}", recorder.headers


def test_a_cookie_beside_the_client_s_others(tollgate, recorder):
    base = host_gateway(tollgate, recorder, "{cookie: {name: session}}")
    requests.get(f"{base}/x", headers={"Cookie": "theme=dark; session=client"}, timeout=5)
    assert recorder.headers[0]["cookie"] == f"theme=dark; session={SECRET}", recorder.headers


def test_azure_api_key_header(tollgate, workdir, llmock):
    azure, p = start_logged_service(workdir, "azure", "azure_openai_fake.py", llmock.port, SECRET, "d")
    try:
        base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: az
          hostOverride: "127.0.0.1:{azure.port}"
          provider: {{azure: {{resourceName: r, resourceType: openAI}}}}
          policies:
            backendAuth: {{key: {{value: {SECRET}, location: {{header: {{name: api-key}}}}}}}}
""")
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
        assert c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
        sent = azure.requests()[-1]["headers"]
        assert sent["api-key"] == SECRET and "client-key" not in str(sent), sent
    finally:
        p.stop()


def test_gemini_key_in_the_query_survives_the_provider_path(tollgate, recorder):
    # The gateway builds Gemini's native path from the backend's model; the key is placed after.
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: g
          hostOverride: "127.0.0.1:{recorder.port}"
          provider: {{gemini: {{model: gemini-2.5-flash}}}}
          policies:
            backendAuth: {{key: {{value: {SECRET}, location: {{queryParameter: {{name: key}}}}}}}}
            ai:
              routes: {{":generateContent": generateContent}}
""")
    c = genai.Client(api_key="goog-client-key", http_options=types.HttpOptions(base_url=base, retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(Exception):
        c.models.generate_content(model="other-model", contents="hi")  # the recorder's answer is not Gemini's
    assert recorder.paths == [f"/v1beta/models/gemini-2.5-flash:generateContent?key={SECRET}"], recorder.paths
    # Not copied into Google's key header: the location is explicit (the client's own header, as
    # for any header the config does not name, goes on).
    assert recorder.headers[0].get("x-goog-api-key") != SECRET and "authorization" not in recorder.headers[0], recorder.headers


@pytest.mark.parametrize("location,words", [
    ("{expression: 'request.headers.x'}", "cannot place"),
    ("{header: {name: content-length}}", "cannot carry"),
    ("{cookie: {name: 'a b'}}", "not a cookie name"),
    ("{header: {name: a}, cookie: {name: b}}", "exactly one"),
    ("{header: {name: a, extra: 1}}", "unknown field"),
])
def test_bad_locations_are_load_errors(workdir, location, words):
    out = load_error(workdir, f"binds:\n- port: 9\n  listeners:\n  - routes:\n    - backends:\n      - host: 127.0.0.1:9\n      policies:\n        backendAuth: {{key: {{value: k, location: {location}}}}}\n")
    assert words in out, out


def test_each_provider_of_a_group_places_its_own_key(tollgate, workdir, llmock):
    from test_llm_failover import groups_config
    azure, p = start_logged_service(workdir, "azure", "azure_openai_fake.py", llmock.port, SECRET, "d")
    try:
        cfg = groups_config(llmock.port, azure.port, secondary_provider="azure: {resourceName: r, resourceType: openAI}",
                            secondary_policies=f"              policies: {{backendAuth: {{key: {{value: {SECRET}, location: {{header: {{name: api-key}}}}}}}}}}\n")
        cfg = cfg.replace('              provider: {openAI: {model: primary-model}}\n',
                          '              provider: {openAI: {model: primary-model}}\n              policies: {backendAuth: {key: first-key}}\n')
        base = serve_listeners(tollgate, cfg)
        llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
        assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
        sent = azure.requests()[-1]["headers"]
        # The second provider's key in its place; nothing of the first provider's or the client's.
        assert sent["api-key"] == SECRET and "authorization" not in sent, sent
    finally:
        p.stop()


def test_a_backend_s_own_key_replaces_a_route_s_placed_key(tollgate, recorder):
    base = serve_listeners(tollgate, f"""  - routes:
    - policies:
        backendAuth: {{key: {{value: route-key, location: {{header: {{name: x-route-key}}}}}}}}
      backends:
      - host: 127.0.0.1:{recorder.port}
        policies:
          backendAuth: {{key: backend-key}}
""")
    requests.get(f"{base}/x", timeout=5)
    assert recorder.headers[0].get("authorization") == "Bearer backend-key" and "x-route-key" not in recorder.headers[0], recorder.headers
