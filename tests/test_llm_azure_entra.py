"""`backendAuth.azure`: Microsoft Entra ID tokens for the `azure` provider. A local Entra stand-in
(tests/entra_fake.py) checks the client-credentials grant (client secret, or workload identity's
federated token as the client assertion) and signs tokens; the Azure OpenAI stand-in
(tests/azure_openai_fake.py) accepts only a token with Cognitive Services' audience that has not
expired. tollgate finds the stand-in through `AZURE_AUTHORITY_HOST`, as Azure's SDKs do."""
import os
import time

import openai
import pytest

from conftest import free_port, load_error, serve_listeners, start_logged_service
from test_llm_failover import groups_config

SIGNING = "entra-signing-key-7d2a"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0b1c2d3e-aaaa-bbbb-cccc-000000000001"
SECRET = "entra-client-secret-Q~9x"
FEDERATED = "eyJhbGciOiJSUzI1NiJ9.federated-service-account-token.sig"


def start_entra(workdir, expires_in=3600):
    return start_logged_service(workdir, "entra", "entra_fake.py", SIGNING, TENANT, CLIENT, SECRET, FEDERATED, expires_in)


@pytest.fixture
def entra(workdir):
    service, p = start_entra(workdir)
    yield service
    p.stop()


@pytest.fixture
def azure(workdir, llmock):
    # No static key is valid here: only an Entra token gets in.
    service, p = start_logged_service(workdir, "azure", "azure_openai_fake.py", llmock.port, "no-static-key", "gpt-4o", SIGNING)
    yield service
    p.stop()


def gateway(tollgate, azure, auth, env, routes="{/v1/chat/completions: completions}"):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: az
          hostOverride: "127.0.0.1:{azure.port}"
          provider:
            azure: {{resourceName: myres, resourceType: openAI}}
          policies:
            backendAuth: {{azure: {auth}}}
            ai:
              routes: {routes}
""", extra_env=env)


def authority(entra):
    return {"AZURE_AUTHORITY_HOST": f"http://127.0.0.1:{entra.port}"}


def chat(base, stream=False):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
    r = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=stream)
    if stream:
        return "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices)
    return r.choices[0].message.content


CLIENT_SECRET_AUTH = f"{{explicitConfig: {{clientSecret: {{tenant_id: {TENANT}, client_id: {CLIENT}, client_secret: {SECRET}}}}}}}"


def test_client_secret_token_is_fetched_once_and_reused(tollgate, entra, azure):
    base = gateway(tollgate, azure, CLIENT_SECRET_AUTH, authority(entra))
    assert chat(base) and chat(base, stream=True) and chat(base)
    fetched = entra.requests()
    assert len(fetched) == 1, fetched
    form = fetched[0]["form"]
    assert fetched[0]["path"] == f"/{TENANT}/oauth2/v2.0/token"
    assert form == {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": len(SECRET),
                    "scope": "https://cognitiveservices.azure.com/.default"}, form
    sent = azure.requests()
    assert len(sent) == 3 and all(s["headers"]["authorization"].startswith("Bearer ey") for s in sent)
    # The client's own key never reaches Azure, and the secret is in no log.
    assert "client-key" not in str(sent)
    assert SECRET not in (tollgate.workdir / "config.yaml.log").read_text()


def test_a_token_is_refreshed_before_it_expires(tollgate, workdir, azure):
    # 302 s tokens are replaced 5 minutes early: after 2 s.
    entra, p = start_entra(workdir, expires_in=302)
    try:
        base = gateway(tollgate, azure, CLIENT_SECRET_AUTH, authority(entra))
        assert chat(base) and chat(base)
        assert len(entra.requests()) == 1
        time.sleep(2.2)
        assert chat(base)
        assert len(entra.requests()) == 2
    finally:
        p.stop()


def test_workload_identity_sends_the_federated_token(tollgate, workdir, entra, azure):
    token_file = workdir / "azure-identity-token"
    token_file.write_text(FEDERATED + "\n")
    env = dict(authority(entra), AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT, AZURE_FEDERATED_TOKEN_FILE=str(token_file))
    base = gateway(tollgate, azure, "{explicitConfig: {workloadIdentity: {}}}", env)
    assert chat(base)
    form = entra.requests()[0]["form"]
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["client_assertion"] == FEDERATED and "client_secret" not in form


def test_implicit_uses_the_environment_s_service_principal(tollgate, entra, azure):
    env = dict(authority(entra), AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT, AZURE_CLIENT_SECRET=SECRET)
    base = gateway(tollgate, azure, "{implicit: {}}", env)
    assert chat(base)
    assert entra.requests()[0]["form"]["client_id"] == CLIENT


def test_a_rejected_secret_is_a_503_without_secrets(tollgate, entra, azure):
    auth = CLIENT_SECRET_AUTH.replace(SECRET, "wrong-secret-value")
    base = gateway(tollgate, azure, auth, authority(entra))
    with pytest.raises(openai.APIStatusError) as e:
        chat(base)
    assert e.value.status_code == 503
    assert "wrong-secret-value" not in e.value.response.text and "AADSTS" not in e.value.response.text
    assert azure.requests() == [], "nothing went to Azure without a token"
    log = (tollgate.workdir / "config.yaml.log").read_text()
    assert "AADSTS7000215" in log and "wrong-secret-value" not in log


def test_an_unreachable_identity_provider_is_a_prompt_503(tollgate, azure):
    base = gateway(tollgate, azure, CLIENT_SECRET_AUTH, {"AZURE_AUTHORITY_HOST": f"http://127.0.0.1:{free_port()}"})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as e:
        chat(base)
    assert e.value.status_code == 503 and time.monotonic() - started < 5
    # The failure is remembered for a few seconds: the next request does not wait on it again.
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as e:
        chat(base)
    assert e.value.status_code == 503 and time.monotonic() - started < 1


def test_an_entra_provider_takes_over_in_a_group(tollgate, llmock, entra, azure):
    group = groups_config(llmock.port, azure.port, secondary_provider="azure: {resourceName: myres, resourceType: openAI, model: gpt-4o}",
                          secondary_policies=f"              policies: {{backendAuth: {{azure: {CLIENT_SECRET_AUTH}}}}}\n")
    base = serve_listeners(tollgate, group, extra_env=authority(entra))
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    assert chat(base)
    assert len(entra.requests()) == 1 and len(azure.requests()) == 1


@pytest.mark.parametrize("auth,words", [
    ("{explicitConfig: {managedIdentity: {}}}", "not support"),
    ("{developerImplicit: {}}", "not support"),
    (f"{{explicitConfig: {{clientSecret: {{tenant_id: {TENANT}, client_id: {CLIENT}}}}}}}", "client_secret"),
    ("{implicit: {}, explicitConfig: {workloadIdentity: {}}}", "one of"),
    ("{implicit: {}}", "AZURE_CLIENT_SECRET"),
    ("{explicitConfig: {clientSecret: {tenant_id: 'a/../b', client_id: c, client_secret: s}}}", "tenant"),
])
def test_bad_azure_auth_is_a_load_error(workdir, auth, words):
    # No AZURE_* in the environment: `implicit` has nothing to find.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    out = load_error(workdir, f"""binds:
- port: {free_port()}
  listeners:
  - routes:
    - backends:
      - ai:
          name: az
          provider: {{azure: {{resourceName: r, resourceType: openAI}}}}
          policies:
            backendAuth: {{azure: {auth}}}
""", env=env)
    assert words in out, out
