"""The `bedrock` provider (Converse / ConverseStream, SigV4 with `backendAuth.aws`) against a
local stand-in that verifies the signature with botocore's own signer and answers in Bedrock's
wire formats, event-stream framing included (tests/bedrock_fake.py, the words from llmock).
Clients: the OpenAI, Anthropic and google-genai SDKs, with a tool round trip."""
import json

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from conftest import serve_listeners, start_logged_service

AKID, SECRET = "AKIDTOLLGATETEST", "secret/tollgate+test"
MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def bedrock(workdir, llmock):
    service, p = start_logged_service(workdir, "bedrock", "bedrock_fake.py", llmock.port, AKID, SECRET, "eu-west-1")
    yield service
    p.stop()


def gateway(tollgate, bedrock, secret=SECRET, model=MODEL, extra_auth=""):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: bedrock
          hostOverride: "127.0.0.1:{bedrock.port}"
          provider: {{bedrock: {{region: eu-west-1, model: "{model}"}}}}
          policies:
            backendAuth: {{aws: {{accessKeyId: {AKID}, secretAccessKey: "{secret}"{extra_auth}}}}}
            ai:
              routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses, ":generateContent": generateContent, ":streamGenerateContent": generateContent}}
""")


def ambient_gateway(tollgate, bedrock, extra_env):
    """`backendAuth: {aws: {}}`: keys from the standard chain, in the process's environment."""
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: bedrock
          hostOverride: "127.0.0.1:{bedrock.port}"
          provider: {{bedrock: {{region: eu-west-1, model: "{MODEL}"}}}}
          policies:
            backendAuth: {{aws: {{}}}}
""", extra_env=extra_env)


def oai(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_round_trip(tollgate, bedrock, stream):
    base = gateway(tollgate, bedrock)
    c = oai(base)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        if not stream:
            return c.chat.completions.create(model="x", tools=[WEATHER], messages=messages).choices[0]
        with c.chat.completions.stream(model="x", tools=[WEATHER], messages=messages) as s:
            for _ in s:
                pass
            return s.get_final_completion().choices[0]

    first = ask()
    assert first.finish_reason == "tool_calls" and first.message.tool_calls[0].function.name == "get_weather", first
    sent = bedrock.requests()[-1]
    method = "converse-stream" if stream else "converse"
    assert sent["path"] == f"/model/{MODEL}/{method}" and sent["signature_ok"], sent
    assert sent["body"]["system"] == [{"text": "Be brief."}] and sent["body"]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather", sent["body"]
    assert "client-key" not in json.dumps(sent["headers"])
    messages.append(first.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": first.message.tool_calls[0].id, "content": "18C"})
    second = ask()
    assert second.finish_reason == "stop" and second.message.content, second
    turns = bedrock.requests()[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"], turns
    assert turns[2]["content"][0]["toolResult"]["toolUseId"] == first.message.tool_calls[0].id, turns


def test_usage_streamed_and_logged(tollgate, bedrock):
    base = gateway(tollgate, bedrock)
    chunks = list(oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}], stream=True,
                                                   stream_options={"include_usage": True}))
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0, chunks[-1]
    import time
    deadline = time.time() + 5
    while "gen_ai.provider.name=aws.bedrock" not in (tollgate.workdir / "config.yaml.log").read_text():
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
def test_messages_responses_and_generate_clients(tollgate, bedrock, stream):
    base = gateway(tollgate, bedrock)
    a = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    kw = dict(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    if stream:
        with a.messages.stream(**kw) as s:
            assert "".join(s.text_stream)
    else:
        assert a.messages.create(**kw).content[0].text
    if stream:
        with oai(base).responses.stream(model="x", input="hi") as s:
            assert s.get_final_response().output_text
    else:
        assert oai(base).responses.create(model="x", input="hi").output_text
    g = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=base, retry_options=types.HttpRetryOptions(attempts=1)))
    if stream:
        assert "".join(ch.text or "" for ch in g.models.generate_content_stream(model="gemini-x", contents="hi"))
    else:
        assert g.models.generate_content(model="gemini-x", contents="hi").text
    assert all(r["signature_ok"] for r in bedrock.requests())
    assert {r["path"].rsplit("/", 1)[1] for r in bedrock.requests()} == {"converse-stream" if stream else "converse"}


def test_a_wrong_secret_is_bedrocks_403_in_the_callers_shape(tollgate, bedrock):
    base = gateway(tollgate, bedrock, secret="not-the-secret")
    with pytest.raises(openai.PermissionDeniedError) as e:
        oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    assert "signature" in e.value.body["message"], e.value.body
    a = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        a.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_session_token_and_model_ids_in_the_path(tollgate, bedrock):
    arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet"
    base = gateway(tollgate, bedrock, model=arn, extra_auth=", sessionToken: tok-123")
    assert oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    sent = bedrock.requests()[-1]
    assert sent["path"] == "/model/arn:aws:bedrock:eu-west-1:123456789012:inference-profile%2Feu.anthropic.claude-3-5-sonnet/converse", sent["path"]
    assert sent["headers"]["x-amz-security-token"] == "tok-123" and sent["signature_ok"]


def test_untranslatable_requests_and_a_big_one(tollgate, bedrock):
    base = gateway(tollgate, bedrock)
    with pytest.raises(openai.BadRequestError) as e:
        oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"})
    assert "response_format" in e.value.body["message"]
    assert bedrock.requests() == []
    # A 1 MiB prompt is read whole, translated and signed.
    big = "word " * 210_000
    assert oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": big}]).choices[0].message.content
    sent = bedrock.requests()[-1]
    assert sent["signature_ok"] and sent["body"]["messages"][0]["content"][0]["text"] == big


def test_signing_region_service_and_environment_keys(tollgate, bedrock):
    # A signing region or service other than Bedrock's own makes a signature Bedrock refuses:
    # the fields reach the signature.
    for extra in [", region: us-east-1", ", serviceName: execute-api"]:
        base = gateway(tollgate, bedrock, extra_auth=extra)
        with pytest.raises(openai.PermissionDeniedError):
            oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
        tollgate.stop()
    assert bedrock.requests() and not any(r["signature_ok"] for r in bedrock.requests())
    # `aws: {}` signs with the standard environment variables.
    base = ambient_gateway(tollgate, bedrock, extra_env={"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "env-token"})
    assert oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    sent = bedrock.requests()[-1]
    assert sent["signature_ok"] and sent["headers"]["x-amz-security-token"] == "env-token", sent["headers"]


def test_aws_keys_from_a_shared_credentials_profile(tollgate, bedrock, workdir):
    # `aws: {}` with no keys in the environment: the standard chain's profile file.
    creds = workdir / "aws-credentials"
    creds.write_text(f"[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = wrong\n\n"
                     f"[bench]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\naws_session_token = profile-token\n")
    base = ambient_gateway(tollgate, bedrock, extra_env={"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "bench", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert oai(base).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    sent = bedrock.requests()[-1]
    assert sent["signature_ok"] and sent["headers"]["x-amz-security-token"] == "profile-token", sent["headers"]
