"""Claude Code (npm @anthropic-ai/claude-code, `claude -p`) with ANTHROPIC_BASE_URL pointed at
tollgate, served by an OpenAI-compatible provider (llmock): the CLI's real Messages requests
(streamed, with its tool set, adaptive thinking, context management and `?beta=true`) are
translated and it completes a prompt."""
import os
import subprocess

from conftest import ROOT, VENV_BIN, Proc, free_port, serve_listeners, wait_port

CLAUDE = ROOT / "tests" / "node" / "node_modules" / ".bin" / "claude"


def run_claude(base, workdir):
    home, cwd = workdir / "home", workdir / "project"
    home.mkdir(exist_ok=True)
    cwd.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY="sk-client",
               DISABLE_TELEMETRY="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1")
    return subprocess.run([str(CLAUDE), "-p", "say hi"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def served_messages(workdir):
    log = (workdir / "config.yaml.log").read_text()
    return [l for l in log.splitlines() if "http.path=/v1/messages" in l]


def test_claude_code_completes_a_prompt_through_tollgate(tollgate, workdir):
    port = free_port()
    # Text answers only: with tools offered, llmock's default would ask Claude Code to run one.
    mock = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                 "--response-style", "hello", "--tool-mode", "off"], workdir / "llmock-cc.log")
    try:
        wait_port(port, proc=mock.proc)
        base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: openai-compatible
          hostOverride: "127.0.0.1:{port}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
          policies:
            backendAuth: {{key: sk-provider}}
            ai:
              routes: {{/v1/messages: messages, /v1/messages/count_tokens: anthropicTokenCount}}
""")
        r = run_claude(base, workdir)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "Hello! This is a mock response from gpt-4o-mini." in r.stdout, (r.stdout, r.stderr)
        served = served_messages(workdir)
        assert served and all("http.status=200" in l for l in served), served
        assert any("gen_ai.streaming=true" in l and "gen_ai.usage.output_tokens=" in l for l in served), served
    finally:
        mock.stop()


def test_claude_code_on_the_anthropic_provider_is_served_natively(tollgate, workdir, llmock):
    """The anthropic provider: Claude Code's requests go to Messages as written (model
    replaced), llmock's Anthropic endpoint answers, usage is recorded."""
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: anthropic
          hostOverride: "127.0.0.1:{llmock.port}"
          pathPrefix: /anthropic/v1
          provider: {{anthropic: {{model: claude-haiku-4-5}}}}
          policies:
            backendAuth: {{key: sk-ant-provider}}
            ai:
              routes: {{/v1/messages: messages, /v1/messages/count_tokens: anthropicTokenCount}}
""")
    r = run_claude(base, workdir)
    assert r.returncode == 0 and r.stdout.strip(), (r.stdout, r.stderr)
    # Every request reached Anthropic's API with the backend's model. (llmock's request schema
    # is stricter than Anthropic's and refuses one of Claude Code's side requests with 422; the
    # client gets that answer as it is.)
    sent = [j for j in llmock.journal() if j["path"] == "/anthropic/v1/messages"]
    assert sent and all(j["body"]["model"] == "claude-haiku-4-5" for j in sent), sent
    assert any(j["status"] == 200 for j in sent), [j["status"] for j in sent]
    served = served_messages(workdir)
    assert sorted(int(l.split("http.status=")[1].split()[0]) for l in served) == sorted(j["status"] for j in sent), served
    assert all("gen_ai.provider.name=anthropic" in l for l in served), served
