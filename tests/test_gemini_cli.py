"""The Gemini CLI (npm @google/gemini-cli, `gemini -p`) with GOOGLE_GEMINI_BASE_URL pointed at
tollgate, served by an OpenAI-compatible provider (llmock): its real generateContent requests
(streamed, with its tools, thinking config and topK) are translated and it completes a prompt."""
import json
import os
import subprocess

from conftest import ROOT, VENV_BIN, Proc, free_port, serve_listeners, wait_port

GEMINI = ROOT / "tests" / "node" / "node_modules" / ".bin" / "gemini"


def test_gemini_cli_completes_a_prompt_through_tollgate(tollgate, workdir):
    port = free_port()
    mock = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                 "--response-style", "hello", "--tool-mode", "off"], workdir / "llmock-gemini.log")
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
              routes: {{":generateContent": generateContent, ":streamGenerateContent": generateContent}}
""")
        home, cwd = workdir / "home", workdir / "project"
        (home / ".gemini").mkdir(parents=True)
        cwd.mkdir()
        # API-key auth, no telemetry (the CLI reads these from its settings file).
        (home / ".gemini" / "settings.json").write_text(json.dumps({
            "security": {"auth": {"selectedType": "gemini-api-key"}}, "telemetry": {"enabled": False},
            "privacy": {"usageStatisticsEnabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True}}))
        env = dict(os.environ, HOME=str(home), GEMINI_API_KEY="goog-client", GOOGLE_GEMINI_BASE_URL=base,
                   GEMINI_CLI_TRUST_WORKSPACE="true")
        r = subprocess.run([str(GEMINI), "-p", "say hi"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
        assert "Hello! This is a mock response from gpt-4o-mini." in r.stdout, (r.stdout, r.stderr[-2000:])
        log = (workdir / "config.yaml.log").read_text()
        served = [l for l in log.splitlines() if "GenerateContent http.status" in l or "generateContent http.status" in l]
        assert served and all("http.status=200" in l for l in served), served
        assert any("streamGenerateContent" in l and "gen_ai.streaming=true" in l for l in served), served
    finally:
        mock.stop()
