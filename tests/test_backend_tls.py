"""Upstream TLS is verified: an untrusted CA or a wrong name fails with 502, not silently."""
import openai
import pytest
import requests

from conftest import seed_with_local_hosts

URL = "http://127.0.0.1:3100/compatible-mode/v1/chat/completions"
BODY = {"model": "any", "messages": [{"role": "user", "content": "Hello!"}]}


def start(tollgate, nginx, ca, tls_block):
    cfg = seed_with_local_hosts(nginx.port, ca).replace(f"backendTLS: {{root: {ca}}}", f"backendTLS: {tls_block}")
    tollgate.start(cfg, ports=[3100])


@pytest.mark.parametrize("tls_block", ["{}", "{root: CA, hostname: wrong.example.com}"])
def test_unverifiable_upstream_gets_502(tollgate, provider_front, tls_block):
    nginx, ca = provider_front
    start(tollgate, nginx, ca, tls_block.replace("CA", str(ca)))
    r = requests.post(URL, json=BODY, timeout=10)
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "upstream_unreachable"
    assert nginx.entries() == []


def test_insecure_skips_verification(tollgate, provider_front, llmock):
    nginx, ca = provider_front
    start(tollgate, nginx, ca, "{insecure: true}")
    assert requests.post(URL, json=BODY, timeout=10).status_code == 200


def test_explicit_sni_hostname(tollgate, provider_front, llmock):
    nginx, ca = provider_front
    start(tollgate, nginx, ca, f"{{root: {ca}, hostname: dashscope.aliyuncs.com}}")
    client = openai.OpenAI(base_url="http://127.0.0.1:3100/compatible-mode/v1", api_key="x", max_retries=0)
    assert client.chat.completions.create(**BODY).choices[0].message.content
    assert nginx.entries()[-1]["sni"] == "dashscope.aliyuncs.com"
