"""The OpenAI Codex CLI (npm @openai/codex, `codex exec`) with a model provider pointed at
tollgate: its real Responses requests (streamed, with its function tools, a `namespace` tool
group, a cache-only web search, `client_metadata`, `include` and a reasoning summary request)
served natively by an OpenAI-compatible provider and translated for an Anthropic one (llmock
serves both), and it completes a prompt."""
import os
import subprocess

import pytest

from conftest import ROOT, VENV_BIN, Proc, free_port, serve_listeners, wait_port

CODEX = ROOT / "tests" / "node" / "node_modules" / ".bin" / "codex"

PROVIDERS = {
    "openai": ('provider: {openAI: {model: gpt-4o-mini}}', "gpt-4o-mini"),
    "anthropic": ('pathPrefix: /anthropic/v1\n          provider: {anthropic: {model: claude-haiku-4-5}}', "claude-haiku-4-5"),
}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_codex_completes_a_prompt_through_tollgate(tollgate, workdir, provider):
    port = free_port()
    mock = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                 "--response-style", "hello", "--tool-mode", "off"], workdir / "llmock-codex.log")
    try:
        wait_port(port, proc=mock.proc)
        backend, model = PROVIDERS[provider]
        base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: {provider}
          hostOverride: "127.0.0.1:{port}"
          {backend}
          policies:
            backendAuth: {{key: sk-provider}}
            ai:
              routes: {{/v1/responses: responses, /v1/models: models}}
""")
        home, cwd = workdir / "codex-home", workdir / "project"
        home.mkdir()
        cwd.mkdir()
        (home / "config.toml").write_text(f"""model = "gpt-5"
model_provider = "tollgate"
[model_providers.tollgate]
name = "tollgate"
base_url = "{base}/v1"
env_key = "TOLLGATE_KEY"
wire_api = "responses"
""")
        env = dict(os.environ, CODEX_HOME=str(home), TOLLGATE_KEY="client-key")
        r = subprocess.run([str(CODEX), "exec", "--skip-git-repo-check", "say hi"], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
        assert f"Hello! This is a mock response from {model}." in r.stdout, (r.stdout, r.stderr[-2000:])
        log = (workdir / "config.yaml.log").read_text()
        served = [l for l in log.splitlines() if "http.path=/v1/responses" in l]
        assert served and all("http.status=200" in l and "gen_ai.streaming=true" in l for l in served), served
        assert all(f"gen_ai.response.model={model}" in l for l in served), served
    finally:
        mock.stop()
