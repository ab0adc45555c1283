"""The `vertex` provider with `backendAuth.gcp` (a service account key): Gemini models through
`generateContent` / `streamGenerateContent`, Claude models through `rawPredict` /
`streamRawPredict`, against a local stand-in that verifies the access token's signature with the
account's public key and checks Vertex's paths and bodies (tests/vertex_fake.py), answering with
llmock. Clients: the OpenAI, Anthropic and google-genai SDKs."""
import json
import subprocess

import anthropic
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import types

from conftest import BIN, serve_listeners, start_logged_service

EMAIL = "gateway@proj-1.iam.gserviceaccount.com"


def service_account(path, email=EMAIL):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": "proj-1", "private_key_id": "k1", "private_key": pem,
                                "client_email": email, "token_uri": "https://oauth2.googleapis.com/token"}))
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def vertex(workdir, llmock):
    (workdir / "sa.pub").write_bytes(service_account(workdir / "sa.json"))
    service, p = start_logged_service(workdir, "vertex", "vertex_fake.py", llmock.port, "proj-1", EMAIL, workdir / "sa.pub")
    yield service
    p.stop()


def gateway(tollgate, vertex, model="", credential="sa.json"):
    model_line = f", model: {model}" if model else ""
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: vertex
          hostOverride: "127.0.0.1:{vertex.port}"
          provider: {{vertex: {{projectId: proj-1, region: us-central1{model_line}}}}}
          policies:
            backendAuth: {{gcp: {{credential: {{file: {tollgate.workdir / credential}}}}}}}
            ai:
              routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses, ":generateContent": generateContent, ":streamGenerateContent": generateContent}}
""")


BASE = "/v1/projects/proj-1/locations/us-central1/publishers"


def oai(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)


def test_gemini_models_with_a_signed_token(tollgate, vertex):
    base = gateway(tollgate, vertex)
    r = oai(base).chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content, r
    text = "".join(c.choices[0].delta.content or "" for c in oai(base).chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices)
    assert text
    sent = vertex.requests()
    assert [s["path"] for s in sent] == [f"{BASE}/google/models/gemini-2.5-flash:streamGenerateContent"] * 2, sent
    assert all(s["claims"] for s in sent), "a token the account did not sign"
    # One token, minted once and reused; the client's key never reaches Google.
    assert sent[0]["headers"]["authorization"] == sent[1]["headers"]["authorization"]
    assert "client-key" not in json.dumps(sent[0]["headers"])


@pytest.mark.parametrize("stream", [False, True])
def test_claude_models_through_raw_predict(tollgate, vertex, llmock, stream):
    base = gateway(tollgate, vertex)
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    kw = dict(model="claude-sonnet-5-20260901", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    if stream:
        with a.messages.stream(**kw) as s:
            text = "".join(s.text_stream)
    else:
        text = a.messages.create(**kw).content[0].text
    assert text
    sent = vertex.requests()[-1]
    method = "streamRawPredict" if stream else "rawPredict"
    assert sent["path"] == f"{BASE}/anthropic/models/claude-sonnet-5@20260901:{method}", sent["path"]
    assert sent["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent["body"], sent["body"]
    assert "x-api-key" not in sent["headers"], sent["headers"]
    # A Chat client on a Claude model: translated to Messages, then the same way.
    r = oai(base).chat.completions.create(model="claude-sonnet-5", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    assert vertex.requests()[-1]["path"] == f"{BASE}/anthropic/models/claude-sonnet-5:rawPredict"


def test_generate_content_and_responses(tollgate, vertex):
    base = gateway(tollgate, vertex)
    c = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=base, retry_options=types.HttpRetryOptions(attempts=1)))
    r = c.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert r.text
    assert vertex.requests()[-1]["path"] == f"{BASE}/google/models/gemini-2.5-pro:generateContent"
    out = oai(base).responses.create(model="claude-sonnet-5", input="hi")
    assert out.output_text
    assert vertex.requests()[-1]["path"] == f"{BASE}/anthropic/models/claude-sonnet-5:rawPredict"


def test_a_key_vertex_does_not_know_is_refused(tollgate, vertex, workdir):
    service_account(workdir / "other.json", email="intruder@proj-1.iam.gserviceaccount.com")
    base = gateway(tollgate, vertex, credential="other.json")
    with pytest.raises(openai.AuthenticationError):
        oai(base).chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    a = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        a.messages.create(model="claude-sonnet-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_big_bodies_pick_the_api_by_the_request_model(tollgate, vertex):
    # A 1 MiB body is read whole: its model picks the family and names the path.
    base = gateway(tollgate, vertex)
    big = [{"role": "user", "content": "word " * 210_000}]
    assert oai(base).chat.completions.create(model="gemini-2.5-flash", messages=big).choices[0].message.content
    assert vertex.requests()[-1]["path"] == f"{BASE}/google/models/gemini-2.5-flash:streamGenerateContent"
    assert oai(base).chat.completions.create(model="claude-sonnet-5", messages=big).choices[0].message.content
    assert vertex.requests()[-1]["path"] == f"{BASE}/anthropic/models/claude-sonnet-5:rawPredict"


@pytest.mark.parametrize("credential, words", [
    ('{"type": "authorized_user", "refresh_token": "x"}', "not supported yet"),
    ('{"type": "service_account", "client_email": "a@b", "private_key": "nope"}', "private_key"),
    ("not json", "not a Google credential"),
])
def test_bad_credentials_are_load_errors(workdir, credential, words):
    (workdir / "cred.json").write_text(credential)
    cfg = workdir / "bad.yaml"
    cfg.write_text(f"""binds:
- port: 9
  listeners:
  - routes:
    - backends:
      - ai: {{name: v, provider: {{vertex: {{projectId: p}}}}}}
      policies: {{backendAuth: {{gcp: {{credential: {{file: {workdir / 'cred.json'}}}}}}}}}
""")
    out = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and words in out.stderr + out.stdout, out
    assert "BEGIN" not in out.stderr + out.stdout


def test_the_key_file_google_application_credentials_names(tollgate, vertex, workdir):
    # `gcp: {}`: Application Default Credentials' key file, as Google's libraries find it.
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: vertex
          hostOverride: "127.0.0.1:{vertex.port}"
          provider: {{vertex: {{projectId: proj-1, region: us-central1}}}}
          policies:
            backendAuth: {{gcp: {{}}}}
""", extra_env={"GOOGLE_APPLICATION_CREDENTIALS": str(workdir / "sa.json")})
    assert oai(base).chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    assert vertex.requests()[-1]["claims"]["iss"] == EMAIL
