"""Claude Code (npm @anthropic-ai/claude-code, `claude -p`) with ANTHROPIC_BASE_URL pointed at
tollgate, served by an OpenAI-compatible provider (llmock): the CLI's real Messages requests
(streamed, with its tool set, adaptive thinking, context management and `?beta=true`) are
translated and it completes a prompt."""
import os
import subprocess

from conftest import ROOT, VENV_BIN, Proc, free_port, serve_listeners, wait_port

CLAUDE = ROOT / "tests" / "node" / "node_modules" / ".bin" / "claude"


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
        home, cwd = workdir / "home", workdir / "project"
        home.mkdir()
        cwd.mkdir()
        env = dict(os.environ, HOME=str(home), ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY="sk-client",
                   DISABLE_TELEMETRY="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1")
        r = subprocess.run([str(CLAUDE), "-p", "say hi"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "Hello! This is a mock response from gpt-4o-mini." in r.stdout, (r.stdout, r.stderr)
        log = (workdir / "config.yaml.log").read_text()
        served = [l for l in log.splitlines() if "http.path=/v1/messages" in l]
        assert served and all("http.status=200" in l for l in served), served
        assert any("gen_ai.streaming=true" in l and "gen_ai.usage.output_tokens=" in l for l in served), served
    finally:
        mock.stop()
